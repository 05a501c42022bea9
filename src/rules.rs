//! `pathwatch rules`: Prometheus recording and alerting rules generated from the same config
//! the daemon runs, so alerts follow its thresholds, intervals and check types: a check in
//! CRIT (page) or WARN (ticket), the golden path failing and burning its error budget
//! (multi-window, multi-burn-rate), certificates expiring, agent events near their
//! deadlines, and pathwatch itself down, blind or behind.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Config, Spec};

/// Default availability objective of a golden path for the burn-rate alerts.
pub const DEFAULT_SLO: f64 = 0.995;

/// Burn-rate windows (Google SRE workbook, ch. 5): (long, short, factor, severity, `for`).
const BURN: [(&str, &str, f64, &str, &str); 3] = [
    ("1h", "5m", 14.4, "page", "2m"),
    ("6h", "30m", 6.0, "page", "15m"),
    ("3d", "6h", 1.0, "ticket", "1h"),
];

fn secs(d: Duration) -> String {
    let s = d.as_secs().max(1);
    if s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// `check=~"a|b"` for a group of check names (names are `[A-Za-z0-9_.-]`).
fn matcher(names: &[&str]) -> String {
    let escaped: Vec<String> = names.iter().map(|n| n.replace('.', "\\\\.")).collect();
    format!("check=~\"{}\"", escaped.join("|"))
}

fn alert(name: &str, expr: String, wait: &str, severity: &str, summary: &str, desc: &str) -> Value {
    json!({
        "alert": name,
        "expr": expr,
        "for": wait,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": desc},
    })
}

/// How the rules are wrapped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    /// A Prometheus rule file (`rule_files:`).
    RuleFile,
    /// A Prometheus Operator `PrometheusRule` resource.
    PrometheusRule,
}

/// The rules for `config`, as YAML.
pub fn generate(config: &Config, slo: f64) -> String {
    generate_as(config, slo, Format::RuleFile, None)
}

