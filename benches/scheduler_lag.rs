//! Scheduler lag with N http checks against a local target, in-process.
//! `cargo bench --bench scheduler_lag -- [checks] [seconds] [history|memory] [interval] [http|agent]`
//! (defaults 1000 checks, 12 s, history in memory, 5s, http; `agent` runs agent_pipeline
//! checks against the in-process demo backend and reports every failed run by reason; `history` writes it to a SQLite file
//! in a temp folder; under `cargo test` a 2 s smoke run of 50 checks with the file).
//! Prints the p50/p99/max upper bucket bounds of `pathwatch_scheduler_lag_seconds`, the
//! probes run, CPU use and peak RSS of the process (target server included), and the time
//! and size of a `/metrics` render.

mod support;
use support::{peak_rss_mb, rss_mb, scrape};

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; under `cargo test` this runs as a short smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let checks: usize =
        args.get(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(if full { 1000 } else { 50 });
    let secs: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(if full { 12 } else { 2 });

    let agent = args.get(5).is_some_and(|a| a == "agent");
    let target = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = target.local_addr().unwrap();
    if agent {
        pathwatch::demo::DemoBackend::default().spawn(target, None);
    } else {
        let app = Router::new().route("/health", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(pathwatch::demo::nodelay(target), app).await });
    }

    let on_disk = args.get(3).is_some_and(|a| a == "history") || !full;
    let interval = args.get(4).cloned().unwrap_or_else(|| "5s".into());
    let dir = std::env::temp_dir().join(format!("pathwatch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut yaml = if on_disk {
        format!("history: {{path: {}}}\n", dir.join("history.db").display())
    } else {
        String::new()
    };
    yaml.push_str("checks:\n");
    for i in 0..checks {
        if agent {
            // BENCH_QUERY (e.g. fault=delay:agent_completed:2000) stretches each run, so
            // many overlap; BENCH_TIMEOUT sets the check timeout (default 5s).
            let query = std::env::var("BENCH_QUERY").unwrap_or_default();
            let timeout = std::env::var("BENCH_TIMEOUT").unwrap_or_else(|_| "5s".into());
            yaml.push_str(&format!("  - name: c{i}\n    type: agent_pipeline\n    target: ws://{addr}/ws?{query}\n    interval: {interval}\n    timeout: {timeout}\n"));
        } else {
            yaml.push_str(&format!("  - name: c{i}\n    type: http\n    target: http://{addr}/health\n    interval: {interval}\n    timeout: 2s\n"));
        }
    }
    let config = pathwatch::config::Config::from_str(&yaml, "bench.yaml", &|_| None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = tokio::spawn(pathwatch::app::run(config, listener, async {
        let _ = rx.await;
    }));
    let cpu_before = cpu_seconds();
    let in_flight_peak = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    {
        // Peak of pathwatch_probes_in_flight, sampled every second.
        let peak = in_flight_peak.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let mut seen = None;
                scrape(base, |l| {
                    if let Some(v) = l.strip_prefix("pathwatch_probes_in_flight ") {
                        seen = v.trim().parse::<i64>().ok();
                    }
                })
                .await;
                if let Some(v) = seen {
                    peak.fetch_max(v, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu = (cpu_seconds() - cpu_before) / started.elapsed().as_secs_f64();

    let rss_before_scrape = peak_rss_mb();
    let rss_now = rss_mb();
    // The scrapes are read line by line and only the lines this bench reads are kept, so
    // the client's copy of the body does not count in the process's peak RSS.
    let mut renders = Vec::new();
    let mut metrics = String::new();
    let mut size = 0;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        metrics.clear();
        size = scrape(base, |l| {
            if l.starts_with("pathwatch_scheduler_lag_seconds")
                || l.starts_with("pathwatch_probe_failures_total{")
                || l.starts_with("pathwatch_history_runs_")
            {
                metrics.push_str(l);
                metrics.push('\n');
            }
        })
        .await;
        renders.push(t.elapsed());
    }
    renders.sort();
    let gzip_started = std::time::Instant::now();
    let gzip_size = scrape_gzipped(base).await;
    let gzip_took = gzip_started.elapsed();
    let peak_after_scrapes = peak_rss_mb();
    let _ = tx.send(());
    let _ = daemon.await;
    let _ = std::fs::remove_dir_all(&dir);
    let counter = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or("?")
            .to_string()
    };

    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let mut count = 0.0;
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("pathwatch_scheduler_lag_seconds_bucket{le=\"") {
            let (le, v) = rest.split_once("\"} ").unwrap();
            buckets.push((le.parse().unwrap_or(f64::INFINITY), v.parse().unwrap()));
        } else if let Some(v) = line.strip_prefix("pathwatch_scheduler_lag_seconds_count ") {
            count = v.parse().unwrap();
        }
    }
    let quantile = |q: f64| {
        buckets
            .iter()
            .find(|(_, c)| *c >= q * count)
            .map(|(le, _)| *le)
            .unwrap_or(f64::NAN)
    };
    // Failed runs by reason, summed over checks (an agent run that misses a deadline shows
    // up here as event_timeout).
    let mut failures: std::collections::BTreeMap<String, f64> = Default::default();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("pathwatch_probe_failures_total{")
            && let Some((labels, v)) = rest.split_once("} ")
            && let Some(reason) = labels.split("reason=\"").nth(1)
        {
            let reason = reason.split('"').next().unwrap_or("?").to_string();
            *failures.entry(reason).or_default() += v.parse::<f64>().unwrap_or(0.0);
        }
    }
    let failures: Vec<String> = failures
        .iter()
        .filter(|(_, n)| **n > 0.0)
        .map(|(r, n)| format!("{r}:{n}"))
        .collect();
    let max = buckets
        .iter()
        .find(|(_, c)| *c >= count)
        .map(|(le, _)| *le)
        .unwrap_or(f64::NAN);
    println!(
        "scheduler_lag checks={checks} kind={} interval={interval} run={secs}s history={} probes={count} peak_in_flight={} failures=[{}] p50<={}ms p99<={}ms max<={}ms written={} dropped={} cpu={:.0}% rss_before_scrapes={}MB peak_rss_before_scrapes={}MB peak_rss={}MB peak_rss_incl_shutdown={}MB metrics_render={:.1}ms metrics_size={:.1}MB gzipped={:.1}ms,{:.1}MB",
        if agent { "agent_pipeline" } else { "http" },
        if on_disk { "file" } else { "memory" },
        in_flight_peak.load(std::sync::atomic::Ordering::Relaxed),
        failures.join(" "),
        quantile(0.5) * 1e3,
        quantile(0.99) * 1e3,
        max * 1e3,
        counter("pathwatch_history_runs_written_total"),
        counter("pathwatch_history_runs_dropped_total"),
        cpu * 100.0,
        rss_now,
        rss_before_scrape,
        peak_after_scrapes,
        peak_rss_mb(),
        renders[1].as_secs_f64() * 1e3,
        size as f64 / 1e6,
        gzip_took.as_secs_f64() * 1e3,
        gzip_size as f64 / 1e6,
    );
}

/// User + system CPU seconds of this process.
/// GETs /metrics as Prometheus does (gzip accepted); returns the bytes received.
async fn scrape_gzipped(addr: std::net::SocketAddr) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let req = b"GET /metrics HTTP/1.0\r\nhost: x\r\naccept-encoding: gzip\r\n\r\n";
    if s.write_all(req).await.is_err() {
        return 0;
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    raw.len()
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}
