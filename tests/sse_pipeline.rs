//! `agent_pipeline` over Server-Sent Events (http:// targets) against scripted servers on
//! loopback: the message is POSTed with the token, the stream is parsed per the WHATWG rules
//! (chunk splits, CRLF, comments, a BOM, `event:` names) and judged by the same run rules as
//! a WebSocket run; answers that are not a stream fail with the provider's words.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pathwatch::probe::{ProbeResult, Reason};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Requests the server got (head and body, as text).
type Seen = Arc<Mutex<Vec<String>>>;

/// A server that reads the whole request, then writes `head` and each part after its delay
/// (ms), then closes.
async fn server(head: &'static str, parts: Vec<(u64, Vec<u8>)>) -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let parts = Arc::new(parts);
    let addr = spawn_raw(move |mut stream| {
        let (log, parts) = (log.clone(), parts.clone());
        async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = stream.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((h, body)) = text.split_once("\r\n\r\n") {
                    let len = h
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        log.lock().unwrap().push(text);
                        break;
                    }
                }
            }
            let _ = stream.write_all(head.as_bytes()).await;
            for (delay, bytes) in parts.iter() {
                tokio::time::sleep(Duration::from_millis(*delay)).await;
                if stream.write_all(bytes).await.is_err() {
                    return;
                }
            }
            let _ = stream.shutdown().await;
        }
    })
    .await;
    (addr, seen)
}

const STREAM: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nConnection: close\r\n\r\n";

fn event(name: &str) -> String {
    let ts = "\"timestamp\":\"2026-11-26T00:00:00Z\"";
    let fields = match name {
        "agent_started" => {
            format!("\"user_id\":\"u\",\"run_id\":\"r1\",\"agent_name\":\"supervisor\",{ts}")
        }
        "agent_thinking" => {
            format!("\"reasoning\":\"hm\",\"run_id\":\"r1\",\"agent_name\":\"supervisor\",{ts}")
        }
        "tool_executing" => format!(
            "\"tool_name\":\"search\",\"parameters\":{{}},\"tool_execution_id\":\"t1\",\"run_id\":\"r1\",{ts}"
        ),
        "tool_completed" => format!(
            "\"tool_name\":\"search\",\"results\":[],\"duration\":0.1,\"tool_execution_id\":\"t1\",\"run_id\":\"r1\",{ts}"
        ),
        _ => format!(
            "\"status\":\"success\",\"final_response\":\"done\",\"agent_name\":\"supervisor\",\"run_id\":\"r1\",{ts}"
        ),
    };
    format!("{{\"type\":\"{name}\",{fields}}}")
}

/// The five golden events, in order.
const FIVE: [&str; 5] = pathwatch::protocol::GOLDEN;

async fn run(addr: SocketAddr, extra: &str) -> ProbeResult {
    let yaml = format!(
        "checks:\n  - name: sse\n    type: agent_pipeline\n    target: http://{addr}/agent\n    timeout: 2s\n    token: {{value: tok-secret-1}}\n{extra}"
    );
    probe_once(&config(&yaml)).await
}

#[tokio::test]
async fn a_stream_of_the_five_events_passes_whatever_its_chunks_and_line_ends() {
    // A BOM, a comment, CRLF and lone-CR line ends, and events split across writes.
    let mut parts = vec![(0, b"\xef\xbb\xbf: keep-alive\r\n\r\n".to_vec())];
    for (i, name) in FIVE.iter().enumerate() {
        let text = format!("data: {}\r\r", event(name));
        let (a, b) = text.as_bytes().split_at(7 + i);
        parts.push((30, a.to_vec()));
        parts.push((5, b.to_vec()));
    }
    let (addr, seen) = server(STREAM, parts).await;
    let r = run(addr, "").await;
    assert!(r.success(), "{:?}", r.failure);
    let names: Vec<&str> = r.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, FIVE);
    assert!(
        r.events[4].at >= Duration::from_millis(150),
        "{:?}",
        r.events
    );
    let request = seen.lock().unwrap()[0].clone();
    assert!(request.starts_with("POST /agent HTTP/1.1"), "{request}");
    let lower = request.to_ascii_lowercase();
    assert!(lower.contains("accept: text/event-stream"), "{request}");
    assert!(
        lower.contains("authorization: bearer tok-secret-1"),
        "{request}"
    );
    assert!(request.contains("\"type\":\"user_message\""), "{request}");
}

