//! The built-in demo agent backend: health endpoints and a `/ws` that runs an agent
//! conversation in any envelope family of AGENT_PROTOCOL.md, with injectable faults. Used by
//! `pathwatch demo-backend`, by the default config, by tests and by benchmarks.
//!
//! Per connection, `/ws?envelope=flat|data|bridge|wrapped|batch&fault=...` selects the
//! shape and the fault, so one running demo can show a failing run beside a good one;
//! `&fault_every=10m&fault_for=2m` turns the fault on only in the last 2 minutes of every
//! 10 (a drill: degradation, then recovery). The same works on the health endpoints.
//! Faults: `drop:EVENT`, `delay:EVENT:MS`, `duplicate:EVENT`, `reorder`, `error`,
//! `close1011`, `never`, `malformed`, `binary`, `oversize`, `reject401`, `reject403`,
//! `authfail` (accept, then AUTH_FAILED and close 1008). `auth=required` refuses a
//! connection without a valid token the way the service does (AUTH_FAILED + 1008).
//!
//! Auth: `POST /auth/login` (`DEMO_EMAIL` / `DEMO_PASSWORD`), `POST /auth/e2e/test-auth`
//! (`X-E2E-Bypass-Key: DEMO_BYPASS_KEY`), `POST /api/websocket/ticket` (Bearer token); the
//! socket takes the token as a Bearer header, a `jwt.`/`jwt-auth.`/`bearer.` subprotocol
//! (raw or base64url), `?token=`/`?access_token=`, or `?ticket=` (single use).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::probe::agent::run::GOLDEN;

mod tls;
pub use tls::{DEMO_TLS_NAMES, DemoPki};

pub const DEMO_EMAIL: &str = "demo@pathwatch.local";
pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_BYPASS_KEY: &str = "demo-bypass-key";

/// Tokens and tickets the demo issued, and how many logins it answered.
#[derive(Debug, Default)]
pub struct DemoAuth {
    tokens: Mutex<HashSet<String>>,
    tickets: Mutex<HashSet<String>>,
    pub logins: AtomicUsize,
}

impl DemoAuth {
    fn issue(&self, set: &Mutex<HashSet<String>>, prefix: &str) -> String {
        let n = self.logins.load(Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let value = format!("{prefix}-{n}-{nanos:08x}");
        set.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(value.clone());
        value
    }

    fn valid_token(&self, token: &str) -> bool {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(token)
    }

    fn take_ticket(&self, ticket: &str) -> bool {
        self.tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ticket)
    }
}

/// When the demo actually sent each event of its recent runs, measured from receiving the
/// user's message: the truth that pathwatch's measured latencies are compared with.
#[derive(Debug, Default)]
pub struct SendLog(Mutex<std::collections::VecDeque<Vec<(String, Duration)>>>);

impl SendLog {
    const KEEP: usize = 100;

    fn push(&self, run: Vec<(String, Duration)>) {
        let mut runs = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if runs.len() == Self::KEEP {
            runs.pop_front();
        }
        runs.push_back(run);
    }

    /// The send offsets of the most recent run.
    pub fn last(&self) -> Option<Vec<(String, Duration)>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .back()
            .cloned()
    }
}

/// How the demo answers by default; faults and envelopes come per connection.
#[derive(Debug, Clone)]
pub struct DemoBackend {
    /// Delay before each golden event, in order (agent_started first).
    pub delays: [Duration; 5],
    pub auth: Arc<DemoAuth>,
    pub sent: Arc<SendLog>,
    /// For this long after start, health says `503 Startup in progress` and `/ws` closes
    /// with 1011 "Service not ready" (a cold start).
    pub cold_start: Duration,
    started: tokio::time::Instant,
    /// Faults set at run time (`PUT /demo/fault`) for requests that name none.
    forced: Arc<Mutex<Forced>>,
}

