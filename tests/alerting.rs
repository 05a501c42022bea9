//! Paging without Prometheus, end to end with Debian's Alertmanager (the shipped routing)
//! and a webhook receiver: a golden-path fault pages with the labels and annotations of
//! the generated rules, clearing it resolves the page; pathwatch restarted while firing
//! pages no second time; a check that recovered while pathwatch was down is resolved after
//! the start; an Alertmanager down for a minute gets the alert once it is back.
//!
//! Without the program the test fails in CI (`CI=true`) and is skipped with a note
//! elsewhere.

mod support;

use std::time::{Duration, Instant};

use pathwatch::demo::DemoBackend;
use serde_json::Value;
use support::*;

const PAGE: &str = "PathwatchGoldenPathFailing";

/// Notifications to `/page` with `status` that hold a `PAGE` alert of `golden`.
fn pages(inbox: &Inbox, status: &str) -> Vec<Value> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _, _)| path == "/page")
        .flat_map(|(_, body, _)| body["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| {
            a["status"] == status
                && a["labels"]["alertname"] == PAGE
                && a["labels"]["check"] == "golden"
        })
        .collect()
}

/// Waits until there are `n` such notifications; returns the last and how long it took.
async fn wait_pages(inbox: &Inbox, status: &str, n: usize, limit: Duration) -> (Value, Duration) {
    let start = Instant::now();
    loop {
        let got = pages(inbox, status);
        if got.len() >= n {
            return (got[n - 1].clone(), start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "{n} {status} page(s) expected within {limit:?}; got {}: {:#?}",
            got.len(),
            inbox
                .lock()
                .unwrap()
                .iter()
                .map(|(p, b, _)| (p, b))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn demo_fault(demo: std::net::SocketAddr, fault: Option<&str>) {
    let (method, query) = match fault {
        Some(f) => ("PUT", format!("?ws={f}")),
        None => ("DELETE", String::new()),
    };
    let (status, _) = http(method, &format!("http://{demo}/demo/fault{query}"), None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_resolve_and_survive_restarts_without_prometheus() {
    if !have(ALERTMANAGER) {
        let why = format!("{ALERTMANAGER} is needed (apt-get install prometheus-alertmanager)");
        if std::env::var("CI").is_ok() {
            panic!("{why}");
        }
        eprintln!("skipping outside CI: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (hook, inbox) = receiver().await;
    let mut am = Alertmanager::start(dir.path(), hook, None).await;
    let demo = spawn_demo(DemoBackend::default()).await;
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "location: e2e
history: {{path: {history}}}
alerting:
  alertmanagers: [http://{am}]
  resend: 5s
  external_url: https://status.example.ai/
  labels: {{team: agents}}
defaults: {{interval: 500ms, timeout: 450ms}}
checks:
  - {{name: golden, type: agent_pipeline, target: \"ws://{demo}/ws\"}}
  - {{name: health, type: http, target: \"http://{demo}/health\"}}
",
            history = dir.path().join("history.db").display(),
            am = am.addr
        ),
    )
    .unwrap();
    let d = Binary::start(&path, &[]).await;
    d.wait("golden", "ok").await;

    // The fault pages, with the labels and annotations of the generated rules.
    demo_fault(demo, Some("drop:tool_completed")).await;
    let (page, to_page) = wait_pages(&inbox, "firing", 1, Duration::from_secs(30)).await;
    for (label, value) in [
        ("severity", "page"),
        ("location", "e2e"),
        ("reason", "event_missing"),
        ("team", "agents"),
    ] {
        assert_eq!(page["labels"][label], value, "{page}");
    }
    assert_eq!(
        page["annotations"]["summary"],
        "Golden path golden is failing in e2e"
    );
    let description = page["annotations"]["description"].as_str().unwrap();
    assert!(description.contains("tool_completed"), "{description}");
    assert_eq!(
        page["annotations"]["status_page"],
        "https://status.example.ai/checks/golden"
    );

    // Restarted while firing: the alert is sent again, Alertmanager pages no second time.
    let log = d.stop().await;
    assert!(log.contains("Alerts go to Alertmanager directly."), "{log}");
    let d = Binary::start(&path, &[]).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        pages(&inbox, "firing").len(),
        1,
        "a second page after a restart"
    );

    // Cleared: the page resolves.
    demo_fault(demo, None).await;
    let (_, to_resolve) = wait_pages(&inbox, "resolved", 1, Duration::from_secs(30)).await;

    // Broken again, then it recovers while pathwatch is down: resolved after the start
    // (well before Alertmanager would end it by itself, 4 resends = 20 s after the last).
    demo_fault(demo, Some("drop:tool_completed")).await;
    wait_pages(&inbox, "firing", 2, Duration::from_secs(30)).await;
    d.stop().await;
    demo_fault(demo, None).await;
    let restarted = Instant::now();
    let d = Binary::start(&path, &[]).await;
    wait_pages(&inbox, "resolved", 2, Duration::from_secs(15)).await;
    let after_start = restarted.elapsed();
    assert!(after_start < Duration::from_secs(15), "{after_start:?}");

    // Alertmanager down for a minute: the page arrives once it is back.
    am.stop().await;
    demo_fault(demo, Some("drop:tool_completed")).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let failures = d
        .metrics()
        .await
        .lines()
        .find(|l| l.starts_with("pathwatch_notifications_total") && l.contains("failure"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(failures > 0.0, "failed deliveries are counted");
    assert_eq!(
        pages(&inbox, "firing").len(),
        2,
        "nothing could page meanwhile"
    );
    let back = Instant::now();
    am.resume().await;
    let (_, _) = wait_pages(&inbox, "firing", 3, Duration::from_secs(30)).await;
    let after_return = back.elapsed();
    let log = d.stop().await;
    assert!(log.contains("Alertmanager reachable again"), "{log}");
    println!(
        "fault -> page {:.1} s, clear -> resolve {:.1} s, recovered while down -> resolved {:.1} s after the restart, Alertmanager back -> page {:.1} s",
        to_page.as_secs_f64(),
        to_resolve.as_secs_f64(),
        after_start.as_secs_f64(),
        after_return.as_secs_f64()
    );
}

/// What a fake Alertmanager got: (Authorization header, alerts).
type Posts = std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>;

/// A fake Alertmanager that answers 503 to the first `fail` posts, then 200.
async fn fake_alertmanager(fail: usize) -> (std::net::SocketAddr, Posts) {
    let posts: Posts = Default::default();
    let seen = posts.clone();
    let app = axum::Router::new().route(
        "/prefix/api/v2/alerts",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let mut seen = seen.lock().unwrap();
                    seen.push((auth, body));
                    if seen.len() <= fail {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            },
        ),
    );
    (spawn_app(app).await, posts)
}

#[tokio::test]
async fn delivery_retries_authenticates_and_a_hanging_alertmanager_slows_nothing() {
    let (am, posts) = fake_alertmanager(2).await;
    // Accepts connections and never answers.
    let hang = spawn_raw(|_stream| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    })
    .await;
    // Answers every request with a 500: a failing check target, and an Alertmanager that
    // refuses (not a closed port: under load another test may take that port).
    let broken = spawn_app(
        axum::Router::new().fallback(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("am-password");
    std::fs::write(&secret, "am-hunter2\n").unwrap();
    let yaml = format!(
        "location: here
alerting:
  alertmanagers: [http://{am}/prefix/, http://{hang}/, http://{broken}/]
  resend: 1s
  timeout: 1s
  basic_auth: {{username: pathwatch, password: '${{file:{}}}'}}
checks:
  - {{name: api, type: http, target: \"http://{broken}/health\", interval: 200ms, timeout: 150ms}}
",
        secret.display()
    );
    let d = start(&yaml).await;
    let until = Instant::now() + Duration::from_secs(20);
    let (auth, alert) = loop {
        let delivered = {
            let got = posts.lock().unwrap();
            (got.len() > 2).then(|| got[2].clone())
        };
        if let Some((auth, body)) = delivered {
            break (auth, body[0].clone());
        }
        assert!(
            Instant::now() < until,
            "never delivered: {:?}",
            posts.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    use data_encoding::BASE64;
    assert_eq!(
        auth,
        format!("Basic {}", BASE64.encode(b"pathwatch:am-hunter2"))
    );
    assert_eq!(alert["labels"]["alertname"], "PathwatchCheckCritical");
    assert_eq!(alert["labels"]["reason"], "http_status");
    assert!(alert["endsAt"].as_str().unwrap() > alert["startsAt"].as_str().unwrap());

    // The hanging and the refusing Alertmanager cost the probes nothing: runs go on at
    // their interval (200 ms) while deliveries to them time out or fail.
    let (_, before) = get_text(&format!("{}/metrics", d.base), &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = get_text(&format!("{}/metrics", d.base), &[]).await;
    let runs = |text: &str| {
        text.lines()
            .find(|l| {
                l.starts_with(
                    "pathwatch_probes_total{check=\"api\",location=\"here\",result=\"failure\"}",
                )
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap()
    };
    assert!(runs(&after) - runs(&before) >= 5.0, "probes slowed down");
    for am in [am.to_string(), hang.to_string(), broken.to_string()] {
        let failed = format!("pathwatch_notifications_total{{alertmanager=\"http://{am}/");
        assert!(after.contains(&failed), "{am} counted:\n{after}");
    }
    assert!(after.contains("result=\"success\""), "{after}");
    assert!(!after.contains("am-hunter2"));
    let (_, api) = get_text(&format!("{}/api/v1/checks", d.base), &[]).await;
    assert!(!api.contains("am-hunter2"));
}
