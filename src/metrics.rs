//! The Prometheus side: blackbox_exporter-compatible `probe_*` gauges (also used for the
//! per-request registries of `/probe`), pathwatch's own histograms and counters with
//! history, and self-metrics. Labels are bounded: check, location, phase, reason, state.

use std::time::{Duration, UNIX_EPOCH};

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::Check;
use crate::probe::{Phase, ProbeResult};
use crate::state::{State, Transition};

const TLS_VERSIONS: [&str; 4] = ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"];

/// The blackbox_exporter gauge families, registered with any leading label names.
pub struct ProbeGauges {
    success: GaugeVec,
    duration: GaugeVec,
    dns_lookup: GaugeVec,
    ip_protocol: GaugeVec,
    http_status: GaugeVec,
    http_phase: GaugeVec,
    http_content_length: GaugeVec,
    http_body_length: GaugeVec,
    http_redirects: GaugeVec,
    http_ssl: GaugeVec,
    http_version: GaugeVec,
    failed_due_to_regex: GaugeVec,
    ssl_earliest: GaugeVec,
    ssl_last_chain: GaugeVec,
    tls_version: GaugeVec,
}

fn gauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(g.clone()))?;
    Ok(g)
}

fn with(labels: &[&str], extra: &str) -> Vec<String> {
    labels
        .iter()
        .map(|s| s.to_string())
        .chain([extra.to_string()])
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

impl ProbeGauges {
    pub fn register(reg: &Registry, labels: &[&str]) -> prometheus::Result<Self> {
        fn plus<'a>(labels: &[&'a str], extra: &'a str) -> Vec<&'a str> {
            labels.iter().copied().chain([extra]).collect()
        }
        Ok(ProbeGauges {
            success: gauge(
                reg,
                "probe_success",
                "Whether the probe succeeded (1) or not (0).",
                labels,
            )?,
            duration: gauge(
                reg,
                "probe_duration_seconds",
                "How long the probe took.",
                labels,
            )?,
            dns_lookup: gauge(
                reg,
                "probe_dns_lookup_time_seconds",
                "Time taken to resolve the target.",
                labels,
            )?,
            ip_protocol: gauge(
                reg,
                "probe_ip_protocol",
                "IP protocol of the connection (4 or 6).",
                labels,
            )?,
            http_status: gauge(
                reg,
                "probe_http_status_code",
                "HTTP status code of the final response, 0 if none.",
                labels,
            )?,
            http_phase: gauge(
                reg,
                "probe_http_duration_seconds",
                "Duration of each HTTP phase, summed over redirects.",
                &plus(labels, "phase"),
            )?,
            http_content_length: gauge(
                reg,
                "probe_http_content_length",
                "Content-Length of the response, -1 when unknown.",
                labels,
            )?,
            http_body_length: gauge(
                reg,
                "probe_http_uncompressed_body_length",
                "Bytes of body read.",
                labels,
            )?,
            http_redirects: gauge(
                reg,
                "probe_http_redirects",
                "Number of redirects followed.",
                labels,
            )?,
            http_ssl: gauge(
                reg,
                "probe_http_ssl",
                "Whether the final response came over TLS.",
                labels,
            )?,
            http_version: gauge(
                reg,
                "probe_http_version",
                "HTTP version of the final response.",
                labels,
            )?,
            failed_due_to_regex: gauge(
                reg,
                "probe_failed_due_to_regex",
                "Whether a body regex rule failed the probe.",
                labels,
            )?,
            ssl_earliest: gauge(
                reg,
                "probe_ssl_earliest_cert_expiry",
                "Earliest notAfter of the presented certificates, unix seconds.",
                labels,
            )?,
            ssl_last_chain: gauge(
                reg,
                "probe_ssl_last_chain_expiry_timestamp_seconds",
                "Earliest notAfter of the verified chain, unix seconds (absent when it did not verify).",
                labels,
            )?,
            tls_version: gauge(
                reg,
                "probe_tls_version_info",
                "TLS version used, as a label.",
                &plus(labels, "version"),
            )?,
        })
    }

    pub fn record(&self, labels: &[&str], kind: &str, r: &ProbeResult) {
        self.success
            .with_label_values(labels)
            .set(if r.success() { 1.0 } else { 0.0 });
        self.duration
            .with_label_values(labels)
            .set(r.duration.as_secs_f64());
        if let Some(d) = r.phase(Phase::Resolve) {
            self.dns_lookup
                .with_label_values(labels)
                .set(d.as_secs_f64());
        }
        if let Some(ip) = r.ip {
            self.ip_protocol
                .with_label_values(labels)
                .set(if ip.is_ipv4() { 4.0 } else { 6.0 });
        }
        if kind == "http" {
            let http = r.http.as_ref();
            self.http_status
                .with_label_values(labels)
                .set(http.map_or(0.0, |h| f64::from(h.status)));
            for phase in Phase::HTTP {
                let secs = r.phase(phase).unwrap_or(Duration::ZERO).as_secs_f64();
                self.http_phase
                    .with_label_values(&refs(&with(labels, phase.as_str())))
                    .set(secs);
            }
            let cl = http
                .and_then(|h| h.content_length)
                .map_or(-1.0, |n| n as f64);
            self.http_content_length.with_label_values(labels).set(cl);
            self.http_body_length
                .with_label_values(labels)
                .set(http.map_or(0.0, |h| h.body_bytes as f64));
            self.http_redirects
                .with_label_values(labels)
                .set(http.map_or(0.0, |h| f64::from(h.redirects)));
            self.http_ssl
                .with_label_values(labels)
                .set(if http.is_some_and(|h| h.tls) {
                    1.0
                } else {
                    0.0
                });
            let version = http
                .and_then(|h| h.version.parse::<f64>().ok())
                .unwrap_or(0.0);
            self.http_version.with_label_values(labels).set(version);
            let regex = http.is_some_and(|h| h.failed_due_to_regex);
            self.failed_due_to_regex
                .with_label_values(labels)
                .set(if regex { 1.0 } else { 0.0 });
        }
        // Certificate facts are reported whenever a certificate was seen, verified or not;
        // series of a previous run are removed when this run saw none.
        match &r.tls {
            Some(tls) => {
                match tls.earliest_expiry() {
                    Some(t) => self.ssl_earliest.with_label_values(labels).set(t as f64),
                    None => drop(self.ssl_earliest.remove_label_values(labels)),
                }
                match tls.earliest_expiry().filter(|_| tls.verified) {
                    Some(t) => self.ssl_last_chain.with_label_values(labels).set(t as f64),
                    None => drop(self.ssl_last_chain.remove_label_values(labels)),
                }
                for v in TLS_VERSIONS {
                    let l = with(labels, v);
                    if v == tls.version {
                        self.tls_version.with_label_values(&refs(&l)).set(1.0);
                    } else {
                        let _ = self.tls_version.remove_label_values(&refs(&l));
                    }
                }
            }
            None => {
                let _ = self.ssl_earliest.remove_label_values(labels);
                let _ = self.ssl_last_chain.remove_label_values(labels);
                for v in TLS_VERSIONS {
                    let _ = self
                        .tls_version
                        .remove_label_values(&refs(&with(labels, v)));
                }
            }
        }
    }
}

