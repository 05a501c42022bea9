//! The SQLite history: runs, transitions and states survive a reopen; retention prunes;
//! a corrupt or unusable file is a clear error at open, never silent loss.

use std::collections::BTreeMap;

use pathwatch::clock::now_ms;
use pathwatch::config::{Damping, HistoryConfig};
use pathwatch::history::{History, HistoryCounters};
use pathwatch::verdict::{CheckState as State, RunRecord, Status, Tracker};
use prometheus::IntCounter;

fn counters() -> HistoryCounters {
    let c = |n: &str| IntCounter::new(n, "x").unwrap();
    HistoryCounters {
        written: c("w"),
        dropped: c("d"),
        errors: c("e"),
    }
}

fn config(dir: &std::path::Path) -> HistoryConfig {
    HistoryConfig {
        path: Some(dir.join("history.db")),
        keep_runs: None,
        keep_rollups: None,
    }
}

fn run(at_ms: i64, status: Status) -> RunRecord {
    RunRecord {
        at_ms,
        success: status != Status::Crit,
        status,
        reason: (status == Status::Crit).then(|| "http_status".into()),
        phase: None,
        message: (status == Status::Crit).then(|| "got HTTP 503".into()),
        why: (status != Status::Ok).then(|| "why".into()),
        duration_seconds: 0.25,
        phases: BTreeMap::from([("connect".to_string(), 0.001)]),
        events: Vec::new(),
        agent: None,
        cert_days_left: None,
        page: None,
        screenshot: false,
    }
}

const D: Damping = Damping {
    failures: 2,
    window: 3,
    recover: 2,
};

/// Feeds runs through a tracker into the history, as the daemon does.
fn feed(h: &History, tracker: &mut Tracker, check: &str, runs: &[RunRecord]) {
    for r in runs {
        let t = tracker.observe(check, r.status, r.why.as_deref(), r.at_ms, &D);
        h.record(check, r.clone(), tracker.clone(), t, None, None);
    }
}

#[test]
fn runs_states_and_transitions_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    let runs: Vec<RunRecord> = [Status::Ok, Status::Crit, Status::Crit]
        .iter()
        .enumerate()
        .map(|(i, s)| run(now + i as i64 * 1000, *s))
        .collect();
    let mut tracker = Tracker::default();
    let c = counters();
    {
        let h = History::open(&config(dir.path()), dir.path(), c.clone()).unwrap();
        feed(&h, &mut tracker, "api", &runs);
        h.close();
    }
    assert_eq!(c.written.get(), 3);
    assert_eq!(tracker.state, State::Crit);

    let h = History::open(&config(dir.path()), dir.path(), counters()).unwrap();
    let saved = h.load().unwrap();
    assert_eq!(
        saved["api"].tracker, tracker,
        "the same state, counters included"
    );
    assert_eq!(saved["api"].last.as_ref(), runs.last());
    let stored = h.runs("api", 0, 10).unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[0], runs[2], "newest first");
    assert_eq!(h.runs("api", now + 1500, 10).unwrap().len(), 1, "since");
    let t = h.transitions(None, 0, 10).unwrap();
    let moves: Vec<(State, State)> = t.iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        moves,
        [(State::Ok, State::Crit), (State::Unknown, State::Ok)]
    );
    assert_eq!(t[0].cause, "2 of the last 3 runs failed; latest: why");
    let hours = &h.hourly(Some("api"), 0).unwrap()["api"];
    assert_eq!(hours.iter().map(|r| r.runs).sum::<u64>(), 3);
    assert_eq!(hours.iter().map(|r| r.failures).sum::<u64>(), 2);
    assert_eq!(h.hourly(None, 0).unwrap().len(), 1);
    assert!(h.hourly(Some("other"), 0).unwrap().is_empty());
}

#[test]
fn retention_prunes_old_runs_but_keeps_rollups_longer() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let now = now_ms();
    let h = History::open(&config(dir.path()), dir.path(), counters()).unwrap();
    let mut tracker = Tracker::default();
    feed(
        &h,
        &mut tracker,
        "api",
        &[
            run(now - 100 * day, Status::Ok),
            run(now - 8 * day, Status::Ok),
            run(now - day, Status::Ok),
            run(now, Status::Ok),
        ],
    );
    h.flush();
    let runs = h.runs("api", 0, 10).unwrap();
    assert_eq!(runs.len(), 2, "runs older than 7 days are gone");
    let hours = &h.hourly(Some("api"), 0).unwrap()["api"];
    assert_eq!(
        hours.len(),
        3,
        "roll-ups older than 90 days are gone, the rest kept"
    );
}

#[test]
fn an_in_memory_history_works_without_a_file() {
    let h = History::open(
        &HistoryConfig::default(),
        std::path::Path::new("."),
        counters(),
    )
    .unwrap();
    let mut tracker = Tracker::default();
    feed(&h, &mut tracker, "api", &[run(now_ms(), Status::Warn)]);
    h.flush();
    assert_eq!(h.runs("api", 0, 10).unwrap().len(), 1);
}

#[test]
fn a_corrupt_or_unusable_file_is_an_error_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    std::fs::write(cfg.path.as_ref().unwrap(), vec![0x42u8; 8192]).unwrap();
    let err = History::open(&cfg, dir.path(), counters()).err().unwrap();
    assert!(
        err.contains("history.db is not usable: file is not a database")
            && err.contains("move it away to start a new history"),
        "{err}"
    );

    // A real database with a page overwritten: the integrity check finds it.
    let good = dir.path().join("good.db");
    {
        let cfg = HistoryConfig {
            path: Some(good.clone()),
            ..config(dir.path())
        };
        let h = History::open(&cfg, dir.path(), counters()).unwrap();
        let mut tracker = Tracker::default();
        let many: Vec<RunRecord> = (0..2000).map(|i| run(now_ms() + i, Status::Ok)).collect();
        feed(&h, &mut tracker, "api", &many);
        h.close();
    }
    let mut bytes = std::fs::read(&good).unwrap();
    let page = 4096 * 3;
    bytes[page..page + 4096].fill(0xA5);
    std::fs::write(&good, bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("good.db-wal"));
    let cfg = HistoryConfig {
        path: Some(good),
        ..config(dir.path())
    };
    let err = History::open(&cfg, dir.path(), counters()).err().unwrap();
    assert!(err.contains("good.db is not usable"), "{err}");

    // A folder where the file should be.
    let cfg = HistoryConfig {
        path: Some(dir.path().to_path_buf()),
        ..config(dir.path())
    };
    let err = History::open(&cfg, dir.path(), counters()).err().unwrap();
    assert!(err.contains("history database"), "{err}");
}
