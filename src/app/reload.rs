//! Config reload: the file read again on `POST /-/reload`, SIGHUP or a changed checksum,
//! one reload at a time. A bad file changes nothing (every error is logged and answered);
//! a good one is applied keyed by check name: unchanged checks are untouched (schedule,
//! in-flight run, state, series), changed ones restart at their next slot keeping state
//! and history, a changed type or target starts over at UNKNOWN, removed checks stop and
//! leave `/metrics`, added ones join the usual spread. Settings that need a restart keep
//! their running values and are logged as such.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::DaemonSink;
use crate::clock;
use crate::config::Config;
use crate::demo::DemoPki;
use crate::history::History;
use crate::live::{Live, ReloadOutcome, Reloader};
use crate::metrics::Metrics;
use crate::probe::Prober;
use crate::scheduler::Running;
use crate::server::secure::checksum;
use crate::verdict::Board;

pub(super) struct Reload {
    /// The config file; None: no reloads, only cluster membership changes.
    pub path: Option<PathBuf>,
    pub overrides: crate::config::Overrides,
    /// The whole deployment's config as last loaded (this instance runs the checks it owns).
    pub full: Mutex<Arc<Config>>,
    pub cluster: Arc<crate::cluster::State>,
    /// One change applied at a time (a reload, or a membership change).
    pub applying: Mutex<()>,
    pub live: Arc<Live>,
    pub metrics: Arc<Metrics>,
    pub board: Arc<Board>,
    pub history: Arc<History>,
    pub notifier: Option<Arc<crate::alerting::Notifier>>,
    pub running: Running<Live, DaemonSink>,
    pub pki: Option<Arc<DemoPki>>,
    /// Checksum of the file as last read (by start-up or a reload attempt).
    pub checksum: Mutex<Option<u64>>,
}

impl Reload {
    /// Serves reload requests one at a time until `stop`.
    /// Serves reload requests one at a time, on a thread of their own, until `stop`.
    ///
    /// One thread, not the blocking pool: parsing 10,000 checks leaves ~25 MB of garbage,
    /// and the allocator keeps an arena per thread that allocates; on a different pool
    /// thread each time, every reload grew RSS by that much again.
    pub fn serve(
        self: Arc<Self>,
        mut requests: mpsc::Receiver<oneshot::Sender<ReloadOutcome>>,
        stop: CancellationToken,
    ) -> std::io::Result<()> {
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("config-reload".into())
            .spawn(move || {
                // Applying a reload starts check tasks on the runtime.
                let _enter = runtime.enter();
                while let Some(reply) = requests.blocking_recv() {
                    if stop.is_cancelled() {
                        return;
                    }
                    let _ = reply.send(self.once());
                }
            })
            .map(|_| ())
    }

