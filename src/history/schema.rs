//! The SQLite schema (version 1; tables added later are created in files that lack them)
//! and the checks a file must pass before it is used.

use std::time::Duration;

use rusqlite::Connection;

pub(super) const HOUR_MS: i64 = 3_600_000;

/// Checks the file and creates the schema (version 1).
pub(super) fn prepare(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(format!("integrity check: {check}")),
        ));
    }
    // WAL: readers do not wait for the writer; NORMAL: a commit survives a killed process.
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    // A page cache of 512 KiB, not SQLite's 2 MiB: the cache fills as the file grows, for
    // the first half hour of a daemon's life, and it is anonymous memory of the process;
    // the OS caches the file's pages anyway (BENCHMARKS.md, soak).
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA cache_size = -512;
         BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS runs (
             check_name TEXT NOT NULL, at_ms INTEGER NOT NULL, record TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS runs_by_check ON runs (check_name, at_ms);
         CREATE INDEX IF NOT EXISTS runs_by_time ON runs (at_ms);
         CREATE TABLE IF NOT EXISTS transitions (
             check_name TEXT NOT NULL, at_ms INTEGER NOT NULL,
             from_state TEXT NOT NULL, to_state TEXT NOT NULL, cause TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS transitions_by_time ON transitions (at_ms);
         CREATE TABLE IF NOT EXISTS states (
             check_name TEXT PRIMARY KEY, tracker TEXT NOT NULL, last TEXT);
         CREATE TABLE IF NOT EXISTS rollups (
             check_name TEXT NOT NULL, hour_ms INTEGER NOT NULL, runs INTEGER NOT NULL,
             failures INTEGER NOT NULL, duration_sum REAL NOT NULL, duration_max REAL NOT NULL,
             PRIMARY KEY (check_name, hour_ms));
         CREATE TABLE IF NOT EXISTS startups (
             check_name TEXT NOT NULL, at_ms INTEGER NOT NULL, seconds REAL NOT NULL);
         CREATE INDEX IF NOT EXISTS startups_by_check ON startups (check_name, at_ms);
         CREATE TABLE IF NOT EXISTS screenshots (
             check_name TEXT NOT NULL, at_ms INTEGER NOT NULL, png BLOB NOT NULL);
         CREATE INDEX IF NOT EXISTS screenshots_by_check ON screenshots (check_name, at_ms);
         PRAGMA user_version = 1;
         COMMIT;",
    )
}
