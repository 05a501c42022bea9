//! The report of `pathwatch check` (every selected check run once, see `app::run_once`) as
//! text, JSON or JUnit XML. Exit code: 0 all passed (WARN passes), 1 any CRIT.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use crate::clock::{days_left_now as days_left, fmt_duration, rfc3339_secs as rfc3339};
use crate::config::Check;
use crate::probe::ProbeResult;
use crate::protocol::profiles::Stage;
use crate::verdict::{Assessment, Status};

pub struct CheckReport {
    pub check: Arc<Check>,
    pub result: ProbeResult,
    pub assessment: Assessment,
    /// How long `--wait-ready` waited for the check, when it tried more than once.
    pub waited: Option<Waited>,
}

/// `check --wait-ready`: the time from the first try to the last, and the tries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Waited {
    #[serde(rename = "waited_seconds", serialize_with = "seconds")]
    pub waited: std::time::Duration,
    pub tries: u32,
}

fn seconds<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl std::fmt::Display for Waited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tries over {}",
            self.tries,
            crate::clock::fmt_span(self.waited)
        )
    }
}

pub fn exit_code(reports: &[CheckReport]) -> i32 {
    i32::from(reports.iter().any(|r| r.assessment.status == Status::Crit))
}

pub fn text(reports: &[CheckReport]) -> String {
    let width = reports
        .iter()
        .map(|r| r.check.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for r in reports {
        out.push_str(&format!(
            "{:<4}  {:<width$}  {:>9}",
            r.assessment.status.as_str().to_uppercase(),
            r.check.name,
            fmt_duration(r.result.duration),
        ));
        if let Some(why) = &r.assessment.why {
            out.push_str(&format!("  {why}"));
        }
        if let (Some(w), Status::Ok) = (&r.waited, r.assessment.status) {
            out.push_str(&format!("  ready after {w}"));
        }
        let first_token = r
            .result
            .agent
            .as_ref()
            .and_then(|a| a.stage(Stage::FirstToken));
        if let (Some(t), None) = (first_token, &r.assessment.why) {
            out.push_str(&format!("  first token {}", fmt_duration(t)));
        }
        out.push('\n');
    }
    let failed = reports
        .iter()
        .filter(|r| r.assessment.status == Status::Crit)
        .count();
    let warned = reports
        .iter()
        .filter(|r| r.assessment.status == Status::Warn)
        .count();
    out.push_str(&format!(
        "\n{} checks: {} ok, {warned} warn, {failed} crit\n",
        reports.len(),
        reports.len() - failed - warned
    ));
    out
}

#[derive(Serialize)]
struct JsonCheck<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    success: bool,
    status: Status,
    reason: Option<&'a str>,
    phase: Option<&'a str>,
    message: Option<&'a str>,
    duration_seconds: f64,
    phases: BTreeMap<&'a str, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dns: Option<serde_json::Value>,
    /// Agent events with their seconds since the message was sent.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    events: &'a [crate::probe::EventAt],
    /// The agent run's profile, stages, deltas and output rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<&'a crate::probe::RunStats>,
    /// Browser checks: timings, steps, the streams the page opened, failed requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<&'a crate::probe::PageReport>,
    /// `--wait-ready`: `waited_seconds` and `tries`, when it tried more than once.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    waited: Option<Waited>,
}

pub fn json(reports: &[CheckReport]) -> String {
    let checks: Vec<JsonCheck> = reports
        .iter()
        .map(|r| {
            let f = r.result.failure.as_ref();
            let tls = r.result.tls.as_ref().map(|t| {
                let leaf = t.chain.first();
                let chain: Vec<_> = t
                    .chain
                    .iter()
                    .map(|c| {
                        json!({
                            "subject": c.subject, "issuer": c.issuer, "sans": c.sans, "serial": c.serial,
                            "fingerprint_sha256": c.fingerprint_sha256, "not_before": rfc3339(c.not_before),
                            "not_after": rfc3339(c.not_after), "days_left": days_left(c.not_after), "is_ca": c.is_ca,
                        })
                    })
                    .collect();
                json!({
                    "server_name": t.server_name, "version": t.version, "cipher": t.cipher, "verified": t.verified,
                    "subject": leaf.map(|c| &c.subject), "sans": leaf.map(|c| &c.sans),
                    "not_after": leaf.map(|c| rfc3339(c.not_after)), "days_left": leaf.map(|c| days_left(c.not_after)),
                    "chain": chain,
                })
            });
            JsonCheck {
                name: &r.check.name,
                kind: r.check.spec.kind(),
                success: r.result.success(),
                status: r.assessment.status,
                reason: f.map(|f| f.reason.as_str()),
                phase: f.and_then(|f| f.phase.map(|p| p.as_str())),
                message: r.assessment.why.as_deref().map(|w| f.map_or(w, |f| f.message.as_str())),
                duration_seconds: r.result.duration.as_secs_f64(),
                phases: r.result.phases.iter().map(|(p, d)| (p.as_str(), d.as_secs_f64())).collect(),
                tls,
                http: r.result.http.as_ref().map(|h| serde_json::to_value(h).unwrap_or_default()),
                dns: r.result.dns.as_ref().map(|d| serde_json::to_value(d).unwrap_or_default()),
                events: &r.result.events,
                agent: r.result.agent.as_ref(),
                page: r.result.page.as_ref(),
                waited: r.waited,
            }
        })
        .collect();
    #[derive(Serialize)]
    struct Doc<'a> {
        passed: bool,
        checks: Vec<JsonCheck<'a>>,
    }
    let passed = reports.iter().all(|r| r.assessment.status != Status::Crit);
    serde_json::to_string_pretty(&Doc { passed, checks }).unwrap_or_default() + "\n"
}

pub fn junit(reports: &[CheckReport]) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut suite = TestSuite::new("pathwatch check");
    for r in reports {
        let status = match (&r.assessment.status, &r.assessment.why) {
            (Status::Crit, why) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                if let TestCaseStatus::NonSuccess {
                    message,
                    ty,
                    description,
                    ..
                } = &mut s
                {
                    let reason = r
                        .result
                        .failure
                        .as_ref()
                        .map_or("threshold", |f| f.reason.as_str());
                    *ty = Some(reason.into());
                    *message = why.clone().map(Into::into);
                    *description = why.clone().map(Into::into);
                }
                s
            }
            _ => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(r.check.name.as_str(), status);
        case.set_classname(format!("pathwatch.{}", r.check.spec.kind()));
        case.set_time(r.result.duration);
        if let (Status::Warn, Some(why)) = (&r.assessment.status, &r.assessment.why) {
            case.set_system_out(format!("WARN: {why}"));
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("pathwatch");
    report.add_test_suite(suite);
    report.to_string().unwrap_or_default()
}
