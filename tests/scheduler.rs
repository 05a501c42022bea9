//! The scheduler with paused time: spread of first runs, fixed period, no overlap (late
//! ticks skipped and counted), concurrency limit, drain on shutdown.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pathwatch::config::Check;
use pathwatch::metrics::Metrics;
use pathwatch::probe::ProbeResult;
use pathwatch::scheduler::{Runner, Scheduler, Sink, spread};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A runner that takes `took` per run and logs (check, start, end) in paused time.
struct FakeRunner {
    took: Duration,
    log: Mutex<Vec<(String, Instant, Instant)>>,
    running: Mutex<usize>,
    max_running: Mutex<usize>,
}

impl Runner for FakeRunner {
    async fn run(&self, check: &Check) -> ProbeResult {
        let start = Instant::now();
        {
            let mut r = self.running.lock().unwrap();
            *r += 1;
            let mut m = self.max_running.lock().unwrap();
            *m = (*m).max(*r);
        }
        tokio::time::sleep(self.took).await;
        *self.running.lock().unwrap() -= 1;
        self.log
            .lock()
            .unwrap()
            .push((check.name.clone(), start, Instant::now()));
        ProbeResult::empty(SystemTime::now())
    }
}

struct CountSink(Mutex<usize>);

impl Sink for CountSink {
    fn record(&self, _: &Check, _: ProbeResult) {
        *self.0.lock().unwrap() += 1;
    }
}

fn checks(n: usize, interval: &str, timeout: &str) -> Vec<Arc<Check>> {
    let mut yaml = String::from("checks:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: check-{i}\n    type: dns\n    target: example.test\n    interval: {interval}\n    timeout: {timeout}\n"
        ));
    }
    support::config(&yaml).checks
}

fn scheduler(
    list: &[Arc<Check>],
    took: Duration,
    max: usize,
) -> (
    Scheduler<FakeRunner, CountSink>,
    Arc<FakeRunner>,
    Arc<Metrics>,
) {
    let runner = Arc::new(FakeRunner {
        took,
        log: Mutex::new(Vec::new()),
        running: Mutex::new(0),
        max_running: Mutex::new(0),
    });
    let metrics = Arc::new(Metrics::new("test", list).unwrap());
    let s = Scheduler {
        runner: runner.clone(),
        sink: Arc::new(CountSink(Mutex::new(0))),
        metrics: metrics.clone(),
        max_concurrency: max,
    };
    (s, runner, metrics)
}

#[tokio::test(start_paused = true)]
async fn first_runs_are_spread_and_periods_are_regular() {
    let list = checks(1000, "10s", "1s");
    let (s, runner, _) = scheduler(&list, Duration::from_millis(5), 10_000);
    let (token, tracker) = (CancellationToken::new(), TaskTracker::new());
    let t0 = Instant::now();
    s.spawn(&list, &token, &tracker);
    tokio::time::sleep(Duration::from_secs(31)).await;
    token.cancel();
    tracker.close();
    tracker.wait().await;

    let log = runner.log.lock().unwrap();
    // Each check ran every interval, exactly one interval apart.
    for c in &list {
        let starts: Vec<Instant> = log
            .iter()
            .filter(|(n, ..)| *n == c.name)
            .map(|(_, s, _)| *s)
            .collect();
        let offset = starts[0] - t0;
        let expected = (0..5)
            .filter(|k| offset + Duration::from_secs(10 * k) < Duration::from_secs(31))
            .count();
        assert_eq!(starts.len(), expected, "{}", c.name);
        for pair in starts.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_secs(10));
        }
        // The first run sits at the name's hash offset plus at most 100 ms of jitter.
        let base = spread(&c.name, c.interval);
        // (+1 ms: tokio's timer wheel rounds deadlines up to the next millisecond.)
        assert!(
            offset >= base && offset <= base + Duration::from_millis(101),
            "{offset:?} vs {base:?}"
        );
    }
    // 1,000 checks never fire in the same millisecond bucket by the dozen.
    let mut per_ms = std::collections::HashMap::new();
    for (_, s, _) in log.iter() {
        *per_ms.entry((*s - t0).as_millis()).or_insert(0) += 1;
    }
    assert!(
        per_ms.values().all(|n| *n <= 4),
        "max per ms: {:?}",
        per_ms.values().max()
    );
}

