//! One run as the board, the history, the API and the status page know it: its verdict,
//! its failure, its phases and events, and the days its certificate has left.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::assess::{Assessment, Status};
use crate::clock;
use crate::probe::{EventAt, ProbeResult};

/// One run as stored and served: what the status page and `/api/v1` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unix milliseconds of the start.
    pub at_ms: i64,
    pub success: bool,
    /// This run's own verdict (the check's state is damped over several runs).
    pub status: Status,
    pub reason: Option<String>,
    pub phase: Option<String>,
    pub message: Option<String>,
    /// Why the verdict is not OK (failure, or the threshold crossed).
    pub why: Option<String>,
    pub duration_seconds: f64,
    pub phases: BTreeMap<String, f64>,
    /// Agent events, seconds after the message was sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventAt>,
    /// The agent run's stages (seconds after the message was sent) and output rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentRun>,
    /// Whole days left on the certificate that expires first, when there was TLS
    /// ([`clock::days_left`], as `check` and the thresholds count them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_days_left: Option<f64>,
    /// What the browser saw (browser checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<crate::probe::PageReport>,
    /// A screenshot of the failed page is kept in the history
    /// (`/checks/NAME/screenshot/AT_MS`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub screenshot: bool,
}

/// What an agent run measured beyond its events (see [`crate::probe::RunStats`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRun {
    pub stages: BTreeMap<String, f64>,
    pub deltas: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chars_per_second: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
}

impl RunRecord {
    pub fn new(r: &ProbeResult, verdict: &Assessment) -> RunRecord {
        RunRecord {
            at_ms: clock::unix_ms(r.started_at),
            success: r.success(),
            status: verdict.status,
            reason: r.failure.as_ref().map(|f| f.reason.as_str().to_string()),
            phase: r
                .failure
                .as_ref()
                .and_then(|f| f.phase)
                .map(|p| p.as_str().to_string()),
            message: r.failure.as_ref().map(|f| f.message.clone()),
            why: verdict.why.clone(),
            duration_seconds: r.duration.as_secs_f64(),
            phases: r
                .phases
                .iter()
                .map(|(p, d)| (p.as_str().to_string(), d.as_secs_f64()))
                .collect(),
            events: r.events.clone(),
            agent: r.agent.as_ref().map(|a| AgentRun {
                stages: a
                    .stages
                    .iter()
                    .map(|(s, d)| (s.name().to_string(), d.as_secs_f64()))
                    .collect(),
                deltas: a.deltas,
                chars_per_second: a.chars_per_second,
                tokens_per_second: a.tokens_per_second,
            }),
            cert_days_left: r
                .tls
                .as_ref()
                .and_then(|t| t.earliest_expiry())
                .map(|t| clock::days_left_now(t) as f64),
            page: r.page.clone(),
            screenshot: r.screenshot.is_some(),
        }
    }

    /// When an event or stage (by name) first arrived, seconds after the message was sent.
    pub fn arrival(&self, name: &str) -> Option<f64> {
        self.events
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.at.as_secs_f64())
            .or_else(|| self.agent.as_ref()?.stages.get(name).copied())
    }
}
