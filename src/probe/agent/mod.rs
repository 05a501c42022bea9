//! The agent pipeline (golden path) check: agent-event normalisation ([`events`]) and the
//! rules of one run ([`run`]). The WebSocket conversation that feeds them (login, token
//! transport, handshake, send) is built on top of these in the same module.

pub mod events;
pub mod login;
pub mod run;
pub mod ws;
