//! The agent_pipeline check against the built-in demo backend over a real WebSocket: every
//! envelope family goes green; every injected fault gives its reason and a message that
//! names the event, phase or close code.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use pathwatch::demo::DemoBackend;
use pathwatch::probe::{Phase, ProbeResult, Prober, Reason};
use support::*;

async fn demo() -> SocketAddr {
    spawn_demo(DemoBackend::default()).await
}

async fn run(addr: SocketAddr, query: &str, extra: &str) -> ProbeResult {
    let yaml = format!(
        "checks:\n  - name: golden-path\n    type: agent_pipeline\n    target: ws://{addr}/ws?{query}\n    timeout: 3s\n{extra}"
    );
    let cfg = config(&yaml);
    probe_once(&cfg).await
}

const FIVE: [&str; 5] = [
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
];

#[tokio::test]
async fn every_envelope_family_goes_green() {
    let addr = demo().await;
    for envelope in ["flat", "data", "bridge", "wrapped", "batch"] {
        let r = run(addr, &format!("envelope={envelope}"), "").await;
        assert!(r.success(), "{envelope}: {:?}", r.failure);
        let names: Vec<&str> = r.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, FIVE, "{envelope}");
        for phase in [
            Phase::Connect,
            Phase::Upgrade,
            Phase::FirstFrame,
            Phase::Complete,
        ] {
            assert!(r.phase(phase).is_some(), "{envelope}: no {phase}");
        }
    }
}

#[tokio::test]
async fn a_dropped_tool_completed_is_named() {
    let r = run(demo().await, "fault=drop:tool_completed", "").await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::EventMissing);
    assert!(
        f.message.starts_with("agent_completed at "),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("but tool_completed never arrived"),
        "{}",
        f.message
    );
    assert_eq!(r.events.len(), 4);
}

#[tokio::test]
async fn an_event_past_its_deadline_times_out_naming_it() {
    let extra = "    expect:\n      deadlines:\n        agent_started: 300ms\n";
    let (r, took) = timed(run(demo().await, "fault=delay:agent_started:2000", extra)).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::EventTimeout);
    assert_eq!(
        f.message,
        "no event within 300.0ms of sending the message: agent_started never arrived"
    );
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn a_run_that_never_completes_ends_at_the_check_timeout() {
    let (r, took) = timed(run(demo().await, "fault=never", "")).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::EventTimeout);
    assert!(f.message.contains("then nothing for"), "{}", f.message);
    assert!(f.message.starts_with("agent_started at "), "{}", f.message);
    assert!(
        f.message
            .contains(": tool_executing never arrived (the check timeout ran out "),
        "{}",
        f.message
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_millis(3300),
        "{took:?}"
    );
}

#[tokio::test]
async fn faults_give_their_reasons() {
    let addr = demo().await;
    let cases = [
        ("fault=error", Reason::AgentError, "agent_error at"),
        (
            "fault=close1011",
            Reason::WsClosed,
            "server closed the connection with 1011 \"Internal error\" (server error)",
        ),
        (
            "fault=reorder",
            Reason::EventOrder,
            "tool_executing arrived at",
        ),
        (
            "fault=malformed",
            Reason::Protocol,
            "bad frame: not JSON: {\"type\": \"agent_thinking\"",
        ),
        ("fault=binary", Reason::Protocol, "binary frame of 4 bytes"),
        ("fault=oversize", Reason::Protocol, "max_frame_bytes"),
    ];
    for (query, reason, text) in cases {
        let r = run(addr, query, "").await;
        let f = r.failure.unwrap_or_else(|| panic!("{query} passed"));
        assert_eq!(f.reason, reason, "{query}: {}", f.message);
        assert!(f.message.contains(text), "{query}: {}", f.message);
    }
    let r = run(addr, "fault=error", "").await;
    assert!(
        r.failure
            .unwrap()
            .message
            .contains("LLM provider returned 429")
    );
    // A duplicated event is not a failure.
    assert!(
        run(addr, "fault=duplicate:agent_thinking", "")
            .await
            .success()
    );
}

#[tokio::test]
async fn a_refused_upgrade_is_ws_upgrade() {
    let r = run(demo().await, "envelope=nonsense", "").await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::WsUpgrade);
    assert_eq!(f.phase, Some(Phase::Upgrade));
    assert!(f.message.contains("HTTP 400 Bad Request"), "{}", f.message);
}

