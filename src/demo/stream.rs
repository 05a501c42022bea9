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
use super::profiles::{accepts, play};
use crate::protocol::MESSAGE_TYPES;
use crate::protocol::profiles::Profile;

/// The answer's body, fed as events are played; with `drip`, a few bytes at a time.
struct SseOut {
    tx: mpsc::Sender<Bytes>,
    drip: bool,
}

impl SseOut {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), axum::Error> {
        let piece = if self.drip { 8 } else { bytes.len().max(1) };
        for chunk in bytes.chunks(piece) {
            if self.drip {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            self.tx
                .send(Bytes::copy_from_slice(chunk))
                .await
                .map_err(|_| axum::Error::new("the client went away"))?;
        }
        Ok(())
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

    async fn named(&mut self, event: &str, v: Value) -> Result<(), axum::Error> {
        if event.is_empty() {
            return self.json(v).await;
        }
        self.send(format!("event: {event}\ndata: {v}\n\n").into_bytes())
            .await
    }

    async fn cut(&mut self, text: &str) -> Result<(), axum::Error> {
        self.send(format!("data: {text}").into_bytes()).await
    }
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// `POST` on a provider's own path (`/v1/messages`): `/sse` in that profile, unless the
/// query names another.
pub(super) fn as_profile(profile: &'static str) -> axum::routing::MethodRouter<DemoBackend> {
    axum::routing::post(
        move |demo: State<DemoBackend>,
              Query(mut q): Query<HashMap<String, String>>,
              headers: HeaderMap,
              body: Bytes| async move {
            q.entry("profile".into()).or_insert_with(|| profile.into());
            run(demo, Query(q), headers, body).await
        },
    )
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
    let message = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    if session.profile != Profile::AgentEvents {
        if let Err(why) = accepts(session.profile, &message) {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", why);
        }
    } else if !message
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|k| MESSAGE_TYPES.contains(&k))
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the body must be a JSON message with a `type` of user_message, chat_message or start_agent",
        );
    }
    let session_profile = session.profile;
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        // `close1011` is a connection that breaks: the stream just ends.
        if session.fault == Some(Fault::Close1011) {
            return;
        }
        let mut out = SseOut {
            tx,
            drip: session.fault == Some(Fault::Slow),
        };
        let played = if session.profile == Profile::AgentEvents {
            play_run(&mut out, &demo, &session).await
        } else {
            play(&mut out, &demo, &session, &message).await
        };
        if let Ok(Some(sent_at)) = played {
            demo.sent.push(sent_at);
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>))
    });
    let mut answer = (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response();
    if session_profile == Profile::AiSdk {
        answer.headers_mut().insert(
            "x-vercel-ai-ui-message-stream",
            axum::http::HeaderValue::from_static("v1"),
        );
    }
    answer
}
