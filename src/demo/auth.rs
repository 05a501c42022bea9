//! The demo's auth: password login, the test-bypass endpoint, WebSocket tickets, and the
//! token an upgrade presents over any transport (header, subprotocol, query, ticket).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::DemoBackend;

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
        let nanos = crate::clock::since_epoch(std::time::SystemTime::now()).subsec_nanos();
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

pub(super) async fn login(State(demo): State<DemoBackend>, body: String) -> Response {
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

pub(super) async fn bypass(State(demo): State<DemoBackend>, headers: HeaderMap) -> Response {
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

pub(super) async fn ticket(State(demo): State<DemoBackend>, headers: HeaderMap) -> Response {
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
pub(super) fn presented_token(
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
