//! The status API and pages against a running daemon, and state that survives an unclean
//! restart (`kill -9` of the real binary) without being announced again.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use support::*;

async fn json(url: &str) -> (u16, Value) {
    let (status, body) = get_text(url, &[]).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (status, v)
}

async fn wait_state(base: &str, check: &str, state: &str) -> Value {
    for _ in 0..200 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(base.trim_start_matches("http://")).await
        {
            use tokio::io::AsyncWriteExt;
            let _ = s.shutdown().await;
            let (_, v) = json(&format!("{base}/api/v1/checks")).await;
            let c = v["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == check)
                .cloned()
                .unwrap();
            if c["state"] == state {
                return c;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{check} never became {state}");
}

async fn backend() -> std::net::SocketAddr {
    spawn_app(Router::new().route("/up", get(|| async { "ok" })).route(
        "/down",
        get(|| async {
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "<b>db down</b>",
            )
        }),
    ))
    .await
}

#[tokio::test]
async fn api_and_pages_show_state_history_and_transitions() {
    let addr = backend().await;
    let d = start(&format!(
        "location: eu-1\ndefaults: {{interval: 200ms, timeout: 150ms}}\nchecks:\n  - {{name: up, type: http, target: \"http://{addr}/up?token=s3cr3t-value\"}}\n  - {{name: down, type: http, target: \"http://{addr}/down\"}}\n"
    ))
    .await;
    let down = wait_state(&d.base, "down", "crit").await;
    assert_eq!(down["type"], "http");
    assert_eq!(
        down["cause"].as_str().unwrap().split(';').next(),
        Some("2 consecutive runs failed")
    );
    assert_eq!(down["last"]["reason"], "http_status");
    assert!(down["since"].as_str().unwrap().ends_with('Z'));
    let up = wait_state(&d.base, "up", "ok").await;
    assert_eq!(
        up["target"],
        format!("http://{addr}/up?token=<redacted>"),
        "query values never shown"
    );
    assert!(up["last"]["phases"]["connect"].is_number());

    // The history is written in batches (<= 100 ms behind the live state).
    for _ in 0..100 {
        let (_, t) = json(&format!("{}/api/v1/transitions", d.base)).await;
        if t["transitions"].as_array().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, detail) = json(&format!("{}/api/v1/checks/down", d.base)).await;
    assert_eq!(status, 200);
    assert_eq!(detail["check"]["state"], "crit");
    assert!(!detail["recent_runs"].as_array().unwrap().is_empty());
    assert_eq!(detail["transitions"][0]["to"], "crit");

    let (_, hist) = json(&format!(
        "{}/api/v1/checks/down/history?limit=2&since=1h",
        d.base
    ))
    .await;
    let runs = hist["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs[0]["at_ms"].as_i64() >= runs[1]["at_ms"].as_i64(),
        "newest first"
    );
    let (_, t) = json(&format!("{}/api/v1/transitions?check=down", d.base)).await;
    let moves: Vec<&str> = t["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(moves, ["crit"], "UNKNOWN -> CRIT once, not per run");

    let (status, body) = get_text(&format!("{}/api/v1/checks/nope", d.base), &[]).await;
    assert_eq!(
        (status, body.contains("no check named `nope`")),
        (404, true)
    );
    let (status, body) = get_text(&format!("{}/api/v1/transitions?limit=0", d.base), &[]).await;
    assert_eq!((status, body.contains("limit must be")), (400, true));
    let (status, _) = get_text(
        &format!("{}/api/v1/checks/up/history?since=soon", d.base),
        &[],
    )
    .await;
    assert_eq!(status, 400);

    // Pages: the state in text, target text escaped, the secret absent.
    let (status, html) = get_text(&format!("{}/", d.base), &[]).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"<tr id="check-down" data-state="crit">"#),
        "{html}"
    );
    assert!(html.contains("CRIT</span>"));
    assert!(
        html.contains("&lt;b&gt;db down&lt;/b&gt;"),
        "target text is escaped"
    );
    assert!(!html.contains("s3cr3t-value"));
    let (status, html) = get_text(&format!("{}/checks/down", d.base), &[]).await;
    assert_eq!(status, 200);
    assert!(html.contains("State changes"));
    // A steady check says what its last run saw; its phases read in the path's order.
    let (_, html) = get_text(&format!("{}/", d.base), &[]).await;
    assert!(html.contains("last run: OK in "), "{html}");
    let (_, html) = get_text(&format!("{}/checks/up", d.base), &[]).await;
    let at = |p: &str| {
        html.find(&format!("<tr><td>{p}</td>"))
            .unwrap_or_else(|| panic!("no phase {p}:\n{html}"))
    };
    assert!(
        at("connect") < at("processing") && at("processing") < at("transfer"),
        "{html}"
    );
    assert!(html.contains(r#"aria-label="connect from "#), "{html}");
    let (status, svg) = get_text(&format!("{}/badge/down.svg", d.base), &[]).await;
    assert_eq!(status, 200);
    assert!(svg.contains("down: CRIT"));
    let (status, _) = get_text(&format!("{}/badge/nope.svg", d.base), &[]).await;
    assert_eq!(status, 404);
}

/// The real binary, killed with SIGKILL while a check is CRIT, comes back CRIT with the
/// same `since`, and does not announce the CRIT again.
#[tokio::test]
async fn state_survives_kill_9_without_a_second_announcement() {
    let addr = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = closed_port().await;
    let cfg = dir.path().join("pathwatch.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server: {{listen: \"{listen}\"}}\nhistory: {{path: history.db}}\ndefaults: {{interval: 200ms, timeout: 150ms}}\nchecks:\n  - {{name: down, type: http, target: \"http://{addr}/down\"}}\n"
        ),
    )
    .unwrap();
    let spawn = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
            .arg("--config")
            .arg(&cfg)
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let base = format!("http://{listen}");
    let mut first = spawn();
    let before = wait_state(&base, "down", "crit").await;
    // Let a few more runs land in the history, then kill without any chance to clean up.
    tokio::time::sleep(Duration::from_millis(700)).await;
    first.kill().await.unwrap();
    let first_log = first.wait_with_output().await.unwrap();
    let first_log = String::from_utf8_lossy(&first_log.stderr).into_owned();
    assert_eq!(
        first_log.matches("Check is failing (CRIT).").count(),
        1,
        "{first_log}"
    );
    assert!(dir.path().join("history.db").exists());

    // Down for over two intervals: the check missed runs, and its history says so.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second = spawn();
    let after = wait_state(&base, "down", "crit").await;
    assert_eq!(
        after["since_ms"], before["since_ms"],
        "the same CRIT, not a new one"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, t) = json(&format!("{base}/api/v1/transitions?check=down")).await;
    let t = t["transitions"].as_array().unwrap();
    assert_eq!(t.len(), 2, "the CRIT and the gap: {t:?}");
    let gap = &t[0];
    assert_eq!(
        (&gap["from"], &gap["to"]),
        (&"crit".into(), &"crit".into()),
        "{gap}"
    );
    let cause = gap["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("pathwatch was not running from ")
            && cause.contains("no runs in that time"),
        "{cause}"
    );
    let (_, page) = get_text(&format!("{base}/checks/down"), &[]).await;
    assert!(page.contains("pathwatch was not running from"), "{page}");
    let (_, runs) = json(&format!("{base}/api/v1/checks/down/history?limit=1000")).await;
    assert!(
        runs["runs"].as_array().unwrap().len() >= 5,
        "runs from both lives"
    );

    unsafe_free_sigterm(&second);
    let out = second.wait_with_output().await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("Resumed check states from the history."),
        "{log}"
    );
    assert!(
        !log.contains("Check is failing (CRIT)."),
        "announced again:\n{log}"
    );
}

/// SIGTERM through the `kill` command (no unsafe libc call in tests).
fn unsafe_free_sigterm(child: &tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}