// ------------------------------------------------------------------ login and transports

const PASSWORD: &str = "demo-password";
const BYPASS: &str = "demo-bypass-key";

fn login_yaml(addr: SocketAddr) -> String {
    format!(
        "    login:\n      url: http://{addr}/auth/login\n      body: {{email: demo@pathwatch.local, password: \"${{PW}}\"}}\n"
    )
}

async fn run_env(yaml: &str, prober: Option<&Prober>) -> ProbeResult {
    let env = |n: &str| match n {
        "PW" => Some(PASSWORD.to_string()),
        "BYPASS" => Some(BYPASS.to_string()),
        "BADPW" => Some("wrong-password-123".to_string()),
        _ => None,
    };
    let cfg =
        pathwatch::config::Config::from_str(yaml, "t.yaml", &env).unwrap_or_else(|e| panic!("{e}"));
    let c = &cfg.checks[0];
    match prober {
        Some(p) => p.run(&c.target, &c.spec, c.timeout).await,
        None => probe_once(&cfg).await,
    }
}

fn agent(addr: SocketAddr, query: &str, extra: &str) -> String {
    format!(
        "checks:\n  - name: gp\n    type: agent_pipeline\n    target: ws://{addr}/ws?auth=required{query}\n    timeout: 3s\n{extra}"
    )
}

#[tokio::test]
async fn every_token_transport_goes_green_with_login() {
    let addr = demo().await;
    let transports = [
        "    token: {transport: header}\n",
        "    token: {transport: subprotocol}\n",
        "    token: {transport: subprotocol, subprotocol_prefix: jwt-auth., subprotocol_base64url: true}\n",
        "    token: {transport: query}\n",
        "    token: {transport: query, query_param: access_token}\n",
        &format!(
            "    token: {{transport: ticket, ticket_url: \"http://{addr}/api/websocket/ticket\"}}\n"
        ),
    ];
    for t in transports {
        let r = run_env(&agent(addr, "", &format!("{}{t}", login_yaml(addr))), None).await;
        assert!(r.success(), "{t}: {:?}", r.failure);
        assert!(r.phase(Phase::Login).unwrap() > Duration::ZERO, "{t}");
        assert_eq!(r.events.len(), 5, "{t}");
    }
}

#[tokio::test]
async fn the_bypass_login_works_and_a_missing_token_is_refused() {
    let addr = demo().await;
    let bypass = format!(
        "    login:\n      url: http://{addr}/auth/e2e/test-auth\n      headers: {{X-E2E-Bypass-Key: \"${{BYPASS}}\"}}\n      body: {{email: e2e@pathwatch.local, name: e2e, permissions: [chat], simulate_oauth: true}}\n"
    );
    assert!(run_env(&agent(addr, "", &bypass), None).await.success());

    let r = run_env(&agent(addr, "", ""), None).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::WsAuth);
    assert_eq!(
        f.message,
        "server sent error_message: AUTH_FAILED Authentication failed"
    );
}

#[tokio::test]
async fn a_rejected_login_fails_with_reason_login_and_no_secret() {
    let addr = demo().await;
    let bad = format!(
        "    login:\n      url: http://{addr}/auth/login\n      body: {{email: demo@pathwatch.local, password: \"${{BADPW}}\"}}\n"
    );
    let r = run_env(&agent(addr, "", &bad), None).await;
    let f = r.failure.clone().unwrap();
    assert_eq!(f.reason, Reason::Login);
    assert_eq!(f.phase, Some(Phase::Login));
    assert_eq!(
        f.message,
        format!(
            "login at http://{addr}/auth/login answered HTTP 401 Unauthorized; body: {{\"detail\":\"Invalid credentials\"}}"
        )
    );
    let everything = serde_json::to_string(&r).unwrap();
    assert!(!everything.contains("wrong-password-123"));
}

