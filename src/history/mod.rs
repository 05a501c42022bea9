//! History in SQLite: every run, every state transition, the state of each check (so a
//! restart resumes it), and hourly roll-ups for long uptime bars. One writer thread takes
//! batches from a bounded queue, so a slow disk never holds up a probe: when the queue is
//! full the run is dropped, counted and logged, never silently lost. Reads (API, status
//! page) share the connection.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use prometheus::IntCounter;
use rusqlite::{Connection, params};
use serde::Serialize;

mod schema;
mod writer;

use schema::prepare;
use writer::{MEMORY_MAX_RUNS, Write, write_loop};

use crate::config::HistoryConfig;
use crate::verdict::{CheckState, RunRecord, Saved, Tracker, Transition};

/// Runs and failures of one check in one hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollup {
    pub hour_ms: i64,
    pub runs: u64,
    pub failures: u64,
    pub duration_avg: f64,
    pub duration_max: f64,
}

/// Counters the history reports into (registered with the metrics).
#[derive(Clone)]
pub struct HistoryCounters {
    pub written: IntCounter,
    pub dropped: IntCounter,
    pub errors: IntCounter,
}

/// Runs waiting for the writer; beyond this a slow disk costs runs (counted), not probes.
/// Counted by hand on an unbounded channel: a bounded std channel allocates all its slots
/// up front (11 MB for this many).
const QUEUE: usize = 100_000;

pub struct History {
    conn: Arc<Mutex<Connection>>,
    tx: Option<Sender<Write>>,
    queued: Arc<AtomicUsize>,
    writer: Option<JoinHandle<()>>,
    counters: HistoryCounters,
}

impl History {
    /// Opens (or creates) the store; a corrupt, foreign or unwritable file is an error here,
    /// at start-up, with what to do about it.
    pub fn open(
        config: &HistoryConfig,
        base_dir: &Path,
        counters: HistoryCounters,
    ) -> Result<History, String> {
        let (conn, shown) = match &config.path {
            Some(p) => {
                let path = base_dir.join(p);
                let shown = path.display().to_string();
                let conn = Connection::open(&path)
                    .map_err(|e| format!("cannot open history database {shown}: {e}"))?;
                (conn, shown)
            }
            None => (
                Connection::open_in_memory().map_err(|e| e.to_string())?,
                ":memory:".to_string(),
            ),
        };
        prepare(&conn).map_err(|e| {
            format!(
                "history database {shown} is not usable: {e} (a corrupt or foreign file: move it away to start a new history; read-only: fix its permissions)"
            )
        })?;
        let conn = Arc::new(Mutex::new(conn));
        let (tx, rx) = std::sync::mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = {
            let conn = conn.clone();
            let counters = counters.clone();
            let keep = config.retention();
            let cap = config.path.is_none().then_some(MEMORY_MAX_RUNS);
            let queued = queued.clone();
            std::thread::Builder::new()
                .name("history-writer".into())
                .spawn(move || write_loop(&conn, &rx, &queued, &counters, keep, cap))
                .map_err(|e| format!("cannot start the history writer: {e}"))?
        };
        Ok(History {
            conn,
            tx: Some(tx),
            queued,
            writer: Some(writer),
            counters,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a run, its check's state after it, the transition it caused and how long
    /// the start-up it ended took. Never blocks; a full queue drops the run and counts it.
    pub fn record(
        &self,
        check: &str,
        run: RunRecord,
        tracker: Tracker,
        transition: Option<Transition>,
        start_up: Option<std::time::Duration>,
        screenshot: Option<Vec<u8>>,
    ) {
        let Some(tx) = &self.tx else { return };
        let write = Write::Run {
            check: check.to_string(),
            run: Box::new(run),
            tracker: Box::new(tracker),
            transition,
            start_up,
            screenshot,
        };
        let why = if self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            "the writer is behind (slow disk?)"
        } else if tx.send(write).is_err() {
            "the writer stopped"
        } else {
            return;
        };
        self.counters.dropped.inc();
        // The first drop and every 1,000th: a writer that is behind must not flood the log.
        if self.counters.dropped.get() % 1000 == 1 {
            tracing::warn!(
                check,
                why,
                dropped = self.counters.dropped.get(),
                "Runs are not being written to the history."
            );
        }
    }

    /// A check that starts over (a reload changed its type or target): its transition, if
    /// any, and its state, written at once after what is queued (reloads are rare).
    pub fn record_reset(
        &self,
        check: &str,
        tracker: &Tracker,
        transition: Option<&Transition>,
    ) -> Result<(), String> {
        self.flush();
        let conn = self.conn();
        let tracker = serde_json::to_string(tracker).unwrap_or_default();
        conn.execute(
            "INSERT INTO states (check_name, tracker, last) VALUES (?1, ?2, NULL)
             ON CONFLICT (check_name) DO UPDATE SET tracker = excluded.tracker, last = NULL",
            params![check, tracker],
        )
        .map_err(|e| e.to_string())?;
        drop(conn);
        match transition {
            Some(t) => self.record_transition(t),
            None => Ok(()),
        }
    }

    /// One transition, written at once after what is queued (a reset, a gap mark).
    pub fn record_transition(&self, t: &Transition) -> Result<(), String> {
        self.flush();
        self.conn()
            .execute(
                "INSERT INTO transitions (check_name, at_ms, from_state, to_state, cause)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.check, t.at_ms, t.from.as_str(), t.to.as_str(), t.cause],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Waits until everything queued so far is committed.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if let Some(tx) = &self.tx
            && tx.send(Write::Flush(done)).is_ok()
        {
            let _ = wait.recv();
        }
    }

    /// Commits what is queued and stops the writer.
    pub fn close(mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }

    /// The saved state and last run of every check.
    pub fn load(&self) -> Result<HashMap<String, Saved>, String> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT check_name, tracker, last FROM states")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                ))
            })
            .map_err(|e| e.to_string())?;
        let mut out = HashMap::new();
        for row in rows {
            let (name, tracker, last) = row.map_err(|e| e.to_string())?;
            let Ok(tracker) = serde_json::from_str::<Tracker>(&tracker) else {
                tracing::warn!(check = %name, "Saved state is unreadable; starting it as UNKNOWN.");
                continue;
            };
            let last = last.and_then(|l| serde_json::from_str(&l).ok());
            out.insert(name, Saved { tracker, last });
        }
        Ok(out)
    }

