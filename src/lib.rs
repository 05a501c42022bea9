//! pathwatch: a synthetic monitor for the whole path a user of an AI-agent product takes.
//!
//! Module map:
//! - [`config`]: the config file, interpolation of secrets, validation with positions.
//! - [`probe`]: one probe run per check type (http, tls, dns) into one [`probe::ProbeResult`].
//! - [`assess`]: thresholds turn a result into OK / WARN / CRIT.
//! - [`state`]: a check's damped state (UNKNOWN / OK / WARN / CRIT) and its transitions.
//! - [`board`]: the live state, last run and recent latencies of every check.
//! - [`history`]: runs, transitions and states in SQLite, written off the probe path.
//! - [`metrics`]: per-check series written straight to the Prometheus text format (`text`),
//!   the blackbox-compatible `probe_*` gauges shared with `/probe` (`blackbox`), self-metrics.
//! - [`scheduler`]: one task per check, spread, jitter, no overlap, concurrency limit, drain.
//! - [`server`]: the HTTP interface (`/metrics`, `/probe`, `/-/healthy`, `/-/ready`).
//! - [`daemon`]: wires the above together for `pathwatch run`.
//! - [`demo`]: the built-in demo agent backend (health, `/ws` in every envelope, faults).
//! - [`rules`]: Prometheus alerting rules generated from the config (`pathwatch rules`).
//! - [`report`]: the one-shot `pathwatch check` run and its text / JSON / JUnit reports.
//! - [`secrets`]: redaction of interpolated values and URL credentials.
#![forbid(unsafe_code)]

pub mod assess;
pub mod board;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod history;
pub mod metrics;
pub mod probe;
pub mod report;
pub mod rules;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod state;
