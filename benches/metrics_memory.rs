//! Memory and render time of the metrics for N http checks, step by step: config loaded,
//! series registered, one (failing) probe recorded per check, `/metrics` rendered.
//! `cargo bench --bench metrics_memory -- [checks]` (default 10,000; under `cargo test` 200).
//! RSS is the process's VmRSS after each step (allocator-retained memory included).

mod support;
use support::rss_mb;

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let n: usize =
        args.get(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(if full { 10_000 } else { 200 });
    // A closed port on loopback: every probe fails fast with `connect`.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut yaml = String::from("checks:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: c{i}\n    type: http\n    target: http://{closed}/health\n    interval: 10s\n    timeout: 2s\n"
        ));
    }
    let start = rss_mb();
    let config = pathwatch::config::Config::from_str(&yaml, "bench.yaml", &|_| None).unwrap();
    let loaded = rss_mb();
    let metrics = pathwatch::metrics::Metrics::new("bench", &config.checks).unwrap();
    let registered = rss_mb();
    let prober = pathwatch::probe::Prober::new(&config.resolver, config.secrets.clone()).unwrap();
    for c in &config.checks {
        let r = prober.run(&c.target, &c.spec, c.timeout).await;
        metrics.record(c, &r);
    }
    let recorded = rss_mb();
    let t = std::time::Instant::now();
    let text = metrics.render();
    let took = t.elapsed();
    println!(
        "metrics_memory checks={n} rss_mb start={start} config={loaded} registered={registered} recorded={recorded} rendered={} render={:.1}ms size={:.1}MB series={}",
        rss_mb(),
        took.as_secs_f64() * 1e3,
        text.len() as f64 / 1e6,
        text.lines().filter(|l| !l.starts_with('#')).count()
    );
}
