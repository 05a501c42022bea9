//! Paging without Prometheus: a check that turns CRIT (severity `page`) or WARN (`ticket`)
//! becomes an alert posted to every configured Alertmanager's v2 API, under the alert names
//! of the generated rules; firing alerts are sent again every `resend`, a recovered check
//! sends its alert's end. Runs only feed an in-memory book (a lock and a few string
//! copies): delivery happens on its own tasks ([`deliver`]), so an Alertmanager that is down
//! never slows a probe.
//!
//! Across a restart: the states resumed from the history are the alerts that were firing.
//! Each is sent again once the first run after the start confirms it (Alertmanager knows it
//! and does not page twice); one whose check recovered while pathwatch was down ends as soon
//! as the check is OK again, and one whose check left the config ends at start.

pub mod deliver;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus::{IntCounter, IntCounterVec};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{now_ms, rfc3339_ms};
use crate::config::{AlertingConfig, Check, Spec};
use crate::probe::Prober;
use crate::secrets::Secrets;
use crate::verdict::{CheckState, RunRecord, Status, Tracker};
use deliver::Outbox;

/// Counters the notifier reports into (registered with the metrics).
#[derive(Clone)]
pub struct NotifyCounters {
    /// Alerts delivered or not, by `alertmanager` and `result` (success, failure).
    pub sent: IntCounterVec,
    /// Alerts dropped because an Alertmanager's queue was full.
    pub dropped: IntCounter,
}

/// How long an ended alert is still sent (with its end), so that an Alertmanager that was
/// down when it ended learns it (Prometheus does the same for 15 minutes).
const KEEP_ENDED: Duration = Duration::from_secs(15 * 60);

/// One alert as Alertmanager's `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    pub generator_url: String,
}

impl Alert {
    /// What Alertmanager tells alerts apart by: the name and the labels.
    pub fn key(&self) -> String {
        serde_json::to_string(&self.labels).unwrap_or_default()
    }
}

/// The alert of a check now: its labels are fixed when it starts firing (the identity
/// Alertmanager deduplicates on); its annotations follow the latest run.
struct Firing {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    link: String,
    starts_ms: i64,
    /// CRIT or WARN: the run verdict that confirms it.
    level: Status,
    /// False for an alert resumed after a restart until a run confirms it.
    confirmed: bool,
    /// Changed since it was last handed to the outboxes.
    dirty: bool,
}

struct Ended {
    alert: Alert,
    ended_ms: i64,
    dirty: bool,
}

#[derive(Default)]
struct Book {
    firing: HashMap<String, Firing>,
    ended: Vec<Ended>,
}

/// What every alert of this instance carries.
struct Settings {
    location: String,
    labels: BTreeMap<String, String>,
    external_url: Option<String>,
    resend: Duration,
    secrets: Secrets,
}

pub struct Notifier {
    settings: Settings,
    book: Mutex<Book>,
    wake: Notify,
    outboxes: Vec<Arc<Outbox>>,
}

/// The alert name and severity of a check in `state`, as the generated rules name them.
fn wanted(check: &Check, state: CheckState) -> Option<(&'static str, &'static str, Status)> {
    match state {
        CheckState::Crit if matches!(check.spec, Spec::Agent(_)) => {
            Some(("PathwatchGoldenPathFailing", "page", Status::Crit))
        }
        CheckState::Crit => Some(("PathwatchCheckCritical", "page", Status::Crit)),
        CheckState::Warn => Some(("PathwatchCheckDegraded", "ticket", Status::Warn)),
        CheckState::Ok | CheckState::Unknown => None,
    }
}