#[tokio::test]
async fn tokens_are_reused_until_shortly_before_expiry() {
    let backend = DemoBackend::default();
    let auth = backend.auth.clone();
    let addr = spawn_demo(backend).await;
    let cfg = pathwatch::config::Config::from_str("checks: []\n", "t.yaml", &|_| None).unwrap();
    let prober = Prober::new(&cfg.resolver, cfg.secrets.clone()).unwrap();
    let yaml = agent(addr, "", &login_yaml(addr));
    let first = run_env(&yaml, Some(&prober)).await;
    let second = run_env(&yaml, Some(&prober)).await;
    assert!(
        first.success() && second.success(),
        "{:?} {:?}",
        first.failure,
        second.failure
    );
    assert_eq!(auth.logins.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(second.phase(Phase::Login), Some(Duration::ZERO));
}

#[tokio::test]
async fn auth_refusals_are_ws_auth() {
    let addr = demo().await;
    let login = login_yaml(addr);
    for (fault, text) in [
        (
            "&fault=reject401",
            "server refused the WebSocket upgrade with HTTP 401 Unauthorized",
        ),
        (
            "&fault=reject403",
            "server refused the WebSocket upgrade with HTTP 403 Forbidden",
        ),
        ("&fault=authfail", "AUTH_FAILED"),
    ] {
        let r = run_env(&agent(addr, fault, &login), None).await;
        let f = r.failure.unwrap();
        assert_eq!(f.reason, Reason::WsAuth, "{fault}: {}", f.message);
        assert!(f.message.contains(text), "{fault}: {}", f.message);
    }
}

#[tokio::test]
async fn a_fixed_token_that_is_wrong_never_shows() {
    let addr = demo().await;
    let yaml = agent(
        addr,
        "",
        "    token: {transport: query, value: \"${BADPW}\"}\n",
    );
    let r = run_env(&yaml, None).await;
    let f = r.failure.clone().unwrap();
    assert_eq!(f.reason, Reason::WsAuth);
    assert!(
        !serde_json::to_string(&r)
            .unwrap()
            .contains("wrong-password-123")
    );
}

// ------------------------------------------------------------------ protocol variants

#[tokio::test]
async fn the_handshake_variant_needs_handshake_true() {
    let addr = demo().await;
    let r = run(addr, "handshake=1", "    handshake: true\n").await;
    assert!(r.success(), "{:?}", r.failure);
    assert_eq!(r.events.len(), 5);

    // Without it the probe speaks too early, and the server says so.
    let r = run(addr, "handshake=1", "").await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::Protocol);
    assert!(f.message.contains("HANDSHAKE_REQUIRED"), "{}", f.message);
}

#[tokio::test]
async fn keepalives_crosstalk_and_sub_agents_do_not_break_the_run() {
    let addr = demo().await;
    for query in [
        "heartbeat=1",
        "crosstalk=1",
        "subagent=1",
        "heartbeat=1&crosstalk=1&subagent=1&envelope=bridge",
    ] {
        let r = run(addr, query, "").await;
        assert!(r.success(), "{query}: {:?}", r.failure);
        let last = r.events.last().unwrap();
        assert_eq!(last.name, "agent_completed", "{query}");
    }
    // The run waited for the top-level completion: the sub-agent's came first.
    let r = run(addr, "subagent=1", "").await;
    let completions = r
        .events
        .iter()
        .filter(|e| e.name == "agent_completed")
        .count();
    assert_eq!(completions, 2);
}

#[tokio::test]
async fn a_cold_start_is_starting_until_the_backend_is_ready() {
    let addr = spawn_demo(
        DemoBackend::builder()
            .cold_start(Duration::from_millis(600))
            .build(),
    )
    .await;
    let r = run(addr, "", "").await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::Starting);
    assert!(
        f.message
            .contains("1011 \"Service not ready\" (server error)"),
        "{}",
        f.message
    );

    let health = config(&format!(
        "checks:\n  - name: h\n    type: http\n    target: http://{addr}/health\n"
    ));
    let c = &health.checks[0];
    let prober = Prober::new(&health.resolver, health.secrets.clone()).unwrap();
    let f = prober
        .run(&c.target, &c.spec, c.timeout)
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::Starting);
    assert!(f.message.contains("Startup in progress"), "{}", f.message);

    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(prober.run(&c.target, &c.spec, c.timeout).await.success());
    assert!(run(addr, "", "").await.success());
}

