//! pathwatch: a synthetic monitor for the whole path a user of an AI-agent product takes.
//!
//! The rule of this house: **a module imports only from modules listed above it here.**
//! Leaves first, wiring last; data flows config -> scheduler -> probe -> result -> verdict
//! -> sinks (metrics, history) -> web, and no arrow runs back up.
//!
//! - [`protocol`]: the agent event vocabulary (golden events, fatal, terminal, noise).
//! - [`clock`]: now, RFC 3339, durations, certificate days left (one formula).
//! - [`secrets`]: redaction of interpolated values and URL credentials.
//! - [`config`]: the config file as pure data, validated with file:line:col and paths.
//! - [`cluster`]: shards: which member of a deployment owns which check (rendezvous hashing).
//! - [`demo`]: the built-in demo agent backend (health, auth, `/ws` in every envelope,
//!   faults, TLS); the oracle tests compare against.
//! - [`probe`]: one run of one check type against one target into one
//!   [`probe::ProbeResult`].
//! - [`verdict`]: a run's OK / WARN / CRIT, the run record, damped check states, the board.
//! - [`history`]: runs, transitions and states in SQLite, written off the probe path.
//! - [`alerting`]: alerts posted to Alertmanager directly (paging without Prometheus).
//! - [`scheduler`]: one task per check, spread, jitter, no overlap, concurrency limit, drain.
//! - [`live`]: the config and prober that run now (swapped by a reload), the reload handle.
//! - [`metrics`]: per-check series in the Prometheus text format, blackbox `probe_*`
//!   gauges shared with `/probe`, self-metrics.
//! - [`report`]: the text / JSON / JUnit reports of `pathwatch check`.
//! - [`rules`]: Prometheus alerting rules generated from the config (`pathwatch rules`).
//! - [`server`]: the HTTP interface (status page, API, `/metrics`, `/probe`, health).
//! - [`app`]: wiring: builds the parts from a config and runs them (`run`, `check`).
#![forbid(unsafe_code)]

// One module per group: rustfmt keeps the order, which is the rule above.
pub mod protocol;

pub mod clock;

pub mod secrets;

pub mod config;

pub mod cluster;

pub mod demo;

pub mod probe;

pub mod verdict;

pub mod history;

pub mod alerting;

pub mod scheduler;

pub mod live;

pub mod metrics;

pub mod report;

pub mod rules;

pub mod server;

pub mod app;