#[tokio::test(start_paused = true)]
async fn a_check_never_overlaps_itself_and_late_ticks_are_skipped() {
    // A concurrency limit of 1 with two checks forces one of them to wait past its tick.
    let list = checks(2, "1s", "900ms");
    let (s, runner, metrics) = scheduler(&list, Duration::from_millis(900), 1);
    let (token, tracker) = (CancellationToken::new(), TaskTracker::new());
    s.spawn(&list, &token, &tracker);
    tokio::time::sleep(Duration::from_secs(10)).await;
    token.cancel();
    tracker.close();
    tracker.wait().await;

    assert_eq!(
        *runner.max_running.lock().unwrap(),
        1,
        "the global limit holds"
    );
    let log = runner.log.lock().unwrap();
    for c in &list {
        let runs: Vec<_> = log.iter().filter(|(n, ..)| *n == c.name).collect();
        for pair in runs.windows(2) {
            assert!(pair[1].1 >= pair[0].2, "runs of {} overlap", c.name);
        }
    }
    let text = metrics.render();
    let skipped: u64 = text
        .lines()
        .filter(|l| l.starts_with("pathwatch_scheduler_skipped_runs_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(skipped > 0, "{text}");
    assert!(text.contains("pathwatch_scheduler_lag_seconds_count"));
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_the_running_probe_finish_and_starts_no_more() {
    let list = checks(1, "10s", "5s");
    let (s, runner, _) = scheduler(&list, Duration::from_secs(3), 10);
    let (token, tracker) = (CancellationToken::new(), TaskTracker::new());
    s.spawn(&list, &token, &tracker);
    let first = spread(&list[0].name, list[0].interval);
    tokio::time::sleep(first + Duration::from_millis(200)).await;
    token.cancel();
    tracker.close();
    tracker.wait().await;
    let log = runner.log.lock().unwrap();
    assert_eq!(
        log.len(),
        1,
        "the in-flight run finished, no new one started"
    );
    assert_eq!(log[0].2 - log[0].1, Duration::from_secs(3));
}

/// A runner whose runs fail or succeed by a script, one letter per run (`f` fails).
struct ScriptedRunner {
    script: Vec<bool>,
    runs: Mutex<usize>,
}

impl Runner for ScriptedRunner {
    async fn run(&self, _: &Check) -> ProbeResult {
        let n = {
            let mut r = self.runs.lock().unwrap();
            *r += 1;
            *r - 1
        };
        let mut result = ProbeResult::empty(SystemTime::now());
        if !self.script.get(n).copied().unwrap_or(true) {
            result.failure = Some(pathwatch::probe::Failure::new(
                pathwatch::probe::Reason::HttpStatus,
                "got HTTP 503",
            ));
        }
        result
    }
}

/// The daemon's sink on the scheduler, in paused time: when the damped state moves.
#[tokio::test(start_paused = true)]
async fn damping_moves_the_state_at_the_expected_runs() {
    use pathwatch::history::History;
    use pathwatch::verdict::{Board, CheckState as State};

    let list = support::config(
        "checks:\n  - {name: api, type: dns, target: example.test, interval: 10s, timeout: 1s}\n",
    )
    .checks;
    // ok, fail, ok, fail (2 of 3: CRIT), fail, ok (1 of 2), ok (recovered), ok.
    let script: Vec<bool> = "ofoffooo".chars().map(|c| c == 'o').collect();
    let metrics = Arc::new(Metrics::new("test", &list).unwrap());
    let history = Arc::new(
        History::open(
            &Default::default(),
            std::path::Path::new("."),
            metrics.history.clone(),
        )
        .unwrap(),
    );
    let board = Arc::new(Board::new(&list, Default::default()));
    let s = Scheduler {
        runner: Arc::new(ScriptedRunner {
            script,
            runs: Mutex::new(0),
        }),
        sink: Arc::new(pathwatch::app::DaemonSink::new(
            metrics.clone(),
            board.clone(),
            history.clone(),
            None,
        )),
        metrics: metrics.clone(),
        max_concurrency: 10,
    };
    let (token, tracker) = (CancellationToken::new(), TaskTracker::new());
    s.spawn(&list, &token, &tracker);
    let state = || board.get("api").unwrap().1.tracker.state;
    assert_eq!(state(), State::Unknown, "before the first run");
    // Run k happens within [10k, 10k + 10) s of start (spread + jitter < one interval).
    let mut seen = Vec::new();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        seen.push(state());
    }
    token.cancel();
    tracker.close();
    tracker.wait().await;
    history.flush();
    // Each sample is taken after run k or run k-1 (the spread offset is unknown), so the
    // sequence of distinct states is what is asserted, then the transitions themselves.
    let mut distinct = seen.clone();
    distinct.dedup();
    let distinct: Vec<State> = distinct
        .into_iter()
        .filter(|s| *s != State::Unknown)
        .collect();
    assert_eq!(distinct, [State::Ok, State::Crit, State::Ok], "{seen:?}");
    let t = history.transitions(Some("api"), 0, 10).unwrap();
    let moves: Vec<(State, State)> = t.iter().rev().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        moves,
        [
            (State::Unknown, State::Ok),
            (State::Ok, State::Crit),
            (State::Crit, State::Ok)
        ]
    );
    assert_eq!(
        t[1].cause,
        "2 of the last 3 runs failed; latest: http_status: got HTTP 503"
    );
    assert_eq!(t[0].cause, "2 consecutive runs OK");
    let rendered = metrics.render();
    assert!(
        rendered.contains(r#"pathwatch_check_state{check="api",location="test",state="ok"} 1"#)
    );
    assert!(
        rendered.contains(
            r#"pathwatch_state_transitions_total{check="api",location="test",to="crit"} 1"#
        )
    );
}

/// A reload's change of the check set, in paused time: an unchanged check keeps its
/// schedule, a removed one stops, a changed or added one starts on its grid.
#[tokio::test(start_paused = true)]
async fn update_leaves_unchanged_checks_alone_and_stops_removed_ones() {
    let list = checks(3, "10s", "1s");
    let (s, runner, _) = scheduler(&list, Duration::from_millis(5), 10);
    let (token, tracker) = (CancellationToken::new(), TaskTracker::new());
    let running = s.spawn(&list, &token, &tracker);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let starts = |name: &str| -> Vec<Instant> {
        let log = runner.log.lock().unwrap();
        log.iter()
            .filter(|(n, ..)| n == name)
            .map(|(_, s, _)| *s)
            .collect()
    };
    let before0 = starts("check-0");

    // check-0 the same object, check-1 gone, check-2 replaced by one with a 5 s interval,
    // check-new added.
    let mut yaml = String::from("checks:\n");
    for (name, interval) in [("check-2", "5s"), ("check-new", "10s")] {
        yaml.push_str(&format!(
            "  - {{name: {name}, type: dns, target: example.test, interval: {interval}, timeout: 1s}}\n"
        ));
    }
    let fresh = support::config(&yaml).checks;
    let next = vec![list[0].clone(), fresh[0].clone(), fresh[1].clone()];
    let changes = running.update(&next);
    assert_eq!(
        changes,
        pathwatch::scheduler::Changes {
            added: 1,
            changed: 1,
            removed: 1,
            unchanged: 1
        }
    );
    let removed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    token.cancel();
    tracker.close();
    tracker.wait().await;

    let after0 = starts("check-0");
    assert!(after0.len() >= before0.len() + 2);
    for w in after0.windows(2) {
        assert_eq!(
            w[1] - w[0],
            Duration::from_secs(10),
            "one grid, never restarted"
        );
    }
    assert!(
        starts("check-1").iter().all(|s| *s < removed_at),
        "no run after removal"
    );
    let c2: Vec<Instant> = starts("check-2")
        .into_iter()
        .filter(|s| *s >= removed_at)
        .collect();
    assert!(c2.len() >= 5, "the 5 s interval applies: {}", c2.len());
    for w in c2.windows(2) {
        assert_eq!(w[1] - w[0], Duration::from_secs(5));
    }
    let new = starts("check-new");
    assert!(new.len() >= 2 && new[0] >= removed_at);
    assert!(
        new[0] - removed_at <= Duration::from_secs(10),
        "within one interval"
    );
}
