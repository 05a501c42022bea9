//! The demo's agent socket: `/ws` runs one conversation in the envelope family and with
//! the fault the connection asked for, and logs when each event was really sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::DemoBackend;
use super::auth::presented_token;
use super::faults::{Fault, On, parse_fault};
use crate::clock::{now_secs_f64 as epoch_now, rfc3339_now as iso_now};
use crate::protocol::profiles::Profile;
use crate::protocol::{
    AGENT_COMPLETED, AGENT_STARTED, AGENT_THINKING, GOLDEN, MESSAGE_TYPES, TOOL_COMPLETED,
    TOOL_EXECUTING,
};

/// The run id of the demo's one run per connection.
const RUN: &str = "run-1";

/// When the demo actually sent each event of its recent runs, measured from receiving the
/// user's message: the truth that pathwatch's measured latencies are compared with.
#[derive(Debug, Default)]
pub struct SendLog(Mutex<std::collections::VecDeque<Vec<(String, Duration)>>>);

impl SendLog {
    const KEEP: usize = 100;

    pub(super) fn push(&self, run: Vec<(String, Duration)>) {
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
pub(super) struct Session {
    /// `profile=ag-ui|openai-responses|...`: the protocol spoken (default agent-events).
    pub(super) profile: Profile,
    /// `deltas=N`: content deltas of a profile's answer (default 12).
    pub(super) deltas: usize,
    /// `gap_ms=N`: time between two deltas (default 5 ms).
    pub(super) gap: Duration,
    envelope: Envelope,
    pub(super) fault: Option<Fault>,
    /// `handshake=1`: handshake_response -> handshake_acknowledged -> handshake_complete first.
    handshake: bool,
    /// `heartbeat=1`: a heartbeat and a ping before every event.
    heartbeat: bool,
    /// `subagent=1`: a sub-agent thinks and completes before the top-level agent does.
    subagent: bool,
    /// `crosstalk=1`: an event of another run arrives in the middle.
    crosstalk: bool,
}

/// The connection's envelope, fault and flags from its query string; an answer when the
/// query is wrong or the fault refuses the connection outright.
pub(super) fn session_of(
    demo: &DemoBackend,
    q: &HashMap<String, String>,
) -> Result<Session, Box<Response>> {
    let envelope = match q.get("envelope").map(String::as_str).unwrap_or("flat") {
        "flat" => Envelope::Flat,
        "data" => Envelope::Data,
        "bridge" => Envelope::Bridge,
        "wrapped" => Envelope::Wrapped,
        "batch" => Envelope::Batch,
        other => {
            return Err(Box::new(
                (
                    StatusCode::BAD_REQUEST,
                    format!("unknown envelope `{other}`"),
                )
                    .into_response(),
            ));
        }
    };
    let fault = demo
        .fault(q, On::Ws)
        .and_then(|f| f.as_deref().map(parse_fault).transpose())
        .map_err(|e| Box::new((StatusCode::BAD_REQUEST, e).into_response()))?;
    let profile = match q.get("profile") {
        None => Profile::AgentEvents,
        Some(p) => serde_json::from_value(json!(p)).map_err(|_| {
            Box::new((StatusCode::BAD_REQUEST, format!("unknown profile `{p}`")).into_response())
        })?,
    };
    if let Some(Fault::Reject(status)) = fault {
        return Err(Box::new(super::profiles::refusal(profile, status)));
    }
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "1" || v == "true");
    let deltas = q.get("deltas").and_then(|d| d.parse().ok()).unwrap_or(12);
    let gap = q.get("gap_ms").and_then(|d| d.parse().ok()).unwrap_or(5);
    Ok(Session {
        profile,
        deltas,
        gap: Duration::from_millis(gap),
        envelope,
        fault,
        handshake: flag("handshake"),
        heartbeat: flag("heartbeat"),
        subagent: flag("subagent"),
        crosstalk: flag("crosstalk"),
    })
}

/// Whether the connection's token (or its absence, with `auth=required`) fails auth.
pub(super) fn auth_fails(
    demo: &DemoBackend,
    session: &Session,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> bool {
    let token = presented_token(demo, headers, q);
    session.fault == Some(Fault::AuthFail)
        || matches!(token, Some(Err(())))
        || (token.is_none() && q.get("auth").is_some_and(|a| a == "required"))
}

/// `GET` on a provider's own WebSocket path (`/v1/realtime`): `/ws` in that profile.
pub(super) fn as_profile(profile: &'static str) -> axum::routing::MethodRouter<DemoBackend> {
    axum::routing::get(
        move |demo: State<DemoBackend>,
              Query(mut q): Query<HashMap<String, String>>,
              headers: HeaderMap,
              ws: WebSocketUpgrade| async move {
            q.entry("profile".into()).or_insert_with(|| profile.into());
            upgrade(demo, Query(q), headers, ws).await
        },
    )
}

pub(super) async fn upgrade(
    State(demo): State<DemoBackend>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let session = match session_of(&demo, &q) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if !matches!(
        session.profile,
        Profile::AgentEvents | Profile::AgUi | Profile::OpenaiRealtime
    ) {
        let why = "this protocol streams over Server-Sent Events: POST /sse";
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let auth_failed = auth_fails(&demo, &session, &headers, &q);
    // A 101 does not mean auth passed: the service accepts, then says AUTH_FAILED.
    let ws = ws.read_buffer_size(8 << 10).write_buffer_size(8 << 10);
    ws.protocols(["jwt-auth"]).on_upgrade(move |mut socket| async move {
        if auth_failed {
            let err = json!({"type": "error_message", "error_code": "AUTH_FAILED", "message": "Authentication failed"});
            let _ = socket.send(Message::Text(err.to_string().into())).await;
            let _ = close(&mut socket, 1008, "Authentication failed").await;
            return;
        }
        let _ = converse(socket, demo, session).await;
    })
}

/// Where a run's frames go: a WebSocket, or the body of a Server-Sent Events answer.
pub(super) trait Emit {
    /// One event.
    async fn json(&mut self, v: Value) -> Result<(), axum::Error>;
    /// Text that is not what it should be (the `malformed` fault).
    async fn raw(&mut self, text: &str) -> Result<(), axum::Error>;
    /// Bytes that are not text (the `binary` fault).
    async fn binary(&mut self, bytes: Vec<u8>) -> Result<(), axum::Error>;
    /// One event with a name: the SSE `event:` line (a WebSocket frame carries no name).
    async fn named(&mut self, _event: &str, v: Value) -> Result<(), axum::Error> {
        self.json(v).await
    }
    /// The start of an event the stream ends in (the `truncate` fault; nothing on a socket).
    async fn cut(&mut self, _text: &str) -> Result<(), axum::Error> {
        Ok(())
    }
}

impl Emit for WebSocket {
    async fn json(&mut self, v: Value) -> Result<(), axum::Error> {
        self.send(Message::Text(v.to_string().into())).await
    }

    async fn raw(&mut self, text: &str) -> Result<(), axum::Error> {
        self.send(Message::Text(text.to_string().into())).await
    }

    async fn binary(&mut self, bytes: Vec<u8>) -> Result<(), axum::Error> {
        self.send(Message::Binary(bytes.into())).await
    }
}

fn fields_of(name: &str, run: &str) -> Map<String, Value> {
    let v = match name {
        AGENT_STARTED => {
            json!({"user_id": "demo-user", "thread_id": format!("thread-{run}"), "run_id": run, "agent_name": "supervisor"})
        }
        AGENT_THINKING => {
            json!({"reasoning": "Looking up the docs before answering.", "agent_name": "supervisor", "run_id": run})
        }
        TOOL_EXECUTING => {
            json!({"tool_name": "search_docs", "parameters": {"query": "pathwatch"}, "tool_execution_id": "exec-1", "run_id": run})
        }
        TOOL_COMPLETED => {
            json!({"tool_name": "search_docs", "results": ["doc-1"], "duration": 0.12, "tool_execution_id": "exec-1", "run_id": run})
        }
        AGENT_COMPLETED => {
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

async fn send_json(ws: &mut impl Emit, v: Value) -> Result<(), axum::Error> {
    ws.json(v).await
}

/// Waits for the handshake acknowledgement; false when the client did something else.
async fn handshake(ws: &mut WebSocket, thread: &str) -> Result<bool, axum::Error> {
    send_json(ws, json!({"type": "handshake_response", "thread_id": thread, "run_id": RUN, "timestamp": epoch_now()})).await?;
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
        close(ws, 1002, "Handshake required").await?;
    }
    Ok(acked)
}

async fn converse(
    mut ws: WebSocket,
    demo: DemoBackend,
    session: Session,
) -> Result<(), axum::Error> {
    if demo.cold() {
        return close(&mut ws, 1011, "Service not ready").await;
    }
    if session.fault == Some(Fault::Close1011) {
        return close(&mut ws, 1011, "Internal error").await;
    }
    // Each protocol's greeting and the message that starts its run (AG-UI over a socket:
    // no greeting, the run input as the first frame).
    let (greeting, accepted): (Option<Value>, Option<&[&str]>) = match session.profile {
        Profile::AgentEvents => (
            Some(
                json!({"type": "connection_established", "data": {"connection_id": "demo-conn"}, "timestamp": epoch_now()}),
            ),
            Some(&MESSAGE_TYPES),
        ),
        Profile::OpenaiRealtime => (
            Some(
                json!({"type": "session.created", "event_id": "event_s", "session": {"type": "realtime", "id": "sess_1", "object": "realtime.session", "model": "demo", "output_modalities": ["text"]}}),
            ),
            Some(&["response.create"]),
        ),
        _ => (None, None),
    };
    if let Some(greeting) = greeting {
        send_json(&mut ws, greeting).await?;
    }
    if session.handshake && !handshake(&mut ws, "thread-hs-1").await? {
        return Ok(());
    }
    let Some(message) = await_message(&mut ws, accepted).await? else {
        return Ok(());
    };
    let played = if session.profile == Profile::AgentEvents {
        play_run(&mut ws, &demo, &session).await?
    } else {
        super::profiles::play(&mut ws, &demo, &session, &message).await?
    };
    let Some(sent_at) = played else {
        // A truncated run is a connection that drops without a close.
        return Ok(());
    };
    demo.sent.push(sent_at);
    close(&mut ws, 1000, "run complete").await?;
    // Finish the close handshake: closing with unread replies (heartbeat_ack, pong) in the
    // socket makes the kernel send RST, which can discard the last event in flight.
    let drain = async { while let Some(Ok(_)) = ws.recv().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    Ok(())
}

async fn close(ws: &mut WebSocket, code: u16, reason: &str) -> Result<(), axum::Error> {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    ws.send(Message::Close(Some(frame))).await
}

/// Waits for the user's message (a frame of an `accepted` type; any JSON object when None),
/// answering anything else as the service does; None when the client went away first.
async fn await_message(
    ws: &mut WebSocket,
    accepted: Option<&[&str]>,
) -> Result<Option<Value>, axum::Error> {
    loop {
        let Some(Ok(msg)) = ws.recv().await else {
            return Ok(None);
        };
        let Message::Text(text) = msg else { continue };
        let frame = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
        let kind = frame
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match accepted {
            Some(types) if types.contains(&kind.as_str()) => return Ok(Some(frame)),
            None if frame.is_object() => return Ok(Some(frame)),
            _ => {}
        }
        let reply = if kind == "ping" {
            json!({"type": "pong"})
        } else {
            json!({"type": "ack", "received": kind})
        };
        send_json(ws, reply).await?;
    }
}

/// Sends the golden events with their delays and the session's fault; returns when each
/// was sent (since the message arrived), or None when the fault ended the run early.
pub(super) async fn play_run(
    ws: &mut impl Emit,
    demo: &DemoBackend,
    session: &Session,
) -> Result<Option<Vec<(String, Duration)>>, axum::Error> {
    let (env, fault, run) = (session.envelope, &session.fault, RUN);
    let received = tokio::time::Instant::now();
    let mut sent_at: Vec<(String, Duration)> = Vec::new();
    let mut order: Vec<&str> = GOLDEN.to_vec();
    if *fault == Some(Fault::Reorder) {
        order.swap(0, 2);
    }
    let mut batch = Vec::new();
    for (i, name) in order.iter().enumerate() {
        let mut delay = demo.delays[GOLDEN.iter().position(|g| g == name).unwrap_or(i)];
        if let Some(Fault::Delay(e, d)) = fault
            && e == name
        {
            delay += *d;
        }
        tokio::time::sleep(delay).await;
        if matches!(fault, Some(Fault::Drop(e)) if e == name) {
            continue;
        }
        if *fault == Some(Fault::Never) && *name == TOOL_EXECUTING {
            // Keep the connection open and silent, as a stuck agent does.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(None);
        }
        extras_before(ws, session, name).await?;
        let event = envelope(env, name, run);
        if env == Envelope::Batch && (1..=3).contains(&i) {
            batch.push(event);
            if i == 3 {
                let frame = json!({"type": "event_batch", "events": batch});
                send_json(ws, frame).await?;
            }
            continue;
        }
        sent_at.push((name.to_string(), received.elapsed()));
        send_json(ws, event).await?;
        if matches!(fault, Some(Fault::Duplicate(e)) if e == name) {
            send_json(ws, envelope(env, name, run)).await?;
        }
        if *name == AGENT_STARTED && !after_started(ws, fault).await? {
            return Ok(None);
        }
    }
    Ok(Some(sent_at))
}

/// What the session asked to see before an event: keepalives, another run's event on the
/// same socket, a sub-agent finishing before the top-level agent.
async fn extras_before(
    ws: &mut impl Emit,
    session: &Session,
    name: &str,
) -> Result<(), axum::Error> {
    if session.heartbeat {
        send_json(ws, json!({"type": "heartbeat", "timestamp": epoch_now()})).await?;
        send_json(ws, json!({"type": "ping"})).await?;
    }
    if session.crosstalk && name == AGENT_THINKING {
        // Another user's run finishing on this socket must not end this run.
        let mut other = envelope(session.envelope, AGENT_COMPLETED, "run-other");
        if let Some(m) = other.as_object_mut() {
            m.insert("thread_id".into(), json!("thread-other"));
        }
        send_json(ws, other).await?;
    }
    if session.subagent && name == AGENT_COMPLETED {
        for sub in [AGENT_THINKING, AGENT_COMPLETED] {
            let mut e = envelope(Envelope::Flat, sub, RUN);
            if let Some(m) = e.as_object_mut() {
                m.insert("agent_name".into(), json!("researcher"));
            }
            send_json(ws, e).await?;
        }
    }
    Ok(())
}

/// The faults that strike right after agent_started; false when the run ends there.
async fn after_started(ws: &mut impl Emit, fault: &Option<Fault>) -> Result<bool, axum::Error> {
    match fault {
        Some(Fault::Error) => {
            let err = json!({"type": "agent_error", "run_id": RUN, "data": {"error": "LLM provider returned 429 (quota exceeded)"}});
            send_json(ws, err).await?;
            return Ok(false);
        }
        Some(Fault::Malformed) => ws.raw("{\"type\": \"agent_thinking\", ").await?,
        Some(Fault::Binary) => ws.binary(vec![0u8, 159, 146, 150]).await?,
        Some(Fault::Oversize) => {
            let big = json!({"type": "partial_result", "data": {"text": "x".repeat(4 << 20)}});
            send_json(ws, big).await?;
        }
        _ => {}
    }
    Ok(true)
}
