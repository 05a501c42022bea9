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
//!
//! `POST /sse` with the message runs the same conversation (query, faults, auth) over
//! Server-Sent Events. `/app` is a chat frontend for browser checks, with its own
//! faults (`?frontend=wrong-host|script-error|no-reply|slow-paint`). `?profile=ag-ui|openai-responses|openai-chat|anthropic-messages|
//! langgraph|ai-sdk` speaks another agent protocol over SSE instead, and
//! `/ws?profile=openai-realtime` OpenAI Realtime over the socket, with the same faults
//! named by the protocol's events, plus `reject429`, `reject529`, `truncate` and `slow`.

mod agent;
mod auth;
mod faults;
mod frontend;
mod health;
mod profiles;
mod stream;
pub mod tls;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;

pub use agent::SendLog;
pub use auth::{DEMO_BYPASS_KEY, DEMO_EMAIL, DEMO_PASSWORD, DemoAuth};
use faults::{Forced, On};
pub use tls::{DEMO_TLS_NAMES, DemoPki, TlsListener};

/// How the demo answers by default; faults and envelopes come per connection.
#[derive(Debug, Clone)]
pub struct DemoBackend {
    /// Delay before each golden event, in order (agent_started first).
    pub delays: [Duration; 5],
    pub auth: Arc<DemoAuth>,
    pub sent: Arc<SendLog>,
    /// Until then, health says `503 Startup in progress` and `/ws` closes with 1011
    /// "Service not ready" (a cold start; `PUT /demo/fault?restart=20s` starts another).
    cold_until: Arc<Mutex<Option<tokio::time::Instant>>>,
    started: tokio::time::Instant,
    /// Faults set at run time (`PUT /demo/fault`) for requests that name none.
    forced: Arc<Mutex<Forced>>,
}

impl Default for DemoBackend {
    fn default() -> Self {
        let ms = Duration::from_millis;
        DemoBackend {
            delays: [ms(40), ms(80), ms(60), ms(120), ms(60)],
            auth: Arc::default(),
            sent: Arc::default(),
            cold_until: Arc::default(),
            started: tokio::time::Instant::now(),
            forced: Arc::default(),
        }
    }
}

impl DemoBackend {
    /// A demo to tailor before it serves: `DemoBackend::builder().cold_start(5s).build()`.
    pub fn builder() -> DemoBuilder {
        DemoBuilder(DemoBackend::default())
    }

    fn cold(&self) -> bool {
        let until = *self.cold_until.lock().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|t| tokio::time::Instant::now() < t)
    }

    /// Starts a cold start of `d` now (a redeploy): health 503, `/ws` 1011 until it ends.
    pub fn restart(&self, d: Duration) {
        *self.cold_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(tokio::time::Instant::now() + d);
    }

    pub fn router(self) -> Router {
        self.router_with_admin(|admin| admin)
    }

    /// [`DemoBackend::router`], with `guard` around the fault admin (`/demo/fault`) only:
    /// the daemon puts its basic auth there, and the monitored endpoints stay open.
    pub fn router_with_admin(
        self,
        guard: impl FnOnce(Router<DemoBackend>) -> Router<DemoBackend>,
    ) -> Router {
        let admin = guard(Router::new().route(
            "/demo/fault",
            get(faults::show).put(faults::set).delete(faults::clear),
        ));
        Router::new()
            .route("/health", get(health::health))
            .route("/health/ready", get(health::ready))
            .route(
                "/auth/health",
                get(|| async { axum::Json(json!({"status": "healthy"})) }),
            )
            .route("/auth/login", post(auth::login))
            .route("/auth/e2e/test-auth", post(auth::bypass))
            .route("/api/websocket/ticket", post(auth::ticket))
            .route("/ws", get(agent::upgrade))
            .route("/app", get(frontend::page))
            .route("/app/app.js", get(frontend::script))
            .route(
                "/favicon.ico",
                get(|| async { axum::http::StatusCode::NO_CONTENT }),
            )
            .route("/sse", post(stream::run))
            // Where the providers' own clients send their requests (base URL `<demo>/v1`).
            .route("/v1/responses", stream::as_profile("openai-responses"))
            .route("/v1/chat/completions", stream::as_profile("openai-chat"))
            .route("/v1/messages", stream::as_profile("anthropic-messages"))
            .route("/v1/realtime", agent::as_profile("openai-realtime"))
            .route("/api/chat", stream::as_profile("ai-sdk"))
            .merge(admin)
            .with_state(self)
    }

    /// Serves this backend on an already bound listener, over TLS when `tls` is given,
    /// until `shutdown` resolves. Clones of one backend share auth, faults and the send
    /// log, so a token from its plain port works on its TLS port.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        serve_router(self.router(), listener, tls, shutdown).await
    }

    /// [`DemoBackend::serve`] on a task of its own, for as long as the runtime lives.
    pub fn spawn(
        self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        tokio::spawn(self.serve(listener, tls, std::future::pending()))
    }
}

/// Serves a demo router (see [`DemoBackend::router_with_admin`]) on a bound listener, over
/// TLS when `tls` is given, until `shutdown`.
pub async fn serve_router(
    app: Router,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            axum::serve(nodelay(listener), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(config) => {
            let listener = TlsListener {
                tcp: listener,
                acceptor: tokio_rustls::TlsAcceptor::from(config),
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Builds a [`DemoBackend`] that differs from the default.
pub struct DemoBuilder(DemoBackend);

impl DemoBuilder {
    /// Delay before each golden event, in order (agent_started first).
    pub fn delays(mut self, delays: [Duration; 5]) -> Self {
        self.0.delays = delays;
        self
    }

    /// "Starting" (503 on health, 1011 on `/ws`) for this long from now.
    pub fn cold_start(self, cold_start: Duration) -> Self {
        self.0.restart(cold_start);
        self
    }

    /// A `/ws` fault for every connection that names none (e.g. `drop:tool_completed`).
    pub fn ws_fault(self, fault: &str) -> Self {
        self.0.force(On::Ws, Some(fault.to_string()));
        self
    }

    pub fn build(self) -> DemoBackend {
        self.0
    }
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
