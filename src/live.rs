//! What the daemon runs now: the config and the prober, swapped whole by a reload (readers
//! take an `Arc` and never hold a lock across an await), the outcome of the last reload,
//! and the handle that asks the daemon to reload (reloads are serialized by its one
//! consumer).

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::config::{Check, Config};
use crate::probe::{ProbeResult, Prober};
use crate::scheduler::Runner;

pub struct Live {
    config: RwLock<Arc<Config>>,
    prober: RwLock<Arc<Prober>>,
    status: Mutex<ReloadStatus>,
}

/// The last reload: when the running config was loaded, and whether a later attempt failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// Unix ms when the running config was loaded.
    pub loaded_ms: i64,
    /// Unix ms of the last failed attempt, when it came after the last success.
    pub failed_ms: Option<i64>,
    /// What was wrong with the file then (`file:line:col: path: message`).
    pub errors: Vec<String>,
}

impl Live {
    pub fn new(config: Arc<Config>, prober: Arc<Prober>) -> Live {
        Live {
            config: RwLock::new(config),
            prober: RwLock::new(prober),
            status: Mutex::new(ReloadStatus {
                loaded_ms: clock::now_ms(),
                ..ReloadStatus::default()
            }),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn prober(&self) -> Arc<Prober> {
        self.prober
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A reload succeeded: the next probe and request see `config` (and `prober`, when it
    /// had to be rebuilt).
    pub fn swap(&self, config: Arc<Config>, prober: Option<Arc<Prober>>) {
        if let Some(p) = prober {
            *self.prober.write().unwrap_or_else(PoisonError::into_inner) = p;
        }
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = ReloadStatus {
            loaded_ms: clock::now_ms(),
            ..ReloadStatus::default()
        };
    }

    /// A reload failed; the old config runs on.
    pub fn failed(&self, errors: Vec<String>) {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        status.failed_ms = Some(clock::now_ms());
        status.errors = errors;
    }

    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Probes run with the prober of the moment.
impl Runner for Live {
    async fn run(&self, check: &Check) -> ProbeResult {
        let prober = self.prober();
        prober.run(&check.target, &check.spec, check.timeout).await
    }
}

/// A reload's answer: a summary of what changed, or every error of the file.
pub type ReloadOutcome = Result<String, Vec<String>>;

/// Asks the daemon to reload its config file.
#[derive(Clone)]
pub struct Reloader(mpsc::Sender<oneshot::Sender<ReloadOutcome>>);

impl Reloader {
    /// The handle and the queue the daemon serves reloads from, one at a time.
    pub fn channel() -> (Reloader, mpsc::Receiver<oneshot::Sender<ReloadOutcome>>) {
        let (tx, rx) = mpsc::channel(4);
        (Reloader(tx), rx)
    }

    /// Reloads and waits for the outcome (`POST /-/reload`).
    pub async fn reload(&self) -> ReloadOutcome {
        let (tx, rx) = oneshot::channel();
        if self.0.send(tx).await.is_err() {
            return Err(vec!["the daemon is shutting down".into()]);
        }
        rx.await
            .unwrap_or_else(|_| Err(vec!["the daemon is shutting down".into()]))
    }

    /// Asks for a reload without waiting (SIGHUP, a changed file). When reloads are already
    /// queued, this one is folded into them: they read the file anew anyway.
    pub fn request(&self) {
        let (tx, _) = oneshot::channel();
        let _ = self.0.try_send(tx);
    }
}