/// Which endpoints a fault applies to.
#[derive(Debug, Clone, Copy)]
enum On {
    Ws,
    Health,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
struct Forced {
    ws: Option<String>,
    health: Option<String>,
}

impl Default for DemoBackend {
    fn default() -> Self {
        let ms = Duration::from_millis;
        DemoBackend {
            delays: [ms(40), ms(80), ms(60), ms(120), ms(60)],
            auth: Arc::default(),
            sent: Arc::default(),
            cold_start: Duration::ZERO,
            started: tokio::time::Instant::now(),
            forced: Arc::default(),
        }
    }
}

impl DemoBackend {
    pub fn with_delays(delays: [Duration; 5]) -> Self {
        DemoBackend {
            delays,
            ..DemoBackend::default()
        }
    }

    /// A demo that is "starting" for `cold_start` from now.
    pub fn with_cold_start(cold_start: Duration) -> Self {
        DemoBackend {
            cold_start,
            started: tokio::time::Instant::now(),
            ..DemoBackend::default()
        }
    }

    fn cold(&self) -> bool {
        self.started.elapsed() < self.cold_start
    }

    /// The `fault` asked for, if it is on now: always, or with `fault_every=10m` and
    /// `fault_for=2m`, only in the last 2 minutes of every 10 since the demo started (a
    /// drill that shows degradation and recovery in a long-running demo).
    fn fault(&self, q: &HashMap<String, String>, on: On) -> Result<Option<String>, String> {
        let Some(fault) = q.get("fault") else {
            let forced = self.forced.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(match on {
                On::Ws => forced.ws.clone(),
                On::Health => forced.health.clone(),
            });
        };
        let span = |key: &str| {
            q.get(key)
                .map(|v| {
                    humantime::parse_duration(v)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| format!("{key} must be a duration like 5m, not `{v}`"))
                })
                .transpose()
        };
        let Some(every) = span("fault_every")? else {
            return Ok(Some(fault.clone()));
        };
        let lasting = span("fault_for")?.unwrap_or(every / 5).min(every);
        let into_period = self.started.elapsed().as_millis() % every.as_millis().max(1);
        let now_on = into_period >= (every - lasting).as_millis();
        Ok(now_on.then(|| fault.clone()))
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/health/ready", get(ready))
            .route(
                "/auth/health",
                get(|| async { axum::Json(json!({"status": "healthy"})) }),
            )
            .route("/auth/login", post(login))
            .route("/auth/e2e/test-auth", post(bypass))
            .route("/api/websocket/ticket", post(ticket))
            .route("/ws", get(upgrade))
            .route(
                "/demo/fault",
                get(show_fault).put(set_fault).delete(clear_fault),
            )
            .with_state(self)
    }
}

/// Starts the demo backend on its plain port and, when configured, its TLS port (one
/// backend behind both, so a token from one works on the other) until `stop`.
pub async fn start(
    config: &crate::config::DemoConfig,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let backend = DemoBackend::default();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let bound = listener.local_addr()?;
    let app = backend.clone().router();
    let until = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(nodelay(listener), app)
            .with_graceful_shutdown(until)
            .await
        {
            tracing::warn!(error = %e, "Demo backend stopped.");
        }
    });
    tracing::info!(addr = %bound, "Demo agent backend is running.");
    if let (Some(addr), Some(pki)) = (config.tls_listen, &config.pki) {
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let bound = tcp.local_addr()?;
        let listener = TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(pki.server.clone()),
        };
        let app = backend.router();
        let until = stop.cancelled_owned();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(until)
                .await
            {
                tracing::warn!(error = %e, "Demo backend (TLS) stopped.");
            }
        });
        tracing::info!(addr = %bound, "Demo agent backend is serving TLS.");
    }
    Ok(())
}

