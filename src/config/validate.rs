//! The walk over a parsed file: each section and check deserialized on its own, unknown
//! keys reported and dropped so one pass finds all of them, then what serde cannot check.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::check::Defaults;
use super::spec::{Context, Problems, Spec};
use super::value::label_safe;
use super::yaml::{self, Doc, Located};
use super::*;
use crate::secrets::Secrets;

const ROOT_KEYS: [&str; 14] = [
    "alerting",
    "browser",
    "cluster",
    "demo",
    "history",
    "server",
    "location",
    "scheduler",
    "resolver",
    "defaults",
    "checks",
    "modules",
    "modules_file",
    "probe",
];

pub(crate) struct Validator<'d> {
    doc: &'d Doc,
    pub errors: Vec<Located>,
    /// Relative `ca_file` paths are taken from the config file's folder.
    base_dir: PathBuf,
    /// `demo.tls_listen` is set (`ca_file: demo` has a CA to trust).
    demo_tls: bool,
    /// What was adjusted rather than refused (an inherited timeout cut to fit).
    pub notes: Vec<String>,
    /// The modules checks may name (`module:`), read before the checks.
    pub(super) known_modules: BTreeMap<String, Arc<Module>>,
    /// Secrets read from a `modules_file` (its passwords and tokens).
    pub module_secrets: Vec<String>,
}

impl<'d> Validator<'d> {
    pub fn new(doc: &'d Doc, base_dir: PathBuf) -> Self {
        Validator {
            doc,
            errors: Vec::new(),
            base_dir,
            demo_tls: false,
            notes: Vec::new(),
            known_modules: BTreeMap::new(),
            module_secrets: Vec::new(),
        }
    }
}