/// All metrics of a running daemon.
pub struct Metrics {
    pub registry: Registry,
    location: String,
    probe: ProbeGauges,
    duration: HistogramVec,
    phase: GaugeVec,
    probes: IntCounterVec,
    failures: IntCounterVec,
    last_run: GaugeVec,
    state: IntGaugeVec,
    interval: GaugeVec,
    timeout: GaugeVec,
    latency_threshold: GaugeVec,
    cert_threshold: GaugeVec,
    deadline_threshold: GaugeVec,
    event_latency: HistogramVec,
    events: IntCounterVec,
    pub scheduler_lag: Histogram,
    pub in_flight: IntGauge,
    skipped: IntCounterVec,
    transitions: IntCounterVec,
    pub history: crate::history::HistoryCounters,
}

/// Event names come from the target: only known ones become label values.
fn event_label(name: &str) -> &str {
    use crate::probe::agent::events::{FATAL, TERMINAL};
    use crate::probe::agent::run::GOLDEN;
    if GOLDEN.contains(&name) || FATAL.contains(&name) || TERMINAL.contains(&name) {
        name
    } else {
        "other"
    }
}

const PROBE_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
// Fine around 1-2.5 ms, where tokio's 1 ms timer resolution puts most starts.
const LAG_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.00125, 0.0015, 0.002, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.5, 1.0,
];