impl Notifier {
    /// A notifier for `config`, delivering on tasks of its own until `stop`.
    pub fn start(
        config: &AlertingConfig,
        location: &str,
        secrets: Secrets,
        prober: Arc<Prober>,
        counters: NotifyCounters,
        stop: &CancellationToken,
    ) -> Arc<Notifier> {
        let notifier = Arc::new(Notifier::new(config, location, secrets, counters));
        for outbox in &notifier.outboxes {
            tokio::spawn(outbox.clone().deliver(prober.clone(), stop.clone()));
        }
        tokio::spawn(notifier.clone().dispatch(stop.clone()));
        notifier
    }

    fn new(
        config: &AlertingConfig,
        location: &str,
        secrets: Secrets,
        counters: NotifyCounters,
    ) -> Notifier {
        Notifier {
            settings: Settings {
                location: location.to_string(),
                labels: config.labels.clone(),
                external_url: config
                    .external_url
                    .as_ref()
                    .map(|u| u.trim_end_matches('/').to_string()),
                resend: config.resend,
                secrets,
            },
            book: Mutex::default(),
            wake: Notify::new(),
            outboxes: config
                .urls
                .iter()
                .map(|url| Outbox::new(url, config, counters.clone()))
                .collect(),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The alerts that were firing when pathwatch stopped: the resumed states of `checks`
    /// (sent again once a run confirms them), and those of checks no longer configured
    /// (`gone`: ended now).
    pub fn resume(&self, checks: &[(Arc<Check>, Tracker, Option<RunRecord>)], gone: &[String]) {
        let now = now_ms();
        let mut book = self.book();
        for (check, tracker, last) in checks {
            if let Some(mut f) = self.firing(check, tracker, last.as_ref()) {
                f.confirmed = false;
                book.firing.insert(check.name.clone(), f);
            }
        }
        for name in gone {
            // The type of a check that is gone is unknown: end every alert it could have.
            for (alertname, severity) in [
                ("PathwatchGoldenPathFailing", "page"),
                ("PathwatchCheckCritical", "page"),
                ("PathwatchCheckDegraded", "ticket"),
            ] {
                let mut labels = self.labels(alertname, name, severity, None);
                labels.remove("reason");
                let alert = Alert {
                    labels,
                    annotations: BTreeMap::from([(
                        "summary".to_string(),
                        format!("{name} is no longer configured"),
                    )]),
                    starts_at: rfc3339_ms(now),
                    ends_at: rfc3339_ms(now),
                    generator_url: String::new(),
                };
                book.ended.push(Ended {
                    alert,
                    ended_ms: now,
                    dirty: true,
                });
            }
        }
        drop(book);
        self.wake.notify_one();
    }

    /// After a run of `check`: its state (`tracker`) decides its alert.
    pub fn observe(&self, check: &Check, tracker: &Tracker, run: &RunRecord) {
        let want = wanted(check, tracker.state);
        let mut book = self.book();
        let changed = match (book.firing.get_mut(&check.name), want) {
            (Some(f), Some((alertname, _, _))) if f.labels["alertname"] == alertname => {
                f.annotations = self.annotations(check, tracker, run);
                if !f.confirmed && run.status >= f.level {
                    f.confirmed = true;
                    f.dirty = true;
                    true
                } else {
                    false
                }
            }
            (None, None) => false,
            _ => {
                self.end(&mut book, &check.name);
                if let Some(f) = self.firing(check, tracker, Some(run)) {
                    // A new episode of an alert that ended: it fires again, it does not
                    // also end (the same labels are the same alert to Alertmanager).
                    book.ended.retain(|e| e.alert.labels != f.labels);
                    book.firing.insert(check.name.clone(), f);
                }
                true
            }
        };
        drop(book);
        if changed {
            self.wake.notify_one();
        }
    }

    /// A reload: alerts of checks that are gone, or that start over (`reset`), end.
    pub fn reconcile(&self, checks: &[Arc<Check>], reset: &[String]) {
        let mut book = self.book();
        let names: Vec<String> = book
            .firing
            .keys()
            .filter(|n| reset.contains(n) || !checks.iter().any(|c| &c.name == *n))
            .cloned()
            .collect();
        for name in &names {
            self.end(&mut book, name);
        }
        drop(book);
        if !names.is_empty() {
            self.wake.notify_one();
        }
    }

    fn end(&self, book: &mut Book, check: &str) {
        let Some(f) = book.firing.remove(check) else {
            return;
        };
        let now = now_ms();
        let alert = Alert {
            labels: f.labels,
            annotations: f.annotations,
            starts_at: rfc3339_ms(f.starts_ms),
            ends_at: rfc3339_ms(now),
            generator_url: f.link,
        };
        book.ended.push(Ended {
            alert,
            ended_ms: now,
            dirty: true,
        });
    }

    fn labels(
        &self,
        alertname: &str,
        check: &str,
        severity: &str,
        reason: Option<&str>,
    ) -> BTreeMap<String, String> {
        let mut labels = self.settings.labels.clone();
        for (k, v) in [
            ("alertname", alertname),
            ("check", check),
            ("location", &self.settings.location),
            ("severity", severity),
            ("reason", reason.unwrap_or("threshold")),
        ] {
            labels.insert(k.to_string(), v.to_string());
        }
        labels
    }

    fn firing(&self, check: &Check, tracker: &Tracker, run: Option<&RunRecord>) -> Option<Firing> {
        let (alertname, severity, level) = wanted(check, tracker.state)?;
        let reason = tracker.reason.as_deref();
        Some(Firing {
            labels: self.labels(alertname, &check.name, severity, reason),
            annotations: run
                .map(|r| self.annotations(check, tracker, r))
                .unwrap_or_default(),
            link: self.link(&check.name),
            starts_ms: tracker.since_ms.max(1),
            level,
            confirmed: true,
            dirty: true,
        })
    }

    fn link(&self, check: &str) -> String {
        self.settings
            .external_url
            .as_ref()
            .map(|base| format!("{base}/checks/{check}"))
            .unwrap_or_default()
    }

    /// `summary` as the generated rules word it, `description` the state's cause (which
    /// ends with the latest run's diagnosis), `status_page` the check's page.
    fn annotations(
        &self,
        check: &Check,
        tracker: &Tracker,
        run: &RunRecord,
    ) -> BTreeMap<String, String> {
        let (name, location) = (&check.name, &self.settings.location);
        let summary = match wanted(check, tracker.state) {
            Some(("PathwatchGoldenPathFailing", ..)) => {
                format!("Golden path {name} is failing in {location}")
            }
            Some((_, "page", _)) => format!("{name} is CRIT in {location}"),
            _ => format!("{name} is degraded (WARN) in {location}"),
        };
        let mut description = format!(
            "{} since {}: {}",
            tracker.state.as_str().to_uppercase(),
            rfc3339_ms(tracker.since_ms),
            tracker.cause
        );
        if let Some(why) = &run.why
            && !tracker.cause.ends_with(why.as_str())
        {
            description.push_str(&format!(". Latest run: {why}"));
        }
        description.push_str(&format!(
            ". Target: {}",
            self.settings.secrets.redact(&check.target.display())
        ));
        let mut a = BTreeMap::from([
            ("summary".to_string(), summary),
            (
                "description".to_string(),
                self.settings.secrets.redact(&description),
            ),
        ]);
        let link = self.link(name);
        if !link.is_empty() {
            a.insert("status_page".to_string(), link);
        }
        a
    }

    /// The alerts to hand to the outboxes: the changed ones, or all of them on a resend.
    fn collect(&self, all: bool) -> Vec<Alert> {
        let now = now_ms();
        let ends = rfc3339_ms(now + 4 * self.settings.resend.as_millis() as i64);
        let mut book = self.book();
        let mut out = Vec::new();
        for f in book.firing.values_mut() {
            if f.confirmed && (all || f.dirty) {
                f.dirty = false;
                out.push(Alert {
                    labels: f.labels.clone(),
                    annotations: f.annotations.clone(),
                    starts_at: rfc3339_ms(f.starts_ms),
                    ends_at: ends.clone(),
                    generator_url: f.link.clone(),
                });
            }
        }
        let keep = KEEP_ENDED.as_millis() as i64;
        book.ended.retain(|e| now - e.ended_ms < keep);
        for e in &mut book.ended {
            if all || e.dirty {
                e.dirty = false;
                out.push(e.alert.clone());
            }
        }
        out
    }

    /// Hands changed alerts to the outboxes when woken, and every alert each `resend`.
    async fn dispatch(self: Arc<Self>, stop: CancellationToken) {
        let mut next = tokio::time::Instant::now() + self.settings.resend;
        loop {
            let all = tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {
                    // Changes that come together go together.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    false
                }
                _ = tokio::time::sleep_until(next) => true,
            };
            if all {
                next = tokio::time::Instant::now() + self.settings.resend;
            }
            let alerts = self.collect(all);
            if alerts.is_empty() {
                continue;
            }
            for outbox in &self.outboxes {
                outbox.push(&alerts);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn setup() -> (Notifier, Arc<Check>, Arc<Check>) {
        let config = Config::from_str(
            "location: here
alerting: {alertmanagers: [http://127.0.0.1:9], external_url: https://status.example/, labels: {team: agents}}
checks:
  - {name: golden, type: agent_pipeline, target: ws://127.0.0.1:1/ws}
  - {name: api, type: http, target: http://127.0.0.1:1/health}
",
            "t.yaml",
            &|_| None,
        )
        .unwrap();
        let counters = NotifyCounters {
            sent: IntCounterVec::new(prometheus::Opts::new("s", "s"), &["alertmanager", "result"])
                .unwrap(),
            dropped: IntCounter::new("d", "d").unwrap(),
        };
        let n = Notifier::new(
            config.alerting.as_ref().unwrap(),
            "here",
            Secrets::default(),
            counters,
        );
        (n, config.checks[0].clone(), config.checks[1].clone())
    }

    fn tracker(state: CheckState, reason: Option<&str>, since_ms: i64) -> Tracker {
        let mut t = Tracker::default();
        t.state = state;
        t.since_ms = since_ms;
        t.cause =
            "2 consecutive runs failed; latest: event_missing: tool_completed never arrived".into();
        t.reason = reason.map(str::to_string);
        t
    }

    fn run(status: Status) -> RunRecord {
        RunRecord {
            at_ms: 1,
            success: status != Status::Crit,
            status,
            reason: None,
            phase: None,
            message: None,
            why: None,
            duration_seconds: 0.1,
            phases: BTreeMap::new(),
            events: Vec::new(),
            agent: None,
            cert_days_left: None,
            page: None,
            screenshot: false,
        }
    }

    fn names(alerts: &[Alert]) -> Vec<String> {
        let mut v: Vec<String> = alerts
            .iter()
            .map(|a| {
                let state = if a.ends_at.as_str() <= rfc3339_ms(now_ms()).as_str() {
                    "ended"
                } else {
                    "firing"
                };
                format!("{} {} {state}", a.labels["alertname"], a.labels["check"])
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_state_is_an_alert_with_the_rules_names_labels_and_links() {
        let (n, golden, api) = setup();
        n.observe(
            &golden,
            &tracker(CheckState::Crit, Some("event_missing"), 5),
            &run(Status::Crit),
        );
        n.observe(
            &api,
            &tracker(CheckState::Warn, None, 5),
            &run(Status::Warn),
        );
        let sent = n.collect(false);
        assert_eq!(
            names(&sent),
            [
                "PathwatchCheckDegraded api firing",
                "PathwatchGoldenPathFailing golden firing"
            ]
        );
        let page = sent.iter().find(|a| a.labels["check"] == "golden").unwrap();
        for (k, v) in [
            ("severity", "page"),
            ("location", "here"),
            ("reason", "event_missing"),
            ("team", "agents"),
        ] {
            assert_eq!(page.labels[k], v);
        }
        assert_eq!(
            page.annotations["summary"],
            "Golden path golden is failing in here"
        );
        assert!(page.annotations["description"].contains("tool_completed never arrived"));
        assert_eq!(
            page.annotations["status_page"],
            "https://status.example/checks/golden"
        );
        assert_eq!(page.generator_url, "https://status.example/checks/golden");
        assert_eq!(page.starts_at, rfc3339_ms(5));
        assert_eq!(n.collect(false), Vec::new(), "nothing changed");
        assert_eq!(n.collect(true).len(), 2, "a resend sends all");
    }

    #[test]
    fn a_changed_state_ends_one_alert_and_fires_the_next() {
        let (n, golden, _) = setup();
        n.observe(
            &golden,
            &tracker(CheckState::Crit, Some("timeout"), 5),
            &run(Status::Crit),
        );
        n.collect(false);
        n.observe(
            &golden,
            &tracker(CheckState::Warn, Some("starting"), 9),
            &run(Status::Warn),
        );
        assert_eq!(
            names(&n.collect(false)),
            [
                "PathwatchCheckDegraded golden firing",
                "PathwatchGoldenPathFailing golden ended"
            ]
        );
        n.observe(
            &golden,
            &tracker(CheckState::Ok, None, 12),
            &run(Status::Ok),
        );
        assert_eq!(
            names(&n.collect(false)),
            ["PathwatchCheckDegraded golden ended"]
        );
        // The same alert again: it fires, and is no longer sent as ended.
        n.observe(
            &golden,
            &tracker(CheckState::Warn, Some("starting"), 20),
            &run(Status::Warn),
        );
        assert_eq!(
            names(&n.collect(true)),
            [
                "PathwatchCheckDegraded golden firing",
                "PathwatchGoldenPathFailing golden ended"
            ]
        );
    }

    #[test]
    fn resumed_alerts_wait_for_a_run_and_gone_checks_end() {
        let (n, golden, api) = setup();
        let crit = tracker(CheckState::Crit, Some("event_missing"), 5);
        n.resume(
            &[
                (golden.clone(), crit.clone(), None),
                (api.clone(), Tracker::default(), None),
            ],
            &["removed".to_string()],
        );
        let sent = n.collect(false);
        assert_eq!(sent.len(), 3, "only the gone check's possible alerts end");
        assert!(sent.iter().all(|a| a.labels["check"] == "removed"));
        // A good run does not confirm it (the check may have recovered meanwhile) ...
        n.observe(&golden, &crit, &run(Status::Ok));
        assert_eq!(n.collect(true).len(), 3);
        // ... a failed one does: sent again, with its labels from before the restart.
        n.observe(&golden, &crit, &run(Status::Crit));
        let again: Vec<Alert> = n.collect(false);
        assert_eq!(names(&again), ["PathwatchGoldenPathFailing golden firing"]);
        assert_eq!(again[0].labels["reason"], "event_missing");
        assert_eq!(again[0].starts_at, rfc3339_ms(5));
    }

    #[test]
    fn a_reload_ends_the_alerts_of_removed_and_reset_checks() {
        let (n, golden, api) = setup();
        n.observe(
            &golden,
            &tracker(CheckState::Crit, Some("timeout"), 5),
            &run(Status::Crit),
        );
        n.observe(
            &api,
            &tracker(CheckState::Crit, Some("connect"), 5),
            &run(Status::Crit),
        );
        n.collect(false);
        n.reconcile(std::slice::from_ref(&api), &[]);
        assert_eq!(
            names(&n.collect(false)),
            ["PathwatchGoldenPathFailing golden ended"]
        );
        n.reconcile(std::slice::from_ref(&api), &["api".to_string()]);
        assert_eq!(
            names(&n.collect(false)),
            ["PathwatchCheckCritical api ended"]
        );
    }
}