#[tokio::test]
async fn the_sse_event_name_types_data_without_one() {
    let mut body = String::new();
    for name in FIVE {
        let data = event(name).replacen(&format!("\"type\":\"{name}\","), "", 1);
        body.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    let (addr, _) = server(STREAM, vec![(0, body.into_bytes())]).await;
    let r = run(addr, "").await;
    assert!(r.success(), "{:?}", r.failure);
}

#[tokio::test]
async fn a_missing_event_and_an_early_end_are_named() {
    let body: String = FIVE
        .iter()
        .filter(|n| **n != "tool_completed")
        .map(|n| format!("data: {}\n\n", event(n)))
        .collect();
    let (addr, _) = server(STREAM, vec![(0, body.into_bytes())]).await;
    let f = run(addr, "").await.failure.unwrap();
    assert_eq!(f.reason, Reason::EventMissing, "{}", f.message);
    assert!(
        f.message.contains("tool_completed never arrived"),
        "{}",
        f.message
    );

    // The stream ends cleanly after two events: truncated, with what came before.
    let body: String = FIVE[..2]
        .iter()
        .map(|n| format!("data: {}\n\n", event(n)))
        .collect();
    let (addr, _) = server(STREAM, vec![(0, body.into_bytes())]).await;
    let f = run(addr, "").await.failure.unwrap();
    assert_eq!(f.reason, Reason::Protocol);
    assert!(
        f.message
            .starts_with("the server ended the stream before the run completed (truncated)"),
        "{}",
        f.message
    );
    assert!(f.message.contains("agent_thinking at"), "{}", f.message);

    // Cut in the middle of an event.
    let body = format!(
        "data: {}\n\ndata: {{\"type\":\"agent_thi",
        event("agent_started")
    );
    let (addr, _) = server(STREAM, vec![(0, body.into_bytes())]).await;
    let f = run(addr, "").await.failure.unwrap();
    assert_eq!(f.reason, Reason::Protocol);
    assert!(
        f.message.contains("in the middle of an event (truncated)"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("tok-secret-1"));
}

#[tokio::test]
async fn a_silent_stream_times_out_naming_the_awaited_event() {
    let body = format!("data: {}\n\n", event("agent_started"));
    let (addr, _) = server(
        STREAM,
        vec![(0, body.into_bytes()), (5_000, b": late\n".to_vec())],
    )
    .await;
    let f = run(addr, "    expect: {deadlines: {agent_thinking: 300ms}}\n")
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::EventTimeout, "{}", f.message);
    assert!(f.message.contains("agent_thinking"), "{}", f.message);
}

#[tokio::test]
async fn answers_that_are_not_a_stream_say_what_they_are() {
    let cases: [(&'static str, &str, Reason, &str); 4] = [
        (
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
            r#"{"error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
            Reason::HttpStatus,
            "the agent refused the message with HTTP 429 Too Many Requests: rate_limit_error: Number of request tokens",
        ),
        (
            "HTTP/1.1 529 Site Overloaded\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            Reason::HttpStatus,
            "the agent refused the message with HTTP 529: overloaded_error: Overloaded",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
            r#"{"answer":"not streamed"}"#,
            Reason::Protocol,
            "answered HTTP 200 OK with Content-Type application/json, not an event stream",
        ),
        (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
            r#"{"message":"Startup in progress"}"#,
            Reason::Starting,
            "HTTP 503 Service Unavailable: Startup in progress",
        ),
    ];
    for (head, body, reason, words) in cases {
        let (addr, _) = server(head, vec![(0, body.as_bytes().to_vec())]).await;
        let f = run(addr, "").await.failure.unwrap();
        assert_eq!(f.reason, reason, "{}", f.message);
        assert!(f.message.contains(words), "{words}\n{}", f.message);
    }
}

#[test]
fn websocket_only_settings_are_refused_for_an_sse_target() {
    let yaml = "checks:\n  - name: sse\n    type: agent_pipeline\n    target: https://agent.example/run\n    handshake: true\n";
    let err = pathwatch::config::Config::from_str(yaml, "t.yaml", &|_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`handshake` is a WebSocket exchange"), "{err}");
    let yaml =
        "checks:\n  - name: sse\n    type: agent_pipeline\n    target: ftp://agent.example/run\n";
    let err = pathwatch::config::Config::from_str(yaml, "t.yaml", &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agent URL scheme must be ws, wss, http or https, not `ftp`"),
        "{err}"
    );
}

/// The demo's `/sse`: the same conversation and faults as its `/ws`.
async fn demo_run(demo: pathwatch::demo::DemoBackend, query: &str, extra: &str) -> ProbeResult {
    let addr = spawn_demo(demo).await;
    let yaml = format!(
        "checks:\n  - name: sse\n    type: agent_pipeline\n    target: http://{addr}/sse?{query}\n    timeout: 2s\n{extra}"
    );
    probe_once(&config(&yaml)).await
}

#[tokio::test]
async fn the_demo_streams_its_run_over_sse_with_its_faults() {
    use pathwatch::demo::DemoBackend;
    let demo = DemoBackend::default();
    let log = demo.sent.clone();
    let r = demo_run(demo, "envelope=data&heartbeat=1", "").await;
    assert!(r.success(), "{:?}", r.failure);
    assert_eq!(
        r.events.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        FIVE
    );
    // Measured against when the demo really sent each event: within a few ms.
    let sent = log.last().unwrap();
    for (e, (name, at)) in r.events.iter().zip(&sent) {
        assert_eq!(&e.name, name);
        assert!(
            e.at >= *at && e.at - *at < Duration::from_millis(50),
            "{name}: {:?} vs {at:?}",
            e.at
        );
    }

    let f = demo_run(DemoBackend::default(), "fault=drop:tool_completed", "")
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::EventMissing, "{}", f.message);
    let f = demo_run(DemoBackend::default(), "fault=error", "")
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::AgentError, "{}", f.message);
    let f = demo_run(DemoBackend::default(), "fault=close1011", "")
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::Protocol, "{}", f.message);
    let f = demo_run(DemoBackend::default(), "auth=required", "")
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::HttpStatus);
    assert!(
        f.message
            .ends_with("HTTP 401 Unauthorized: authentication_error: Authentication failed"),
        "{}",
        f.message
    );
    let cold = DemoBackend::builder()
        .cold_start(Duration::from_secs(30))
        .build();
    let f = demo_run(cold, "", "").await.failure.unwrap();
    assert_eq!(f.reason, Reason::Starting, "{}", f.message);
    assert!(f.message.contains("(Retry-After: 5)"), "{}", f.message);

    // A token from the demo's login, by header.
    let addr = spawn_demo(DemoBackend::default()).await;
    let yaml = format!(
        "checks:\n  - name: sse\n    type: agent_pipeline\n    target: http://{addr}/sse?auth=required\n    timeout: 2s\n    login: {{url: http://{addr}/auth/login, body: {{email: demo@pathwatch.local, password: demo-password}}}}\n"
    );
    let r = probe_once(&config(&yaml)).await;
    assert!(r.success(), "{:?}", r.failure);
}

