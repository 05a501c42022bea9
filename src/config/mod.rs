//! The config file: its top-level sections, loading with `${...}` interpolation, and
//! validation that reports every problem at once with file:line:column and field path.
//! It does not probe anything; probe settings per type live in [`spec`].

pub mod spec;
pub mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::secrets::Secrets;
pub use spec::{Damping, DnsSpec, HostPort, HttpSpec, Spec, Target, Thresholds, TlsClient};
use yaml::{Doc, Located};

/// A validated config, ready to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// Value of the `location` label on every metric (default `local`).
    pub location: String,
    pub scheduler: SchedulerConfig,
    pub resolver: ResolverConfig,
    pub checks: Vec<Arc<Check>>,
    /// Named probe settings for `/probe?module=`.
    pub modules: BTreeMap<String, Arc<Module>>,
    pub probe: ProbeEndpointConfig,
    /// Start the built-in demo agent backend in-process (what makes the default config
    /// work offline).
    pub demo: Option<DemoConfig>,
    pub history: HistoryConfig,
    /// The config file's folder (relative paths in the config are taken from it).
    pub base_dir: PathBuf,
    pub secrets: Secrets,
}

/// `demo:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    /// Address of the demo backend (health, readiness, `/ws`).
    pub listen: SocketAddr,
    /// A second address serving the same backend over TLS (https://, wss://), with a
    /// certificate for localhost made at start; checks trust it with `ca_file: demo`.
    #[serde(default)]
    pub tls_listen: Option<SocketAddr>,
    #[serde(skip)]
    pub pki: Option<Arc<crate::demo::DemoPki>>,
}

/// `history:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// SQLite file (relative to the config file's folder); unset: in memory, gone on exit.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// How long every run is kept (default 7d in a file, 1h in memory).
    #[serde(default, deserialize_with = "opt_duration")]
    pub keep_runs: Option<Duration>,
    /// How long hourly roll-ups and transitions are kept (default 90d in a file, 2d in
    /// memory).
    #[serde(default, deserialize_with = "opt_duration")]
    pub keep_rollups: Option<Duration>,
}

impl HistoryConfig {
    /// (runs, roll-ups): a history in memory keeps little, as it lives in RAM.
    pub fn retention(&self) -> (Duration, Duration) {
        let day = 86_400;
        let (runs, rollups) = if self.path.is_some() {
            (7 * day, 90 * day)
        } else {
            (3_600, 2 * day)
        };
        (
            self.keep_runs.unwrap_or(Duration::from_secs(runs)),
            self.keep_rollups.unwrap_or(Duration::from_secs(rollups)),
        )
    }
}

/// `server:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP server (`/metrics`, `/probe`, ...). Default `127.0.0.1:9115`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9115))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
        }
    }
}

/// `scheduler:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    /// Most probes running at once, across all checks (default 1024).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// On SIGINT/SIGTERM, how long in-flight probes may take to finish (default 10s).
    #[serde(default = "default_grace", deserialize_with = "duration")]
    pub grace_period: Duration,
}

fn default_concurrency() -> usize {
    1024
}
fn default_grace() -> Duration {
    Duration::from_secs(10)
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrency: default_concurrency(),
            grace_period: default_grace(),
        }
    }
}

/// `resolver:`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    /// DNS servers (ip:port) to ask. Empty (default): the system's `/etc/resolv.conf`.
    /// `/etc/hosts` is always consulted first.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
}

/// `probe:` settings of the blackbox-style `/probe` endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeEndpointConfig {
    /// host:port globs (`*` matches any run of characters, `api.example.com` alone matches
    /// any port) a `/probe` target must match. Empty (default): `/probe` refuses every target.
    #[serde(default)]
    pub allow_targets: Vec<String>,
}

/// `defaults:` applied to every check that does not set the key itself.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default, deserialize_with = "opt_duration")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    thresholds: RawThresholds,
}

/// `thresholds:` of a check or of `defaults:`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    /// A successful probe slower than this is WARN.
    #[serde(default, deserialize_with = "opt_duration")]
    latency_warn: Option<Duration>,
    /// A successful probe slower than this is CRIT.
    #[serde(default, deserialize_with = "opt_duration")]
    latency_crit: Option<Duration>,
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
}