impl Metrics {
    pub fn new(location: &str) -> prometheus::Result<Metrics> {
        let reg = Registry::new();
        let cl = ["check", "location"];
        let hist = |name: &str,
                    help: &str,
                    labels: &[&str],
                    buckets: &[f64]|
         -> prometheus::Result<HistogramVec> {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )?;
            reg.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                reg.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let state = IntGaugeVec::new(
            Opts::new(
                "pathwatch_check_state",
                "1 for the current state of each check (unknown, ok, warn, crit).",
            ),
            &["check", "location", "state"],
        )?;
        reg.register(Box::new(state.clone()))?;
        let scheduler_lag = Histogram::with_opts(
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
        Ok(Metrics {
            probe: ProbeGauges::register(&reg, &cl)?,
            duration: hist(
                "pathwatch_probe_duration_seconds",
                "Probe duration.",
                &cl,
                &PROBE_BUCKETS,
            )?,
            // A gauge (the last run's value), not a histogram: 15 series per phase and check
            // made /metrics of 1,000 checks 10 MB. Percentiles over time come from
            // quantile_over_time; the probe's total duration keeps its histogram.
            phase: gauge(
                &reg,
                "pathwatch_phase_duration_seconds",
                "Duration of each phase of the last probe.",
                &["check", "location", "phase"],
            )?,
            probes: counter(
                "pathwatch_probes_total",
                "Probes run, by result (success, failure).",
                &["check", "location", "result"],
            )?,
            failures: counter(
                "pathwatch_probe_failures_total",
                "Failed probes by reason.",
                &["check", "location", "reason"],
            )?,
            last_run: gauge(
                &reg,
                "pathwatch_probe_last_run_timestamp_seconds",
                "When the last probe of a check started, unix seconds.",
                &cl,
            )?,
            interval: gauge(
                &reg,
                "pathwatch_check_interval_seconds",
                "Configured probe interval.",
                &cl,
            )?,
            timeout: gauge(
                &reg,
                "pathwatch_check_timeout_seconds",
                "Configured probe timeout.",
                &cl,
            )?,
            latency_threshold: gauge(
                &reg,
                "pathwatch_threshold_latency_seconds",
                "Latency thresholds by level (warn, crit).",
                &["check", "location", "level"],
            )?,
            deadline_threshold: gauge(
                &reg,
                "pathwatch_threshold_event_deadline_seconds",
                "Agent event deadlines, from the message being sent.",
                &["check", "location", "event"],
            )?,
            cert_threshold: gauge(
                &reg,
                "pathwatch_threshold_cert_expiry_seconds",
                "Certificate time-left thresholds by level (warn, crit); configured in days.",
                &["check", "location", "level"],
            )?,
            event_latency: hist(
                "pathwatch_agent_event_latency_seconds",
                "Time from the message being sent to each agent event (first arrival per run).",
                &["check", "location", "event"],
                &PROBE_BUCKETS,
            )?,
            events: counter(
                "pathwatch_agent_events_total",
                "Agent events received, by event.",
                &["check", "location", "event"],
            )?,
            skipped: counter(
                "pathwatch_scheduler_skipped_runs_total",
                "Planned runs skipped because the previous run of the check was still going.",
                &cl,
            )?,
            transitions: counter(
                "pathwatch_state_transitions_total",
                "State changes of each check, by the state entered.",
                &["check", "location", "to"],
            )?,
            history: crate::history::HistoryCounters {
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
            },
            state,
            scheduler_lag,
            in_flight,
            registry: reg,
            location: location.to_string(),
        })
    }

    /// Sets up the series of a check before its first result: state unknown, thresholds.
    pub fn register_check(&self, check: &Check) {
        let cl = [check.name.as_str(), self.location.as_str()];
        self.set_state(&check.name, State::Unknown);
        for to in State::ALL {
            self.transitions
                .with_label_values(&[cl[0], cl[1], to.as_str()]);
        }
        for result in ["success", "failure"] {
            self.probes.with_label_values(&[cl[0], cl[1], result]);
        }
        self.skipped.with_label_values(&cl);
        self.interval
            .with_label_values(&cl)
            .set(check.interval.as_secs_f64());
        self.timeout
            .with_label_values(&cl)
            .set(check.timeout.as_secs_f64());
        let t = &check.thresholds;
        for (level, latency, days) in [
            ("warn", t.latency_warn, t.cert_days_warn),
            ("crit", t.latency_crit, t.cert_days_crit),
        ] {
            if let Some(l) = latency {
                self.latency_threshold
                    .with_label_values(&[cl[0], cl[1], level])
                    .set(l.as_secs_f64());
            }
            self.cert_threshold
                .with_label_values(&[cl[0], cl[1], level])
                .set(f64::from(days) * 86_400.0);
        }
        if let crate::config::Spec::Agent(a) = &check.spec {
            for (event, d) in &a.rules.deadlines {
                self.deadline_threshold
                    .with_label_values(&[cl[0], cl[1], event_label(event)])
                    .set(d.as_secs_f64());
            }
        }
    }

    pub fn record(&self, check: &Check, r: &ProbeResult) {
        let cl = [check.name.as_str(), self.location.as_str()];
        self.probe.record(&cl, check.spec.kind(), r);
        self.duration
            .with_label_values(&cl)
            .observe(r.duration.as_secs_f64());
        for (phase, d) in &r.phases {
            self.phase
                .with_label_values(&[cl[0], cl[1], phase.as_str()])
                .set(d.as_secs_f64());
        }
        let mut first_seen: Vec<&str> = Vec::new();
        for o in &r.events {
            let event = event_label(&o.name);
            self.events.with_label_values(&[cl[0], cl[1], event]).inc();
            if event != "other" && !first_seen.contains(&event) {
                first_seen.push(event);
                self.event_latency
                    .with_label_values(&[cl[0], cl[1], event])
                    .observe(o.at.as_secs_f64());
            }
        }
        let result = if r.success() { "success" } else { "failure" };
        self.probes.with_label_values(&[cl[0], cl[1], result]).inc();
        if let Some(f) = &r.failure {
            self.failures
                .with_label_values(&[cl[0], cl[1], f.reason.as_str()])
                .inc();
        }
        let started = r.started_at.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.last_run
            .with_label_values(&cl)
            .set(started.as_secs_f64());
    }

    /// `pathwatch_check_state{state}`: 1 for the current state, 0 for the others.
    pub fn set_state(&self, check: &str, current: State) {
        for s in State::ALL {
            let v = i64::from(s == current);
            self.state
                .with_label_values(&[check, &self.location, s.as_str()])
                .set(v);
        }
    }

    pub fn transition(&self, t: &Transition) {
        self.transitions
            .with_label_values(&[&t.check, &self.location, t.to.as_str()])
            .inc();
    }

    pub fn skipped_runs(&self, check: &str, n: u64) {
        self.skipped
            .with_label_values(&[check, &self.location])
            .inc_by(n);
    }

    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

fn plain_counter(reg: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

/// Prometheus text format of a registry.
pub fn render(reg: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&reg.gather(), &mut buf) {
        tracing::error!(error = %e, "Cannot encode metrics.");
    }
    String::from_utf8(buf).unwrap_or_default()
}
