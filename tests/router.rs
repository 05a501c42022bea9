//! The HTTP interface through `server::router` without a socket (tower's `oneshot`): the
//! shapes of the API, the pages and the health endpoints for a daemon's state.
//! tests/status.rs keeps the end-to-end run with a real client against the real daemon.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use pathwatch::app::DaemonSink;
use pathwatch::history::History;
use pathwatch::metrics::Metrics;
use pathwatch::probe::{CertInfo, Failure, ProbeResult, Reason, TlsInfo};
use pathwatch::scheduler::Sink;
use pathwatch::server::{AppState, router};
use pathwatch::verdict::{Board, assess};
use serde_json::Value;
use tower::ServiceExt;

const DAY: i64 = 86_400;

/// A daemon's state without a scheduler: results are fed to its sink by hand.
fn daemon(yaml: &str) -> (AppState, DaemonSink) {
    let app = pathwatch::app::build(support::config(yaml)).unwrap();
    let config = app.config.clone();
    let metrics = Arc::new(Metrics::new(&config.location, &config.checks).unwrap());
    let history = Arc::new(
        History::open(&config.history, &config.base_dir, metrics.history.clone()).unwrap(),
    );
    let board = Arc::new(Board::new(&config.checks, Default::default()));
    let sink = DaemonSink::new(metrics.clone(), board.clone(), history.clone(), None);
    let state = AppState {
        live: Arc::new(pathwatch::live::Live::new(config, app.prober.clone())),
        metrics,
        reloader: None,
        guard: pathwatch::server::secure::Guard::open(),
        ready: Arc::new(AtomicBool::new(false)),
        board,
        history,
        cluster: Arc::new(pathwatch::cluster::State::new(
            "standalone",
            pathwatch::cluster::Members::new(vec!["self".into()], "self"),
            0,
        )),
    };
    (state, sink)
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, String) {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn json(state: &AppState, uri: &str) -> (StatusCode, Value) {
    let (status, body) = get(state, uri).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{uri}: {e}: {body}"));
    (status, v)
}

fn failed(reason: Reason, message: &str) -> ProbeResult {
    let mut r = ProbeResult::empty(SystemTime::now());
    r.duration = Duration::from_millis(12);
    r.failure = Some(Failure::new(reason, message));
    r
}

/// A good TLS run whose leaf expires `secs` from now.
fn cert_run(secs: i64) -> ProbeResult {
    let now = pathwatch::clock::now_unix();
    let mut r = ProbeResult::empty(SystemTime::now());
    r.duration = Duration::from_millis(8);
    r.tls = Some(TlsInfo {
        server_name: "localhost".into(),
        version: "TLS 1.3".into(),
        cipher: "TLS13_AES_128_GCM_SHA256".into(),
        chain: vec![CertInfo {
            subject: "CN=localhost".into(),
            issuer: "CN=test CA".into(),
            sans: vec!["localhost".into()],
            serial: "01".into(),
            fingerprint_sha256: "00".into(),
            not_before: now - DAY,
            not_after: now + secs,
            is_ca: false,
        }],
        verified: true,
        verified_chain_expiry: Some(now + secs),
    });
    r
}

const YAML: &str = "location: eu-1
checks:
  - {name: api, type: http, target: \"http://127.0.0.1:9/health?key=s3cr3t\"}
  - {name: cert, type: tls, target: \"localhost:443\"}
";

#[tokio::test]
async fn api_shapes_for_a_failing_and_a_healthy_check() {
    let (state, sink) = daemon(YAML);
    let api = state.live.config().check("api").unwrap().clone();
    let cert = state.live.config().check("cert").unwrap().clone();
    assert_eq!(
        get(&state, "/-/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, before) = json(&state, "/api/v1/checks").await;
    assert_eq!(before["checks"][0]["state"], "unknown");
    assert_eq!(before["checks"][0]["since"], Value::Null);

    for _ in 0..2 {
        sink.record(&api, failed(Reason::HttpStatus, "got HTTP 503"));
    }
    sink.record(&cert, cert_run(30 * DAY + DAY / 2));
    state.history.flush();
    state.ready.store(true, Ordering::Release);
    assert_eq!(get(&state, "/-/ready").await.0, StatusCode::OK);
    assert_eq!(get(&state, "/-/healthy").await.0, StatusCode::OK);

    let (status, all) = json(&state, "/api/v1/checks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["location"], "eu-1");
    let checks = all["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    let a = &checks[0];
    assert_eq!(a["name"], "api");
    assert_eq!(a["type"], "http");
    assert_eq!(a["target"], "http://127.0.0.1:9/health?key=<redacted>");
    assert_eq!(a["state"], "crit");
    assert!(a["since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(a["interval_seconds"], 30.0);
    assert_eq!(a["last"]["reason"], "http_status");
    assert_eq!(a["last"]["message"], "got HTTP 503");
    assert_eq!(a["last"]["status"], "crit");
    assert_eq!(checks[1]["state"], "ok");
    assert_eq!(checks[1]["last"]["cert_days_left"], 30.0);

    let (status, one) = json(&state, "/api/v1/checks/api").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["check"]["name"], "api");
    assert_eq!(one["recent_runs"].as_array().unwrap().len(), 2);
    assert_eq!(one["transitions"][0]["to"], "crit");
    assert!(one["expect"]["events"].as_array().unwrap().is_empty());

    let (_, runs) = json(&state, "/api/v1/checks/api/history?limit=1").await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let (_, t) = json(&state, "/api/v1/transitions?check=api").await;
    assert_eq!(t["transitions"][0]["check"], "api");
    assert_eq!(t["transitions"][0]["from"], "unknown");

    let (status, missing) = json(&state, "/api/v1/checks/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"], "no check named `nope`");
    let (status, bad) = json(&state, "/api/v1/checks/api/history?since=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["error"].as_str().unwrap().starts_with("since must be"),
        "{bad}"
    );

    let (status, page) = get(&state, "/checks/api").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("got HTTP 503"),
        "the detail page names the cause"
    );
    assert!(!page.contains("s3cr3t"), "no secret on the page");
    let (status, badge) = get(&state, "/badge/api.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(badge.starts_with("<svg"), "{badge}");
    let reload = Request::post("/-/reload").body(Body::empty()).unwrap();
    let response = router(state.clone()).oneshot(reload).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "no config file to read again"
    );
    assert_eq!(
        get(&state, "/-/reload").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(
        metrics.contains("pathwatch_check_state{check=\"api\",location=\"eu-1\",state=\"crit\"} 1")
    );
    assert!(!metrics.contains("s3cr3t"));
}

/// `pathwatch check`, the API and the status page show the same days left for one
/// certificate (one formula, in `clock`).
#[tokio::test]
async fn check_api_and_page_agree_on_days_left() {
    let (state, sink) = daemon(YAML);
    let cert = state.live.config().check("cert").unwrap().clone();
    // 30.9 days: a fractional formula would say 31 somewhere.
    let result = cert_run(30 * DAY + DAY * 9 / 10);
    let report = pathwatch::report::CheckReport {
        check: cert.clone(),
        assessment: assess(&result, &cert.thresholds),
        result: result.clone(),
        waited: None,
    };
    let check: Value = serde_json::from_str(&pathwatch::report::json(&[report])).unwrap();
    sink.record(&cert, result);

    let from_check = check["checks"][0]["tls"]["days_left"].as_i64().unwrap();
    let (_, api) = json(&state, "/api/v1/checks/cert").await;
    let from_api = api["check"]["last"]["cert_days_left"].as_f64().unwrap();
    let (_, page) = get(&state, "/").await;
    assert_eq!(from_check, 30);
    assert_eq!(from_api, 30.0);
    assert!(page.contains(">30 d<"), "the overview shows 30 d");
}