impl RawThresholds {
    fn or(self, d: RawThresholds) -> RawThresholds {
        RawThresholds {
            latency_warn: self.latency_warn.or(d.latency_warn),
            latency_crit: self.latency_crit.or(d.latency_crit),
            cert_days_warn: self.cert_days_warn.or(d.cert_days_warn),
            cert_days_crit: self.cert_days_crit.or(d.cert_days_crit),
            failures_to_crit: self.failures_to_crit.or(d.failures_to_crit),
            window: self.window.or(d.window),
            successes_to_recover: self.successes_to_recover.or(d.successes_to_recover),
        }
    }

    fn resolve(self) -> Thresholds {
        Thresholds {
            latency_warn: self.latency_warn,
            latency_crit: self.latency_crit,
            cert_days_warn: self.cert_days_warn.unwrap_or(14),
            cert_days_crit: self.cert_days_crit.unwrap_or(7),
            damping: self.damping(),
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
}

/// Probe settings for `/probe?module=NAME`; the target comes from the request.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    pub timeout: Duration,
    pub spec: Spec,
}

/// The keys every check has, beside its type's own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckCommon {
    name: String,
    #[serde(rename = "type")]
    _kind: String,
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

const CHECK_KEYS: [&str; 6] = [
    "name",
    "type",
    "target",
    "interval",
    "timeout",
    "thresholds",
];
const MODULE_KEYS: [&str; 2] = ["type", "timeout"];
const ROOT_KEYS: [&str; 10] = [
    "demo",
    "history",
    "server",
    "location",
    "scheduler",
    "resolver",
    "defaults",
    "checks",
    "modules",
    "probe",
];

/// One config problem, printed as `file:line:col: path: message`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(l), Some(c)) = (self.line, self.col) {
            write!(f, ":{l}:{c}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads and validates a config file; `${ENV}` comes from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: None,
                col: None,
                path: String::new(),
                message: format!("cannot read config file: {e}"),
            }])
        })?;
        Config::from_str(&text, &file, &|name| std::env::var(name).ok())
    }

    /// Parses config text; `file` names it in errors; `env` looks up `${NAME}`.
    pub fn from_str(
        text: &str,
        file: &str,
        env: yaml::EnvLookup<'_>,
    ) -> Result<Config, ConfigErrors> {
        let located = |errs: Vec<Located>, secrets: &Secrets| {
            ConfigErrors(
                errs.into_iter()
                    .map(|e| ConfigError {
                        file: file.to_string(),
                        line: e.pos.map(|p| p.line),
                        col: e.pos.map(|p| p.col),
                        path: e.path,
                        message: secrets.redact(&e.message),
                    })
                    .collect(),
            )
        };
        let doc = yaml::parse(text, env).map_err(|e| located(e, &Secrets::default()))?;
        let secrets = Secrets::new(doc.secrets.clone());
        let mut v = Validator {
            doc: &doc,
            errors: Vec::new(),
            base_dir: Path::new(file)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            demo_roots: None,
        };
        let config = v.config(secrets.clone());
        let mut errors = v.errors;
        errors.sort_by_key(|e| e.pos.map(|p| (p.line, p.col)));
        match config {
            Some(c) if errors.is_empty() => Ok(c),
            _ => Err(located(errors, &secrets)),
        }
    }

    pub fn check(&self, name: &str) -> Option<&Arc<Check>> {
        self.checks.iter().find(|c| c.name == name)
    }
}

struct Validator<'d> {
    doc: &'d Doc,
    errors: Vec<Located>,
    /// Relative `ca_file` paths are taken from the config file's folder.
    base_dir: PathBuf,
    /// The demo's CA when `demo.tls_listen` is set (`ca_file: demo`).
    demo_roots: Option<Arc<RootCertStore>>,
}

