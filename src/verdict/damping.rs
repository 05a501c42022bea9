//! A check's state (UNKNOWN / OK / WARN / CRIT) from its recent per-run verdicts, damped
//! against flapping: worse after `failures` bad runs among the last `window`, better after
//! `recover` consecutive better runs. Pure: no clock, no IO; the daemon feeds it and the
//! history store persists it, so a restart resumes the same state without re-announcing it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::assess::Status;
use super::startup::StartUp;
use crate::config::Damping;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    #[default]
    Unknown,
    Ok,
    Warn,
    Crit,
}

impl CheckState {
    pub const ALL: [CheckState; 4] = [
        CheckState::Unknown,
        CheckState::Ok,
        CheckState::Warn,
        CheckState::Crit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Unknown => "unknown",
            CheckState::Ok => "ok",
            CheckState::Warn => "warn",
            CheckState::Crit => "crit",
        }
    }

    pub fn parse(s: &str) -> Option<CheckState> {
        CheckState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl From<Status> for CheckState {
    fn from(s: Status) -> CheckState {
        match s {
            Status::Ok => CheckState::Ok,
            Status::Warn => CheckState::Warn,
            Status::Crit => CheckState::Crit,
        }
    }
}

/// The state of one check and the verdicts that decide its next move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    pub state: CheckState,
    /// Unix milliseconds of the last transition (0 while UNKNOWN since start).
    pub since_ms: i64,
    /// Why the state is what it is, in one line.
    pub cause: String,
    recent: VecDeque<Status>,
    /// The start-up the check is in, if its target says it is starting.
    #[serde(default)]
    pub startup: StartUp,
    /// The failure reason of the run that caused the last transition (alerts carry it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            state: CheckState::Unknown,
            since_ms: 0,
            cause: "no run yet".into(),
            recent: VecDeque::new(),
            startup: StartUp::default(),
            reason: None,
        }
    }
}

/// A change of state, as logged, counted, stored and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub check: String,
    pub at_ms: i64,
    pub from: CheckState,
    pub to: CheckState,
    pub cause: String,
}

impl Tracker {
    /// Feeds one run's verdict (`why` says what was wrong, if anything); returns the
    /// transition it caused, if any.
    pub fn observe(
        &mut self,
        check: &str,
        status: Status,
        why: Option<&str>,
        at_ms: i64,
        d: &Damping,
    ) -> Option<Transition> {
        self.recent.push_back(status);
        let keep = d.window.max(d.recover) as usize;
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
        let bad_in_window = |level: Status| {
            self.recent
                .iter()
                .rev()
                .take(d.window as usize)
                .filter(|s| **s >= level)
                .count()
        };
        let failures = d.failures as usize;
        let escalate = if bad_in_window(Status::Crit) >= failures {
            CheckState::Crit
        } else if bad_in_window(Status::Warn) >= failures {
            CheckState::Warn
        } else {
            CheckState::Ok
        };
        let latest = why.unwrap_or("OK");
        let (to, cause) = if self.state == CheckState::Unknown {
            if status < Status::Crit {
                (CheckState::from(status), format!("first run: {latest}"))
            } else if escalate == CheckState::Crit {
                (CheckState::Crit, self.escalation_cause(d, latest))
            } else {
                return None;
            }
        } else if escalate > self.state {
            (escalate, self.escalation_cause(d, latest))
        } else if let Some(better) = self.recovered_to(d) {
            let cause = format!(
                "{} consecutive runs {}",
                d.recover,
                match better {
                    CheckState::Ok => "OK".to_string(),
                    _ => format!("better than {}", self.state.as_str().to_uppercase()),
                }
            );
            // Failures before the recovery must not trip it again.
            let drop = self.recent.len() - d.recover as usize;
            self.recent.drain(..drop);
            (better, cause)
        } else {
            return None;
        };
        let t = Transition {
            check: check.to_string(),
            at_ms,
            from: self.state,
            to,
            cause: cause.clone(),
        };
        self.state = to;
        self.since_ms = at_ms;
        self.cause = cause;
        Some(t)
    }

    /// The run could not be made (reason `unavailable`: no browser): UNKNOWN with `why`,
    /// a transition only when it was known before.
    pub fn unavailable(&mut self, check: &str, why: &str, at_ms: i64) -> Option<Transition> {
        if self.state == CheckState::Unknown {
            self.cause = why.to_string();
            return None;
        }
        self.reset(check, why, at_ms)
    }

