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
        f.message.contains("1011 \"Internal error\" (server error)"),
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

/// A server that completes the upgrade by hand, then writes `frames` as raw bytes.
async fn raw_ws_server(frames: &'static [u8]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    spawn_raw(move |mut s| async move {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let Ok(n) = s.read(&mut buf).await else { return };
            if n == 0 {
                return;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let key = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
        );
        let accept = data_encoding::BASE64.encode(digest.as_ref());
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        let _ = s.write_all(answer.as_bytes()).await;
        let _ = s.write_all(frames).await;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    })
    .await
}

#[tokio::test]
async fn a_server_that_breaks_the_framing_is_a_protocol_failure() {
    let expect = "    expect:\n      body_matches: [hello]\n";
    // FIN + reserved data opcode 0x3, empty payload.
    let addr = raw_ws_server(&[0x83, 0x00]).await;
    let f = run(&format!("ws://{addr}/ws"), expect)
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::Protocol, "{}", f.message);
    assert_eq!(
        f.message,
        "the server broke the WebSocket protocol while reading: a frame with reserved opcode 0x3"
    );
    // A text frame with RSV1 set, though no extension was negotiated.
    let addr = raw_ws_server(&[0xC1, 0x02, b'h', b'i']).await;
    let f = run(&format!("ws://{addr}/ws"), expect)
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::Protocol, "{}", f.message);
    assert!(
        f.message
            .ends_with("reserved bits set (no extension was negotiated)")
    );
    // A masked frame from the server.
    let addr = raw_ws_server(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]).await;
    let f = run(&format!("ws://{addr}/ws"), expect)
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::Protocol, "{}", f.message);
    assert!(
        f.message
            .ends_with("a masked frame (servers must not mask)")
    );
}

#[tokio::test]
async fn an_upgrade_answered_with_a_redirect_names_where_it_points() {
    let addr = spawn_raw(|mut s| async move {
        use tokio::io::AsyncWriteExt;
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 301 Moved Permanently\r\nLocation: wss://api-staging.example.test/v2/ws?token=abc\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let f = run(&format!("ws://{addr}/ws"), "").await.failure.unwrap();
    assert_eq!(f.reason, Reason::WsUpgrade);
    assert_eq!(
        f.message,
        "server answered the WebSocket upgrade with HTTP 301 Moved Permanently, redirecting to wss://api-staging.example.test/v2/ws?token=<redacted>; an upgrade is not redirected: point the target there"
    );
}

#[tokio::test]
async fn an_upgrade_refused_while_starting_is_starting() {
    use axum::http::StatusCode;
    let app = axum::Router::new()
        .route(
            "/ws",
            axum::routing::get(|| async {
                (StatusCode::SERVICE_UNAVAILABLE, "instance is warming up")
            }),
        )
        .route(
            "/down",
            axum::routing::get(|| async {
                (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream")
            }),
        );
    let addr = spawn_app(app).await;
    let f = run(&format!("ws://{addr}/ws"), "").await.failure.unwrap();
    assert_eq!(f.reason, Reason::Starting);
    assert!(
        f.message
            .starts_with("server refused the WebSocket upgrade with HTTP 503 Service Unavailable"),
        "{}",
        f.message
    );
    let f = run(&format!("ws://{addr}/down"), "").await.failure.unwrap();
    assert_eq!(f.reason, Reason::WsUpgrade, "{}", f.message);
}
