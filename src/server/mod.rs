//! The HTTP interface: the status page (`/`, `/checks/{name}`, `/badge/{name}.svg`), the
//! JSON API (`/api/v1/...`), `/metrics`, `/probe`, `/-/healthy`, `/-/ready`. Takes a bound
//! listener and a shutdown future so callers and tests pick the port.

mod api;
mod charts;
mod page;
mod peers;
mod probe_endpoint;
pub mod secure;

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flate2::Compression;
use flate2::write::GzEncoder;
use tokio::net::TcpListener;

use crate::history::History;
use crate::live::{Live, Reloader};
use crate::metrics::Metrics;
use crate::verdict::Board;
use secure::{Guard, SecureListener};

pub use probe_endpoint::target_allowed;

#[derive(Clone)]
pub struct AppState {
    /// The config and prober that run now.
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    /// Reloads the config file; None when the daemon runs without one.
    pub reloader: Option<Reloader>,
    /// TLS, basic auth and headers from the web config.
    pub guard: Arc<Guard>,
    /// Set once the scheduler runs every check.
    pub ready: Arc<AtomicBool>,
    pub board: Arc<Board>,
    pub history: Arc<History>,
    /// The deployment's members and who owns what.
    pub cluster: Arc<crate::cluster::State>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page::overview))
        .route("/checks/{name}", get(page::check))
        .route("/checks/{name}/screenshot/{at}", get(api::screenshot))
        .route("/cluster", get(page::cluster))
        .route("/badge/{file}", get(charts::badge_svg))
        .route("/metrics", get(metrics))
        .route("/probe", get(probe_endpoint::handler))
        .route("/-/healthy", get(|| async { "Healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/-/reload", post(reload).put(reload))
        .route("/api/v1/checks", get(api::checks))
        .route("/api/v1/checks/{name}", get(api::check))
        .route("/api/v1/checks/{name}/history", get(api::history))
        .route("/api/v1/transitions", get(api::transitions))
        .route(
            "/api/v1/cluster",
            get(|State(s): State<AppState>| async move { axum::Json(s.cluster.view()) }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.guard.clone(),
            secure::layer,
        ))
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = SecureListener::new(listener, state.guard.clone())?;
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Rendering thousands of checks takes tens of ms, too long for an async worker, so it runs
/// on the blocking pool; its 64 KiB pieces are sent as they come (at most a few in memory:
/// 10,000 checks make ~38 MB of text). Gzipped when the scraper accepts it (Prometheus
/// does): the text compresses ~20x, which matters when Prometheus is across a network.
async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let gzip = accepts_gzip(&headers);
    let metrics = s.metrics.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    tokio::task::spawn_blocking(move || {
        let mut gone = false;
        // A scraper that went away: the rest is rendered and dropped.
        let mut send = |piece: Vec<u8>| gone = gone || tx.blocking_send(piece).is_err();
        if gzip {
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            metrics.render_to(|piece| {
                // Writing to a Vec cannot fail.
                let _ = enc.write_all(piece.as_bytes());
                if enc.get_ref().len() >= 64 * 1024 {
                    send(std::mem::take(enc.get_mut()));
                }
            });
            if let Ok(rest) = enc.finish() {
                send(rest);
            }
        } else {
            metrics.render_to(|piece| send(piece.into_bytes()));
        }
    });
    let pieces = futures_util::stream::unfold(rx, |mut rx| async move {
        let piece = rx.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(piece), rx))
    });
    let mut response = (
        [
            (header::CONTENT_TYPE, TEXT_FORMAT),
            (header::VARY, "accept-encoding"),
        ],
        axum::body::Body::from_stream(pieces),
    )
        .into_response();
    if gzip {
        response.headers_mut().insert(
            header::CONTENT_ENCODING,
            header::HeaderValue::from_static("gzip"),
        );
    }
    response
}

/// Whether `Accept-Encoding` lists gzip with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let q = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(1.0, |q| q.parse::<f64>().unwrap_or(0.0));
            coding.eq_ignore_ascii_case("gzip") && q > 0.0
        })
}

/// `POST /-/reload` (or PUT): reads the config file again and applies it; the old config
/// runs on when the new one has errors, which the answer lists.
async fn reload(State(s): State<AppState>) -> Response {
    let Some(reloader) = &s.reloader else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "reload is not available: this daemon was started without a config file\n",
        )
            .into_response();
    };
    match reloader.reload().await {
        Ok(summary) => (StatusCode::OK, format!("{summary}\n")).into_response(),
        Err(errors) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "failed to reload config; the previous config keeps running:\n{}\n",
                errors.join("\n")
            ),
        )
            .into_response(),
    }
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "Ready.\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Starting.\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_used_only_when_accepted() {
        let accepts = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
            accepts_gzip(&h)
        };
        assert!(accepts("gzip"));
        assert!(accepts("identity, GZIP;q=0.5"));
        assert!(!accepts("gzip;q=0"));
        assert!(!accepts("deflate, br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
