//! The live picture of every check: its damped state, its last run, and its recent
//! latencies (for sparklines). The daemon writes it after every run; the API and the status
//! page read it. After a restart it starts from what the history saved.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::damping::{Tracker, Transition};
use super::record::RunRecord;
use crate::clock;
use crate::config::Check;

/// What a check was when pathwatch last stopped.
#[derive(Debug, Clone)]
pub struct Saved {
    pub tracker: Tracker,
    pub last: Option<RunRecord>,
}

/// The marks of the time pathwatch was not running, one per resumed check that missed a
/// run in it (nothing ran for over two of its intervals): a row in the check's state
/// changes, from its carried state to the same, so its history says why it has no runs
/// there and that its state is older than it looks. The gap runs from the newest run of
/// any check before the stop to `now_ms`.
pub fn gap_marks(
    saved: &HashMap<String, Saved>,
    checks: &[Arc<Check>],
    now_ms: i64,
) -> Vec<Transition> {
    let Some(stopped_ms) = saved
        .values()
        .filter_map(|s| s.last.as_ref())
        .map(|r| r.at_ms + (r.duration_seconds * 1000.0) as i64)
        .max()
    else {
        return Vec::new();
    };
    let (from, to) = (
        clock::rfc3339_secs(stopped_ms / 1000),
        clock::rfc3339_secs(now_ms / 1000),
    );
    let gap = clock::fmt_span(std::time::Duration::from_millis(
        (now_ms - stopped_ms).max(0) as u64,
    ));
    let mut marks: Vec<Transition> = checks
        .iter()
        .filter_map(|c| {
            let s = saved.get(&c.name)?;
            let last = s.last.as_ref()?;
            let missed = now_ms - last.at_ms > 2 * c.interval.as_millis() as i64;
            missed.then(|| Transition {
                check: c.name.clone(),
                at_ms: now_ms,
                from: s.tracker.state,
                to: s.tracker.state,
                cause: format!(
                    "pathwatch was not running from {from} to {to} ({gap}): no runs in that time; the state was carried over"
                ),
            })
        })
        .collect();
    marks.sort_by(|a, b| a.check.cmp(&b.check));
    marks
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

/// A run after the board judged it: the run as judged, the check's state after it, the
/// transition it caused, and how long the start-up it ended took.
pub struct Observed {
    pub run: RunRecord,
    pub tracker: Tracker,
    pub transition: Option<Transition>,
    pub start_up: Option<std::time::Duration>,
}

pub struct Board {
    inner: Mutex<Inner>,
}

struct Inner {
    /// The checks that run now, in config order (a reload replaces it).
    order: Vec<Arc<Check>>,
    by_name: HashMap<String, Arc<Check>>,
    entries: HashMap<String, Entry>,
}

fn by_name(checks: &[Arc<Check>]) -> HashMap<String, Arc<Check>> {
    checks.iter().map(|c| (c.name.clone(), c.clone())).collect()
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
            inner: Mutex::new(Inner {
                order: checks.to_vec(),
                by_name: by_name(checks),
                entries,
            }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The checks after a reload: removed ones leave, added ones start UNKNOWN, the others
    /// keep their state, except those in `reset` (name, why), which start over at UNKNOWN.
    /// Returns the state and transition of each reset one.
    pub fn reconcile(
        &self,
        checks: &[Arc<Check>],
        reset: &[(String, String)],
        at_ms: i64,
    ) -> Vec<(Tracker, Option<Transition>)> {
        let names: std::collections::HashSet<&str> =
            checks.iter().map(|c| c.name.as_str()).collect();
        let mut inner = self.inner();
        inner
            .entries
            .retain(|name, _| names.contains(name.as_str()));
        let mut transitions = Vec::new();
        for c in checks {
            let e = inner.entries.entry(c.name.clone()).or_default();
            if let Some((_, why)) = reset.iter().find(|(name, _)| *name == c.name) {
                let t = e.tracker.reset(&c.name, why, at_ms);
                e.last = None;
                e.recent.clear();
                transitions.push((e.tracker.clone(), t));
            }
        }
        inner.order = checks.to_vec();
        inner.by_name = by_name(checks);
        transitions
    }

    /// Whether `check` is the one that runs now (a run of a check that a reload removed or
    /// changed is not).
    pub fn is_current(&self, check: &Check) -> bool {
        self.inner()
            .by_name
            .get(&check.name)
            .is_some_and(|c| std::ptr::eq(&**c, check))
    }

    /// Seeds the sparkline from stored runs (oldest first).
    pub fn seed_recent(&self, check: &str, runs: impl IntoIterator<Item = (i64, f64, bool)>) {
        if let Some(e) = self.inner().entries.get_mut(check) {
            e.recent = runs.into_iter().collect();
        }
    }

    /// Feeds a run into the check's state: a run whose target says it is starting is
    /// judged against the start-up it belongs to first (WARN within the grace, CRIT after).
    pub fn observe(&self, check: &Check, mut run: RunRecord) -> Observed {
        let mut inner = self.inner();
        let e = inner.entries.entry(check.name.clone()).or_default();
        let start_up = e
            .tracker
            .startup
            .judge(&mut run, check.thresholds.cold_start_grace);
        let transition = if run.reason.as_deref() == Some("unavailable") {
            let why = run
                .message
                .as_deref()
                .unwrap_or("the run could not be made");
            e.tracker.unavailable(&check.name, why, run.at_ms)
        } else {
            e.tracker.observe(
                &check.name,
                run.status,
                run.why.as_deref(),
                run.at_ms,
                &check.thresholds.damping,
            )
        };
        if transition.is_some() {
            e.tracker.reason = run.reason.clone();
        }
        e.recent
            .push_back((run.at_ms, run.duration_seconds, run.success));
        while e.recent.len() > SPARK {
            e.recent.pop_front();
        }
        e.last = Some(run.clone());
        Observed {
            tracker: e.tracker.clone(),
            transition,
            run,
            start_up,
        }
    }

    /// Every check in config order with its entry.
    pub fn snapshot(&self) -> Vec<(Arc<Check>, Entry)> {
        let inner = self.inner();
        inner
            .order
            .iter()
            .map(|c| {
                let entry = inner.entries.get(&c.name).cloned().unwrap_or_default();
                (c.clone(), entry)
            })
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<(Arc<Check>, Entry)> {
        let inner = self.inner();
        let check = inner.by_name.get(name)?.clone();
        let entry = inner.entries.get(name).cloned().unwrap_or_default();
        Some((check, entry))
    }
}
