//! The plain `websocket` check against the demo backend over a real socket: connect only,
//! send and await a reply, frames that never match, refused upgrades, server closes, and
//! wss with the demo's generated certificate.

mod support;

use std::net::SocketAddr;

use pathwatch::demo::{DemoBackend, DemoPki};
use pathwatch::probe::{Phase, ProbeResult, Reason};
use support::*;

async fn demo() -> SocketAddr {
    spawn_demo(DemoBackend::default()).await
}

async fn run(target: &str, extra: &str) -> ProbeResult {
    let yaml = format!(
        "checks:\n  - name: ws\n    type: websocket\n    target: {target}\n    timeout: 1s\n{extra}"
    );
    probe_once(&config(&yaml)).await
}

#[tokio::test]
async fn a_completed_upgrade_is_success_without_expectations() {
    let addr = demo().await;
    let r = run(&format!("ws://{addr}/ws"), "").await;
    assert!(r.success(), "{:?}", r.failure);
    assert!(r.phase(Phase::Upgrade).is_some());
    assert!(r.phase(Phase::Reply).is_none());
}

#[tokio::test]
async fn a_sent_message_gets_its_reply_and_earlier_frames_are_skipped() {
    let addr = demo().await;
    // The demo first sends connection_established, then answers the ping.
    let r = run(
        &format!("ws://{addr}/ws"),
        "    send: '{\"type\":\"ping\"}'\n    expect:\n      json:\n        - {path: type, equals: pong}\n",
    )
    .await;
    assert!(r.success(), "{:?}", r.failure);
    assert!(r.phase(Phase::Reply).unwrap() > std::time::Duration::ZERO);

    // Without expectations, any frame is the reply.
    let r = run(&format!("ws://{addr}/ws"), "    send: hello\n").await;
    assert!(r.success(), "{:?}", r.failure);
}

#[tokio::test]
async fn frames_that_never_match_are_shown_when_time_runs_out() {
    let addr = demo().await;
    let r = run(
        &format!("ws://{addr}/ws"),
        "    expect:\n      body_matches: ['\"type\":\"welcome\"']\n",
    )
    .await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::BodyMismatch);
    assert_eq!(f.phase, Some(Phase::Reply));
    assert!(
        f.message.starts_with("no frame matched within"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("1 frame(s) did not match; last: body does not match")
            && f.message.contains("connection_established"),
        "{}",
        f.message
    );

    // A silent server is a timeout, not a mismatch.
    let silent = spawn_app(axum::Router::new().route(
        "/ws",
        axum::routing::get(|ws: axum::extract::WebSocketUpgrade| async move {
            ws.on_upgrade(|socket| async move {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                drop(socket);
            })
        }),
    ))
    .await;
    let r = run(&format!("ws://{silent}/ws"), "    send: hello\n").await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::Timeout);
    assert!(
        f.message.starts_with("no frame within") && f.message.ends_with("of sending the message"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn refusals_and_closes_keep_their_reasons() {
    let addr = demo().await;
    let r = run(&format!("ws://{addr}/ws?fault=reject403"), "").await;
    assert_eq!(r.failure.unwrap().reason, Reason::WsAuth);

    let r = run(&format!("ws://{addr}/nowhere"), "").await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::WsUpgrade);
    assert!(f.message.contains("HTTP 404"), "{}", f.message);

    let r = run(
        &format!("ws://{addr}/ws?fault=close1011"),
        "    send: hello\n",
    )
    .await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::WsClosed);
    assert!(
        f.message
            .contains("1011 \"Service not ready\" (server error)"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn wss_with_the_demo_certificate_is_verified() {
    let pki = DemoPki::generate().unwrap();
    let addr = spawn_tls_demo(pki.server.clone(), DemoBackend::default()).await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &pki.ca_pem).unwrap();
    let trusted = format!("    tls:\n      ca_file: {}\n", ca.path().display());

    for host in ["localhost", "127.0.0.1"] {
        let target = format!("wss://{host}:{}/ws", addr.port());
        let r = run(&target, &trusted).await;
        assert!(r.success(), "{host}: {:?}", r.failure);
        let tls = r.tls.unwrap();
        assert!(tls.verified);
        let days = (tls.chain[0].not_after - tls.chain[0].not_before) / 86_400;
        assert_eq!(days, 90, "a leaf like a fresh ACME certificate");
    }
    // Without the demo CA the same socket is untrusted, and nothing is upgraded.
    let r = run(&format!("wss://localhost:{}/ws", addr.port()), "").await;
    assert!(r.phase(Phase::Upgrade).is_none());
    assert_eq!(r.failure.unwrap().reason, Reason::TlsUntrusted);
}
