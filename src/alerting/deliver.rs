//! Delivery to one Alertmanager: a bounded outbox of the latest version of each alert
//! (a newer version replaces a queued one, so a backlog never sends stale states), drained
//! by one task that posts to `/api/v2/alerts` with the shared HTTP client of the probes
//! (TLS verification, client certificates), retries with backoff while the Alertmanager is
//! unreachable or answers 5xx, and counts what was delivered, failed or dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use data_encoding::BASE64;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{Alert, NotifyCounters};
use crate::config::{AlertingConfig, TlsVerify};
use crate::probe::request::{Call, call};
use crate::probe::timing::Timeline;
use crate::probe::{Phase, Prober};
use crate::secrets::display_url;

/// Most alerts waiting for one Alertmanager; beyond, new alerts are dropped and counted.
const CAPACITY: usize = 10_000;
/// Most alerts per request.
const CHUNK: usize = 500;
/// Longest pause between tries while an Alertmanager is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct Outbox {
    /// `<base>/api/v2/alerts`.
    url: Url,
    /// The base URL as logged and labelled (no credentials).
    name: String,
    headers: BTreeMap<String, String>,
    tls: TlsVerify,
    timeout: Duration,
    pending: Mutex<BTreeMap<String, Alert>>,
    wake: Notify,
    counters: NotifyCounters,
}

/// What one delivery came to.
enum Outcome {
    Delivered,
    /// Worth trying again (unreachable, 5xx, 429): why.
    Retry(String),
    /// Refused for good (4xx: the alerts themselves are wrong): why.
    Refused(String),
}

impl Outbox {
    pub fn new(base: &Url, config: &AlertingConfig, counters: NotifyCounters) -> Arc<Outbox> {
        let mut url = base.clone();
        let path = format!("{}/api/v2/alerts", base.path().trim_end_matches('/'));
        url.set_path(&path);
        let basic = |user: &str, password: &str| {
            let pair = format!("{user}:{password}");
            format!("Basic {}", BASE64.encode(pair.as_bytes()))
        };
        let authorization = match (&config.basic_auth, &config.bearer_token) {
            (Some(auth), _) => Some(basic(&auth.username, &auth.password)),
            (None, Some(token)) => Some(format!("Bearer {token}")),
            // Credentials in the URL, as in `http://user:pass@am:9093`.
            (None, None) => (!base.username().is_empty())
                .then(|| basic(base.username(), base.password().unwrap_or(""))),
        };
        let headers = authorization
            .map(|a| BTreeMap::from([("Authorization".to_string(), a)]))
            .unwrap_or_default();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Arc::new(Outbox {
            name: display_url(base),
            url,
            headers,
            tls: config.tls.clone(),
            timeout: config.timeout,
            pending: Mutex::default(),
            wake: Notify::new(),
            counters,
        })
    }

    fn pending(&self) -> MutexGuard<'_, BTreeMap<String, Alert>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `alerts`, each replacing its queued older version. Never blocks.
    pub fn push(&self, alerts: &[Alert]) {
        let mut pending = self.pending();
        let mut dropped = 0;
        for a in alerts {
            let key = a.key();
            if pending.len() >= CAPACITY && !pending.contains_key(&key) {
                dropped += 1;
                continue;
            }
            pending.insert(key, a.clone());
        }
        drop(pending);
        if dropped > 0 {
            self.counters.dropped.inc_by(dropped);
            tracing::warn!(alertmanager = %self.name, dropped, "Alertmanager queue is full; alerts dropped.");
        }
        self.wake.notify_one();
    }

    /// Delivers what is queued until `stop`: in chunks, again after a growing pause while
    /// the Alertmanager fails.
    pub async fn deliver(self: Arc<Self>, prober: Arc<Prober>, stop: CancellationToken) {
        let mut backoff = Duration::ZERO;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified(), if backoff.is_zero() => {}
                _ = tokio::time::sleep(backoff), if !backoff.is_zero() => {}
            }
            let batch: Vec<(String, Alert)> =
                std::mem::take(&mut *self.pending()).into_iter().collect();
            let mut failed: Vec<(String, Alert)> = Vec::new();
            let mut why = None;
            for chunk in batch.chunks(CHUNK) {
                if why.is_some() {
                    failed.extend_from_slice(chunk);
                    continue;
                }
                let n = chunk.len() as u64;
                match self.post(&prober, chunk).await {
                    Outcome::Delivered => self.count("success", n),
                    Outcome::Refused(e) => {
                        self.count("failure", n);
                        tracing::error!(alertmanager = %self.name, error = %e, alerts = n, "Alertmanager refused alerts; they are not sent again.");
                    }
                    Outcome::Retry(e) => {
                        self.count("failure", n);
                        failed.extend_from_slice(chunk);
                        why = Some(e);
                    }
                }
            }
            match why {
                None => {
                    if failing {
                        tracing::info!(alertmanager = %self.name, "Alertmanager reachable again; alerts delivered.");
                    }
                    failing = false;
                    backoff = Duration::ZERO;
                }
                Some(e) => {
                    // Put back what failed, unless a newer version came meanwhile.
                    let mut pending = self.pending();
                    for (key, alert) in failed {
                        if pending.len() < CAPACITY {
                            pending.entry(key).or_insert(alert);
                        } else {
                            self.counters.dropped.inc();
                        }
                    }
                    drop(pending);
                    backoff = (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF);
                    if !failing {
                        tracing::warn!(alertmanager = %self.name, error = %e, "Cannot deliver alerts to Alertmanager; trying again with backoff.");
                    }
                    failing = true;
                }
            }
        }
    }

    fn count(&self, result: &str, n: u64) {
        self.counters
            .sent
            .with_label_values(&[self.name.as_str(), result])
            .inc_by(n);
    }

    async fn post(&self, prober: &Prober, chunk: &[(String, Alert)]) -> Outcome {
        let body = Value::Array(
            chunk
                .iter()
                .map(|(_, a)| serde_json::to_value(a).unwrap_or_default())
                .collect(),
        );
        let mut tl = Timeline::new(self.timeout);
        let req = Call {
            url: &self.url,
            method: "POST",
            headers: self.headers.clone(),
            json_body: Some(&body),
            form: None,
            tls: &self.tls,
        };
        let answer =
            tokio::time::timeout(self.timeout, call(prober, &mut tl, Phase::Processing, req)).await;
        match answer {
            Err(_) => Outcome::Retry(format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            )),
            Ok(Err(f)) => Outcome::Retry(f.message),
            Ok(Ok((status, _))) if status.is_success() => Outcome::Delivered,
            Ok(Ok((status, body))) => {
                let text = crate::probe::expect::excerpt(&body);
                let why = format!("HTTP {status}: {text}");
                if status.is_server_error() || status.as_u16() == 429 {
                    Outcome::Retry(why)
                } else {
                    Outcome::Refused(why)
                }
            }
        }
    }
}
