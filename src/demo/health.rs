//! The demo's health and readiness endpoints, with their faults and the cold start.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::DemoBackend;
use super::faults::On;

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

pub(super) async fn health(
    State(demo): State<DemoBackend>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = health_gate(&demo, &q).await {
        return r;
    }
    axum::Json(json!({"status": "healthy"})).into_response()
}

pub(super) async fn ready(
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
