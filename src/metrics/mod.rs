//! The Prometheus side. Per-check series live in our own structures and are written
//! straight to the text format (`text`): the prometheus crate's registry costs ~10 KB and a
//! protobuf copy per series at render, which at 10,000 checks meant 0.5 GB and a second per
//! scrape. The blackbox_exporter-compatible `probe_*` gauges (`blackbox`) are shared with
//! `/probe`; the daemon's own few self-metrics stay in a prometheus `Registry`.
//! Labels are bounded: check, location, phase, reason, state, event, level.

mod blackbox;
mod families;
mod text;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use prometheus::{
    Encoder, Gauge, Histogram as PromHistogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use blackbox::Facts;
pub use blackbox::render_one as render_probe;
use families::CHECK_FAMILIES;
use text::{Histogram, Text, label_set, write_families};

use crate::config::{Check, Spec, Target};
use crate::probe::{Phase, ProbeResult, Reason};
use crate::protocol::profiles::Stage;
use crate::scheduler::SchedulerMetrics;
use crate::verdict::{CheckState, Transition};

/// All metrics of a running daemon.
pub struct Metrics {
    /// Swapped whole when a reload changes the checks.
    series: RwLock<Arc<SeriesSet>>,
    /// Self-metrics (scheduler, process, history writer, build).
    registry: Registry,
    scheduler_lag: PromHistogram,
    in_flight: IntGauge,
    pub history: crate::history::HistoryCounters,
    pub notifications: crate::alerting::NotifyCounters,
    reload_ok: IntGauge,
    reload_at: Gauge,
    cluster_members: IntGauge,
    cluster_owned: IntGauge,
    cluster_refresh_errors: IntCounter,
}

#[derive(Default)]
struct SeriesSet {
    list: Vec<CheckSeries>,
    by_name: HashMap<String, usize>,
}

impl SeriesSet {
    fn new(list: Vec<CheckSeries>, names: impl Iterator<Item = String>) -> SeriesSet {
        let by_name = names.enumerate().map(|(i, n)| (n, i)).collect();
        SeriesSet { list, by_name }
    }
}

/// The series of one check: what the config fixes, and what its runs change.
struct CheckSeries {
    /// `check="..",location=".."`, escaped.
    labels: String,
    interval: f64,
    timeout: f64,
    latency: [(&'static str, Option<f64>); 2],
    /// Only for checks that see certificates.
    cert: Option<[(&'static str, f64); 2]>,
    deadlines: Vec<(&'static str, f64)>,
    /// Kept across a reload that changes the check's settings.
    live: Arc<Mutex<Live>>,
}

#[derive(Default)]
struct Live {
    /// The last run's `probe_*` facts; none before the first run.
    last: Option<Facts>,
    last_run: f64,
    duration: Histogram,
    phases: Vec<(Phase, f64)>,
    /// success, failure
    probes: [u64; 2],
    failures: Vec<(Reason, u64)>,
    events: Vec<(&'static str, u64)>,
    event_latency: Vec<(&'static str, Histogram)>,
    /// First arrival of each stage per run (all profiles).
    stage_latency: Vec<(Stage, Histogram)>,
    /// The last measured output rate after the first token: characters/s, tokens/s.
    chars_per_second: Option<f64>,
    tokens_per_second: Option<f64>,
    state: CheckState,
    transitions: [u64; 4],
    skipped: u64,
    /// Start-up durations; none until the first start-up ended.
    start_ups: Option<Histogram>,
    /// Browser checks: navigation timing and paints, the reply in the DOM.
    page_timing: Vec<(&'static str, Histogram)>,
    /// Browser checks: each step (`1 fill #email`).
    steps: Vec<(String, Histogram)>,
    failed_requests: u64,
}

impl CheckSeries {
    fn new(check: &Check, location: &str) -> CheckSeries {
        let t = &check.thresholds;
        let secs = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
        let day = 86_400.0;
        let mut deadlines: Vec<(&'static str, f64)> = Vec::new();
        if let Spec::Agent(a) = &check.spec {
            for (event, d) in &a.expect.deadlines {
                let event = event_label(event);
                if event != "other" && !deadlines.iter().any(|(e, _)| *e == event) {
                    deadlines.push((event, d.as_secs_f64()));
                }
            }
        }
        CheckSeries {
            labels: label_set(&[("check", &check.name), ("location", location)]),
            interval: check.interval.as_secs_f64(),
            timeout: check.timeout.as_secs_f64(),
            latency: [
                ("warn", secs(t.latency_warn)),
                ("crit", secs(t.latency_crit)),
            ],
            cert: sees_certificates(check).then(|| {
                [
                    ("warn", f64::from(t.cert_days_warn) * day),
                    ("crit", f64::from(t.cert_days_crit) * day),
                ]
            }),
            deadlines,
            live: Arc::default(),
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// tls checks, and http/websocket/agent checks over https or wss.
fn sees_certificates(check: &Check) -> bool {
    match (&check.spec, &check.target) {
        (Spec::Tls(_), _) => true,
        (_, Target::Url(u)) => matches!(u.scheme(), "https" | "wss"),
        _ => false,
    }
}

/// Event names come from the target: only known ones become label values.
fn event_label(name: &str) -> &'static str {
    use crate::protocol::{FATAL, GOLDEN, TERMINAL};
    let stages = Stage::ALL.map(Stage::name);
    GOLDEN
        .iter()
        .chain(&FATAL)
        .chain(&TERMINAL)
        .chain(&stages)
        .find(|known| **known == name)
        .copied()
        .unwrap_or("other")
}

// Fine around 1-2.5 ms, where tokio's 1 ms timer resolution puts most starts.
const LAG_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.00125, 0.0015, 0.002, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.5, 1.0,
];

/// The value of `key` in a small list of labelled values, added at its default if missing.
fn entry<K: PartialEq + Copy, V: Default>(list: &mut Vec<(K, V)>, key: K) -> &mut V {
    let i = match list.iter().position(|(k, _)| *k == key) {
        Some(i) => i,
        None => {
            list.push((key, V::default()));
            list.len() - 1
        }
    };
    &mut list[i].1
}

impl Metrics {
    pub fn new(location: &str, checks: &[Arc<Check>]) -> prometheus::Result<Metrics> {
        let reg = Registry::new();
        let scheduler_lag = PromHistogram::with_opts(
            HistogramOpts::new(
                "pathwatch_scheduler_lag_seconds",
                "Actual start of a probe minus its planned start.",
            )
            .buckets(LAG_BUCKETS.to_vec()),
        )?;
        reg.register(Box::new(scheduler_lag.clone()))?;
        let in_flight = IntGauge::new("pathwatch_probes_in_flight", "Probes running now.")?;
        reg.register(Box::new(in_flight.clone()))?;
        let build = IntGaugeVec::new(
            Opts::new("pathwatch_build_info", "pathwatch version."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        reg.register(Box::new(build))?;
        #[cfg(target_os = "linux")]
        reg.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let reload_ok = IntGauge::new(
            "pathwatch_config_last_reload_successful",
            "Whether the last config reload attempt succeeded (1) or the old config runs on (0).",
        )?;
        reg.register(Box::new(reload_ok.clone()))?;
        let reload_at = Gauge::new(
            "pathwatch_config_last_reload_success_timestamp_seconds",
            "When the running config was loaded.",
        )?;
        reg.register(Box::new(reload_at.clone()))?;
        let cluster_members = IntGauge::new(
            "pathwatch_cluster_members",
            "Members of the deployment this instance shares its checks with (1 when alone).",
        )?;
        reg.register(Box::new(cluster_members.clone()))?;
        let cluster_owned = IntGauge::new(
            "pathwatch_cluster_checks_owned",
            "Checks this instance owns and runs.",
        )?;
        reg.register(Box::new(cluster_owned.clone()))?;
        let cluster_refresh_errors = plain_counter(
            &reg,
            "pathwatch_cluster_refresh_errors_total",
            "Failed reads of the cluster members (DNS); the last known members stay.",
        )?;
        let history = crate::history::HistoryCounters {
            written: plain_counter(
                &reg,
                "pathwatch_history_runs_written_total",
                "Runs committed to the history database.",
            )?,
            dropped: plain_counter(
                &reg,
                "pathwatch_history_runs_dropped_total",
                "Runs not written because the history writer was behind.",
            )?,
            errors: plain_counter(
                &reg,
                "pathwatch_history_write_errors_total",
                "Failed history writes (each may hold many runs).",
            )?,
        };
        let sent = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "pathwatch_notifications_total",
                "Alerts posted to Alertmanager (alerting.alertmanagers), by result (success, failure).",
            ),
            &["alertmanager", "result"],
        )?;
        reg.register(Box::new(sent.clone()))?;
        let notifications = crate::alerting::NotifyCounters {
            sent,
            dropped: plain_counter(
                &reg,
                "pathwatch_notifications_dropped_total",
                "Alerts dropped because an Alertmanager's queue was full.",
            )?,
        };
        let metrics = Metrics {
            series: RwLock::default(),
            registry: reg,
            scheduler_lag,
            in_flight,
            history,
            notifications,
            reload_ok,
            reload_at,
            cluster_members,
            cluster_owned,
            cluster_refresh_errors,
        };
        metrics.reconcile(location, checks, &[]);
        metrics.reloaded(true);
        Ok(metrics)
    }

    /// The series for `checks` (after a reload): a check that stays keeps its counters,
    /// except those in `reset` (its type or target changed: a different check under the
    /// same name); removed checks leave `/metrics`.
    pub fn reconcile(&self, location: &str, checks: &[Arc<Check>], reset: &[String]) {
        let old = self.set();
        let list = checks
            .iter()
            .map(|c| {
                let mut series = CheckSeries::new(c, location);
                if !reset.contains(&c.name)
                    && let Some(i) = old.by_name.get(&c.name)
                {
                    series.live = old.list[*i].live.clone();
                }
                series
            })
            .collect();
        let set = SeriesSet::new(list, checks.iter().map(|c| c.name.clone()));
        *self.series.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
    }

    /// `pathwatch_cluster_members` and `pathwatch_cluster_checks_owned`.
    pub fn cluster(&self, members: usize, owned: usize) {
        self.cluster_members.set(members as i64);
        self.cluster_owned.set(owned as i64);
    }

    pub fn cluster_refresh_failed(&self) {
        self.cluster_refresh_errors.inc();
    }

    /// `pathwatch_config_last_reload_successful` and, on success, its timestamp.
    pub fn reloaded(&self, ok: bool) {
        self.reload_ok.set(i64::from(ok));
        if ok {
            self.reload_at.set(crate::clock::now_secs_f64());
        }
    }

    fn set(&self) -> Arc<SeriesSet> {
        self.series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn live(&self, check: &str, f: impl FnOnce(&mut Live)) {
        let set = self.set();
        match set.by_name.get(check) {
            Some(i) => f(&mut set.list[*i].live()),
            None => tracing::debug!(check, "Metrics of an unknown check ignored."),
        }
    }

    pub fn record(&self, check: &Check, r: &ProbeResult) {
        self.live(&check.name, |live| Self::record_into(live, check, r));
    }

    fn record_into(live: &mut Live, check: &Check, r: &ProbeResult) {
        live.last = Some(Facts::of(check.spec.kind(), r));
        live.duration.observe(r.duration.as_secs_f64());
        live.phases.clear();
        live.phases
            .extend(r.phases.iter().map(|(p, d)| (*p, d.as_secs_f64())));
        let mut first_seen: Vec<&str> = Vec::new();
        for o in &r.events {
            let event = event_label(&o.name);
            *entry(&mut live.events, event) += 1;
            if event != "other" && !first_seen.contains(&event) {
                first_seen.push(event);
                entry(&mut live.event_latency, event).observe(o.at.as_secs_f64());
            }
        }
        if let Some(a) = &r.agent {
            for (stage, at) in &a.stages {
                entry(&mut live.stage_latency, *stage).observe(at.as_secs_f64());
            }
            live.chars_per_second = a.chars_per_second.or(live.chars_per_second);
            live.tokens_per_second = a.tokens_per_second.or(live.tokens_per_second);
        }
        if let Some(p) = &r.page {
            for (name, at) in p.timing.named() {
                entry(&mut live.page_timing, name).observe(at);
            }
            if let Some(reply) = p.reply_seconds {
                entry(&mut live.page_timing, "reply").observe(reply);
            }
            for (i, step) in p.steps.iter().enumerate() {
                let label = format!("{} {}", i + 1, step.step);
                match live.steps.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, h)) => h.observe(step.seconds),
                    None => {
                        let mut h = Histogram::default();
                        h.observe(step.seconds);
                        live.steps.push((label, h));
                    }
                }
            }
            live.failed_requests += p.failed.len() as u64;
        }
        live.probes[usize::from(!r.success())] += 1;
        if let Some(f) = &r.failure {
            *entry(&mut live.failures, f.reason) += 1;
        }
        let started = crate::clock::since_epoch(r.started_at);
        live.last_run = started.as_secs_f64();
    }

    /// `pathwatch_check_state{state}`: 1 for the current state, 0 for the others.
    pub fn set_state(&self, check: &str, current: CheckState) {
        self.live(check, |live| live.state = current);
    }

    /// `pathwatch_cold_start_seconds`: a start-up that ended (the check's first success
    /// after its target said it was starting), from its first failed run.
    pub fn start_up(&self, check: &str, took: std::time::Duration) {
        self.live(check, |live| {
            live.start_ups
                .get_or_insert_with(|| Histogram::over(&text::START_UP_BUCKETS))
                .observe(took.as_secs_f64())
        });
    }

    pub fn transition(&self, t: &Transition) {
        self.live(&t.check, |live| live.transitions[t.to as usize] += 1);
    }

    /// The whole `/metrics` text.
    pub fn render(&self) -> String {
        let mut all = String::new();
        self.render_to(|piece| all.push_str(&piece));
        all
    }

    /// The `/metrics` text, handed to `sink` in pieces of about 64 KiB: 10,000 checks make
    /// ~40 MB, which is never held whole.
    pub fn render_to(&self, sink: impl FnMut(String)) {
        let set = self.set();
        let mut t = Text::streaming(sink);
        blackbox::write(&mut t, &|emit| {
            for c in &set.list {
                if let Some(f) = &c.live().last {
                    emit(&c.labels, f);
                }
            }
        });
        write_families(&mut t, &CHECK_FAMILIES, &|emit| {
            for c in &set.list {
                emit(&c.labels, c);
            }
        });
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "Cannot encode metrics.");
        }
        t.out.push_str(&String::from_utf8_lossy(&buf));
        t.finish();
    }
}

fn plain_counter(reg: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

impl SchedulerMetrics for Metrics {
    fn lag(&self, late: std::time::Duration) {
        self.scheduler_lag.observe(late.as_secs_f64());
    }

    fn in_flight(&self, delta: i64) {
        self.in_flight.add(delta);
    }

    fn skipped(&self, check: &str, runs: u64) {
        self.live(check, |live| live.skipped += runs);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::probe::EventAt as Observed;

    #[test]
    fn stages_first_token_and_output_rate_of_any_profile() {
        let yaml = "checks:\n  - name: sse\n    type: agent_pipeline\n    target: http://127.0.0.1:1/agent\n    profile: ag-ui\n    expect:\n      deadlines: {first_token: 3s}\n";
        let config = crate::config::Config::from_str(yaml, "t.yaml", &|_| None).unwrap();
        let m = Metrics::new("here", &config.checks).unwrap();
        let mut r = ProbeResult::empty(SystemTime::now());
        r.agent = Some(crate::probe::RunStats {
            profile: "ag-ui",
            stages: vec![
                (Stage::Started, Duration::from_millis(40)),
                (Stage::FirstToken, Duration::from_millis(250)),
                (Stage::Completed, Duration::from_millis(900)),
            ],
            deltas: 120,
            output_tokens: None,
            chars_per_second: Some(480.5),
            tokens_per_second: None,
        });
        m.record(&config.checks[0], &r);
        let text = m.render();
        let l = r#"check="sse",location="here""#;
        for line in [
            format!(r#"pathwatch_agent_stage_latency_seconds_sum{{{l},stage="first_token"}} 0.25"#),
            format!(r#"pathwatch_agent_stage_latency_seconds_count{{{l},stage="completed"}} 1"#),
            format!(r#"pathwatch_agent_first_token_seconds_sum{{{l}}} 0.25"#),
            format!(r#"pathwatch_agent_output_chars_per_second{{{l}}} 480.5"#),
            format!(r#"pathwatch_threshold_event_deadline_seconds{{{l},event="first_token"}} 3"#),
            format!(r#"pathwatch_threshold_event_deadline_seconds{{{l},event="started"}} 10"#),
        ] {
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("pathwatch_agent_output_tokens_per_second{"));
    }

    #[test]
    fn agent_events_count_every_arrival_and_time_the_first() {
        let yaml = "checks:\n  - name: golden\n    type: agent_pipeline\n    target: ws://127.0.0.1:1/ws\n    expect:\n      deadlines: {agent_started: 2s}\n";
        let config = crate::config::Config::from_str(yaml, "t.yaml", &|_| None).unwrap();
        let m = Metrics::new("here", &config.checks).unwrap();
        let mut r = ProbeResult::empty(SystemTime::now());
        for (name, ms) in [
            ("agent_started", 40),
            ("agent_started", 90),
            ("x-custom", 100),
        ] {
            r.events.push(Observed {
                name: name.into(),
                at: Duration::from_millis(ms),
            });
        }
        m.record(&config.checks[0], &r);
        m.set_state("golden", CheckState::Ok);
        let text = m.render();
        let l = r#"check="golden",location="here""#;
        for line in [
            format!(r#"pathwatch_agent_events_total{{{l},event="agent_started"}} 2"#),
            format!(r#"pathwatch_agent_events_total{{{l},event="other"}} 1"#),
            format!(
                r#"pathwatch_agent_event_latency_seconds_count{{{l},event="agent_started"}} 1"#
            ),
            format!(
                r#"pathwatch_agent_event_latency_seconds_sum{{{l},event="agent_started"}} 0.04"#
            ),
            format!(r#"pathwatch_threshold_event_deadline_seconds{{{l},event="agent_started"}} 2"#),
            format!(r#"pathwatch_check_state{{{l},state="ok"}} 1"#),
            format!(r#"pathwatch_check_state{{{l},state="unknown"}} 0"#),
            format!(r#"pathwatch_probes_total{{{l},result="success"}} 1"#),
        ] {
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
        assert!(
            !text.contains(r#"event="other"} 0.1"#),
            "other is never timed"
        );
        assert!(
            !text.contains("pathwatch_threshold_cert_expiry_seconds{"),
            "ws:// sees no certificate"
        );
        // One header per family, even for families written across many checks.
        let helps = text
            .lines()
            .filter(|l| l.starts_with("# HELP pathwatch_agent_events_total "))
            .count();
        assert_eq!(helps, 1);
    }
}