/// `PUT /demo/fault?ws=drop:tool_completed&health=slow:800`: every later request that
/// names no fault gets these (a fault injected into a running demo, e.g. by a test).
async fn set_fault(
    State(demo): State<DemoBackend>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(Err(e)) = q.get("ws").map(|f| parse_fault(f)) {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    let mut forced = demo.forced.lock().unwrap_or_else(|p| p.into_inner());
    *forced = Forced {
        ws: q.get("ws").cloned(),
        health: q.get("health").cloned(),
    };
    tracing::info!(ws = ?forced.ws, health = ?forced.health, "Demo faults set.");
    axum::Json(forced.clone()).into_response()
}

async fn clear_fault(State(demo): State<DemoBackend>) -> Response {
    *demo.forced.lock().unwrap_or_else(|p| p.into_inner()) = Forced::default();
    tracing::info!("Demo faults cleared.");
    axum::Json(Forced::default()).into_response()
}

async fn show_fault(State(demo): State<DemoBackend>) -> Response {
    axum::Json(
        demo.forced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    )
    .into_response()
}

/// `?fault=slow:MS` answers late, `?fault=hang` never answers, `?fault=down` is a 503.
async fn health_fault(fault: Option<&str>) -> Option<Response> {
    match fault {
        Some("hang") => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            None
        }
        Some(f) if f.starts_with("slow:") => {
            let ms = f["slow:".len()..].parse().unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        Some("down") => Some(unhealthy("Database unreachable")),
        _ => None,
    }
}

fn unhealthy(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"status": "unhealthy", "message": message})),
    )
        .into_response()
}

/// What both health endpoints answer before their own body: injected faults, cold start.
async fn health_gate(demo: &DemoBackend, q: &HashMap<String, String>) -> Option<Response> {
    let fault = match demo.fault(q, On::Health) {
        Ok(f) => f,
        Err(e) => return Some((StatusCode::BAD_REQUEST, e).into_response()),
    };
    if let Some(r) = health_fault(fault.as_deref()).await {
        return Some(r);
    }
    demo.cold().then(|| unhealthy("Startup in progress"))
}

async fn health(
    State(demo): State<DemoBackend>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = health_gate(&demo, &q).await {
        return r;
    }
    axum::Json(json!({"status": "healthy"})).into_response()
}

async fn ready(
    State(demo): State<DemoBackend>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = health_gate(&demo, &q).await {
        return r;
    }
    let redis = if demo.fault(&q, On::Health).ok().flatten().as_deref() == Some("degraded") {
        "vpc_connectivity_degraded"
    } else {
        "connected"
    };
    axum::Json(json!({"status": "ready", "core_db": "connected", "redis_db": redis, "clickhouse_db": "skipped_optional"})).into_response()
}

fn token_answer(demo: &DemoBackend) -> Response {
    demo.auth.logins.fetch_add(1, Ordering::Relaxed);
    let token = demo.auth.issue(&demo.auth.tokens, "demo-token");
    axum::Json(json!({
        "access_token": token, "refresh_token": "demo-refresh", "token_type": "Bearer", "expires_in": 900,
        "user": {"id": "demo-user", "email": DEMO_EMAIL}
    }))
    .into_response()
}

fn unauthorized(detail: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"detail": detail})),
    )
        .into_response()
}

async fn login(State(demo): State<DemoBackend>, body: String) -> Response {
    let Ok(v) = serde_json::from_str::<Value>(&body) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"detail": "body must be JSON"})),
        )
            .into_response();
    };
    let (email, password) = (
        v.get("email").and_then(Value::as_str),
        v.get("password").and_then(Value::as_str),
    );
    if email == Some(DEMO_EMAIL) && password == Some(DEMO_PASSWORD) {
        token_answer(&demo)
    } else {
        unauthorized("Invalid credentials")
    }
}

