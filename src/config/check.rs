//! One check (or `/probe` module): the keys every type has (name, interval, timeout,
//! thresholds), the `defaults:` they inherit, and how they are validated.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::spec::{Phrase, Spec, Target};
use super::validate::Validator;
use super::value::{label_safe, opt_duration};
use super::yaml;

/// `defaults:` applied to every check that does not set the key itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Defaults {
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub(super) timeout: Option<Duration>,
    #[serde(default)]
    pub(super) thresholds: RawThresholds,
    /// `starting_patterns` of every http, websocket and agent_pipeline check that sets none.
    #[serde(default)]
    pub(super) starting_patterns: Option<Vec<Phrase>>,
}

/// `thresholds:` of a check or of `defaults:`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholds {
    /// A successful probe slower than this is WARN.
    #[serde(default, deserialize_with = "opt_duration")]
    latency_warn: Option<Duration>,
    /// A successful probe slower than this is CRIT.
    #[serde(default, deserialize_with = "opt_duration")]
    latency_crit: Option<Duration>,
    /// Browser checks: a largest contentful paint (else first contentful paint) slower
    /// than this is WARN (Google's "good" ends at 2.5s) ...
    #[serde(default, deserialize_with = "opt_duration")]
    paint_warn: Option<Duration>,
    /// ... or CRIT.
    #[serde(default, deserialize_with = "opt_duration")]
    paint_crit: Option<Duration>,
    /// A certificate with this many days left or fewer is WARN (default 14).
    #[serde(default)]
    cert_days_warn: Option<u32>,
    /// ... or CRIT (default 7).
    #[serde(default)]
    cert_days_crit: Option<u32>,
    /// The state turns CRIT (or WARN) after this many failed (or degraded) runs ...
    #[serde(default)]
    failures_to_crit: Option<u32>,
    /// ... among the last `window` runs (default 3; equal to failures_to_crit means
    /// consecutive).
    #[serde(default)]
    window: Option<u32>,
    /// It comes back after this many consecutive better runs (default 2).
    #[serde(default)]
    successes_to_recover: Option<u32>,
    /// A target that says it is starting is WARN for this long from its first `starting`
    /// run, then CRIT (default 2m).
    #[serde(default, deserialize_with = "opt_duration")]
    cold_start_grace: Option<Duration>,
}

impl RawThresholds {
    fn or(self, d: RawThresholds) -> RawThresholds {
        RawThresholds {
            latency_warn: self.latency_warn.or(d.latency_warn),
            latency_crit: self.latency_crit.or(d.latency_crit),
            paint_warn: self.paint_warn.or(d.paint_warn),
            paint_crit: self.paint_crit.or(d.paint_crit),
            cert_days_warn: self.cert_days_warn.or(d.cert_days_warn),
            cert_days_crit: self.cert_days_crit.or(d.cert_days_crit),
            failures_to_crit: self.failures_to_crit.or(d.failures_to_crit),
            window: self.window.or(d.window),
            successes_to_recover: self.successes_to_recover.or(d.successes_to_recover),
            cold_start_grace: self.cold_start_grace.or(d.cold_start_grace),
        }
    }

    fn resolve(self) -> Thresholds {
        Thresholds {
            latency_warn: self.latency_warn,
            latency_crit: self.latency_crit,
            paint_warn: self.paint_warn,
            paint_crit: self.paint_crit,
            cert_days_warn: self.cert_days_warn.unwrap_or(14),
            cert_days_crit: self.cert_days_crit.unwrap_or(7),
            damping: self.damping(),
            cold_start_grace: self.cold_start_grace.unwrap_or(DEFAULT_COLD_START_GRACE),
        }
    }

    fn damping(self) -> Damping {
        let failures = self.failures_to_crit.unwrap_or(2);
        Damping {
            failures,
            window: self.window.unwrap_or(failures.max(3)),
            recover: self.successes_to_recover.unwrap_or(2),
        }
    }
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const DEFAULT_COLD_START_GRACE: Duration = Duration::from_secs(120);

/// One scheduled check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Unique; the `check` label.
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub target: Target,
    pub spec: Spec,
    pub thresholds: Thresholds,
    /// The check as written (after interpolation): what a reload compares.
    pub source: Value,
}