impl Validator<'_> {
    fn error(&mut self, path: &str, prefer_key: bool, message: impl Into<String>) {
        self.errors.push(Located {
            pos: self.doc.position(path, prefer_key),
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// Deserializes one part of the file. Unknown keys are reported and dropped, then the
    /// part is tried again, so one pass finds every unknown key; the first other error of
    /// the part is reported and the part is skipped.
    fn section<T: DeserializeOwned>(&mut self, mut value: Value, path: &str) -> Option<T> {
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(t) => return Some(t),
                Err(e) => {
                    let inner: Vec<Seg> = e.path().iter().filter_map(Seg::from).collect();
                    let message = e.inner().to_string();
                    let mut full = path.to_string();
                    for s in &inner {
                        full = s.append(&full);
                    }
                    if let Some(field) = unknown_field(&message) {
                        // The path may or may not already end in the unknown key.
                        let parent_segs: Vec<Seg> = match inner.last() {
                            Some(Seg::Key(k)) if k == field => inner[..inner.len() - 1].to_vec(),
                            _ => inner.clone(),
                        };
                        let mut parent = path.to_string();
                        for s in &parent_segs {
                            parent = s.append(&parent);
                        }
                        let key_path = yaml::child(&parent, field);
                        let expected = message
                            .split_once(", expected ")
                            .map(|(_, rest)| format!(" (expected {rest})"))
                            .unwrap_or_default();
                        self.error(&key_path, true, format!("unknown key `{field}`{expected}"));
                        if remove_key(&mut value, &parent_segs, field) {
                            continue;
                        }
                        return None;
                    }
                    self.error(&full, false, message);
                    return None;
                }
            }
        }
        None
    }

    fn config(&mut self, secrets: Secrets) -> Option<Config> {
        let root = match &self.doc.value {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            _ => {
                self.error(
                    "",
                    false,
                    "the config must be a mapping of sections (server, checks, ...)",
                );
                return None;
            }
        };
        for key in root.keys() {
            if !ROOT_KEYS.contains(&key.as_str()) {
                self.error(
                    key,
                    true,
                    format!(
                        "unknown key `{key}` (expected one of {})",
                        ROOT_KEYS.join(", ")
                    ),
                );
            }
        }
        let get = |k: &str| root.get(k).cloned().unwrap_or(Value::Null);
        let or_empty = |v: Value| {
            if v.is_null() {
                Value::Object(Map::new())
            } else {
                v
            }
        };

        let server: Option<ServerConfig> = self.section(or_empty(get("server")), "server");
        let scheduler: Option<SchedulerConfig> =
            self.section(or_empty(get("scheduler")), "scheduler");
        let resolver: Option<ResolverConfig> = self.section(or_empty(get("resolver")), "resolver");
        let probe: Option<ProbeEndpointConfig> = self.section(or_empty(get("probe")), "probe");
        let mut demo: Option<Option<DemoConfig>> = match get("demo") {
            Value::Null => Some(None),
            v => self.section(v, "demo").map(Some),
        };
        if let Some(Some(d)) = &mut demo
            && d.tls_listen.is_some()
        {
            match crate::demo::DemoPki::generate() {
                Ok(pki) => d.pki = Some(Arc::new(pki)),
                Err(e) => self.error("demo.tls_listen", false, e),
            }
            self.demo_roots = d.pki.as_ref().map(|p| p.roots.clone());
        }
        let defaults: Option<Defaults> = self.section(or_empty(get("defaults")), "defaults");
        let history: Option<HistoryConfig> = self.section(or_empty(get("history")), "history");
        let location: Option<String> = match get("location") {
            Value::Null => Some("local".into()),
            v => self.section(v, "location"),
        };
        if let Some(loc) = &location
            && !label_safe(loc)
        {
            self.error(
                "location",
                false,
                "location must be 1-64 characters of letters, digits, `-`, `_`, `.`",
            );
        }
        if let Some(s) = &scheduler
            && s.max_concurrency == 0
        {
            self.error("scheduler.max_concurrency", false, "must be at least 1");
        }
        if let Some(p) = &probe {
            for (i, pat) in p.allow_targets.iter().enumerate() {
                if pat.trim().is_empty() {
                    self.error(
                        &yaml::index("probe.allow_targets", i),
                        false,
                        "empty pattern",
                    );
                }
            }
        }
        let defaults = defaults.unwrap_or_default();
        self.check_thresholds(defaults.thresholds, "defaults.thresholds");

        let checks = match get("checks") {
            Value::Null => Vec::new(),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, item)| self.check(item, &yaml::index("checks", i), &defaults))
                .map(Arc::new)
                .collect(),
            _ => {
                self.error("checks", false, "`checks` must be a list");
                Vec::new()
            }
        };
        self.duplicate_names(&get("checks"));

        let mut modules = BTreeMap::new();
        match get("modules") {
            Value::Null => {}
            Value::Object(m) => {
                for (name, item) in m {
                    let path = yaml::child("modules", &name);
                    if let Some(module) = self.module(&name, item, &path, &defaults) {
                        modules.insert(name, Arc::new(module));
                    }
                }
            }
            _ => self.error(
                "modules",
                false,
                "`modules` must be a mapping of name to settings",
            ),
        }

        Some(Config {
            server: server?,
            location: location?,
            scheduler: scheduler?,
            resolver: resolver?,
            checks,
            modules,
            probe: probe?,
            demo: demo?,
            history: history?,
            base_dir: self.base_dir.clone(),
            secrets,
        })
    }

    /// Reports repeated check names, from the raw list so a check with other errors counts.
    fn duplicate_names(&mut self, checks: &Value) {
        let Value::Array(items) = checks else { return };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            if let Some(first) = seen.insert(name, i) {
                let first_line = self
                    .doc
                    .position(&format!("checks[{first}].name"), false)
                    .map(|p| format!(" (first defined at line {})", p.line))
                    .unwrap_or_default();
                let path = format!("checks[{i}].name");
                self.error(
                    &path,
                    false,
                    format!("duplicate check name `{name}`{first_line}"),
                );
            }
        }
    }

    /// Splits an item into its common keys and its type's keys; returns the type's spec.
    fn typed_spec(
        &mut self,
        item: &Value,
        path: &str,
        common_keys: &[&str],
    ) -> Option<(Map<String, Value>, Spec)> {
        let Value::Object(map) = item else {
            self.error(path, false, "must be a mapping");
            return None;
        };
        let kind = match map.get("type") {
            Some(Value::String(k)) => k.clone(),
            Some(_) | None => {
                self.error(
                    path,
                    false,
                    format!("missing `type` (one of {})", Spec::KINDS.join(", ")),
                );
                return None;
            }
        };
        let (common, own): (Map<String, Value>, Map<String, Value>) = map
            .clone()
            .into_iter()
            .partition(|(k, _)| common_keys.contains(&k.as_str()));
        let own = Value::Object(own);
        let mut spec = match kind.as_str() {
            "http" => Spec::Http(self.section(own, path)?),
            "tls" => Spec::Tls(self.section(own, path)?),
            "dns" => Spec::Dns(self.section(own, path)?),
            "agent_pipeline" => Spec::Agent(self.section(own, path)?),
            "websocket" => Spec::WebSocket(self.section(own, path)?),
            other => {
                self.error(
                    &yaml::child(path, "type"),
                    false,
                    format!(
                        "unknown check type `{other}` (expected one of {})",
                        Spec::KINDS.join(", ")
                    ),
                );
                return None;
            }
        };
        self.check_spec(&mut spec, path);
        Some((common, spec))
    }

    fn check(&mut self, item: Value, path: &str, defaults: &Defaults) -> Option<Check> {
        let (common, spec) = self.typed_spec(&item, path, &CHECK_KEYS)?;
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
        let timeout = match common.timeout {
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
            // An inherited timeout is cut to fit the check's own interval.
            None => defaults
                .timeout
                .unwrap_or(DEFAULT_TIMEOUT)
                .min(interval.mul_f64(0.8)),
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
        })
    }

    fn module(
        &mut self,
        name: &str,
        item: Value,
        path: &str,
        defaults: &Defaults,
    ) -> Option<Module> {
        let (common, spec) = self.typed_spec(&item, path, &MODULE_KEYS)?;
        let common: ModuleCommon = self.section(Value::Object(common), path)?;
        if !label_safe(name) {
            self.error(
                path,
                true,
                "a module name is 1-64 characters of letters, digits, `-`, `_`, `.`",
            );
        }
        let timeout = common
            .timeout
            .or(defaults.timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        Some(Module {
            name: name.to_string(),
            timeout,
            spec,
        })
    }

    fn check_thresholds(&mut self, t: RawThresholds, path: &str) {
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

    /// Checks what serde cannot: header syntax, rule shapes, CA files.
    fn check_spec(&mut self, spec: &mut Spec, path: &str) {
        if let Spec::Agent(a) = spec {
            match a.expect.rules() {
                Ok(rules) => a.rules = rules,
                Err(e) => self.error(&yaml::child(path, "expect"), false, e),
            }
            if let Some(login) = &mut a.login {
                match spec::parse_http_url(&login.url) {
                    Ok(u) => login.parsed_url = Some(u),
                    Err(e) => self.error(&yaml::child(path, "login.url"), false, e),
                }
            }
            let t = &mut a.token;
            if let Some(url) = &t.ticket_url {
                match spec::parse_http_url(url) {
                    Ok(u) => t.parsed_ticket_url = Some(u),
                    Err(e) => self.error(&yaml::child(path, "token.ticket_url"), false, e),
                }
            }
            let has_token = a.login.is_some() || t.value.is_some();
            if t.transport.is_some_and(|tr| tr != spec::Transport::None) && !has_token {
                self.error(
                    &yaml::child(path, "token.transport"),
                    false,
                    "a token transport needs `login:` or `token.value`",
                );
            }
            if t.transport == Some(spec::Transport::Ticket) && t.ticket_url.is_none() {
                self.error(
                    &yaml::child(path, "token.transport"),
                    false,
                    "transport `ticket` needs `token.ticket_url`",
                );
            }
            self.check_headers(path, &a.headers);
        }
        if let Spec::WebSocket(w) = spec {
            self.check_headers(path, &w.headers);
            self.check_json_rules(&yaml::child(path, "expect.json"), &w.expect.json);
        }
        if let Spec::Http(h) = spec {
            if hyper::Method::from_bytes(h.method.as_bytes()).is_err() {
                self.error(
                    &yaml::child(path, "method"),
                    false,
                    format!("`{}` is not an HTTP method", h.method),
                );
            }
            self.check_headers(path, &h.headers);
            for name in h.expect.headers.keys() {
                if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    let hp = yaml::child(&yaml::child(path, "expect.headers"), name);
                    self.error(&hp, true, format!("`{name}` is not a valid header name"));
                }
            }
            self.check_json_rules(&yaml::child(path, "expect.json"), &h.expect.json);
            if h.max_redirects > 100 {
                self.error(&yaml::child(path, "max_redirects"), false, "at most 100");
            }
        }
        let tls_path = match spec {
            Spec::Tls(_) => path.to_string(),
            _ => yaml::child(path, "tls"),
        };
        if let Some(tls) = spec.tls_client_mut() {
            if let Some(name) = &tls.server_name
                && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
            {
                self.error(
                    &yaml::child(&tls_path, "server_name"),
                    false,
                    format!("`{name}` is not a valid server name"),
                );
            }
            if tls.ca_file.as_deref() == Some(Path::new("demo")) {
                match &self.demo_roots {
                    Some(roots) => tls.roots = Some(roots.clone()),
                    None => self.error(
                        &yaml::child(&tls_path, "ca_file"),
                        false,
                        "`ca_file: demo` trusts the demo backend's certificate; it needs `demo.tls_listen`",
                    ),
                }
            } else if let Some(file) = &tls.ca_file {
                let file = self.base_dir.join(file);
                match load_roots(&file) {
                    Ok(roots) => tls.roots = Some(Arc::new(roots)),
                    Err(e) => self.error(&yaml::child(&tls_path, "ca_file"), false, e),
                }
            }
        }
    }
}

