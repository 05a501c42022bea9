//! The live picture of every check: its damped state, its last run, and its recent
//! latencies (for sparklines). The daemon writes it after every run; the API and the status
//! page read it. After a restart it starts from what the history saved.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::damping::{Tracker, Transition};
use super::record::RunRecord;
use crate::config::Check;

/// What a check was when pathwatch last stopped.
#[derive(Debug, Clone)]
pub struct Saved {
    pub tracker: Tracker,
    pub last: Option<RunRecord>,
}

/// Latencies kept per check for the sparkline.
pub const SPARK: usize = 60;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Entry {
    pub tracker: Tracker,
    pub last: Option<RunRecord>,
    /// (unix ms, seconds, success) of the latest runs, oldest first.
    pub recent: VecDeque<(i64, f64, bool)>,
}

pub struct Board {
    order: Vec<Arc<Check>>,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Board {
    /// A board for `checks`, resuming the `saved` states (checks no longer configured are
    /// left out; new ones start UNKNOWN).
    pub fn new(checks: &[Arc<Check>], mut saved: HashMap<String, Saved>) -> Board {
        let entries = checks
            .iter()
            .map(|c| {
                let entry = saved
                    .remove(&c.name)
                    .map(|s| Entry {
                        tracker: s.tracker,
                        recent: s
                            .last
                            .iter()
                            .map(|r| (r.at_ms, r.duration_seconds, r.success))
                            .collect(),
                        last: s.last,
                    })
                    .unwrap_or_default();
                (c.name.clone(), entry)
            })
            .collect();
        Board {
            order: checks.to_vec(),
            entries: Mutex::new(entries),
        }
    }

    /// Seeds the sparkline from stored runs (oldest first).
    pub fn seed_recent(&self, check: &str, runs: impl IntoIterator<Item = (i64, f64, bool)>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(check) {
            e.recent = runs.into_iter().collect();
        }
    }

    /// Feeds a run into the check's state; returns the state after it and the transition.
    pub fn observe(&self, check: &Check, run: &RunRecord) -> (Tracker, Option<Transition>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.entry(check.name.clone()).or_default();
        let transition = e.tracker.observe(
            &check.name,
            run.status,
            run.why.as_deref(),
            run.at_ms,
            &check.thresholds.damping,
        );
        e.recent
            .push_back((run.at_ms, run.duration_seconds, run.success));
        while e.recent.len() > SPARK {
            e.recent.pop_front();
        }
        e.last = Some(run.clone());
        (e.tracker.clone(), transition)
    }

    /// Every check in config order with its entry.
    pub fn snapshot(&self) -> Vec<(Arc<Check>, Entry)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.order
            .iter()
            .map(|c| (c.clone(), entries.get(&c.name).cloned().unwrap_or_default()))
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<(Arc<Check>, Entry)> {
        let check = self.order.iter().find(|c| c.name == name)?.clone();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(name).cloned().unwrap_or_default();
        Some((check, entry))
    }
}
