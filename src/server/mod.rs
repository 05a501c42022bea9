//! The HTTP interface: the status page (`/`, `/checks/{name}`, `/badge/{name}.svg`), the
//! JSON API (`/api/v1/...`), `/metrics`, `/probe`, `/-/healthy`, `/-/ready`. Takes a bound
//! listener and a shutdown future so callers and tests pick the port.

mod api;
mod page;
mod probe;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::board::Board;
use crate::config::Config;
use crate::history::History;
use crate::metrics::Metrics;
use crate::probe::Prober;

pub use probe::target_allowed;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub prober: Arc<Prober>,
    /// Set once the scheduler runs every check.
    pub ready: Arc<AtomicBool>,
    pub board: Arc<Board>,
    pub history: Arc<History>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::overview))
        .route("/checks/{name}", get(page::check))
        .route("/badge/{file}", get(page::badge_svg))
        .route("/metrics", get(metrics))
        .route("/probe", get(probe::handler))
        .route("/-/healthy", get(|| async { "Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/checks", get(api::checks))
        .route("/api/v1/checks/{name}", get(api::check))
        .route("/api/v1/checks/{name}/history", get(api::history))
        .route("/api/v1/transitions", get(api::transitions))
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rendering thousands of checks takes tens of ms, too long for an async worker, so it runs
/// on the blocking pool; its 64 KiB pieces are sent as they come (at most a few in memory:
/// 10,000 checks make ~40 MB of text).
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let metrics = s.metrics.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(2);
    tokio::task::spawn_blocking(move || {
        let mut gone = false;
        metrics.render_to(|piece| {
            // A scraper that went away: the rest is rendered and dropped.
            gone = gone || tx.blocking_send(piece).is_err();
        });
    });
    let pieces = futures_util::stream::unfold(rx, |mut rx| async move {
        let piece = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(piece), rx))
    });
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        axum::body::Body::from_stream(pieces),
    )
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "Ready.\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Starting.\n")
    }
}