impl Validator<'_> {
    pub(super) fn error(&mut self, path: &str, prefer_key: bool, message: impl Into<String>) {
        self.errors.push(Located {
            pos: self.doc.position(path, prefer_key),
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn doc_value(&self) -> &Value {
        &self.doc.value
    }

    pub(super) fn base_dir(&self) -> &std::path::Path {
        &self.base_dir
    }

    /// A spec's own validation, its TLS settings at `tls_path`.
    pub(super) fn validate_spec(&mut self, spec: &mut Spec, path: &str, tls_path: &str) {
        self.validate_with(|ctx, problems| {
            spec.validate_own(path, problems);
            if let Some(tls) = spec.tls_client_mut() {
                tls.validate(tls_path, ctx, problems);
            }
        });
    }

    /// Runs a part's own validation (file paths from the config's folder) and reports what
    /// it found.
    fn validate_with(&mut self, validate: impl FnOnce(&Context<'_>, &mut Problems)) {
        let ctx = Context {
            base_dir: &self.base_dir,
            demo_tls: self.demo_tls,
        };
        let mut problems = Problems::default();
        validate(&ctx, &mut problems);
        for p in problems.0 {
            self.error(&p.path, p.at_key, p.message);
        }
    }

    /// Deserializes one part of the file. Unknown keys are reported and dropped, then the
    /// part is tried again, so one pass finds every unknown key; the first other error of
    /// the part is reported and the part is skipped.
    pub(super) fn section<T: DeserializeOwned>(&mut self, value: Value, path: &str) -> Option<T> {
        self.section_beside(value, path, &[])
    }

    /// [`Validator::section`] of a part whose keys sit beside `also` in the file (a check's
    /// type keys beside `name`, `interval`, ...): an unknown key is told all of them.
    pub(super) fn section_beside<T: DeserializeOwned>(
        &mut self,
        mut value: Value,
        path: &str,
        also: &[&str],
    ) -> Option<T> {
        for _ in 0..64 {
            match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(t) => return Some(t),
                Err(e) => {
                    let inner: Vec<Seg> = e.path().iter().filter_map(Seg::from).collect();
                    let message = plain_words(&e.inner().to_string());
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
                            .map(|(_, rest)| {
                                // `also` sits beside the part's own keys, not deeper.
                                let beside = if parent_segs.is_empty() { also } else { &[] };
                                let mut known: Vec<&str> = beside.to_vec();
                                known.extend(rest.split('`').skip(1).step_by(2));
                                let listed = known
                                    .iter()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ");
                                match closest_key(field, &known) {
                                    Some(key) => {
                                        format!(" (did you mean `{key}`? expected one of {listed})")
                                    }
                                    None => format!(" (expected one of {listed})"),
                                }
                            })
                            .unwrap_or_default();
                        let once = if ["one_off", "once", "run_once", "oneshot", "one_shot"]
                            .contains(&field)
                        {
                            "; a check runs every `interval`: to run checks once, use `pathwatch check` (exit 1 when one fails)"
                        } else {
                            ""
                        };
                        self.error(
                            &key_path,
                            true,
                            format!("unknown key `{field}`{expected}{once}"),
                        );
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

    pub(super) fn config(&mut self, secrets: Secrets) -> Option<Config> {
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
                    match closest_key(key, &ROOT_KEYS) {
                        Some(near) => format!(
                            "unknown key `{key}` (did you mean `{near}`? expected one of {})",
                            ROOT_KEYS.join(", ")
                        ),
                        None => format!(
                            "unknown key `{key}` (expected one of {})",
                            ROOT_KEYS.join(", ")
                        ),
                    },
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
        let browser: Option<BrowserConfig> = self.section(or_empty(get("browser")), "browser");
        if let Some(b) = &browser {
            self.validate_with(|_, problems| b.validate(problems));
        }
        let demo: Option<Option<DemoConfig>> = match get("demo") {
            Value::Null => Some(None),
            v => self.section(v, "demo").map(Some),
        };
        self.demo_tls = matches!(&demo, Some(Some(d)) if d.tls_listen.is_some());
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
        let alerting: Option<Option<AlertingConfig>> = match get("alerting") {
            Value::Null => Some(None),
            v => self.section(v, "alerting").map(|mut a: AlertingConfig| {
                self.validate_with(|ctx, problems| a.validate("alerting", ctx, problems));
                Some(a)
            }),
        };
        let cluster: Option<Option<ClusterConfig>> = match get("cluster") {
            Value::Null => Some(None),
            v => self.section(v, "cluster").map(|mut c: ClusterConfig| {
                if let Some(tls) = &mut c.client.tls {
                    self.validate_with(|ctx, problems| {
                        tls.validate("cluster.client.tls", ctx, problems)
                    });
                }
                if let Err(e) = c.source() {
                    self.error("cluster.peers", false, e);
                }
                if c.me.trim().is_empty() {
                    self.error(
                        "cluster.self",
                        false,
                        "name this instance as the peers list names it",
                    );
                }
                if let Ok(PeerSource::Fixed(list)) = c.source()
                    && !list.contains(&c.me())
                {
                    self.error(
                        "cluster.self",
                        false,
                        format!("`{}` is not among the peers", c.me),
                    );
                }
                Some(c)
            }),
        };
        let defaults = defaults.unwrap_or_default();
        self.check_thresholds(defaults.thresholds, "defaults.thresholds");

        let mut modules = self.modules_file(&get("modules_file"));
        match get("modules") {
            Value::Null => {}
            Value::Object(m) => {
                for (name, item) in m {
                    let path = yaml::child("modules", &name);
                    if modules.contains_key(&name) {
                        self.error(
                            &path,
                            true,
                            format!("module `{name}` is also in modules_file"),
                        );
                    }
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
        self.known_modules = modules.clone();

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

        Some(Config {
            server: server?,
            location: location?,
            scheduler: scheduler?,
            resolver: resolver?,
            checks,
            modules,
            probe: probe?,
            browser: browser?,
            demo: demo?,
            history: history?,
            alerting: alerting?,
            cluster: cluster?,
            base_dir: self.base_dir.clone(),
            secrets,
            notes: self.notes.clone(),
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
    pub(super) fn typed_spec(
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
            "http" => Spec::Http(self.section_beside(own, path, common_keys)?),
            "tls" => Spec::Tls(self.section_beside(own, path, common_keys)?),
            "dns" => Spec::Dns(self.section_beside(own, path, common_keys)?),
            "agent_pipeline" => Spec::Agent(self.section_beside(own, path, common_keys)?),
            "websocket" => Spec::WebSocket(self.section_beside(own, path, common_keys)?),
            "browser" => Spec::Browser(self.section_beside(own, path, common_keys)?),
            "tcp" => Spec::Tcp(self.section_beside(own, path, common_keys)?),
            "icmp" => Spec::Icmp(self.section_beside(own, path, common_keys)?),
            "grpc" => Spec::Grpc(self.section_beside(own, path, common_keys)?),
            "dns_query" => Spec::DnsQuery(self.section_beside(own, path, common_keys)?),
            "unix" => Spec::Unix(self.section_beside(own, path, common_keys)?),
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
        self.validate_with(|ctx, problems| spec.validate(path, ctx, problems));
        Some((common, spec))
    }
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

/// The known key an unknown one most likely meant: a typo (`tmeout`), a word order or
/// separator slip (`events_max`, `max-events`), a plural (`deadline`), or a key that
/// shares a word of three letters or more with it (`fault_window` -> `fault_every`). None
/// when nothing is close: a wrong guess misleads more than none.
pub(crate) fn closest_key<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let words = |s: &str| -> Vec<String> {
        let mut w: Vec<String> = norm(s)
            .split('_')
            .filter(|w| w.len() >= 3)
            .map(|w| w.trim_end_matches('s').to_string())
            .collect();
        w.sort();
        w
    };
    let u = norm(unknown);
    // What peers call it (Gatus, Uptime Kuma, blackbox_exporter, Cloudprober).
    const PEERS: [(&str, &str); 12] = [
        ("url", "target"),
        ("endpoint", "target"),
        ("address", "target"),
        ("host", "target"),
        ("prober", "type"),
        ("kind", "type"),
        ("every", "interval"),
        ("frequency", "interval"),
        ("period", "interval"),
        ("conditions", "expect"),
        ("assertions", "expect"),
        ("valid_status_codes", "status"),
    ];
    if let Some(k) = PEERS
        .iter()
        .find(|(peer, _)| *peer == u)
        .and_then(|(_, ours)| known.iter().find(|k| *k == ours))
    {
        return Some(k);
    }
    let score = |k: &str| -> f64 {
        let k = norm(k);
        let typo = strsim::normalized_damerau_levenshtein(&u, &k);
        let (uw, kw) = (words(&u), words(&k));
        let same_words = !uw.is_empty() && uw == kw;
        let shared = uw.iter().filter(|w| kw.contains(w)).count();
        if same_words {
            1.0
        } else if typo >= 0.6 {
            typo
        } else if shared > 0 {
            0.5 + 0.1 * shared as f64
        } else {
            0.0
        }
    };
    known
        .iter()
        .map(|k| (score(k), *k))
        .filter(|(s, k)| *s >= 0.5 && *k != unknown)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
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

/// serde's messages name Rust types (`expected struct HistoryConfig`, `expected u32`); a
/// person writing YAML reads kinds of values.
fn plain_words(message: &str) -> String {
    static TYPES: std::sync::LazyLock<[(regex::Regex, &str); 3]> = std::sync::LazyLock::new(|| {
        let re = |p: &str| regex::Regex::new(p).expect("a valid pattern");
        [
            (re(r"expected struct \w+"), "expected a mapping of keys"),
            (
                re(r"expected (u8|u16|u32|u64|usize)\b"),
                "expected a whole number of 0 or more",
            ),
            (re(r"expected (i32|i64|f64)\b"), "expected a number"),
        ]
    });
    let mut out = message.to_string();
    for (re, words) in TYPES.iter() {
        out = re.replace_all(&out, *words).into_owned();
    }
    out
}
