//! Wiring: the one place where a config becomes running parts. [`build`] makes what every
//! command shares (the demo's certificates, trust in them, the prober); [`daemon::run`]
//! runs the daemon on a bound listener until shutdown; [`once::run_once`] runs checks once
//! for `pathwatch check`; [`serve_demo`] is `pathwatch demo-backend`. The demo is started
//! here and nowhere else.

mod cluster;
pub mod daemon;
pub mod once;
mod reload;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DemoConfig, Spec, Trust};
use crate::demo::{DemoBackend, DemoPki};
use crate::probe::Prober;
use crate::server::secure::Guard;

pub use daemon::{DaemonSink, RunOptions, run, run_with, shutdown_signal};
pub use once::run_once;

/// What every command runs with: the config with `ca_file: demo` resolved, the prober, and
/// the demo's certificates when it serves TLS.
pub struct App {
    pub config: Arc<Config>,
    pub prober: Arc<Prober>,
    pki: Option<Arc<DemoPki>>,
}

/// Makes the demo's certificates (when `demo.tls_listen` is set), resolves `ca_file: demo`
/// to them, and builds the prober.
pub fn build(mut config: Config) -> anyhow::Result<App> {
    let pki = match &config.demo {
        Some(DemoConfig {
            tls_listen: Some(_),
            ..
        }) => Some(Arc::new(DemoPki::generate().map_err(anyhow::Error::msg)?)),
        _ => None,
    };
    if let Some(pki) = &pki {
        resolve_demo_trust(&mut config, pki);
    }
    let prober = Prober::new(&config.resolver, config.secrets.clone())
        .map_err(anyhow::Error::msg)?
        .with_browser(config.browser.clone());
    Ok(App {
        config: Arc::new(config),
        prober: Arc::new(prober),
        pki,
    })
}

/// `ca_file: demo` of every check and module becomes trust in the demo's CA.
fn resolve_demo_trust(config: &mut Config, pki: &DemoPki) {
    for check in &mut config.checks {
        trust_demo(&mut Arc::make_mut(check).spec, pki);
    }
    for module in config.modules.values_mut() {
        trust_demo(&mut Arc::make_mut(module).spec, pki);
    }
}

fn trust_demo(spec: &mut Spec, pki: &DemoPki) {
    if let Some(tls) = spec.tls_client_mut()
        && matches!(tls.trust, Trust::Demo)
    {
        tls.trust = Trust::Roots(pki.roots.clone());
        tls.ca_certs = vec![pki.ca_der.clone()];
    }
}

impl App {
    /// The demo's certificates, when it serves TLS.
    pub fn demo_pki(&self) -> Option<&Arc<DemoPki>> {
        self.pki.as_ref()
    }

    /// Starts the configured demo backend (if any) on its ports until `stop` is cancelled;
    /// `guard` (the daemon's basic auth) covers its fault admin.
    pub async fn start_demo(
        &self,
        stop: &CancellationToken,
        guard: Option<&Arc<Guard>>,
    ) -> anyhow::Result<()> {
        let Some(demo) = &self.config.demo else {
            return Ok(());
        };
        start_demo(demo, self.pki.clone(), stop, guard).await
    }
}

/// Binds the demo's ports and serves one backend behind both (a token from one works on
/// the other) until `stop` is cancelled.
async fn start_demo(
    demo: &DemoConfig,
    pki: Option<Arc<DemoPki>>,
    stop: &CancellationToken,
    guard: Option<&Arc<Guard>>,
) -> anyhow::Result<()> {
    let backend = DemoBackend::builder()
        .cold_start(demo.cold_start.unwrap_or_default())
        .build();
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the demo backend on {addr}: {e}"))
    };
    let plain = bind(demo.listen).await?;
    let addr = plain.local_addr()?;
    let router = || match guard {
        Some(g) => backend.clone().router_with_admin(|admin| {
            admin.layer(axum::middleware::from_fn_with_state(
                g.clone(),
                crate::server::secure::layer,
            ))
        }),
        None => backend.clone().router(),
    };
    spawn_demo(router(), plain, None, stop);
    tracing::info!(%addr, "Demo agent backend is running.");
    if let (Some(tls_addr), Some(pki)) = (demo.tls_listen, pki) {
        let tls = bind(tls_addr).await?;
        let addr = tls.local_addr()?;
        spawn_demo(router(), tls, Some(pki.server.clone()), stop);
        tracing::info!(%addr, "Demo agent backend is serving TLS.");
    }
    Ok(())
}

fn spawn_demo(
    router: axum::Router,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: &CancellationToken,
) {
    let until = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(e) = crate::demo::serve_router(router, listener, tls, until).await {
            tracing::warn!(error = %e, "Demo backend stopped.");
        }
    });
}

/// `pathwatch demo-backend`: only the demo, on its ports, until `shutdown`; the CA of its
/// TLS port is written to `ca_out` for other processes' `ca_file:`.
pub async fn serve_demo(
    demo: DemoConfig,
    ca_out: Option<&Path>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let pki = match demo.tls_listen {
        Some(_) => Some(Arc::new(DemoPki::generate().map_err(anyhow::Error::msg)?)),
        None => None,
    };
    if let (Some(file), Some(pki)) = (ca_out, &pki) {
        std::fs::write(file, &pki.ca_pem)
            .map_err(|e| anyhow::anyhow!("cannot write the demo CA to {}: {e}", file.display()))?;
    }
    let stop = CancellationToken::new();
    start_demo(&demo, pki, &stop, None).await?;
    shutdown.await;
    stop.cancel();
    Ok(())
}

/// `pathwatch healthcheck`: `GET /-/healthy` of the daemon at `address` (host:port, plain
/// HTTP), within 3 s; Ok when it answers 200.
pub async fn healthcheck(address: &str) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut tcp = tokio::net::TcpStream::connect(address).await.map_err(|e| {
            format!(
                "cannot connect to {address}: {}",
                crate::probe::net::io_words(&e)
            )
        })?;
        let request = format!("GET /-/healthy HTTP/1.0\r\nHost: {address}\r\n\r\n");
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| crate::probe::net::io_words(&e))?;
        let mut head = vec![0u8; 512];
        let mut got = 0;
        while got < 12 {
            match tcp.read(&mut head[got..]).await {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(crate::probe::net::io_words(&e)),
            }
        }
        let line = String::from_utf8_lossy(&head[..got]);
        let status = line.split_whitespace().nth(1).unwrap_or("");
        match status {
            "200" => Ok(()),
            "" => Err(format!("{address} answered no HTTP status")),
            other => Err(format!("{address} answered HTTP {other}")),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(3), ask)
        .await
        .map_err(|_| format!("{address} did not answer within 3s"))?
}