impl Validator<'_> {
    /// Request headers at `path.headers`: names and values HTTP allows.
    fn check_headers(&mut self, path: &str, headers: &BTreeMap<String, String>) {
        for (name, value) in headers {
            let hp = yaml::child(&yaml::child(path, "headers"), name);
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.error(&hp, true, format!("`{name}` is not a valid header name"));
            }
            if hyper::header::HeaderValue::from_str(value).is_err() {
                self.error(
                    &hp,
                    false,
                    "header value has characters HTTP does not allow",
                );
            }
        }
    }

    fn check_json_rules(&mut self, path: &str, rules: &[spec::JsonRule]) {
        for (i, rule) in rules.iter().enumerate() {
            if rule.condition_count() != 1 {
                self.error(
                    &yaml::index(path, i),
                    false,
                    "a JSON rule needs exactly one of equals, one_of, matches, exists",
                );
            }
        }
    }
}

/// Reads a PEM file of CA certificates into a trust store.
pub fn load_roots(file: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{} is not valid PEM: {e}", file.display()))?;
        roots.add(cert).map_err(|e| {
            format!(
                "{} holds a certificate that cannot be a trust anchor: {e}",
                file.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", file.display()));
    }
    Ok(roots)
}

/// Names and label values: bounded, printable, URL-safe.
fn label_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A path segment as serde_path_to_error reports it.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    fn from(s: &serde_path_to_error::Segment) -> Option<Seg> {
        match s {
            serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
            _ => None,
        }
    }

    fn append(&self, path: &str) -> String {
        match self {
            Seg::Key(k) => yaml::child(path, k),
            Seg::Index(i) => yaml::index(path, *i),
        }
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(f, _)| f)
}

fn remove_key(value: &mut Value, parent: &[Seg], key: &str) -> bool {
    let mut v = value;
    for s in parent {
        v = match (s, v) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(x) => x,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    match v {
        Value::Object(m) => m.remove(key).is_some(),
        _ => false,
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = Value::deserialize(d)?;
    parse_duration(&v).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => parse_duration(&v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn parse_duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 500ms, 30s, 5m, 7d")),
        other => Err(format!(
            "`{other}` is not a duration; write it with a unit, e.g. 500ms, 30s, 5m, 7d"
        )),
    }
}
