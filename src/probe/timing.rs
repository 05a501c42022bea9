//! Phase timing under one deadline: every step of a probe runs through [`Timeline::step`],
//! which measures it, sums repeats (redirect hops) and turns the deadline into a `timeout`
//! failure that names the phase that ran out of time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::result::{Failure, Phase, Reason};
use crate::clock::fmt_duration;

pub struct Timeline {
    started: Instant,
    deadline: Instant,
    phases: Vec<(Phase, Duration)>,
}

impl Timeline {
    pub fn new(timeout: Duration) -> Self {
        let started = Instant::now();
        Timeline {
            started,
            deadline: started + timeout,
            phases: Vec::new(),
        }
    }

    /// A fresh timeline under the same deadline, for a sub-exchange timed as one phase.
    pub fn child(&self) -> Timeline {
        Timeline {
            started: Instant::now(),
            deadline: self.deadline,
            phases: Vec::new(),
        }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn timeout(&self) -> Duration {
        self.deadline - self.started
    }

    /// Runs one step of the probe as `phase`, bounded by the probe's deadline.
    pub async fn step<T>(
        &mut self,
        phase: Phase,
        fut: impl Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let start = Instant::now();
        let outcome = tokio::time::timeout_at(self.deadline, fut).await;
        self.add(phase, start.elapsed());
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(failure)) => Err(failure.in_phase(phase)),
            Err(_) => Err(self.timed_out(phase)),
        }
    }

    /// The time spent in `phase` so far.
    pub fn spent(&self, phase: Phase) -> Duration {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
            .unwrap_or_default()
    }

    pub fn add(&mut self, phase: Phase, took: Duration) {
        match self.phases.iter_mut().find(|(p, _)| *p == phase) {
            Some((_, total)) => *total += took,
            None => self.phases.push((phase, took)),
        }
    }

    /// A `timeout` failure naming the phase and what had completed before it.
    pub fn timed_out(&self, phase: Phase) -> Failure {
        let before: Vec<String> = self
            .phases
            .iter()
            .filter(|(p, _)| *p != phase)
            .map(|(p, d)| format!("{p} {}", fmt_duration(*d)))
            .collect();
        let waited = self.spent(phase);
        let mut message = format!(
            "timed out in phase {phase} after waiting {} (probe timeout {})",
            fmt_duration(waited),
            fmt_duration(self.timeout())
        );
        if !before.is_empty() {
            message.push_str(&format!("; completed before: {}", before.join(", ")));
        }
        Failure::new(Reason::Timeout, message).in_phase(phase)
    }

    pub fn into_phases(self) -> Vec<(Phase, Duration)> {
        self.phases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_step_past_the_deadline_names_its_phase() {
        let mut tl = Timeline::new(Duration::from_secs(2));
        tl.step(Phase::Connect, async { Ok::<_, Failure>(()) })
            .await
            .unwrap();
        let err = tl
            .step(
                Phase::Processing,
                std::future::pending::<Result<(), Failure>>(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.reason, Reason::Timeout);
        assert_eq!(err.phase, Some(Phase::Processing));
        assert!(err.message.contains("phase processing"), "{}", err.message);
        assert!(err.message.contains("connect"), "{}", err.message);
    }

    #[test]
    fn repeated_phases_are_summed() {
        let mut tl = Timeline::new(Duration::from_secs(1));
        tl.add(Phase::Connect, Duration::from_millis(2));
        tl.add(Phase::Connect, Duration::from_millis(3));
        assert_eq!(
            tl.into_phases(),
            vec![(Phase::Connect, Duration::from_millis(5))]
        );
    }
}
