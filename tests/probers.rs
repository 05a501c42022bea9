//! The tcp, icmp, grpc and dns_query check types of pathwatch's own config against
//! misbehaving loopback targets: each failure has a reason from the closed set and a
//! message that names the cause in words.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use pathwatch::probe::{ProbeResult, Reason};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn run(yaml: &str) -> ProbeResult {
    probe_once(&config(yaml)).await
}

fn check(kind: &str, target: &str, extra: &str) -> String {
    format!(
        "checks:\n  - name: t\n    type: {kind}\n    target: \"{target}\"\n    timeout: 2s\n{extra}"
    )
}

fn failed(r: &ProbeResult) -> (Reason, String) {
    let f = r.failure.as_ref().expect("the probe fails");
    (f.reason, f.message.clone())
}

#[tokio::test]
async fn tcp_names_the_step_and_what_arrived() {
    let smtp = spawn_raw(|mut s| async move {
        let _ = s.write_all(b"220 mail ESMTP\r\n").await;
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"554 5.7.1 no thanks\r\n").await;
    })
    .await;
    let steps = "    query_response:\n      - expect: \"^220 \"\n      - send: \"EHLO prober\"\n      - expect: \"^250 \"\n";
    let r = run(&check("tcp", &smtp.to_string(), steps)).await;
    let (reason, message) = failed(&r);
    assert_eq!(reason, Reason::BodyMismatch);
    assert!(
        message.contains("query_response step 3: waiting for a line matching `^250 `")
            && message.contains("the last line was `554 5.7.1 no thanks`"),
        "{message}"
    );
    assert!(
        r.dialogue
            .as_ref()
            .is_some_and(|d| d.failed_due_to_regex && d.steps_done == 2)
    );

    let closed = closed_port().await;
    let (reason, message) = failed(&run(&check("tcp", &closed.to_string(), "")).await);
    assert_eq!(reason, Reason::Connect);
    assert!(message.contains("nothing listens on port"), "{message}");

    // A banner that never comes: the step and the timeout are named.
    let silent = spawn_raw(|mut s| async move {
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
    })
    .await;
    let yaml = check(
        "tcp",
        &silent.to_string(),
        "    query_response:\n      - expect: \"^SSH-\"\n",
    )
    .replace("timeout: 2s", "timeout: 500ms");
    let (reason, message) = failed(&run(&yaml).await);
    assert_eq!(reason, Reason::Timeout);
    assert!(
        message.contains("query_response step 1: waited for a line matching `^SSH-`"),
        "{message}"
    );

    // TLS to a server whose certificate is not trusted.
    let pki = Pki::builder(&["localhost"]).build();
    let tls = spawn_tls(&pki).await;
    let (reason, _) = failed(&run(&check("tcp", &tls.to_string(), "    tls: true\n")).await);
    assert_eq!(reason, Reason::TlsUntrusted);
}

#[tokio::test]
async fn grpc_against_what_is_not_a_grpc_server() {
    let http1 = spawn_app(Router::new().route("/", get(|| async { "hello" }))).await;
    let (reason, message) = failed(&run(&check("grpc", &http1.to_string(), "")).await);
    assert_eq!(reason, Reason::Protocol);
    assert!(message.contains("HTTP/2"), "{message}");
    let nginx_like = spawn_raw(|mut s| async move {
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
    })
    .await;
    let (reason, message) = failed(&run(&check("grpc", &nginx_like.to_string(), "")).await);
    assert_eq!(reason, Reason::Protocol);
    assert!(
        message.contains("the server answered in HTTP/1 (`HTTP/1.1 400 Bad Request`)"),
        "{message}"
    );
    let closed = closed_port().await;
    let r = run(&check("grpc", &closed.to_string(), "")).await;
    assert_eq!(failed(&r).0, Reason::Connect);
    assert_eq!(
        r.grpc.map(|g| g.status_code),
        Some(14),
        "UNAVAILABLE, as a gRPC client says"
    );
}

#[tokio::test]
async fn dns_query_tells_a_missing_name_from_a_silent_server() {
    let dns = spawn_dns(
        &[("known.test", &["192.0.2.1".parse().unwrap()])],
        &["silent.test"],
    )
    .await;
    let ok = run(&check("dns_query", &dns.to_string(), "    query_name: known.test\n    query_type: A\n    validate_answer_rrs:\n      fail_if_none_matches_regexp: [\"192\\\\.0\\\\.2\\\\.1\"]\n")).await;
    assert!(ok.success(), "{:?}", ok.failure);
    assert_eq!(ok.dns_query.as_ref().map(|d| d.answer_rrs), Some(1));
    let (reason, message) = failed(
        &run(&check(
            "dns_query",
            &dns.to_string(),
            "    query_name: nope.test\n    query_type: A\n",
        ))
        .await,
    );
    assert_eq!(reason, Reason::Dns);
    assert!(
        message.contains("the server answered NXDOMAIN, expected NOERROR"),
        "{message}"
    );
    let yaml = check(
        "dns_query",
        &dns.to_string(),
        "    query_name: silent.test\n    query_type: A\n",
    )
    .replace("timeout: 2s", "timeout: 500ms");
    let (reason, _) = failed(&run(&yaml).await);
    assert_eq!(reason, Reason::Timeout);
}

#[tokio::test]
async fn icmp_pings_loopback_or_says_which_permission_is_missing() {
    let r = run(&check("icmp", "127.0.0.1", "")).await;
    match &r.failure {
        None => {
            let icmp = r.icmp.as_ref().expect("echo facts");
            assert!(icmp.rtt_seconds.is_some());
        }
        Some(f) => {
            assert_eq!(f.reason, Reason::Unavailable, "{}", f.message);
            assert!(f.message.contains("CAP_NET_RAW") && f.message.contains("ping_group_range"));
        }
    }
    let _ = Duration::ZERO;
}
