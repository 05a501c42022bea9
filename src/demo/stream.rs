//! The demo's agent over Server-Sent Events: `POST /sse` with the user's message runs the
//! same conversation as `/ws` (envelopes, faults, delays, the send log) and streams each
//! event as `data: <json>`; refusals come before the stream, as a provider's do (401 with
//! `authentication_error`, 400 with `invalid_request_error`, 503 while starting).

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::DemoBackend;
use super::agent::{Emit, auth_fails, play_run, session_of};
use super::faults::Fault;
use crate::protocol::MESSAGE_TYPES;

/// The answer's body, fed as events are played.
struct SseOut(mpsc::Sender<Bytes>);

impl SseOut {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), axum::Error> {
        self.0
            .send(Bytes::from(bytes))
            .await
            .map_err(|_| axum::Error::new("the client went away"))
    }
}

impl Emit for SseOut {
    async fn json(&mut self, v: Value) -> Result<(), axum::Error> {
        self.send(format!("data: {v}\n\n").into_bytes()).await
    }

    async fn raw(&mut self, text: &str) -> Result<(), axum::Error> {
        self.send(format!("data: {text}\n\n").into_bytes()).await
    }

    async fn binary(&mut self, bytes: Vec<u8>) -> Result<(), axum::Error> {
        let mut event = b"data: ".to_vec();
        event.extend(bytes);
        event.extend(b"\n\n");
        self.send(event).await
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}

pub(super) async fn run(
    State(demo): State<DemoBackend>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if demo.cold() {
        let body = json!({"status": "unhealthy", "message": "Startup in progress"});
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            axum::Json(body),
        )
            .into_response();
    }
    let session = match session_of(&demo, &q) {
        Ok(s) => s,
        Err(answer) => return *answer,
    };
    if auth_fails(&demo, &session, &headers, &q) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "Authentication failed",
        );
    }
    let kind = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
    if !kind.as_deref().is_some_and(|k| MESSAGE_TYPES.contains(&k)) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the body must be a JSON message with a `type` of user_message, chat_message or start_agent",
        );
    }
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        // `close1011` is a connection that breaks: the stream just ends.
        if session.fault == Some(Fault::Close1011) {
            return;
        }
        let mut out = SseOut(tx);
        if let Ok(Some(sent_at)) = play_run(&mut out, &demo, &session).await {
            demo.sent.push(sent_at);
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}
