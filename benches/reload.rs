//! Reloading a big config while it runs: N http checks at 10 s against an in-process
//! target; once every check has started, the file changes (1% of the checks get a new
//! interval, 1% are removed, 1% renamed: removed and added; the rest stay) and
//! `POST /-/reload` applies it.
//! Prints the time the reload took to apply, the scheduler lag over the interval that holds
//! a no-op reload and the real one (from the lag histogram's buckets, before vs after),
//! the same for an interval without a reload, the no-op reload's time, and RSS.
//! `cargo bench --bench reload -- [checks]` (default 10,000; under `cargo test` 200 checks).

mod support;
use support::{rss_mb, scrape};

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

fn yaml(target: std::net::SocketAddr, n: usize, changed: bool) -> String {
    let mut y = String::from("checks:\n");
    for i in 0..n {
        let (name, interval) = match (changed, i % 100) {
            (true, 0) => continue,                     // removed
            (true, 1) => (format!("c{i}"), "9s"),      // new interval
            (true, 2) => (format!("added{i}"), "10s"), // added
            _ => (format!("c{i}"), "10s"),
        };
        y.push_str(&format!(
            "  - {{name: {name}, type: http, target: \"http://{target}/health\", interval: {interval}, timeout: 2s}}\n"
        ));
    }
    y
}

async fn reload(base: std::net::SocketAddr) -> (Duration, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(base).await.unwrap();
    s.write_all(b"POST /-/reload HTTP/1.0\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    (t.elapsed(), body)
}

/// (upper bound, cumulative count) of the lag histogram.
async fn lag_buckets(base: std::net::SocketAddr) -> Vec<(f64, f64)> {
    let mut buckets = Vec::new();
    scrape(base, |l| {
        if let Some(rest) = l.strip_prefix("pathwatch_scheduler_lag_seconds_bucket{le=\"")
            && let Some((le, v)) = rest.split_once("\"} ")
        {
            buckets.push((
                le.parse().unwrap_or(f64::INFINITY),
                v.parse().unwrap_or(0.0),
            ));
        }
    })
    .await;
    buckets
}

/// The q-quantile's bucket bound of the runs between two scrapes.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .zip(before)
        .map(|((le, a), (_, b))| (*le, a - b))
        .collect();
    let count = delta.last().map(|d| d.1).unwrap_or(0.0);
    let bound = delta
        .iter()
        .find(|(_, c)| *c >= q * count)
        .map(|(le, _)| *le)
        .unwrap_or(f64::NAN);
    (bound, count)
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let n: usize =
        args.get(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(if full { 10_000 } else { 200 });
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = target.local_addr().unwrap();
    let app = Router::new().route("/health", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(pathwatch::demo::nodelay(target), app).await });

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml(addr, n, false)).unwrap();
    let config = pathwatch::config::Config::load(&path).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let options = pathwatch::app::RunOptions {
        path: Some(path.clone()),
        auto_interval: None,
        web_config: None,
        ..Default::default()
    };
    let daemon = tokio::spawn(pathwatch::app::run_with(config, options, listener, async {
        let _ = rx.await;
    }));
    // Every check has started once (first runs spread over the 10 s interval).
    tokio::time::sleep(Duration::from_secs(if full { 12 } else { 3 })).await;

    let window = Duration::from_secs(if full { 10 } else { 2 });
    // A window without a reload, for comparison.
    let quiet = lag_buckets(base).await;
    tokio::time::sleep(window).await;
    let before = lag_buckets(base).await;
    let (quiet_p99, _) = quantile(&quiet, &before, 0.99);
    let (quiet_max, _) = quantile(&quiet, &before, 1.0);
    let (noop, noop_body) = reload(base).await;
    std::fs::write(&path, yaml(addr, n, true)).unwrap();
    let (took, body) = reload(base).await;
    tokio::time::sleep(window).await;
    let after = lag_buckets(base).await;
    let (p99, runs) = quantile(&before, &after, 0.99);
    let (max, _) = quantile(&before, &after, 1.0);
    let rss = rss_mb();
    let _ = tx.send(());
    let _ = daemon.await;
    println!(
        "reload checks={n} apply={:.1}ms noop_reload={:.1}ms runs_in_reload_window={runs} lag_p99<={}ms lag_max<={}ms (window without reload: p99<={}ms max<={}ms) rss={rss}MB answer=\"{body}\" noop_answer=\"{noop_body}\"",
        took.as_secs_f64() * 1e3,
        noop.as_secs_f64() * 1e3,
        p99 * 1e3,
        max * 1e3,
        quiet_p99 * 1e3,
        quiet_max * 1e3,
    );
}
