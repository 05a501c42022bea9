//! Cold starts: a run whose target says it is starting (reason `starting`) is WARN while
//! the start-up is younger than `cold_start_grace`, CRIT after it; the first success ends
//! the start-up and says how long it took, from its first failed run. Pure: the run's time
//! is the clock, and the state is saved with the check's so a restart keeps counting.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::assess::Status;
use super::record::RunRecord;
use crate::clock::fmt_span;
use crate::probe::Reason;

/// The start-up a check is in, if any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartUp {
    /// Start of the first failed run since the last success (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    down_since_ms: Option<i64>,
    /// Start of the first `starting` run since the last success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    starting_since_ms: Option<i64>,
}

impl StartUp {
    /// Judges `run`, changing the verdict of a `starting` one; returns how long the
    /// start-up took when `run` is the success that ends one. A start-up counts from the
    /// first failure after the last success (a deploy often refuses connections before
    /// its new instance says it is starting), to the first success.
    pub fn judge(&mut self, run: &mut RunRecord, grace: Duration) -> Option<Duration> {
        if run.success {
            let took = self
                .starting_since_ms
                .map(|s| run.at_ms - self.down_since_ms.unwrap_or(s));
            *self = StartUp::default();
            return took.map(|ms| Duration::from_millis(ms.max(0) as u64));
        }
        self.down_since_ms.get_or_insert(run.at_ms);
        if run.reason.as_deref() != Some(Reason::Starting.as_str()) {
            return None;
        }
        let since = *self.starting_since_ms.get_or_insert(run.at_ms);
        let starting_for = Duration::from_millis((run.at_ms - since).max(0) as u64);
        let said = run
            .message
            .as_deref()
            .unwrap_or("the target says it is starting");
        run.why = Some(if starting_for < grace {
            run.status = Status::Warn;
            if starting_for.is_zero() {
                format!("starting: {said}")
            } else {
                format!("starting for {}: {said}", fmt_span(starting_for))
            }
        } else {
            run.status = Status::Crit;
            format!(
                "still starting after {} (cold_start_grace {}): {said}",
                fmt_span(starting_for),
                fmt_span(grace)
            )
        });
        None
    }

    /// Whether the check is in a start-up now (a `starting` run since the last success).
    pub fn starting_since_ms(&self) -> Option<i64> {
        self.starting_since_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(at_s: i64, reason: Option<Reason>) -> RunRecord {
        RunRecord {
            at_ms: at_s * 1000,
            success: reason.is_none(),
            status: if reason.is_none() {
                Status::Ok
            } else {
                Status::Crit
            },
            reason: reason.map(|r| r.as_str().to_string()),
            phase: None,
            message: reason.map(|_| "got HTTP 503 Service Unavailable".to_string()),
            why: reason.map(|r| format!("{r}: got HTTP 503 Service Unavailable")),
            duration_seconds: 0.01,
            phases: Default::default(),
            events: Vec::new(),
            agent: None,
            cert_days_left: None,
            page: None,
            screenshot: false,
        }
    }

    const GRACE: Duration = Duration::from_secs(120);

    #[test]
    fn starting_is_warn_within_the_grace_then_crit() {
        let mut s = StartUp::default();
        let mut r = run(100, Some(Reason::Starting));
        assert_eq!(s.judge(&mut r, GRACE), None);
        assert_eq!(r.status, Status::Warn);
        assert_eq!(
            r.why.as_deref(),
            Some("starting: got HTTP 503 Service Unavailable")
        );
        let mut r = run(125, Some(Reason::Starting));
        s.judge(&mut r, GRACE);
        assert_eq!(r.status, Status::Warn);
        assert_eq!(
            r.why.as_deref(),
            Some("starting for 25s: got HTTP 503 Service Unavailable")
        );
        let mut r = run(230, Some(Reason::Starting));
        s.judge(&mut r, GRACE);
        assert_eq!(r.status, Status::Crit);
        assert_eq!(
            r.why.as_deref(),
            Some(
                "still starting after 2m10s (cold_start_grace 2m): got HTTP 503 Service Unavailable"
            )
        );
        let took = s.judge(&mut run(240, None), GRACE);
        assert_eq!(took, Some(Duration::from_secs(140)));
        assert_eq!(s, StartUp::default());
    }

    #[test]
    fn a_start_up_counts_from_the_first_failure_and_an_outage_is_not_one() {
        let mut s = StartUp::default();
        let mut refused = run(10, Some(Reason::Connect));
        s.judge(&mut refused, GRACE);
        assert_eq!(refused.status, Status::Crit, "a plain failure stays CRIT");
        s.judge(&mut run(15, Some(Reason::Starting)), GRACE);
        assert_eq!(
            s.judge(&mut run(22, None), GRACE),
            Some(Duration::from_secs(12))
        );

        let mut s = StartUp::default();
        s.judge(&mut run(10, Some(Reason::Timeout)), GRACE);
        assert_eq!(
            s.judge(&mut run(20, None), GRACE),
            None,
            "an outage, not a start-up"
        );
    }

    #[test]
    fn it_round_trips_and_old_saved_states_read_as_none() {
        let mut s = StartUp::default();
        s.judge(&mut run(10, Some(Reason::Starting)), GRACE);
        let back: StartUp = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let old: StartUp = serde_json::from_str("{}").unwrap();
        assert_eq!(old, StartUp::default());
    }
}
