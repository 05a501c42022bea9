//! When probes run: one task per check; first runs spread over the interval by a hash of
//! the name plus a little jitter; a check never overlaps itself (late ticks are skipped and
//! counted); a global concurrency limit; shutdown stops new runs while in-flight ones
//! finish (each is bounded by its own timeout). What a probe does is the [`Runner`]'s
//! business; what happens to its result is the [`Sink`]'s.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Check;
use crate::probe::{ProbeResult, Prober};

/// Runs one probe of a check.
pub trait Runner: Send + Sync + 'static {
    fn run(&self, check: &Check) -> impl Future<Output = ProbeResult> + Send;
}

impl Runner for Prober {
    fn run(&self, check: &Check) -> impl Future<Output = ProbeResult> + Send {
        Prober::run(self, &check.target, &check.spec, check.timeout)
    }
}

/// Receives every result, in the order runs of one check finish.
pub trait Sink: Send + Sync + 'static {
    fn record(&self, check: &Check, result: ProbeResult);
}

/// What the scheduler reports about itself (the metrics implement it).
pub trait SchedulerMetrics: Send + Sync + 'static {
    /// How late a run started after its planned time.
    fn lag(&self, late: Duration);
    /// Probes running now goes up (`+1`) or down (`-1`).
    fn in_flight(&self, delta: i64);
    /// Planned runs of a check skipped because its previous run overran.
    fn skipped(&self, check: &str, runs: u64);
}

/// Offset of a check's first run within its interval: a stable hash of the name (FNV-1a),
/// so restarts and every instance keep the same spread.
pub fn spread(name: &str, interval: Duration) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(h % nanos)
}

/// Up to 1% of the interval (at most 100 ms), random per process, so instances in several
/// locations do not probe in lockstep.
fn jitter(name: &str, interval: Duration) -> Duration {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(name.as_bytes());
    let max = (interval / 100)
        .min(Duration::from_millis(100))
        .as_nanos()
        .max(1) as u64;
    Duration::from_nanos(h.finish() % max)
}

pub struct Scheduler<R: Runner, S: Sink> {
    pub runner: Arc<R>,
    pub sink: Arc<S>,
    pub metrics: Arc<dyn SchedulerMetrics>,
    pub max_concurrency: usize,
}

impl<R: Runner, S: Sink> Scheduler<R, S> {
    /// Starts one task per check on `tracker`; they stop when `shutdown` is cancelled. The
    /// handle changes the set of checks later (a reload).
    pub fn spawn(
        &self,
        checks: &[Arc<Check>],
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Running<R, S> {
        let running = Running {
            runner: self.runner.clone(),
            sink: self.sink.clone(),
            metrics: self.metrics.clone(),
            limit: Arc::new(Semaphore::new(self.max_concurrency)),
            start: Instant::now(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            tasks: Mutex::new(HashMap::new()),
        };
        running.update(checks);
        running
    }
}

/// The check tasks of a running scheduler.
pub struct Running<R: Runner, S: Sink> {
    runner: Arc<R>,
    sink: Arc<S>,
    metrics: Arc<dyn SchedulerMetrics>,
    limit: Arc<Semaphore>,
    start: Instant,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    tasks: Mutex<HashMap<String, (Arc<Check>, CancellationToken)>>,
}

/// What [`Running::update`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
}

impl<R: Runner, S: Sink> Running<R, S> {
    /// Runs exactly `checks` from now on. A check whose `Arc` is the one already running is
    /// left alone (its schedule and in-flight run untouched); a new or replaced check starts
    /// at its next slot of the usual spread; a removed one runs no more (a run in flight
    /// finishes, bounded by its timeout).
    pub fn update(&self, checks: &[Arc<Check>]) -> Changes {
        let names: std::collections::HashSet<&str> =
            checks.iter().map(|c| c.name.as_str()).collect();
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let mut changes = Changes::default();
        tasks.retain(|name, (_, stop)| {
            let keep = names.contains(name.as_str());
            if !keep {
                stop.cancel();
                changes.removed += 1;
            }
            keep
        });
        for check in checks {
            match tasks.get(&check.name) {
                Some((running, _)) if Arc::ptr_eq(running, check) => {
                    changes.unchanged += 1;
                    continue;
                }
                Some((_, stop)) => {
                    stop.cancel();
                    changes.changed += 1;
                }
                None => changes.added += 1,
            }
            let stop = self.shutdown.child_token();
            self.tracker.spawn(check_loop(
                check.clone(),
                self.next_slot(check),
                self.runner.clone(),
                self.sink.clone(),
                self.metrics.clone(),
                self.limit.clone(),
                stop.clone(),
            ));
            tasks.insert(check.name.clone(), (check.clone(), stop));
        }
        changes
    }

    /// The first start of `check` at or after now on its grid: start + spread + k intervals.
    fn next_slot(&self, check: &Check) -> Instant {
        let offset = spread(&check.name, check.interval) + jitter(&check.name, check.interval);
        let first = self.start + offset;
        let now = Instant::now();
        if now <= first {
            return first;
        }
        let interval = check.interval.as_nanos().max(1);
        let periods = (now - first).as_nanos().div_ceil(interval);
        first + Duration::from_nanos((periods * interval) as u64)
    }
}

async fn check_loop<R: Runner, S: Sink>(
    check: Arc<Check>,
    first: Instant,
    runner: Arc<R>,
    sink: Arc<S>,
    metrics: Arc<dyn SchedulerMetrics>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let mut planned = first;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(planned) => {}
            _ = shutdown.cancelled() => return,
        }
        let _permit = tokio::select! {
            p = limit.acquire() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        let started = Instant::now();
        metrics.lag(started - planned);
        metrics.in_flight(1);
        // Boxed: a probe's future is ~12 KB (every check type's state machine); inline, it
        // made each check's idle task that big (128 MB for 10,000 checks).
        let result = Box::pin(runner.run(&check)).await;
        metrics.in_flight(-1);
        drop(_permit);
        sink.record(&check, result);

        planned += check.interval;
        let now = Instant::now();
        if now > planned {
            let behind = now - planned;
            let skipped = behind.as_nanos() / check.interval.as_nanos() + 1;
            planned += check.interval * skipped as u32;
            metrics.skipped(&check.name, skipped as u64);
            tracing::debug!(check = %check.name, skipped = skipped as u64, "Run overran its interval; skipping ticks.");
        }
    }
}
