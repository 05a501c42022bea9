//! The streaming profiles (issue 13), three numbers:
//! 1. time-to-first-token error: pathwatch's `first_token` stage against when the demo
//!    really sent the first content delta (its send log), per profile, over SSE on loopback;
//! 2. N concurrent SSE golden paths (AG-UI, stage deadlines) against one demo: how many
//!    missed a deadline they should not have (the demo is healthy, so every miss is ours);
//! 3. CPU per 1,000 delta events: parsing, reading and judging a recorded stream of
//!    100,000 deltas in memory (no I/O), on one thread;
//! 4. peak memory of a 100,000-delta OpenAI Chat answer over SSE against a 10-delta one
//!    (measured first, before anything else raised the process's peak).
//!
//! `cargo bench --bench streams -- [runs] [concurrent]` (default 200 and 1000; under
//! `cargo test`, a smoke of 5 and 50).

mod support;

use std::time::{Duration, Instant};

use pathwatch::config::Config;
use pathwatch::config::spec::Spec;
use pathwatch::demo::DemoBackend;
use pathwatch::probe::Prober;
use pathwatch::probe::agent::profiles::{Read, Reader};
use pathwatch::probe::agent::rules::{RunState, Step};
use pathwatch::probe::sse::SseParser;
use pathwatch::protocol::profiles::Stage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs = numbers
        .first()
        .copied()
        .unwrap_or(if full { 200 } else { 5 });
    let concurrent = numbers
        .get(1)
        .copied()
        .unwrap_or(if full { 1000 } else { 50 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(long_answer_memory(if full { 100_000 } else { 10_000 }));
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ms = Duration::from_millis;
        let demo = DemoBackend::builder()
            .delays([ms(5), ms(10), ms(15), ms(20), ms(25)])
            .build();
        let log = demo.sent.clone();
        demo.spawn(listener, None);
        for profile in ["ag-ui", "openai-responses", "anthropic-messages", "ai-sdk"] {
            let yaml = format!(
                "checks:\n  - name: p\n    type: agent_pipeline\n    target: http://{addr}/sse?profile={profile}\n    profile: {profile}\n    timeout: 5s\n"
            );
            let cfg = Config::from_str(&yaml, "bench.yaml", &|_| None).unwrap();
            let check = &cfg.checks[0];
            let prober = Prober::new(&cfg.resolver, cfg.secrets.clone()).unwrap();
            let mut errors_us: Vec<i64> = Vec::new();
            let mut head_us: Vec<i64> = Vec::new();
            for _ in 0..runs {
                let r = prober.run(&check.target, &check.spec, check.timeout).await;
                assert!(r.success(), "{profile}: {:?}", r.failure);
                if let Some(head) = r.phase(pathwatch::probe::result::Phase::Processing) {
                    head_us.push(head.as_micros() as i64);
                }
                let measured = r.agent.as_ref().and_then(|a| a.stage(Stage::FirstToken));
                let truth = log.last().unwrap();
                let sent = truth.iter().find(|(s, _)| s == "first_token").map(|x| x.1);
                if let (Some(m), Some(s)) = (measured, sent) {
                    errors_us.push(m.as_micros() as i64 - s.as_micros() as i64);
                }
            }
            errors_us.sort_unstable();
            head_us.sort_unstable();
            let pct = |v: &[i64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
            println!(
                "ttft_error profile={profile} runs={} error_us median={} p99={} max={} min={} \
                 request_to_response_head_us median={} p99={}",
                errors_us.len(),
                pct(&errors_us, 0.5),
                pct(&errors_us, 0.99),
                errors_us.last().unwrap(),
                errors_us.first().unwrap(),
                pct(&head_us, 0.5),
                pct(&head_us, 0.99),
            );
        }

        // Many golden paths at once, each with stage deadlines far above the demo's timing.
        let yaml = format!(
            "checks:\n  - name: p\n    type: agent_pipeline\n    target: http://{addr}/sse?profile=ag-ui\n    profile: ag-ui\n    timeout: 20s\n    expect: {{deadlines: {{started: 2s, first_token: 3s, completed: 5s}}}}\n"
        );
        let cfg = Config::from_str(&yaml, "bench.yaml", &|_| None).unwrap();
        let check = cfg.checks[0].clone();
        let prober = std::sync::Arc::new(Prober::new(&cfg.resolver, cfg.secrets.clone()).unwrap());
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..concurrent {
            let (prober, check) = (prober.clone(), check.clone());
            tasks.push(tokio::spawn(async move {
                prober.run(&check.target, &check.spec, check.timeout).await
            }));
        }
        let mut failed = Vec::new();
        let mut completed_ms: Vec<u128> = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            match &r.failure {
                Some(f) => failed.push(format!("{}: {}", f.reason.as_str(), f.message)),
                None => completed_ms.push(
                    r.agent
                        .and_then(|a| a.stage(Stage::Completed))
                        .unwrap_or_default()
                        .as_millis(),
                ),
            }
        }
        completed_ms.sort_unstable();
        let p = |q: f64| {
            completed_ms
                .get(((completed_ms.len().max(1) - 1) as f64 * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        println!(
            "concurrent_sse n={concurrent} ok={} failed={} wall_ms={} completed_ms median={} p99={} max={}",
            completed_ms.len(),
            failed.len(),
            start.elapsed().as_millis(),
            p(0.5),
            p(0.99),
            completed_ms.last().copied().unwrap_or(0)
        );
        for f in failed.iter().take(3) {
            println!("  failed: {f}");
        }
    });

    cpu_per_thousand_deltas(if full { 100_000 } else { 2_000 });
}

/// Parses, reads and judges a recorded AG-UI stream of `n` deltas in memory.
fn cpu_per_thousand_deltas(n: usize) {
    let mut stream = String::new();
    stream.push_str("data: {\"type\":\"RUN_STARTED\",\"threadId\":\"t\",\"runId\":\"r\"}\n\n");
    stream.push_str(
        "data: {\"type\":\"TEXT_MESSAGE_START\",\"messageId\":\"m\",\"role\":\"assistant\"}\n\n",
    );
    for i in 0..n {
        stream.push_str(&format!(
            "data: {{\"type\":\"TEXT_MESSAGE_CONTENT\",\"messageId\":\"m\",\"delta\":\"token {i} \"}}\n\n"
        ));
    }
    stream.push_str("data: {\"type\":\"TEXT_MESSAGE_END\",\"messageId\":\"m\"}\n\n");
    stream.push_str("data: {\"type\":\"RUN_FINISHED\",\"threadId\":\"t\",\"runId\":\"r\"}\n\n");
    let yaml = format!(
        "checks:\n  - name: p\n    type: agent_pipeline\n    target: http://127.0.0.1:9/x\n    profile: ag-ui\n    expect: {{max_events: {}}}\n",
        n + 10
    );
    let cfg = Config::from_str(&yaml, "bench.yaml", &|_| None).unwrap();
    let Spec::Agent(spec) = &cfg.checks[0].spec else {
        unreachable!()
    };
    let bytes = stream.as_bytes();
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut parser = SseParser::new(1 << 20);
        let mut reader = Reader::new(spec);
        let mut state = RunState::new(&spec.expect, spec.profile);
        let mut events = Vec::new();
        let mut done = false;
        // 16 KiB reads, as a socket would hand them over.
        for (i, chunk) in bytes.chunks(16 << 10).enumerate() {
            parser.feed(chunk, &mut events).unwrap();
            for ev in events.drain(..) {
                let Ok(Read::Events(marked)) = reader.read(Some(&ev.event), &ev.data) else {
                    panic!("unreadable event")
                };
                for m in marked {
                    match state.observe(&m, Duration::from_millis(i as u64)) {
                        Step::Continue => {}
                        Step::Done => done = true,
                        Step::Fail(f) => panic!("{}", f.message),
                    }
                }
            }
        }
        assert!(done, "the run completed");
        assert_eq!(state.stats().deltas, n as u64);
        best = best.min(start.elapsed());
    }
    println!(
        "cpu_per_1000_deltas deltas={n} bytes={} best_of_5_ms={:.1} us_per_1000={:.0} kept_events={}",
        bytes.len(),
        best.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e6 / (n as f64 / 1000.0),
        4
    );
}

/// A 10-delta and an `n`-delta OpenAI Chat answer over SSE from a server that makes each
/// chunk as it sends it (so only the probe's memory grows): the peak RSS each leaves.
async fn long_answer_memory(n: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = vec![0u8; 64 << 10];
                let read = sock.read(&mut head).await.unwrap_or(0);
                let path = String::from_utf8_lossy(&head[..read]);
                let deltas: usize = path
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.rsplit('/').next()?.parse().ok())
                    .unwrap_or(10);
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
                    .await;
                let chunk = |body: String| {
                    format!(
                        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{body}]}}\n\n"
                    )
                };
                let mut out = chunk(
                    r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#
                        .into(),
                );
                for i in 0..deltas {
                    out.push_str(&chunk(format!(
                        r#"{{"index":0,"delta":{{"content":"token {i} "}},"finish_reason":null}}"#
                    )));
                    if out.len() > 16 << 10 {
                        let _ = sock.write_all(out.as_bytes()).await;
                        out.clear();
                    }
                }
                out.push_str(&chunk(
                    r#"{"index":0,"delta":{},"finish_reason":"stop"}"#.into(),
                ));
                out.push_str("data: [DONE]\n\n");
                let _ = sock.write_all(out.as_bytes()).await;
            });
        }
    });
    let probe = |deltas: usize| async move {
        let yaml = format!(
            "checks:\n  - name: p\n    type: agent_pipeline\n    target: http://{addr}/chat/{deltas}\n    profile: openai-chat\n    interval: 2m\n    timeout: 60s\n"
        );
        let cfg = Config::from_str(&yaml, "bench.yaml", &|_| None).unwrap();
        let check = &cfg.checks[0];
        let prober = Prober::new(&cfg.resolver, cfg.secrets.clone()).unwrap();
        let start = Instant::now();
        let r = prober.run(&check.target, &check.spec, check.timeout).await;
        assert!(r.success(), "{deltas} deltas: {:?}", r.failure);
        assert_eq!(r.agent.as_ref().unwrap().deltas, deltas as u64 + 1);
        (start.elapsed(), r.events.len())
    };
    for _ in 0..3 {
        probe(10).await;
    }
    let short = support::status_kb("VmHWM");
    let (took, kept) = probe(n).await;
    let long = support::status_kb("VmHWM");
    println!(
        "long_answer deltas={n} wall_ms={} kept_events={kept} peak_rss_kb after_10_deltas={short} after_{n}_deltas={long} growth_kb={}",
        took.as_millis(),
        long.saturating_sub(short)
    );
}