impl Check {
    /// Same settings as `other`: as written, and with the same inherited defaults. A
    /// reload leaves such a check untouched.
    pub fn same_settings(&self, other: &Check) -> bool {
        self.source == other.source
            && self.interval == other.interval
            && self.timeout == other.timeout
            && self.thresholds == other.thresholds
            && self.spec.starting_patterns() == other.spec.starting_patterns()
            && match (self.spec.tls_client(), other.spec.tls_client()) {
                (Some(a), Some(b)) => a.same_files(b),
                _ => true,
            }
    }

    /// What a reload changed that makes this a different check (its state starts over),
    /// in words; None when type and target are the same.
    pub fn identity_change(&self, new: &Check) -> Option<String> {
        if self.spec.kind() != new.spec.kind() {
            return Some(format!(
                "type changed from {} to {}",
                self.spec.kind(),
                new.spec.kind()
            ));
        }
        (self.target != new.target).then(|| {
            format!(
                "target changed from {} to {}",
                self.target.display(),
                new.target.display()
            )
        })
    }
}

/// Probe settings for `/probe?module=NAME`; the target comes from the request.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub timeout: Duration,
    /// The module says its timeout (a check naming it takes it); else `timeout` is the
    /// default.
    pub timeout_set: bool,
    pub spec: Spec,
}

/// The keys every check has, beside its type's own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckCommon {
    name: String,
    #[serde(default, rename = "type")]
    _kind: Option<String>,
    /// A module of `modules:` or `modules_file:` whose settings the check takes.
    #[serde(default, rename = "module")]
    _module: Option<String>,
    /// Parsed per type beforehand; kept here so a missing or non-string target is reported.
    #[serde(rename = "target")]
    _target: String,
    #[serde(default, deserialize_with = "opt_duration")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    thresholds: RawThresholds,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModuleCommon {
    #[serde(rename = "type")]
    _kind: String,
    #[serde(default, deserialize_with = "opt_duration")]
    timeout: Option<Duration>,
}

pub(super) const CHECK_KEYS: [&str; 7] = [
    "name",
    "type",
    "module",
    "target",
    "interval",
    "timeout",
    "thresholds",
];
pub(super) const MODULE_KEYS: [&str; 2] = ["type", "timeout"];

/// Thresholds that turn a successful probe into WARN or CRIT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub latency_warn: Option<Duration>,
    pub latency_crit: Option<Duration>,
    pub paint_warn: Option<Duration>,
    pub paint_crit: Option<Duration>,
    pub cert_days_warn: u32,
    pub cert_days_crit: u32,
    pub damping: Damping,
    /// How long a target may say it is starting before that is CRIT.
    pub cold_start_grace: Duration,
}

/// How many runs move a check's state: CRIT (or WARN) after `failures` bad runs among the
/// last `window`, back after `recover` consecutive better runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Damping {
    pub failures: u32,
    pub window: u32,
    pub recover: u32,
}