#[tokio::test]
async fn an_https_stream_is_verified_and_its_certificate_reported() {
    use pathwatch::demo::{DemoBackend, DemoPki};
    let pki = DemoPki::generate().unwrap();
    let addr = spawn_tls_demo(pki.server.clone(), DemoBackend::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let check = |tls: &str| {
        format!(
            "checks:\n  - name: sse\n    type: agent_pipeline\n    target: https://localhost:{}/sse\n    timeout: 2s\n{tls}",
            addr.port()
        )
    };
    let r = probe_once(&config(&check(&format!(
        "    tls: {{ca_file: {}}}\n",
        ca.display()
    ))))
    .await;
    assert!(r.success(), "{:?}", r.failure);
    assert!(r.tls.as_ref().unwrap().verified);
    assert!(r.phase(pathwatch::probe::Phase::Tls).is_some());
    // Without trust in the demo's CA nothing is sent.
    let f = probe_once(&config(&check(""))).await.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsUntrusted, "{}", f.message);
}

#[tokio::test]
async fn an_endless_line_is_cut_at_max_frame_bytes() {
    let endless = vec![(0, b"data: ".to_vec()), (0, vec![b'x'; 100_000])];
    let (addr, _) = server(STREAM, endless).await;
    let f = run(addr, "    max_frame_bytes: 4096\n")
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::Protocol);
    assert!(
        f.message
            .starts_with("the server sent an event of over 4096 bytes (max_frame_bytes)"),
        "{}",
        f.message
    );
}
