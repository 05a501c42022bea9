//! Write throughput of the SQLite history: N runs of 1,000 checks queued as fast as the
//! daemon could (in waves of 50,000, under the queue's capacity), timed until all are
//! committed.
//! `cargo bench --bench history_write -- [runs]` (default 200,000; under `cargo test` a
//! smoke run of 2,000). Prints runs/s and whether any run was dropped.

use std::collections::BTreeMap;
use std::time::Instant;

use pathwatch::clock::now_ms;
use pathwatch::config::{Damping, HistoryConfig};
use pathwatch::history::{History, HistoryCounters};
use pathwatch::verdict::{RunRecord, Status, Tracker};
use prometheus::IntCounter;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let runs: usize =
        args.get(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(if full { 200_000 } else { 2_000 });
    let dir = std::env::temp_dir().join(format!("pathwatch-history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = |n: &str| IntCounter::new(n, "x").unwrap();
    let counters = HistoryCounters {
        written: c("w"),
        dropped: c("d"),
        errors: c("e"),
    };
    let config = HistoryConfig {
        path: Some(dir.join("history.db")),
        ..HistoryConfig::default()
    };
    let history = History::open(&config, &dir, counters.clone()).unwrap();
    let damping = Damping {
        failures: 2,
        window: 3,
        recover: 2,
    };
    let mut trackers = vec![Tracker::default(); 1000];
    let start_ms = now_ms();
    let started = Instant::now();
    for i in 0..runs {
        let check = i % 1000;
        let status = if i % 97 == 0 {
            Status::Crit
        } else {
            Status::Ok
        };
        let run = RunRecord {
            at_ms: start_ms + i as i64,
            success: status == Status::Ok,
            status,
            reason: (status == Status::Crit).then(|| "http_status".into()),
            phase: None,
            message: (status == Status::Crit).then(|| "got HTTP 503".into()),
            why: None,
            duration_seconds: 0.0123,
            phases: BTreeMap::from([
                ("resolve".to_string(), 0.0001),
                ("connect".to_string(), 0.0002),
                ("processing".to_string(), 0.01),
            ]),
            events: Vec::new(),
            agent: None,
            cert_days_left: None,
            page: None,
            screenshot: false,
        };
        let name = format!("c{check}");
        let t = trackers[check].observe(&name, status, None, run.at_ms, &damping);
        history.record(&name, run, trackers[check].clone(), t, None, None);
        // Stay under the queue's capacity: this measures the writer, not the drop path.
        if i % 50_000 == 49_999 {
            history.flush();
        }
    }
    let queued = started.elapsed();
    history.flush();
    let took = started.elapsed();
    let size = std::fs::metadata(dir.join("history.db"))
        .map(|m| m.len())
        .unwrap_or(0)
        + std::fs::metadata(dir.join("history.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    history.close();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "history_write runs={runs} checks=1000 queued_in={:.0}ms committed_in={:.0}ms rate={:.0} runs/s written={} dropped={} db+wal={:.1}MB",
        queued.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3,
        runs as f64 / took.as_secs_f64(),
        counters.written.get(),
        counters.dropped.get(),
        size as f64 / 1e6
    );
}