impl Validator<'_> {
    pub(super) fn check(&mut self, item: Value, path: &str, defaults: &Defaults) -> Option<Check> {
        let (common, mut spec, module_timeout) = match item.get("module") {
            Some(name) => self.module_spec(&item, name, path)?,
            None => {
                let (common, spec) = self.typed_spec(&item, path, &CHECK_KEYS)?;
                (common, spec, None)
            }
        };
        spec.inherit_starting(defaults.starting_patterns.as_ref());
        let source = item.clone();
        // The target is judged even when other common keys are wrong, so both are reported.
        let target = match common
            .get("target")
            .and_then(Value::as_str)
            .map(|t| spec.parse_target(t))
        {
            Some(Ok(t)) => Some(t),
            Some(Err(e)) => {
                self.error(&yaml::child(path, "target"), false, e);
                None
            }
            None => None,
        };
        let common: CheckCommon = self.section(Value::Object(common), path)?;
        let mut ok = true;
        if !label_safe(&common.name) {
            self.error(
                &yaml::child(path, "name"),
                false,
                "a check name is 1-64 characters of letters, digits, `-`, `_`, `.`",
            );
            ok = false;
        }
        let interval = common
            .interval
            .or(defaults.interval)
            .unwrap_or(DEFAULT_INTERVAL);
        if interval < MIN_INTERVAL {
            self.error(
                &yaml::child(path, "interval"),
                false,
                "interval must be at least 100ms",
            );
            ok = false;
        }
        let timeout = match common.timeout.or(module_timeout) {
            Some(t) => {
                if t >= interval {
                    self.error(
                        &yaml::child(path, "timeout"),
                        false,
                        format!(
                            "timeout ({}) must be shorter than interval ({}): a check never overlaps itself",
                            humantime::format_duration(t),
                            humantime::format_duration(interval)
                        ),
                    );
                    ok = false;
                }
                t
            }
            // An inherited timeout that does not fit the check's own interval is cut to 80%
            // of it (and `validate` says so); one that fits is kept.
            None => {
                let inherited = defaults.timeout.unwrap_or(DEFAULT_TIMEOUT);
                if inherited < interval {
                    inherited
                } else {
                    let cut = interval.mul_f64(0.8);
                    self.notes.push(format!(
                        "{path} ({}): the inherited timeout {} does not fit its {} interval; it is {}",
                        common.name,
                        humantime::format_duration(inherited),
                        humantime::format_duration(interval),
                        humantime::format_duration(cut),
                    ));
                    cut
                }
            }
        };
        if timeout.is_zero() {
            self.error(
                &yaml::child(path, "timeout"),
                false,
                "timeout must be more than 0",
            );
            ok = false;
        }
        let thresholds = common.thresholds.or(defaults.thresholds);
        self.check_thresholds(thresholds, &yaml::child(path, "thresholds"));
        (ok).then_some(())?;
        Some(Check {
            name: common.name,
            interval,
            timeout,
            target: target?,
            spec,
            thresholds: thresholds.resolve(),
            source,
        })
    }

    /// A check that names a module: the module's settings, and its timeout if it sets one.
    fn module_spec(
        &mut self,
        item: &Value,
        name: &Value,
        path: &str,
    ) -> Option<(serde_json::Map<String, Value>, Spec, Option<Duration>)> {
        let Value::Object(map) = item else {
            self.error(path, false, "must be a mapping");
            return None;
        };
        let at = yaml::child(path, "module");
        let Some(name) = name.as_str() else {
            self.error(&at, false, "the name of a module");
            return None;
        };
        if map.contains_key("type") {
            self.error(
                &at,
                true,
                "`module` and `type` exclude each other: a check takes its type and settings from its module",
            );
            return None;
        }
        let Some(module) = self.known_modules.get(name).cloned() else {
            let known: Vec<&str> = self.known_modules.keys().map(String::as_str).collect();
            self.error(
                &at,
                false,
                format!(
                    "no module `{name}` (modules: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
            return None;
        };
        let timeout = module.timeout_set.then_some(module.timeout);
        Some((map.clone(), module.spec.clone(), timeout))
    }

    pub(super) fn module(
        &mut self,
        name: &str,
        item: Value,
        path: &str,
        defaults: &Defaults,
    ) -> Option<Module> {
        let (common, mut spec) = self.typed_spec(&item, path, &MODULE_KEYS)?;
        spec.inherit_starting(defaults.starting_patterns.as_ref());
        let common: ModuleCommon = self.section(Value::Object(common), path)?;
        self.module_name(name, path);
        Some(Module {
            name: name.to_string(),
            timeout: common
                .timeout
                .or(defaults.timeout)
                .unwrap_or(DEFAULT_TIMEOUT),
            timeout_set: common.timeout.is_some(),
            spec,
        })
    }

    /// Reports a module name that cannot be a `module` parameter or label.
    pub(super) fn module_name(&mut self, name: &str, path: &str) {
        if !label_safe(name) {
            self.error(
                path,
                true,
                "a module name is 1-64 characters of letters, digits, `-`, `_`, `.`",
            );
        }
    }

    pub(super) fn check_thresholds(&mut self, t: RawThresholds, path: &str) {
        if let (Some(w), Some(c)) = (t.latency_warn, t.latency_crit)
            && w > c
        {
            self.error(
                &yaml::child(path, "latency_warn"),
                false,
                "latency_warn must not exceed latency_crit",
            );
        }
        if let (Some(w), Some(c)) = (t.cert_days_warn, t.cert_days_crit)
            && w < c
        {
            self.error(
                &yaml::child(path, "cert_days_warn"),
                false,
                "cert_days_warn must be at least cert_days_crit (warn comes first)",
            );
        }
        let d = t.damping();
        if d.failures == 0 || d.recover == 0 {
            self.error(
                path,
                false,
                "failures_to_crit and successes_to_recover must be at least 1",
            );
        } else if d.window < d.failures || d.window > 100 {
            self.error(
                &yaml::child(path, "window"),
                false,
                format!(
                    "window must be from failures_to_crit ({}) to 100 runs",
                    d.failures
                ),
            );
        }
    }
}