    /// Runs of `check` at or after `since_ms`, newest first, at most `limit`.
    /// The screenshot kept with a failed browser run of `check` at `at_ms`.
    pub fn screenshot(&self, check: &str, at_ms: i64) -> Result<Option<Vec<u8>>, String> {
        self.conn()
            .query_row(
                "SELECT png FROM screenshots WHERE check_name = ?1 AND at_ms = ?2",
                rusqlite::params![check, at_ms],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(format!("cannot read the screenshot: {e}")),
            })
    }

    pub fn runs(&self, check: &str, since_ms: i64, limit: usize) -> Result<Vec<RunRecord>, String> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT record FROM runs WHERE check_name = ?1 AND at_ms >= ?2 ORDER BY at_ms DESC LIMIT ?3",
            )
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params![check, since_ms, limit as i64], |row| {
                row.get::<_, String>(0)
            })
            .map_err(|e| e.to_string())?;
        Ok(rows
            .filter_map(Result::ok)
            .filter_map(|r| serde_json::from_str(&r).ok())
            .collect())
    }

    /// Transitions, newest first: of one check or of all.
    pub fn transitions(
        &self,
        check: Option<&str>,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<Transition>, String> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT check_name, at_ms, from_state, to_state, cause FROM transitions
                 WHERE (?1 IS NULL OR check_name = ?1) AND at_ms >= ?2 ORDER BY at_ms DESC, rowid DESC LIMIT ?3",
            )
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params![check, since_ms, limit as i64], |row| {
                let state = |i: usize| -> rusqlite::Result<CheckState> {
                    Ok(CheckState::parse(&row.get::<_, String>(i)?).unwrap_or(CheckState::Unknown))
                };
                Ok(Transition {
                    check: row.get(0)?,
                    at_ms: row.get(1)?,
                    from: state(2)?,
                    to: state(3)?,
                    cause: row.get(4)?,
                })
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }

    /// The start-ups kept (as long as roll-ups) of `check`, or of every check: the last one
    /// and the 95th percentile.
    pub fn start_ups(&self, check: Option<&str>) -> Result<HashMap<String, StartUps>, String> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT check_name, at_ms, seconds FROM startups
                 WHERE (?1 IS NULL OR check_name = ?1) ORDER BY at_ms",
            )
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params![check], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, f64>(2)?,
                ))
            })
            .map_err(|e| e.to_string())?;
        let mut all: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
        for row in rows {
            let (name, at_ms, seconds) = row.map_err(|e| e.to_string())?;
            all.entry(name).or_default().push((at_ms, seconds));
        }
        Ok(all
            .into_iter()
            .filter_map(|(name, ups)| Some((name, StartUps::of(&ups)?)))
            .collect())
    }

    /// Hourly roll-ups from `since_ms` of `check`, or of every check (one query for the
    /// whole status page), oldest first.
    pub fn hourly(
        &self,
        check: Option<&str>,
        since_ms: i64,
    ) -> Result<HashMap<String, Vec<Rollup>>, String> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT check_name, hour_ms, runs, failures, duration_sum, duration_max FROM rollups
                 WHERE (?1 IS NULL OR check_name = ?1) AND hour_ms >= ?2 ORDER BY hour_ms",
            )
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map(params![check, since_ms], |row| {
                let runs: i64 = row.get(2)?;
                let sum: f64 = row.get(4)?;
                Ok((
                    row.get::<_, String>(0)?,
                    Rollup {
                        hour_ms: row.get(1)?,
                        runs: runs as u64,
                        failures: row.get::<_, i64>(3)? as u64,
                        duration_avg: if runs > 0 { sum / runs as f64 } else { 0.0 },
                        duration_max: row.get(5)?,
                    },
                ))
            })
            .map_err(|e| e.to_string())?;
        let mut out: HashMap<String, Vec<Rollup>> = HashMap::new();
        for row in rows {
            let (name, rollup) = row.map_err(|e| e.to_string())?;
            out.entry(name).or_default().push(rollup);
        }
        Ok(out)
    }
}

