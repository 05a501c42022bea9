//! `pathwatch run`: metrics, history, board, scheduler and server around the built
//! [`super::App`], until the shutdown future resolves; then in-flight probes drain under a grace
//! period.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Check, Config};
use crate::history::History;
use crate::metrics::Metrics;
use crate::probe::ProbeResult;

use crate::scheduler::{Scheduler, Sink};
use crate::server::{self, AppState};
use crate::verdict::{Board, CheckState, RunRecord, Transition, assess};

/// Where results go in the daemon: metrics, the board (damped state), the history, and a
/// log line when a check changes state.
pub struct DaemonSink {
    metrics: Arc<Metrics>,
    board: Arc<Board>,
    history: Arc<History>,
}

impl DaemonSink {
    pub fn new(metrics: Arc<Metrics>, board: Arc<Board>, history: Arc<History>) -> DaemonSink {
        DaemonSink {
            metrics,
            board,
            history,
        }
    }
}

impl Sink for DaemonSink {
    fn record(&self, check: &Check, result: ProbeResult) {
        let verdict = assess(&result, &check.thresholds);
        self.metrics.record(check, &result);
        tracing::debug!(check = %check.name, success = result.success(), duration_ms = result.duration.as_secs_f64() * 1e3, "Probe finished.");
        let run = RunRecord::new(&result, &verdict);
        let (tracker, transition) = self.board.observe(check, &run);
        self.metrics.set_state(&check.name, tracker.state);
        if let Some(t) = &transition {
            self.metrics.transition(t);
            log_transition(t);
        }
        self.history.record(&check.name, run, tracker, transition);
    }
}

fn log_transition(t: &Transition) {
    let (check, from, cause) = (&t.check, t.from.as_str(), &t.cause);
    match t.to {
        CheckState::Ok => tracing::info!(%check, from, %cause, "Check is OK."),
        CheckState::Warn => tracing::warn!(%check, from, %cause, "Check is degraded (WARN)."),
        CheckState::Crit => tracing::warn!(%check, from, %cause, "Check is failing (CRIT)."),
        CheckState::Unknown => {}
    }
}

/// Opens the history and resumes every check's state from it (without announcing states
/// that were already announced before the restart).
fn resume(config: &Config, metrics: &Metrics) -> anyhow::Result<(Arc<History>, Arc<Board>)> {
    let history = History::open(&config.history, &config.base_dir, metrics.history.clone())
        .map_err(anyhow::Error::msg)?;
    let saved = history.load().map_err(anyhow::Error::msg)?;
    let resumed = saved.len();
    let board = Board::new(&config.checks, saved);
    for (check, entry) in board.snapshot() {
        metrics.set_state(&check.name, entry.tracker.state);
        if let Ok(runs) = history.runs(&check.name, 0, crate::verdict::SPARK) {
            board.seed_recent(
                &check.name,
                runs.iter()
                    .rev()
                    .map(|r| (r.at_ms, r.duration_seconds, r.success)),
            );
        }
    }
    if resumed > 0 {
        tracing::info!(checks = resumed, "Resumed check states from the history.");
    }
    Ok((Arc::new(history), Arc::new(board)))
}

/// Runs the daemon on an already bound listener until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let app = super::build(config)?;
    let (config, prober) = (app.config.clone(), app.prober.clone());
    let metrics = Arc::new(Metrics::new(&config.location, &config.checks)?);
    let (history, board) = resume(&config, &metrics)?;
    let state = AppState {
        config: config.clone(),
        metrics: metrics.clone(),
        prober: prober.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        board: board.clone(),
        history: history.clone(),
    };
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    app.start_demo(&token).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(server::serve(
        listener,
        state.clone(),
        token.clone().cancelled_owned(),
    ));
    let scheduler = Scheduler {
        runner: prober,
        sink: Arc::new(DaemonSink::new(metrics, board, history.clone())),
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
    // Everything recorded before the end is committed before the process exits.
    history.flush();
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
