//! Accuracy of the per-event latencies pathwatch measures: the demo backend records when it
//! really sent each event (from receiving the message); pathwatch measures from sending the
//! message to receiving the event. The difference is pathwatch's error (it includes the two
//! loopback transits). `cargo bench --bench event_latency -- [runs]` (default 200; under
//! `cargo test`, a 5-run smoke).

use std::time::Duration;

use pathwatch::config::Config;
use pathwatch::demo::DemoBackend;
use pathwatch::probe::Prober;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::args()
        .filter(|a| !a.starts_with("--"))
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(if full { 200 } else { 5 });
    let ms = Duration::from_millis;
    let demo = DemoBackend::builder()
        .delays([ms(5), ms(10), ms(15), ms(20), ms(25)])
        .build();
    let log = demo.sent.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    demo.spawn(listener, None);

    let yaml = format!(
        "checks:\n  - name: gp\n    type: agent_pipeline\n    target: ws://{addr}/ws\n    timeout: 5s\n"
    );
    let cfg = Config::from_str(&yaml, "bench.yaml", &|_| None).unwrap();
    let check = &cfg.checks[0];
    let prober = Prober::new(&cfg.resolver, cfg.secrets.clone()).unwrap();
    let mut errors_us: Vec<i64> = Vec::new();
    for _ in 0..runs {
        let r = prober.run(&check.target, &check.spec, check.timeout).await;
        assert!(r.success(), "{:?}", r.failure);
        let truth = log.last().unwrap();
        for event in &r.events {
            if let Some((_, sent)) = truth.iter().find(|(n, _)| *n == event.name) {
                errors_us.push(event.at.as_micros() as i64 - sent.as_micros() as i64);
            }
        }
    }
    errors_us.sort_unstable();
    let pct = |q: f64| errors_us[((errors_us.len() - 1) as f64 * q).round() as usize];
    println!(
        "event_latency runs={runs} events={} error_us median={} p99={} worst={} best={}",
        errors_us.len(),
        pct(0.5),
        pct(0.99),
        errors_us.last().unwrap(),
        errors_us.first().unwrap()
    );
}
