//! The one writer thread: takes runs off the queue in batches (one transaction each),
//! updates roll-ups and states, and deletes what is past its retention.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

use super::HistoryCounters;
use super::schema::HOUR_MS;
use crate::clock::now_ms;
use crate::verdict::{RunRecord, Tracker, Transition};

pub(super) enum Write {
    Run {
        check: String,
        run: Box<RunRecord>,
        tracker: Box<Tracker>,
        transition: Option<Transition>,
        start_up: Option<Duration>,
        screenshot: Option<Vec<u8>>,
    },
    Flush(std::sync::mpsc::Sender<()>),
}

/// Most runs per transaction.
pub(super) const BATCH: usize = 5_000;
/// A history in memory keeps at most this many runs (~60 MB), whatever its retention:
/// 10,000 checks at 10 s would otherwise hold 3.6 million runs (1 GB) for the default hour.
pub(super) const MEMORY_MAX_RUNS: i64 = 200_000;
/// How often runs and roll-ups past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

pub(super) fn write_loop(
    conn: &Mutex<Connection>,
    rx: &Receiver<Write>,
    queued: &AtomicUsize,
    counters: &HistoryCounters,
    keep: (Duration, Duration),
    max_runs: Option<i64>,
) {
    let mut last_prune: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        // Gather what arrives in the next moment: one transaction for many runs.
        let until = Instant::now() + Duration::from_millis(100);
        while batch.len() < BATCH {
            match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                Ok(w) => batch.push(w),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let mut waiting = Vec::new();
        let runs: Vec<_> = batch
            .into_iter()
            .filter_map(|w| match w {
                Write::Flush(done) => {
                    waiting.push(done);
                    None
                }
                Write::Run {
                    check,
                    run,
                    tracker,
                    transition,
                    start_up,
                    screenshot,
                } => Some((check, run, tracker, transition, start_up, screenshot)),
            })
            .collect();
        queued.fetch_sub(runs.len(), Ordering::Relaxed);
        let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        match write_batch(&mut conn, &runs) {
            Ok(()) => counters.written.inc_by(runs.len() as u64),
            Err(e) => {
                counters.errors.inc();
                tracing::error!(error = %e, runs = runs.len(), "Cannot write runs to the history.");
            }
        }
        if let Some(max) = max_runs
            && let Err(e) = keep_newest(&conn, max)
        {
            tracing::warn!(error = %e, "Cannot prune the history.");
        }
        if last_prune.is_none_or(|t| t.elapsed() > PRUNE_EVERY) {
            last_prune = Some(Instant::now());
            if let Err(e) = prune(&conn, keep) {
                tracing::warn!(error = %e, "Cannot prune the history.");
            }
        }
        drop(conn);
        for done in waiting {
            let _ = done.send(());
        }
    }
}

type RunWrite = (
    String,
    Box<RunRecord>,
    Box<Tracker>,
    Option<Transition>,
    Option<Duration>,
    Option<Vec<u8>>,
);

/// Screenshots kept per check (the newest; each is at most 512 KiB).
const SCREENSHOTS_PER_CHECK: i64 = 10;

fn write_batch(conn: &mut Connection, runs: &[RunWrite]) -> rusqlite::Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction()?;
    {
        let mut run_stmt =
            tx.prepare_cached("INSERT INTO runs (check_name, at_ms, record) VALUES (?1, ?2, ?3)")?;
        let mut state_stmt = tx.prepare_cached(
            "INSERT INTO states (check_name, tracker, last) VALUES (?1, ?2, ?3)
             ON CONFLICT (check_name) DO UPDATE SET tracker = excluded.tracker, last = excluded.last",
        )?;
        let mut rollup_stmt = tx.prepare_cached(
            "INSERT INTO rollups (check_name, hour_ms, runs, failures, duration_sum, duration_max)
             VALUES (?1, ?2, 1, ?3, ?4, ?4)
             ON CONFLICT (check_name, hour_ms) DO UPDATE SET runs = runs + 1,
                 failures = failures + excluded.failures,
                 duration_sum = duration_sum + excluded.duration_sum,
                 duration_max = max(duration_max, excluded.duration_max)",
        )?;
        let mut transition_stmt = tx.prepare_cached(
            "INSERT INTO transitions (check_name, at_ms, from_state, to_state, cause)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut start_up_stmt = tx.prepare_cached(
            "INSERT INTO startups (check_name, at_ms, seconds) VALUES (?1, ?2, ?3)",
        )?;
        let mut shot_stmt = tx.prepare_cached(
            "INSERT INTO screenshots (check_name, at_ms, png) VALUES (?1, ?2, ?3)",
        )?;
        let mut shot_prune = tx.prepare_cached(
            "DELETE FROM screenshots WHERE check_name = ?1 AND at_ms <
                 (SELECT at_ms FROM screenshots WHERE check_name = ?1
                  ORDER BY at_ms DESC LIMIT 1 OFFSET ?2)",
        )?;
        for (check, run, tracker, transition, start_up, screenshot) in runs {
            if let Some(png) = screenshot {
                shot_stmt.execute(params![check, run.at_ms, png])?;
                shot_prune.execute(params![check, SCREENSHOTS_PER_CHECK - 1])?;
            }
            if let Some(took) = start_up {
                start_up_stmt.execute(params![check, run.at_ms, took.as_secs_f64()])?;
            }
            let record = serde_json::to_string(run).unwrap_or_default();
            run_stmt.execute(params![check, run.at_ms, record])?;
            let tracker = serde_json::to_string(tracker).unwrap_or_default();
            state_stmt.execute(params![check, tracker, record])?;
            rollup_stmt.execute(params![
                check,
                run.at_ms - run.at_ms.rem_euclid(HOUR_MS),
                i64::from(!run.success),
                run.duration_seconds
            ])?;
            if let Some(t) = transition {
                transition_stmt.execute(params![
                    check,
                    t.at_ms,
                    t.from.as_str(),
                    t.to.as_str(),
                    t.cause
                ])?;
            }
        }
    }
    tx.commit()
}

/// Deletes all but the newest `max` runs (by insertion).
pub(super) fn keep_newest(conn: &Connection, max: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM runs WHERE rowid <= (SELECT max(rowid) FROM runs) - ?1",
        params![max],
    )
}

fn prune(conn: &Connection, (runs, rollups): (Duration, Duration)) -> rusqlite::Result<()> {
    let cut = |keep: Duration| now_ms() - keep.as_millis() as i64;
    conn.execute("DELETE FROM runs WHERE at_ms < ?1", params![cut(runs)])?;
    conn.execute(
        "DELETE FROM screenshots WHERE at_ms < ?1",
        params![cut(runs)],
    )?;
    conn.execute(
        "DELETE FROM transitions WHERE at_ms < ?1",
        params![cut(rollups)],
    )?;
    conn.execute(
        "DELETE FROM rollups WHERE hour_ms < ?1",
        params![cut(rollups)],
    )?;
    conn.execute(
        "DELETE FROM startups WHERE at_ms < ?1",
        params![cut(rollups)],
    )?;
    Ok(())
}
