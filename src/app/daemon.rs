//! `pathwatch run`: metrics, history, board, scheduler and server around the built
//! [`super::App`], until the shutdown future resolves; then in-flight probes drain under a grace
//! period.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::path::PathBuf;
use std::time::Duration;

use super::reload::Reload;
use crate::alerting::Notifier;
use crate::config::{Check, Config};
use crate::history::History;
use crate::live::{Live, Reloader};
use crate::metrics::Metrics;
use crate::probe::ProbeResult;

use crate::scheduler::{Scheduler, Sink};
use crate::server::secure::Guard;
use crate::server::{self, AppState};
use crate::verdict::{Board, CheckState, RunRecord, Transition, assess};

/// Where results go in the daemon: metrics, the board (damped state), the history, and a
/// log line when a check changes state.
pub struct DaemonSink {
    metrics: Arc<Metrics>,
    board: Arc<Board>,
    history: Arc<History>,
    notifier: Option<Arc<Notifier>>,
}

impl DaemonSink {
    pub fn new(
        metrics: Arc<Metrics>,
        board: Arc<Board>,
        history: Arc<History>,
        notifier: Option<Arc<Notifier>>,
    ) -> DaemonSink {
        DaemonSink {
            metrics,
            board,
            history,
            notifier,
        }
    }
}

impl Sink for DaemonSink {
    fn record(&self, check: &Check, mut result: ProbeResult) {
        if !self.board.is_current(check) {
            // A run that was in flight when a reload removed or replaced its check.
            tracing::debug!(check = %check.name, "Result of a replaced check dropped.");
            return;
        }
        let verdict = assess(&result, &check.thresholds);
        self.metrics.record(check, &result);
        tracing::debug!(check = %check.name, success = result.success(), duration_ms = result.duration.as_secs_f64() * 1e3, "Probe finished.");
        let seen = self.board.observe(check, RunRecord::new(&result, &verdict));
        let screenshot = result.screenshot.take();
        self.metrics.set_state(&check.name, seen.tracker.state);
        if let Some(t) = &seen.transition {
            self.metrics.transition(t);
            log_transition(t);
        }
        if let Some(n) = &self.notifier {
            n.observe(check, &seen.tracker, &seen.run);
        }
        if let Some(took) = seen.start_up {
            self.metrics.start_up(&check.name, took);
            tracing::info!(check = %check.name, took = %crate::clock::fmt_span(took), "Start-up finished.");
        }
        self.history.record(
            &check.name,
            seen.run,
            seen.tracker,
            seen.transition,
            seen.start_up,
            screenshot,
        );
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
/// that were already announced before the restart). Also returns the checks that are no
/// longer configured but were WARN or CRIT when pathwatch stopped (their alerts end).
fn resume(
    config: &Config,
    metrics: &Metrics,
) -> anyhow::Result<(Arc<History>, Arc<Board>, Vec<String>)> {
    let history = History::open(&config.history, &config.base_dir, metrics.history.clone())
        .map_err(anyhow::Error::msg)?;
    let saved = history.load().map_err(anyhow::Error::msg)?;
    let resumed = saved.len();
    let gone = saved
        .iter()
        .filter(|(name, s)| {
            config.check(name).is_none()
                && matches!(s.tracker.state, CheckState::Warn | CheckState::Crit)
        })
        .map(|(name, _)| name.clone())
        .collect();
    let marks = crate::verdict::gap_marks(&saved, &config.checks, crate::clock::now_ms());
    for t in &marks {
        if let Err(e) = history.record_transition(t) {
            tracing::warn!(check = %t.check, error = %e, "Could not write the mark of the gap to the history.");
        }
    }
    if let Some(t) = marks.first() {
        tracing::info!(checks = marks.len(), gap = %t.cause, "Checks missed runs while pathwatch was not running.");
    }
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
    Ok((Arc::new(history), Arc::new(board), gone))
}

/// Where the daemon finds its config again, how often it looks, and its web config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The config file: SIGHUP and `POST /-/reload` read it again. None: no reloads.
    pub path: Option<PathBuf>,
    /// Also reload when the file's checksum changed, checked this often.
    pub auto_interval: Option<Duration>,
    /// TLS, basic auth and headers for the listener (exporter-toolkit format); re-read
    /// when it or the files it names change.
    pub web_config: Option<PathBuf>,
    /// `--shard INDEX/COUNT`: run only the checks this shard owns.
    pub shard: Option<(usize, usize)>,
    /// Command-line settings applied again to every reloaded config.
    pub overrides: crate::config::Overrides,
}

/// How often the web config and its certificates are checked for changes.
const WEB_CONFIG_CHECK: Duration = Duration::from_secs(5);

/// Runs the daemon on an already bound listener until `shutdown` resolves (no reloads).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_with(config, RunOptions::default(), listener, shutdown).await
}