/// A check's start-ups in the history (see [`History::start_ups`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StartUps {
    pub count: usize,
    /// Unix ms of the success that ended the last one.
    pub last_at_ms: i64,
    pub last_seconds: f64,
    /// Nearest-rank 95th percentile.
    pub p95_seconds: f64,
}

impl StartUps {
    /// Of (at_ms, seconds) pairs, oldest first; None for none.
    fn of(ups: &[(i64, f64)]) -> Option<StartUps> {
        let &(last_at_ms, last_seconds) = ups.last()?;
        let mut seconds: Vec<f64> = ups.iter().map(|(_, s)| *s).collect();
        seconds.sort_by(f64::total_cmp);
        let rank = (seconds.len() as f64 * 0.95).ceil() as usize;
        Some(StartUps {
            count: ups.len(),
            last_at_ms,
            last_seconds,
            p95_seconds: seconds[rank.clamp(1, seconds.len()) - 1],
        })
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_ms;
    use crate::verdict::Status;
    use std::collections::BTreeMap;
    use writer::{BATCH, keep_newest};

    #[test]
    fn a_writer_that_is_behind_costs_counted_runs_never_a_blocked_probe() {
        let c = |n: &str| prometheus::IntCounter::new(n, "x").unwrap();
        let counters = HistoryCounters {
            written: c("w"),
            dropped: c("d"),
            errors: c("e"),
        };
        let h = History::open(&HistoryConfig::default(), Path::new("."), counters.clone()).unwrap();
        let run = RunRecord {
            at_ms: now_ms(),
            success: true,
            status: Status::Ok,
            reason: None,
            phase: None,
            message: None,
            why: None,
            duration_seconds: 0.01,
            phases: BTreeMap::new(),
            events: Vec::new(),
            agent: None,
            cert_days_left: None,
            page: None,
            screenshot: false,
        };
        let total = QUEUE + 20_000;
        {
            // The writer cannot commit while this is held: the queue fills.
            let _stuck = h.conn();
            for _ in 0..total {
                h.record("c", run.clone(), Tracker::default(), None, None, None);
            }
            assert!(counters.dropped.get() >= 20_000 - BATCH as u64);
        }
        h.flush();
        assert_eq!(
            counters.written.get() + counters.dropped.get(),
            total as u64
        );
        assert_eq!(counters.errors.get(), 0);
        assert_eq!(
            h.runs("c", 0, total).unwrap().len() as u64,
            counters.written.get()
        );
    }

    #[test]
    fn keep_newest_caps_the_runs_and_keeps_the_latest() {
        let conn = Connection::open_in_memory().unwrap();
        prepare(&conn).unwrap();
        for at in 0..50 {
            conn.execute(
                "INSERT INTO runs (check_name, at_ms, record) VALUES ('c', ?1, '{}')",
                params![at],
            )
            .unwrap();
        }
        assert_eq!(keep_newest(&conn, 10).unwrap(), 40);
        let (n, oldest): (i64, i64) = conn
            .query_row("SELECT count(*), min(at_ms) FROM runs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, oldest), (10, 40));
        assert_eq!(keep_newest(&conn, 10).unwrap(), 0);
    }
}