    /// Asks for a reload whenever the file's checksum differs from the last one read.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        reloader: Reloader,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let Some(path) = &self.path else { return };
            let now = checksum(std::slice::from_ref(path));
            let last = *self.checksum.lock().unwrap_or_else(|p| p.into_inner());
            if now.is_some() && now != last {
                tracing::info!(path = %path.display(), "Config file changed; reloading.");
                reloader.request();
            }
        }
    }

    fn once(&self) -> ReloadOutcome {
        let Some(path) = &self.path else {
            return Err(vec!["this daemon runs without a config file".into()]);
        };
        *self.checksum.lock().unwrap_or_else(|p| p.into_inner()) =
            checksum(std::slice::from_ref(path));
        let new = match Config::load(path) {
            Ok(mut c) => {
                self.overrides.apply(&mut c);
                c
            }
            Err(errors) => {
                let messages: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                for e in &messages {
                    tracing::error!(error = %e, "Config reload failed; the previous config keeps running.");
                }
                return Err(self.failed(messages));
            }
        };
        let _one = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let old_full = self.full.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (mut new, restart) = keep_restart_settings(new, &old_full);
        if let Some(pki) = &self.pki {
            super::resolve_demo_trust(&mut new, pki);
        }
        self.cluster.set_checks(&new.checks);
        *self.full.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(new.clone());
        let c = self.apply(new)?;
        self.metrics.reloaded(true);
        for setting in &restart {
            tracing::warn!(%setting, "This change needs a restart; the running value stays until then.");
        }
        tracing::info!(
            added = c.added,
            changed = c.changed,
            removed = c.removed,
            unchanged = c.unchanged,
            "Config reloaded."
        );
        let mut summary = format!(
            "Config reloaded: {} added, {} changed, {} removed, {} unchanged.",
            c.added, c.changed, c.removed, c.unchanged
        );
        for setting in restart {
            summary.push_str(&format!("\nNeeds a restart (not applied): {setting}."));
        }
        Ok(summary)
    }

    /// The cluster's members changed: the checks this instance owns now run, the others
    /// stop after their in-flight run, exactly as a reload adds and removes them.
    pub fn members_changed(&self) {
        let _one = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let full = (**self.full.lock().unwrap_or_else(|p| p.into_inner())).clone();
        match self.apply(full) {
            Ok(c) => tracing::info!(
                owned = c.added + c.changed + c.unchanged,
                added = c.added,
                removed = c.removed,
                "Checks handed over."
            ),
            Err(e) => tracing::error!(error = ?e, "Cannot apply the new cluster members."),
        }
    }

    /// Runs `new` (the whole deployment's config): the checks this instance owns, keyed by
    /// name against what runs now.
    fn apply(&self, mut new: Config) -> Result<crate::scheduler::Changes, Vec<String>> {
        let old = self.live.config();
        let members = self.cluster.members();
        new.checks = members.owned(&new.checks);
        let mut resets: Vec<(String, String)> = Vec::new();
        let old_checks: std::collections::HashMap<&str, &Arc<crate::config::Check>> =
            old.checks.iter().map(|c| (c.name.as_str(), c)).collect();
        new.checks = new
            .checks
            .into_iter()
            .map(|c| match old_checks.get(c.name.as_str()).copied() {
                Some(o) if o.same_settings(&c) => o.clone(),
                Some(o) => {
                    resets.extend(o.identity_change(&c).map(|why| (c.name.clone(), why)));
                    c
                }
                None => c,
            })
            .collect();
        let prober = if new.resolver != old.resolver
            || new.secrets != old.secrets
            || new.browser != old.browser
        {
            match Prober::new(&new.resolver, new.secrets.clone()) {
                Ok(p) => Some(Arc::new(p.with_browser(new.browser.clone()))),
                Err(e) => return Err(self.failed(vec![e])),
            }
        } else {
            None
        };
        let reset_names: Vec<String> = resets.iter().map(|(n, _)| n.clone()).collect();
        self.metrics
            .reconcile(&new.location, &new.checks, &reset_names);
        for (tracker, transition) in self.board.reconcile(&new.checks, &resets, clock::now_ms()) {
            let Some(t) = transition.as_ref() else {
                continue;
            };
            self.metrics.transition(t);
            tracing::info!(check = %t.check, from = t.from.as_str(), cause = %t.cause, "Check starts over (UNKNOWN).");
            if let Err(e) = self
                .history
                .record_reset(&t.check, &tracker, transition.as_ref())
            {
                tracing::warn!(check = %t.check, error = %e, "Cannot store the reset in the history.");
            }
        }
        if let Some(n) = &self.notifier {
            n.reconcile(&new.checks, &reset_names);
        }
        let config = Arc::new(new);
        self.live.swap(config.clone(), prober);
        self.metrics
            .cluster(members.list().len(), config.checks.len());
        Ok(self.running.update(&config.checks))
    }

    fn failed(&self, messages: Vec<String>) -> Vec<String> {
        self.metrics.reloaded(false);
        self.live.failed(messages.clone());
        messages
    }
}

/// Settings a running daemon cannot change keep their running values; each one the file
/// changed is named.
fn keep_restart_settings(mut new: Config, old: &Config) -> (Config, Vec<String>) {
    let mut restart = Vec::new();
    if new.server.listen != old.server.listen {
        restart.push(format!(
            "server.listen {} -> {}",
            old.server.listen, new.server.listen
        ));
        new.server = old.server.clone();
    }
    if format!("{:?}", new.history) != format!("{:?}", old.history) {
        restart.push("history".to_string());
        new.history = old.history.clone();
    }
    if format!("{:?}", new.demo) != format!("{:?}", old.demo) {
        restart.push("demo".to_string());
        new.demo = old.demo.clone();
    }
    if format!("{:?}", new.alerting) != format!("{:?}", old.alerting) {
        restart.push("alerting".to_string());
        new.alerting = old.alerting.clone();
    }
    if new.cluster != old.cluster {
        restart.push("cluster".to_string());
        new.cluster = old.cluster.clone();
    }
    if new.scheduler.max_concurrency != old.scheduler.max_concurrency {
        restart.push(format!(
            "scheduler.max_concurrency {} -> {}",
            old.scheduler.max_concurrency, new.scheduler.max_concurrency
        ));
        new.scheduler.max_concurrency = old.scheduler.max_concurrency;
    }
    (new, restart)
}
