//! `pathwatch run`: builds the prober, metrics, scheduler and server from a config, runs
//! until the shutdown future resolves, then drains in-flight probes under a grace period.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::assess::{Status, assess};
use crate::config::{Check, Config};
use crate::metrics::Metrics;
use crate::probe::{ProbeResult, Prober};
use crate::scheduler::{Scheduler, Sink};
use crate::server::{self, AppState};

/// Where results go in the daemon: metrics, and a log line when a check changes status.
pub struct DaemonSink {
    metrics: Arc<Metrics>,
    last: Mutex<HashMap<String, Status>>,
}

impl Sink for DaemonSink {
    fn record(&self, check: &Check, result: ProbeResult) {
        let verdict = assess(&result, &check.thresholds);
        self.metrics.record(check, &result, &verdict);
        tracing::debug!(check = %check.name, success = result.success(), duration_ms = result.duration.as_secs_f64() * 1e3, "Probe finished.");
        let previous = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            last.insert(check.name.clone(), verdict.status)
        };
        if previous == Some(verdict.status) {
            return;
        }
        let why = verdict.why.as_deref().unwrap_or("");
        let reason = result
            .failure
            .as_ref()
            .map(|f| f.reason.as_str())
            .unwrap_or("");
        match verdict.status {
            Status::Ok => tracing::info!(check = %check.name, "Check is OK."),
            Status::Warn => tracing::warn!(check = %check.name, why, "Check is degraded (WARN)."),
            Status::Crit => {
                tracing::warn!(check = %check.name, reason, why, "Check is failing (CRIT).")
            }
        }
    }
}

/// Runs the daemon on an already bound listener until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(&config.location)?);
    for check in &config.checks {
        metrics.register_check(check);
    }
    let prober = Arc::new(
        Prober::new(&config.resolver, config.secrets.clone()).map_err(anyhow::Error::msg)?,
    );
    let config = Arc::new(config);
    let state = AppState {
        config: config.clone(),
        metrics: metrics.clone(),
        prober: prober.clone(),
        ready: Arc::new(AtomicBool::new(false)),
    };
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    if let Some(demo) = &config.demo {
        crate::demo::start(demo, token.clone()).await.map_err(|e| {
            anyhow::anyhow!("cannot start the demo backend on {}: {e}", demo.listen)
        })?;
    }
    let addr = listener.local_addr()?;
    let server = tokio::spawn(server::serve(
        listener,
        state.clone(),
        token.clone().cancelled_owned(),
    ));
    let scheduler = Scheduler {
        runner: prober,
        sink: Arc::new(DaemonSink {
            metrics,
            last: Mutex::new(HashMap::new()),
        }),
        metrics: state.metrics.clone(),
        max_concurrency: config.scheduler.max_concurrency,
    };
    scheduler.spawn(&config.checks, &token, &tracker);
    tracker.close();
    state.ready.store(true, Ordering::Release);
    tracing::info!(%addr, checks = config.checks.len(), modules = config.modules.len(), location = %config.location, "pathwatch is running.");

    shutdown.await;
    tracing::info!(grace_period = %humantime::format_duration(config.scheduler.grace_period), "Shutting down; letting in-flight probes finish.");
    state.ready.store(false, Ordering::Release);
    token.cancel();
    if tokio::time::timeout(config.scheduler.grace_period, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("Grace period ran out with probes still running; exiting anyway.");
    }
    match tokio::time::timeout(config.scheduler.grace_period, server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error."),
        Err(_) => tracing::warn!("HTTP server did not stop within the grace period."),
        _ => {}
    }
    tracing::info!("Stopped.");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