/// [`run`], reloading the config from `reload.path` on SIGHUP, `POST /-/reload` and (when
/// set) a changed checksum.
pub async fn run_with(
    config: Config,
    reload: RunOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    // First, so that a SIGHUP during start-up does not end the process.
    let hangups = match &reload.path {
        Some(_) => Some(hangup_signals()?),
        None => None,
    };
    let checksum = reload
        .path
        .as_ref()
        .and_then(|p| server::secure::checksum(std::slice::from_ref(p)));
    let guard = match &reload.web_config {
        Some(path) => Guard::load(path).map_err(anyhow::Error::msg)?,
        None => Guard::open(),
    };
    for note in &config.notes {
        tracing::warn!(%note, "Config adjusted.");
    }
    let app = super::build(config)?;
    let full = app.config.clone();
    // This instance runs the checks it owns; alone, all of them.
    let cluster = super::cluster::start(&full, reload.shard, &app.prober).await;
    let mut owned = (*full).clone();
    owned.checks = cluster.members().owned(&full.checks);
    let config = Arc::new(owned);
    let live = Arc::new(Live::new(config.clone(), app.prober.clone()));
    let metrics = Arc::new(Metrics::new(&config.location, &config.checks)?);
    metrics.cluster(cluster.members().list().len(), config.checks.len());
    let (history, board, gone) = resume(&config, &metrics)?;
    let notifier = config.alerting.as_ref().map(|alerting| {
        let n = Notifier::start(
            alerting,
            &config.location,
            config.secrets.clone(),
            app.prober.clone(),
            metrics.notifications.clone(),
            &token,
        );
        let firing: Vec<_> = board
            .snapshot()
            .into_iter()
            .map(|(check, entry)| (check, entry.tracker, entry.last))
            .collect();
        n.resume(&firing, &gone);
        tracing::info!(
            alertmanagers = alerting.urls.len(),
            "Alerts go to Alertmanager directly."
        );
        n
    });
    let (reloader, requests) = match reload.path {
        Some(_) => {
            let (r, q) = Reloader::channel();
            (Some(r), Some(q))
        }
        None => (None, None),
    };
    let state = AppState {
        live: live.clone(),
        metrics: metrics.clone(),
        reloader: reloader.clone(),
        guard: guard.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        board: board.clone(),
        history: history.clone(),
        cluster: cluster.clone(),
    };
    let tracker = TaskTracker::new();
    app.start_demo(&token, Some(&guard)).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(server::serve(
        listener,
        state.clone(),
        token.clone().cancelled_owned(),
    ));
    tokio::spawn(guard.watch(WEB_CONFIG_CHECK, token.clone()));
    let scheduler = Scheduler {
        runner: live.clone(),
        sink: Arc::new(DaemonSink::new(
            metrics.clone(),
            board.clone(),
            history.clone(),
            notifier.clone(),
        )),
        metrics: metrics.clone(),
        max_concurrency: config.scheduler.max_concurrency,
    };
    let running = scheduler.spawn(&config.checks, &token, &tracker);
    let reload_state = Arc::new(Reload {
        path: reload.path.clone(),
        overrides: reload.overrides.clone(),
        full: std::sync::Mutex::new(full.clone()),
        cluster: cluster.clone(),
        applying: std::sync::Mutex::new(()),
        live: live.clone(),
        metrics,
        board,
        history: history.clone(),
        notifier,
        running,
        pki: app.demo_pki().cloned(),
        checksum: std::sync::Mutex::new(checksum),
    });
    if let Some(c) = &full.cluster
        && reload.shard.is_none()
        && let Ok(crate::config::PeerSource::Dns { name, port }) = c.source()
    {
        tokio::spawn(super::cluster::refresh(
            cluster.clone(),
            reload_state.clone(),
            name,
            port,
            c.refresh(),
            token.clone(),
        ));
    }
    if let (Some(reloader), Some(requests)) = (reloader, requests) {
        reload_state.clone().serve(requests, token.clone())?;
        if let Some(every) = reload.auto_interval {
            tokio::spawn(
                reload_state
                    .clone()
                    .watch(every, reloader.clone(), token.clone()),
            );
        }
        if let Some(hangups) = hangups {
            tokio::spawn(on_hangup(hangups, reloader, token.clone()));
        }
    }
    tracker.close();
    state.ready.store(true, Ordering::Release);
    tracing::info!(%addr, checks = config.checks.len(), modules = config.modules.len(), location = %config.location, "pathwatch is running.");

    shutdown.await;
    let grace = live.config().scheduler.grace_period;
    tracing::info!(grace_period = %humantime::format_duration(grace), "Shutting down; letting in-flight probes finish.");
    state.ready.store(false, Ordering::Release);
    token.cancel();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("Grace period ran out with probes still running; exiting anyway.");
    }
    // No Chromium outlives the daemon (a browser check's runs are over or cut by now).
    live.prober().close_browsers().await;
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server stopped with an error."),
        Err(_) => tracing::warn!("HTTP server did not stop within the grace period."),
        _ => {}
    }
    // Everything recorded before the end is committed before the process exits.
    history.flush();
    tracing::info!("Stopped.");
    Ok(())
}

#[cfg(unix)]
type Hangups = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangups = ();

/// SIGHUP, listened to (its default action would end the process).
fn hangup_signals() -> std::io::Result<Hangups> {
    #[cfg(unix)]
    {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    }
    #[cfg(not(unix))]
    {
        Ok(())
    }
}

async fn on_hangup(mut hangups: Hangups, reloader: Reloader, stop: CancellationToken) {
    #[cfg(unix)]
    loop {
        tokio::select! {
            _ = hangups.recv() => {
                tracing::info!("SIGHUP: reloading the config.");
                reloader.request();
            }
            _ = stop.cancelled() => return,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (hangups, reloader, stop);
    }
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