async fn bypass(State(demo): State<DemoBackend>, headers: HeaderMap) -> Response {
    match headers
        .get("x-e2e-bypass-key")
        .and_then(|v| v.to_str().ok())
    {
        Some(DEMO_BYPASS_KEY) => token_answer(&demo),
        _ => unauthorized("Invalid bypass key"),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(str::to_string)
}

async fn ticket(State(demo): State<DemoBackend>, headers: HeaderMap) -> Response {
    match bearer(&headers) {
        Some(t) if demo.auth.valid_token(&t) => {
            let id = demo.auth.issue(&demo.auth.tickets, "ticket");
            axum::Json(json!({"ticket_id": id, "expires_in": 300, "single_use": true}))
                .into_response()
        }
        _ => unauthorized("Invalid token"),
    }
}

/// The token of an upgrade request, from any transport; `Err` when one was given but is bad.
fn presented_token(
    demo: &DemoBackend,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Option<Result<(), ()>> {
    if let Some(ticket) = q.get("ticket") {
        return Some(if demo.auth.take_ticket(ticket) {
            Ok(())
        } else {
            Err(())
        });
    }
    let mut candidates: Vec<String> = Vec::new();
    candidates.extend(bearer(headers));
    candidates.extend(q.get("token").cloned());
    candidates.extend(q.get("access_token").cloned());
    if let Some(protocols) = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
    {
        for p in protocols.split(',').map(str::trim) {
            for prefix in ["jwt.", "jwt-auth.", "bearer."] {
                if let Some(raw) = p.strip_prefix(prefix) {
                    candidates.push(raw.to_string());
                    if let Ok(bytes) = data_encoding::BASE64URL_NOPAD.decode(raw.as_bytes()) {
                        candidates.extend(String::from_utf8(bytes).ok());
                    }
                }
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    Some(if candidates.iter().any(|t| demo.auth.valid_token(t)) {
        Ok(())
    } else {
        Err(())
    })
}

/// Events are small writes: without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold
/// them back by up to 40 ms, and the demo's timing would stop being what it claims.
pub fn nodelay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(tcp: &mut tokio::net::TcpStream) {
        let _ = tcp.set_nodelay(true);
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

/// The demo over TLS (wss://, https://): TCP accept, then the TLS handshake, bounded so a
/// client that never finishes it cannot stall the others for long.
pub struct TlsListener {
    pub tcp: tokio::net::TcpListener,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Fault {
    Drop(String),
    Delay(String, Duration),
    Duplicate(String),
    Reorder,
    Error,
    Close1011,
    Never,
    Malformed,
    Binary,
    Oversize,
    Reject(StatusCode),
    AuthFail,
}

fn parse_fault(text: &str) -> Result<Fault, String> {
    let parts: Vec<&str> = text.split(':').collect();
    Ok(match parts.as_slice() {
        ["drop", e] => Fault::Drop(e.to_string()),
        ["duplicate", e] => Fault::Duplicate(e.to_string()),
        ["delay", e, ms] => Fault::Delay(
            e.to_string(),
            Duration::from_millis(ms.parse().map_err(|_| "delay needs milliseconds")?),
        ),
        ["reorder"] => Fault::Reorder,
        ["error"] => Fault::Error,
        ["close1011"] => Fault::Close1011,
        ["never"] => Fault::Never,
        ["malformed"] => Fault::Malformed,
        ["binary"] => Fault::Binary,
        ["oversize"] => Fault::Oversize,
        ["reject401"] => Fault::Reject(StatusCode::UNAUTHORIZED),
        ["reject403"] => Fault::Reject(StatusCode::FORBIDDEN),
        ["authfail"] => Fault::AuthFail,
        _ => return Err(format!("unknown fault `{text}`")),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Envelope {
    /// B: fields at the root, ISO timestamp.
    Flat,
    /// A: `{type, data, timestamp: epoch}`.
    Data,
    /// C: bridge, ids at the root, fields in `data`, root `tool_name` on tool events.
    Bridge,
    /// D: `{type: system_message, event, payload}`.
    Wrapped,
    /// Flat events, the middle three sent as one `event_batch`.
    Batch,
}

/// What one connection asked for in its query string.
#[derive(Debug, Clone)]
struct Session {
    envelope: Envelope,
    fault: Option<Fault>,
    /// `handshake=1`: handshake_response -> handshake_acknowledged -> handshake_complete first.
    handshake: bool,
    /// `heartbeat=1`: a heartbeat and a ping before every event.
    heartbeat: bool,
    /// `subagent=1`: a sub-agent thinks and completes before the top-level agent does.
    subagent: bool,
    /// `crosstalk=1`: an event of another run arrives in the middle.
    crosstalk: bool,
}

async fn upgrade(
    State(demo): State<DemoBackend>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let envelope = match q.get("envelope").map(String::as_str).unwrap_or("flat") {
        "flat" => Envelope::Flat,
        "data" => Envelope::Data,
        "bridge" => Envelope::Bridge,
        "wrapped" => Envelope::Wrapped,
        "batch" => Envelope::Batch,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown envelope `{other}`"),
            )
                .into_response();
        }
    };
    let fault = match demo
        .fault(&q, On::Ws)
        .and_then(|f| f.as_deref().map(parse_fault).transpose())
    {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    if let Some(Fault::Reject(status)) = fault {
        return (status, axum::Json(json!({"detail": "Not authenticated"}))).into_response();
    }
    let token = presented_token(&demo, &headers, &q);
    let auth_failed = fault == Some(Fault::AuthFail)
        || matches!(token, Some(Err(())))
        || (token.is_none() && q.get("auth").is_some_and(|a| a == "required"));
    // A 101 does not mean auth passed: the service accepts, then says AUTH_FAILED.
    let ws = ws.read_buffer_size(8 << 10).write_buffer_size(8 << 10);
    ws.protocols(["jwt-auth"]).on_upgrade(move |mut socket| async move {
        if auth_failed {
            let err = json!({"type": "error_message", "error_code": "AUTH_FAILED", "message": "Authentication failed"});
            let _ = socket.send(Message::Text(err.to_string().into())).await;
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1008, reason: "Authentication failed".into() }))).await;
            return;
        }
        let flag = |k: &str| q.get(k).is_some_and(|v| v == "1" || v == "true");
        let session = Session {
            envelope,
            fault,
            handshake: flag("handshake"),
            heartbeat: flag("heartbeat"),
            subagent: flag("subagent"),
            crosstalk: flag("crosstalk"),
        };
        let _ = converse(socket, demo, session).await;
    })
}

fn iso_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn fields_of(name: &str, run: &str) -> Map<String, Value> {
    let v = match name {
        "agent_started" => {
            json!({"user_id": "demo-user", "thread_id": format!("thread-{run}"), "run_id": run, "agent_name": "supervisor"})
        }
        "agent_thinking" => {
            json!({"reasoning": "Looking up the docs before answering.", "agent_name": "supervisor", "run_id": run})
        }
        "tool_executing" => {
            json!({"tool_name": "search_docs", "parameters": {"query": "pathwatch"}, "tool_execution_id": "exec-1", "run_id": run})
        }
        "tool_completed" => {
            json!({"tool_name": "search_docs", "results": ["doc-1"], "duration": 0.12, "tool_execution_id": "exec-1", "run_id": run})
        }
        "agent_completed" => {
            json!({"status": "success", "final_response": "Here is what I found.", "agent_name": "supervisor", "run_id": run})
        }
        _ => json!({"run_id": run}),
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn envelope(env: Envelope, name: &str, run: &str) -> Value {
    let mut fields = fields_of(name, run);
    match env {
        Envelope::Flat | Envelope::Batch => {
            fields.insert("type".into(), json!(name));
            fields.insert("timestamp".into(), json!(iso_now()));
            fields.insert("critical".into(), json!(true));
            Value::Object(fields)
        }
        Envelope::Data => {
            fields.insert("timestamp".into(), json!(iso_now()));
            json!({"type": name, "data": fields, "timestamp": epoch_now()})
        }
        Envelope::Bridge => {
            let mut root = Map::new();
            root.insert("type".into(), json!(name));
            for k in ["run_id", "agent_name"] {
                if let Some(v) = fields.remove(k) {
                    root.insert(k.into(), v);
                }
            }
            root.insert("user_id".into(), json!("demo-user"));
            root.insert("timestamp".into(), json!(iso_now()));
            if name.starts_with("tool_")
                && let Some(t) = fields.get("tool_name").cloned()
            {
                root.insert("tool_name".into(), t);
            }
            root.insert("data".into(), Value::Object(fields));
            Value::Object(root)
        }
        Envelope::Wrapped => {
            fields.insert("timestamp".into(), json!(epoch_now()));
            json!({"type": "system_message", "event": name, "payload": fields})
        }
    }
}

const MESSAGE_TYPES: [&str; 5] = [
    "user_message",
    "chat",
    "start_agent",
    "chat_message",
    "message",
];

async fn send_json(ws: &mut WebSocket, v: Value) -> Result<(), axum::Error> {
    ws.send(Message::Text(v.to_string().into())).await
}

/// Waits for the handshake acknowledgement; false when the client did something else.
async fn handshake(ws: &mut WebSocket, thread: &str) -> Result<bool, axum::Error> {
    send_json(ws, json!({"type": "handshake_response", "thread_id": thread, "run_id": "run-1", "timestamp": epoch_now()})).await?;
    let Some(Ok(Message::Text(text))) = ws.recv().await else {
        return Ok(false);
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let acked = v.get("type").and_then(Value::as_str) == Some("handshake_acknowledged")
        && v.get("thread_id").and_then(Value::as_str) == Some(thread);
    if acked {
        send_json(
            ws,
            json!({"type": "handshake_complete", "thread_id": thread}),
        )
        .await?;
    } else {
        send_json(ws, json!({"type": "error_message", "error_code": "HANDSHAKE_REQUIRED", "message": "send handshake_acknowledged with the thread_id first"})).await?;
        ws.send(Message::Close(Some(CloseFrame {
            code: 1002,
            reason: "Handshake required".into(),
        })))
        .await?;
    }
    Ok(acked)
}

async fn converse(
    mut ws: WebSocket,
    demo: DemoBackend,
    session: Session,
) -> Result<(), axum::Error> {
    let Session {
        envelope: env,
        fault,
        ..
    } = session.clone();
    if fault == Some(Fault::Close1011) || demo.cold() {
        return ws
            .send(Message::Close(Some(CloseFrame {
                code: 1011,
                reason: "Service not ready".into(),
            })))
            .await;
    }
    let established = json!({"type": "connection_established", "data": {"connection_id": "demo-conn"}, "timestamp": epoch_now()});
    ws.send(Message::Text(established.to_string().into()))
        .await?;
    let run = "run-1".to_string();
    if session.handshake && !handshake(&mut ws, "thread-hs-1").await? {
        return Ok(());
    }
    // Wait for the user's message; answer anything else as the service does.
    loop {
        let Some(Ok(msg)) = ws.recv().await else {
            return Ok(());
        };
        let Message::Text(text) = msg else { continue };
        let kind = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        if MESSAGE_TYPES.contains(&kind.as_str()) {
            break;
        }
        let reply = if kind == "ping" {
            json!({"type": "pong"})
        } else {
            json!({"type": "ack", "received": kind})
        };
        ws.send(Message::Text(reply.to_string().into())).await?;
    }
    let received = tokio::time::Instant::now();
    let mut sent_at: Vec<(String, Duration)> = Vec::new();
    let mut order: Vec<&str> = GOLDEN.to_vec();
    if fault == Some(Fault::Reorder) {
        order.swap(0, 2);
    }
    let mut batch = Vec::new();
    for (i, name) in order.iter().enumerate() {
        let mut delay = demo.delays[GOLDEN.iter().position(|g| g == name).unwrap_or(i)];
        if let Some(Fault::Delay(e, d)) = &fault
            && e == name
        {
            delay += *d;
        }
        tokio::time::sleep(delay).await;
        if matches!(&fault, Some(Fault::Drop(e)) if e == name) {
            continue;
        }
        if fault == Some(Fault::Never) && *name == "tool_executing" {
            // Keep the connection open and silent, as a stuck agent does.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
        if session.heartbeat {
            send_json(
                &mut ws,
                json!({"type": "heartbeat", "timestamp": epoch_now()}),
            )
            .await?;
            send_json(&mut ws, json!({"type": "ping"})).await?;
        }
        if session.crosstalk && *name == "agent_thinking" {
            // Another user's run finishing on this socket must not end this run.
            let mut other = envelope(env, "agent_completed", "run-other");
            if let Some(m) = other.as_object_mut() {
                m.insert("thread_id".into(), json!("thread-other"));
            }
            send_json(&mut ws, other).await?;
        }
        if session.subagent && *name == "agent_completed" {
            // A sub-agent reports and completes before the top-level agent.
            for sub in ["agent_thinking", "agent_completed"] {
                let mut e = envelope(Envelope::Flat, sub, &run);
                if let Some(m) = e.as_object_mut() {
                    m.insert("agent_name".into(), json!("researcher"));
                }
                send_json(&mut ws, e).await?;
            }
        }
        let event = envelope(env, name, &run);
        if env == Envelope::Batch && (1..=3).contains(&i) {
            batch.push(event);
            if i == 3 {
                let frame = json!({"type": "event_batch", "events": batch});
                ws.send(Message::Text(frame.to_string().into())).await?;
            }
            continue;
        }
        sent_at.push((name.to_string(), received.elapsed()));
        ws.send(Message::Text(event.to_string().into())).await?;
        if matches!(&fault, Some(Fault::Duplicate(e)) if e == name) {
            ws.send(Message::Text(envelope(env, name, &run).to_string().into()))
                .await?;
        }
        if *name == "agent_started" {
            match fault {
                Some(Fault::Error) => {
                    let err = json!({"type": "agent_error", "run_id": run, "data": {"error": "LLM provider returned 429 (quota exceeded)"}});
                    ws.send(Message::Text(err.to_string().into())).await?;
                    return Ok(());
                }
                Some(Fault::Malformed) => {
                    ws.send(Message::Text("{\"type\": \"agent_thinking\", ".into()))
                        .await?
                }
                Some(Fault::Binary) => {
                    ws.send(Message::Binary(vec![0u8, 159, 146, 150].into()))
                        .await?
                }
                Some(Fault::Oversize) => {
                    let big =
                        json!({"type": "partial_result", "data": {"text": "x".repeat(4 << 20)}});
                    ws.send(Message::Text(big.to_string().into())).await?;
                }
                _ => {}
            }
        }
    }
    demo.sent.push(sent_at);
    ws.send(Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "run complete".into(),
    })))
    .await?;
    // Finish the close handshake: closing with unread replies (heartbeat_ack, pong) in the
    // socket makes the kernel send RST, which can discard the last event in flight.
    let drain = async { while let Some(Ok(_)) = ws.recv().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started_ago(secs: u64) -> DemoBackend {
        DemoBackend {
            started: tokio::time::Instant::now() - Duration::from_secs(secs),
            ..DemoBackend::default()
        }
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_drill_is_on_only_at_the_end_of_each_period() {
        let q = query(&[
            ("fault", "drop:tool_completed"),
            ("fault_every", "10m"),
            ("fault_for", "2m"),
        ]);
        let at = |secs| started_ago(secs).fault(&q, On::Ws).unwrap();
        let drop = Some("drop:tool_completed".to_string());
        assert_eq!(at(60), None, "green at first");
        assert_eq!(at(9 * 60), drop);
        assert_eq!(at(11 * 60), None, "recovered in the next period");
        assert_eq!(at(19 * 60 + 30), drop);

        let always = query(&[("fault", "error")]);
        assert_eq!(
            started_ago(5).fault(&always, On::Ws).unwrap().as_deref(),
            Some("error")
        );
        let bad = query(&[("fault", "error"), ("fault_every", "soon")]);
        assert_eq!(
            started_ago(5).fault(&bad, On::Ws).unwrap_err(),
            "fault_every must be a duration like 5m, not `soon`"
        );
    }
}