#[tokio::test]
async fn slow_hanging_and_degraded_health() {
    let addr = demo().await;
    let check = |path: &str, extra: &str| {
        config(&format!(
            "checks:\n  - name: h\n    type: http\n    target: http://{addr}{path}\n    timeout: 300ms\n{extra}"
        ))
    };
    for (path, reason) in [
        ("/health?fault=hang", Reason::Timeout),
        ("/health?fault=slow:1000", Reason::Timeout),
        ("/health?fault=down", Reason::HttpStatus),
    ] {
        let cfg = check(path, "");
        let f = probe_once(&cfg).await.failure.unwrap();
        assert_eq!(f.reason, reason, "{path}: {}", f.message);
    }
    let cfg = check(
        "/health/ready?fault=degraded",
        "    expect:\n      json:\n        - {path: redis_db, equals: connected}\n",
    );
    let f = probe_once(&cfg).await.failure.unwrap();
    assert_eq!(f.reason, Reason::BodyMismatch);
    assert!(
        f.message
            .contains(r#"JSON field `redis_db` is "vpc_connectivity_degraded""#),
        "{}",
        f.message
    );
}

// ------------------------------------------------------------------ wss

async fn spawn_demo_tls(pki: &Pki) -> SocketAddr {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    spawn_tls_demo(std::sync::Arc::new(server), DemoBackend::default()).await
}

#[tokio::test]
async fn wss_checks_the_certificate_before_the_upgrade() {
    let pki = Pki::builder(&["*.example.test", "localhost"]).build();
    let addr = spawn_demo_tls(&pki).await;
    let ca = pki.ca_file();
    let yaml = |name: &str| {
        format!(
            "checks:\n  - name: gp\n    type: agent_pipeline\n    target: wss://localhost:{}/ws\n    timeout: 3s\n    tls:\n      ca_file: {}\n      server_name: {name}\n",
            addr.port(),
            ca.path().display()
        )
    };
    let r = run_env(&yaml("api-staging.example.test"), None).await;
    assert!(r.success(), "{:?}", r.failure);
    assert!(r.phase(Phase::Tls).is_some());
    assert_eq!(
        r.tls.as_ref().unwrap().chain[0].sans,
        vec!["*.example.test", "localhost"]
    );
    assert_eq!(r.events.len(), 5);

    // The incident: the socket's name is two labels under the wildcard.
    let r = run_env(&yaml("api.staging.example.test"), None).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsHostname);
    assert!(
        f.message
            .ends_with("(did you mean api-staging.example.test?)"),
        "{}",
        f.message
    );
    assert!(
        r.events.is_empty(),
        "nothing is sent over an unverified connection"
    );
}

#[tokio::test]
async fn a_fault_set_at_run_time_applies_until_cleared() {
    let addr = demo().await;
    let client = |method: &str, query: &str| {
        let req = format!(
            "{method} /demo/fault{query} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    let answer = client("PUT", "?ws=drop:tool_completed").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let r = run(addr, "", "").await;
    assert_eq!(r.failure.unwrap().reason, Reason::EventMissing);
    // A connection that names its own fault still gets that one.
    let r = run(addr, "fault=error", "").await;
    assert_eq!(r.failure.unwrap().reason, Reason::AgentError);

    assert!(client("PUT", "?ws=bogus").await.starts_with("HTTP/1.1 400"));
    client("DELETE", "").await;
    assert!(run(addr, "", "").await.success());
}

/// A login endpoint that never answers: the run is cut at its timeout, and the failure says
/// `timeout` in phase `login`, not a login refusal.
#[tokio::test]
async fn a_login_that_never_answers_is_a_timeout_in_the_login_phase() {
    let silent = spawn_raw(|mut s| async move {
        read_head(&mut s).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    })
    .await;
    let yaml = format!(
        "checks:\n  - name: golden-path\n    type: agent_pipeline\n    target: ws://{}/ws\n    timeout: 1s\n    login:\n      url: http://{silent}/auth/login\n      body: {{email: a@b.c, password: x}}\n",
        demo().await
    );
    let r = probe_once(&config(&yaml)).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::Timeout, "{}", f.message);
    assert_eq!(f.phase, Some(Phase::Login));
    assert!(
        f.message.starts_with("login request failed: timed out"),
        "{}",
        f.message
    );
}