/// `quorum`: one deployment per location, each running every check (`--quorum K`): a check
/// pages only when K locations have it CRIT; fewer is a ticket naming them; a location with
/// most of its checks CRIT while they are OK elsewhere is the prober's own network
/// (`PathwatchLocationImpaired`, which inhibits that location's per-check pages).
pub fn generate_as(config: &Config, slo: f64, format: Format, quorum: Option<usize>) -> String {
    // One rule per check interval (its `for` is two intervals: the state is already damped
    // inside pathwatch), not one per check; the `interval` label keeps the rules distinct.
    let mut by_interval: BTreeMap<Duration, (Vec<&str>, Vec<&str>)> = BTreeMap::new();
    for c in &config.checks {
        let (golden, other) = by_interval.entry(c.interval).or_default();
        match c.spec {
            Spec::Agent(_) => golden.push(c.name.as_str()),
            _ => other.push(c.name.as_str()),
        }
    }
    let golden: Vec<&str> = config
        .checks
        .iter()
        .filter(|c| matches!(c.spec, Spec::Agent(_)))
        .map(|c| c.name.as_str())
        .collect();

    let mut per_interval = Vec::new();
    for (interval, (golden, other)) in &by_interval {
        let every = secs(*interval);
        let crit_for = secs(*interval * 2);
        let labelled = |mut rule: Value| {
            rule["labels"]["interval"] = json!(every);
            rule
        };
        let k = quorum.unwrap_or(1);
        if k > 1 {
            per_interval.extend(
                quorum_rules(golden, other, k, &crit_for)
                    .into_iter()
                    .map(labelled),
            );
        } else if !golden.is_empty() {
            per_interval.push(labelled(alert(
                "PathwatchGoldenPathFailing",
                format!("pathwatch_check_state{{state=\"crit\",{}}} == 1", matcher(golden)),
                &crit_for,
                "page",
                "Golden path {{ $labels.check }} is failing in {{ $labels.location }}",
                "Users cannot complete login -> WebSocket -> message -> agent events. Look first at the waterfall of the last run on /checks/{{ $labels.check }}: which event never arrived (event_missing, event_timeout), or whether it broke before the socket (login, ws_upgrade, ws_auth, tls_*), then at `pathwatch_probe_failures_total{check=\"{{ $labels.check }}\"}` by reason.",
            )));
        }
        if k == 1 && !other.is_empty() {
            per_interval.push(labelled(alert(
                "PathwatchCheckCritical",
                format!("pathwatch_check_state{{state=\"crit\",{}}} == 1", matcher(other)),
                &crit_for,
                "page",
                "{{ $labels.check }} is CRIT in {{ $labels.location }}",
                "Open the check on the pathwatch status page (/checks/{{ $labels.check }}): the failing phase, the reason and the message say where the path breaks.",
            )));
        }
        let all: Vec<&str> = golden.iter().chain(other).copied().collect();
        per_interval.push(labelled(alert(
            "PathwatchCheckDegraded",
            format!("pathwatch_check_state{{state=\"warn\",{}}} == 1", matcher(&all)),
            &secs(*interval * 5),
            "ticket",
            "{{ $labels.check }} is degraded (WARN) in {{ $labels.location }}",
            "The probe succeeds but crossed a warning threshold (latency or certificate days left), or the target says it is starting (reason `starting`: a cold start, CRIT after cold_start_grace). Compare `pathwatch_probe_duration_seconds` with `pathwatch_threshold_latency_seconds` and the certificate's days left on /checks/{{ $labels.check }}; for a start-up, `pathwatch_cold_start_seconds`.",
        )));
    }
    let mut checks = Vec::new();
    if quorum.is_some() {
        checks.push(alert(
            "PathwatchLocationImpaired",
            "(count by (location) ((max by (check, location) (pathwatch_check_state{state=\"crit\"}) == 1) and on (check) (count by (check) (max by (check, location) (pathwatch_check_state{state=\"ok\"}) == 1) >= 1)) / on (location) count by (location) (max by (check, location) (pathwatch_check_state))) > 0.5".into(),
            "2m",
            "page",
            "The prober in {{ $labels.location }} is impaired: {{ $value | humanizePercentage }} of its checks are CRIT while other locations see them OK",
            "Most checks fail from this location only: the prober's own network, DNS or egress, not the targets. Its per-check pages are held back while this fires. Look at the location's pathwatch (logs, `pathwatch_probe_failures_total` by reason: connect or dns everywhere points at its network).",
        ));
    }
    for (level, severity, wait) in [("crit", "page", "5m"), ("warn", "ticket", "15m")] {
        let name = if level == "crit" {
            "PathwatchCertificateExpiring"
        } else {
            "PathwatchCertificateExpiringSoon"
        };
        checks.push(alert(
            name,
            format!("(probe_ssl_earliest_cert_expiry - time()) < on (check, location) pathwatch_threshold_cert_expiry_seconds{{level=\"{level}\"}}"),
            wait,
            severity,
            "A certificate of {{ $labels.check }} expires in {{ $value | humanizeDuration }}",
            "Renew the certificate named in the check's detail (leaf or intermediate, with its notAfter). pathwatch reports the earliest expiry of the chain even when the chain does not verify.",
        ));
    }
    checks.push(alert(
        "PathwatchAgentEventNearDeadline",
        "histogram_quantile(0.95, sum by (le, check, location, event) (rate(pathwatch_agent_event_latency_seconds_bucket[10m]))) > on (check, location, event) (0.8 * pathwatch_threshold_event_deadline_seconds)".into(),
        "10m",
        "ticket",
        "{{ $labels.event }} of {{ $labels.check }} is close to its deadline (p95 {{ $value | humanizeDuration }})",
        "The p95 time from the message to this agent event is within 20% of the configured deadline; a little more and runs fail with event_timeout. Look at the agent's own latency (model, tools) before the network: the socket phases are in pathwatch_phase_duration_seconds.",
    ));

    let mut recording = Vec::new();
    let mut windows: Vec<&str> = BURN.iter().flat_map(|b| [b.0, b.1]).collect();
    windows.sort_by_key(|w| crate::clock::parse_duration(w).unwrap_or_default());
    windows.dedup();
    for w in &windows {
        recording.push(json!({
            "record": format!("pathwatch:probe_error_ratio:rate{w}"),
            "expr": format!("sum by (check, location) (rate(pathwatch_probes_total{{result=\"failure\"}}[{w}])) / sum by (check, location) (rate(pathwatch_probes_total[{w}]))"),
        }));
    }
    let mut slo_rules = Vec::new();
    if !golden.is_empty() {
        let m = matcher(&golden);
        let budget = 1.0 - slo;
        for (long, short, factor, severity, wait) in BURN {
            let name = match severity {
                "page" if factor > 10.0 => "PathwatchGoldenPathBurnRateFast",
                "page" => "PathwatchGoldenPathBurnRateMedium",
                _ => "PathwatchGoldenPathBurnRateSlow",
            };
            let limit = factor * budget;
            slo_rules.push(alert(
                name,
                format!("pathwatch:probe_error_ratio:rate{long}{{{m}}} > {limit:.6} and pathwatch:probe_error_ratio:rate{short}{{{m}}} > {limit:.6}"),
                wait,
                severity,
                &format!("Golden path {{{{ $labels.check }}}} burns its error budget {factor}x too fast ({long} and {short} windows)"),
                &format!("{{{{ $value | humanizePercentage }}}} of golden-path runs fail over {short}; at this rate the {:.1}% objective's budget is gone in {} days. Look first at `pathwatch_probe_failures_total{{check=\"{{{{ $labels.check }}}}\"}}` by reason and the transitions on /checks/{{{{ $labels.check }}}}.", slo * 100.0, (30.0 / factor).round()),
            ));
        }
    }

    let selfmon = vec![
        alert(
            "PathwatchDown",
            "up{job=\"pathwatch\"} == 0".into(),
            "2m",
            "page",
            "pathwatch at {{ $labels.instance }} is down",
            "Nothing is being probed from this instance: every golden path it watches is unwatched. Check the process (systemctl / kubectl logs): a bad config exits 2, an unusable history database exits 1 with the reason.",
        ),
        alert(
            "PathwatchAbsent",
            "absent(up{job=\"pathwatch\"})".into(),
            "5m",
            "page",
            "Prometheus has no pathwatch target",
            "The scrape job `pathwatch` is missing or its service discovery found nothing; no synthetic check is being watched.",
        ),
        alert(
            "PathwatchNotProbing",
            "time() - pathwatch_probe_last_run_timestamp_seconds > 3 * pathwatch_check_interval_seconds + 60".into(),
            "2m",
            "page",
            "{{ $labels.check }} has not been probed for {{ $value | humanizeDuration }}",
            "pathwatch runs but this check's probes stopped (stale). Look at pathwatch_probes_in_flight, pathwatch_scheduler_skipped_runs_total and the daemon's log.",
        ),
        alert(
            "PathwatchSchedulerLagging",
            "histogram_quantile(0.99, sum by (le, instance) (rate(pathwatch_scheduler_lag_seconds_bucket[5m]))) > 0.5".into(),
            "10m",
            "ticket",
            "pathwatch at {{ $labels.instance }} starts probes {{ $value | humanizeDuration }} late (p99)",
            "Probes wait for the concurrency limit or the machine is saturated: measured latencies may include pathwatch's own delay. Raise scheduler.max_concurrency or the CPU limit, or spread checks over instances.",
        ),
        alert(
            "PathwatchHistoryDroppingRuns",
            "increase(pathwatch_history_runs_dropped_total[10m]) > 0 or increase(pathwatch_history_write_errors_total[10m]) > 0".into(),
            "0s",
            "ticket",
            "pathwatch at {{ $labels.instance }} is losing history",
            "The history writer is behind (slow disk) or failing to write: the status page and the API miss runs. See the daemon's log for the error; alerts and metrics are not affected.",
        ),
    ];

    per_interval.extend(checks);
    let mut all = vec![
        json!({"name": "pathwatch-recording", "rules": recording}),
        json!({"name": "pathwatch-checks", "rules": per_interval}),
    ];
    if !slo_rules.is_empty() {
        all.push(json!({"name": "pathwatch-slo", "rules": slo_rules}));
    }
    all.push(json!({"name": "pathwatch-self", "rules": selfmon}));
    let doc = match format {
        Format::RuleFile => json!({ "groups": all }),
        Format::PrometheusRule => json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {
                "name": "pathwatch",
                "labels": {"app.kubernetes.io/name": "pathwatch"},
            },
            "spec": { "groups": all },
        }),
    };
    let mut out = String::from(
        "# Generated by `pathwatch rules` from the pathwatch config; do not edit by hand.\n",
    );
    yaml(&doc, 0, &mut out);
    out
}