    /// Starts over at UNKNOWN (the check became a different one: a reload changed its type
    /// or target); the transition says why, unless it was UNKNOWN already.
    pub fn reset(&mut self, check: &str, cause: &str, at_ms: i64) -> Option<Transition> {
        let from = self.state;
        *self = Tracker {
            since_ms: at_ms,
            cause: cause.to_string(),
            ..Tracker::default()
        };
        (from != CheckState::Unknown).then(|| Transition {
            check: check.to_string(),
            at_ms,
            from,
            to: CheckState::Unknown,
            cause: cause.to_string(),
        })
    }

    fn escalation_cause(&self, d: &Damping, latest: &str) -> String {
        let (level, what) = if self.recent.back() == Some(&Status::Crit) {
            (Status::Crit, "failed")
        } else {
            (Status::Warn, "were degraded")
        };
        let window: Vec<&Status> = self.recent.iter().rev().take(d.window as usize).collect();
        let bad = window.iter().filter(|s| ***s >= level).count();
        if bad == window.len() {
            format!("{bad} consecutive runs {what}; latest: {latest}")
        } else {
            format!(
                "{bad} of the last {} runs {what}; latest: {latest}",
                window.len()
            )
        }
    }

    /// The worst verdict of the last `recover` runs, when all of them beat the state.
    fn recovered_to(&self, d: &Damping) -> Option<CheckState> {
        let k = d.recover as usize;
        if self.recent.len() < k {
            return None;
        }
        let worst = self.recent.iter().rev().take(k).max().copied()?;
        let worst = CheckState::from(worst);
        (worst < self.state).then_some(worst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Damping = Damping {
        failures: 2,
        window: 3,
        recover: 2,
    };

    fn feed(t: &mut Tracker, d: &Damping, runs: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, c) in runs.chars().enumerate() {
            let s = match c {
                'o' => Status::Ok,
                'w' => Status::Warn,
                _ => Status::Crit,
            };
            let why = (s != Status::Ok).then_some("why");
            if let Some(tr) = t.observe("c", s, why, i as i64, d) {
                out.push(format!("{i}:{}", tr.to.as_str()));
            }
        }
        out
    }

    #[test]
    fn unknown_until_the_first_run_then_good_news_is_immediate() {
        let mut t = Tracker::default();
        assert_eq!(t.state, CheckState::Unknown);
        assert_eq!(feed(&mut t, &D, "o"), ["0:ok"]);
        assert_eq!(t.cause, "first run: OK");
        let mut t = Tracker::default();
        assert_eq!(feed(&mut t, &D, "w"), ["0:warn"]);
    }

    #[test]
    fn a_failing_start_needs_the_same_evidence_as_any_failure() {
        let mut t = Tracker::default();
        assert_eq!(feed(&mut t, &D, "cc"), ["1:crit"]);
        assert_eq!(t.cause, "2 consecutive runs failed; latest: why");
    }

    #[test]
    fn n_of_m_trips_and_a_single_failure_does_not() {
        let mut t = Tracker::default();
        assert_eq!(feed(&mut t, &D, "ocooococ"), ["0:ok", "7:crit"]);
        assert_eq!(t.cause, "2 of the last 3 runs failed; latest: why");
    }

    #[test]
    fn consecutive_mode_ignores_alternation() {
        let d = Damping {
            failures: 3,
            window: 3,
            recover: 1,
        };
        let mut t = Tracker::default();
        assert_eq!(feed(&mut t, &d, "ococococ"), ["0:ok"]);
        assert_eq!(feed(&mut t, &d, "cc"), ["1:crit"]);
        assert_eq!(t.cause, "3 consecutive runs failed; latest: why");
    }

    #[test]
    fn recovery_needs_k_consecutive_successes_and_does_not_retrip() {
        let mut t = Tracker::default();
        assert_eq!(feed(&mut t, &D, "occ"), ["0:ok", "2:crit"]);
        // One success is not enough; two are; the old failures are forgotten.
        assert_eq!(feed(&mut t, &D, "ocooo"), ["3:ok"]);
        assert_eq!(t.cause, "2 consecutive runs OK");
        assert_eq!(feed(&mut t, &D, "c"), Vec::<String>::new());
    }

    #[test]
    fn warn_is_degraded_and_crit_wins() {
        let mut t = Tracker::default();
        assert_eq!(feed(&mut t, &D, "oww"), ["0:ok", "2:warn"]);
        assert_eq!(t.cause, "2 of the last 3 runs were degraded; latest: why");
        assert_eq!(feed(&mut t, &D, "cc"), ["1:crit"]);
        // From CRIT, degraded runs are better: back to WARN, then OK.
        assert_eq!(feed(&mut t, &D, "wwoo"), ["1:warn", "3:ok"]);
        assert_eq!(t.cause, "2 consecutive runs OK");
    }

    #[test]
    fn the_tracker_round_trips_through_json() {
        let mut t = Tracker::default();
        feed(&mut t, &D, "occ");
        let back: Tracker = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }
}
