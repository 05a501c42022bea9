//! A blackbox_exporter `blackbox.yml` (top level `modules:`, each module with `prober:`)
//! read as it is: its modules become `/probe` modules. Every field of blackbox's
//! CONFIGURATION.md either maps onto pathwatch's settings or is refused at its position
//! with the reason. No `${...}` interpolation: `${1}` is a regex group in a `send`.

mod http;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::check::Module;
use super::spec::Spec;
use super::validate::Validator;
use super::value::opt_duration;
use super::yaml;
use super::*;

/// blackbox_exporter's timeout when neither the module nor Prometheus' scrape timeout
/// header sets one.
pub const BLACKBOX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether a parsed file is a blackbox_exporter config: only `modules:` at the top, and its
/// modules say `prober:`.
pub(super) fn is_blackbox(root: &Value) -> bool {
    let Value::Object(top) = root else {
        return false;
    };
    let Some(Value::Object(modules)) = top.get("modules") else {
        return false;
    };
    top.len() == 1
        && modules
            .values()
            .any(|m| m.get("prober").is_some() && m.get("type").is_none())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbModule {
    prober: String,
    #[serde(default, deserialize_with = "opt_duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    http: Option<Value>,
    #[serde(default)]
    tcp: Option<Value>,
    #[serde(default)]
    dns: Option<Value>,
    #[serde(default)]
    icmp: Option<Value>,
    #[serde(default)]
    grpc: Option<Value>,
    #[serde(default)]
    unix: Option<Value>,
    #[serde(default)]
    websocket: Option<Value>,
}

/// What a blackbox file's modules became, and the secrets (passwords, tokens) they hold.
pub(super) struct Modules {
    pub modules: BTreeMap<String, Arc<Module>>,
    pub secrets: Vec<String>,
}

impl Validator<'_> {
    /// The modules of a blackbox file (`modules_path` is where they sit).
    pub(super) fn blackbox_modules(&mut self, modules: &Value, modules_path: &str) -> Modules {
        let mut out = Modules {
            modules: BTreeMap::new(),
            secrets: Vec::new(),
        };
        let Value::Object(map) = modules else {
            self.error(
                modules_path,
                false,
                "`modules` must be a mapping of name to module",
            );
            return out;
        };
        for (name, item) in map {
            let path = yaml::child(modules_path, name);
            if let Some(module) = self.blackbox_module(name, item.clone(), &path, &mut out.secrets)
            {
                out.modules.insert(name.clone(), Arc::new(module));
            }
        }
        out
    }

    /// A whole blackbox file as a config: its modules on `/probe` for every target (as
    /// blackbox), listening where blackbox does unless `--web.listen-address` says otherwise.
    pub(super) fn blackbox_config(&mut self) -> Option<Config> {
        let modules_value = self.doc_value().get("modules").cloned().unwrap_or_default();
        let Modules { modules, secrets } = self.blackbox_modules(&modules_value, "modules");
        let empty = || Value::Object(Map::new());
        let mut notes = std::mem::take(&mut self.notes);
        notes.push(
            "this is a blackbox_exporter file: /probe probes any target, as blackbox_exporter does; to restrict it, list the modules in a pathwatch config with `modules_file:` and `probe.allow_targets`".into(),
        );
        Some(Config {
            server: ServerConfig {
                listen: std::net::SocketAddr::from(([0, 0, 0, 0], 9115)),
            },
            location: "local".into(),
            scheduler: self.section(empty(), "scheduler")?,
            resolver: self.section(empty(), "resolver")?,
            checks: Vec::new(),
            modules,
            probe: ProbeEndpointConfig {
                allow_targets: vec!["*".into()],
                timeout_offset: None,
            },
            browser: self.section(empty(), "browser")?,
            demo: None,
            history: self.section(empty(), "history")?,
            alerting: None,
            cluster: None,
            base_dir: self.base_dir().to_path_buf(),
            secrets: crate::secrets::Secrets::new(secrets),
            notes,
        })
    }

    /// `modules_file:`: the modules of a blackbox_exporter file (relative to this file's
    /// folder), read as blackbox reads it; its errors name their place in that file.
    pub(super) fn modules_file(&mut self, value: &Value) -> BTreeMap<String, Arc<Module>> {
        let path = match value {
            Value::Null => return BTreeMap::new(),
            Value::String(p) => self.base_dir().join(p),
            _ => {
                self.error("modules_file", false, "the path of a blackbox.yml file");
                return BTreeMap::new();
            }
        };
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.error("modules_file", false, format!("cannot read {shown}: {e}"));
                return BTreeMap::new();
            }
        };
        let doc = match yaml::parse(&text, None) {
            Ok(d) if is_blackbox(&d.value) => d,
            Ok(_) => {
                self.error(
                    "modules_file",
                    false,
                    format!("{shown} is not a blackbox_exporter file (a top-level `modules:` whose modules say `prober:`)"),
                );
                return BTreeMap::new();
            }
            Err(errors) => {
                for e in errors {
                    self.error("modules_file", false, located_in(&shown, &e));
                }
                return BTreeMap::new();
            }
        };
        let base = path.parent().map(PathBuf::from).unwrap_or_default();
        let mut inner = Validator::new(&doc, base);
        let modules_value = doc.value.get("modules").cloned().unwrap_or_default();
        let found = inner.blackbox_modules(&modules_value, "modules");
        for e in std::mem::take(&mut inner.errors) {
            self.error("modules_file", false, located_in(&shown, &e));
        }
        self.notes.extend(inner.notes);
        self.module_secrets.extend(found.secrets);
        found.modules
    }

    fn blackbox_module(
        &mut self,
        name: &str,
        item: Value,
        path: &str,
        secrets: &mut Vec<String>,
    ) -> Option<Module> {
        let m: BbModule = self.section(item, path)?;
        let sections = [
            ("http", &m.http),
            ("tcp", &m.tcp),
            ("dns", &m.dns),
            ("icmp", &m.icmp),
            ("grpc", &m.grpc),
            ("unix", &m.unix),
            ("websocket", &m.websocket),
        ];
        for (key, v) in &sections {
            if v.is_some() && *key != m.prober {
                self.notes.push(format!(
                    "{}: the `{key}` settings of module {name} are not read: its prober is {}",
                    yaml::child(path, key),
                    m.prober
                ));
            }
        }
        let own = sections
            .iter()
            .find(|(k, _)| *k == m.prober)
            .and_then(|(_, v)| (*v).clone())
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| Value::Object(Map::new()));
        let own_path = yaml::child(path, &m.prober);
        let mut spec = match m.prober.as_str() {
            "http" => Spec::Http(self.blackbox_http(own, &own_path, secrets)?),
            "tcp" => Spec::Tcp(self.section(own, &own_path)?),
            "icmp" => Spec::Icmp(self.section(own, &own_path)?),
            "grpc" => Spec::Grpc(self.section(own, &own_path)?),
            "dns" => Spec::DnsQuery(self.section(own, &own_path)?),
            "unix" => Spec::Unix(self.section(own, &own_path)?),
            "websocket" => {
                self.error(
                    &yaml::child(path, "prober"),
                    false,
                    format!("the blackbox_exporter `{}` prober is not supported by pathwatch yet (http, tcp, dns, icmp, grpc and unix are)", m.prober),
                );
                return None;
            }
            other => {
                self.error(
                    &yaml::child(path, "prober"),
                    false,
                    format!("unknown prober `{other}` (blackbox_exporter's are http, tcp, dns, icmp, grpc, unix, websocket)"),
                );
                return None;
            }
        };
        let tls_path = yaml::child(&own_path, "tls_config");
        self.validate_spec(&mut spec, &own_path, &tls_path);
        self.module_name(name, path);
        Some(Module {
            name: name.to_string(),
            timeout: m.timeout.unwrap_or(BLACKBOX_DEFAULT_TIMEOUT),
            timeout_set: m.timeout.is_some(),
            spec,
        })
    }
}

/// An error of another file, with its place in that file, as one message.
fn located_in(file: &str, e: &Located) -> String {
    let at = e
        .pos
        .map(|p| format!("{file}:{}:{}", p.line, p.col))
        .unwrap_or_else(|| file.to_string());
    if e.path.is_empty() {
        format!("{at}: {}", e.message)
    } else {
        format!("{at}: {}: {}", e.path, e.message)
    }
}