/// The per-check alerts of one interval across locations: a page when `k` locations have
/// the check CRIT, a ticket when fewer do for 10 minutes.
fn quorum_rules(golden: &[&str], other: &[&str], k: usize, crit_for: &str) -> Vec<Value> {
    let crit_in = |names: &[&str]| {
        format!(
            "count by (check) (max by (check, location) (pathwatch_check_state{{state=\"crit\",{}}}) == 1)",
            matcher(names)
        )
    };
    let mut rules = Vec::new();
    if !golden.is_empty() {
        rules.push(alert(
            "PathwatchGoldenPathFailing",
            format!("{} >= {k}", crit_in(golden)),
            crit_for,
            "page",
            "Golden path {{ $labels.check }} is failing in {{ $value }} locations",
            "Users cannot complete login -> WebSocket -> message -> agent events, seen from several locations. Look first at the waterfall of the last run on /checks/{{ $labels.check }} in any of them: which event never arrived (event_missing, event_timeout), or whether it broke before the socket (login, ws_upgrade, ws_auth, tls_*).",
        ));
    }
    if !other.is_empty() {
        rules.push(alert(
            "PathwatchCheckCritical",
            format!("{} >= {k}", crit_in(other)),
            crit_for,
            "page",
            "{{ $labels.check }} is CRIT in {{ $value }} locations",
            "Open the check on the pathwatch status page (/checks/{{ $labels.check }}) of any of them: the failing phase, the reason and the message say where the path breaks.",
        ));
    }
    let all: Vec<&str> = golden.iter().chain(other).copied().collect();
    rules.push(alert(
        "PathwatchCheckFailingInSomeLocations",
        format!("{} < {k}", crit_in(&all)),
        "10m",
        "ticket",
        "{{ $labels.check }} is CRIT in {{ $value }} location(s), fewer than the quorum",
        &format!(
            "A regional problem (or one location's network): CRIT in {{{{ range printf `max by (location) (pathwatch_check_state{{state=\"crit\",check=\"%s\"}}) == 1` $labels.check | query }}}}{{{{ .Labels.location }}}} {{{{ end }}}}while the other locations see it well; it pages when {k} locations agree."
        ),
    ));
    rules
}

/// A small YAML writer for the generated document: block mappings and sequences, every
/// string double-quoted (JSON escaping is valid YAML), so nothing needs YAML-specific
/// quoting rules.
fn yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(inner) if !inner.is_empty() => {
                        let _ = writeln!(out, "{pad}{k}:");
                        yaml(v, indent + 2, out);
                    }
                    Value::Array(items) if !items.is_empty() => {
                        let _ = writeln!(out, "{pad}{k}:");
                        yaml(v, indent, out);
                    }
                    other => {
                        let _ = writeln!(out, "{pad}{k}: {}", scalar(other));
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let mut inner = String::new();
                yaml(item, indent + 2, &mut inner);
                // The first line of the item goes after the dash.
                let inner = inner.trim_start();
                let _ = write!(out, "{pad}- {inner}");
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other));
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_nests_mappings_and_lists() {
        let mut out = String::new();
        yaml(
            &json!({"groups": [{"name": "a", "rules": [{"x": "1\"2", "n": 3}]}], "e": []}),
            0,
            &mut out,
        );
        assert_eq!(
            out,
            "groups:\n- name: \"a\"\n  rules:\n  - x: \"1\\\"2\"\n    n: 3\ne: []\n"
        );
    }
}
