//! A blackbox_exporter `blackbox.yml` (top level `modules:`, each module with `prober:`)
//! read as it is: its modules become `/probe` modules. Every field of blackbox's
//! CONFIGURATION.md either maps onto pathwatch's settings or is refused at its position
//! with the reason. No `${...}` interpolation: `${1}` is a regex group in a `send`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::check::Module;
use super::spec::expect::{GoPattern, StatusRule};
use super::spec::http::HeaderRule;
use super::spec::{AddressFamily, HttpExpect, HttpSpec, Spec};
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

/// blackbox's `<http_probe>`, with the HTTP client settings inline.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbHttp {
    #[serde(default)]
    valid_status_codes: Vec<u16>,
    #[serde(default)]
    valid_http_versions: Vec<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body_size_limit: Option<Value>,
    #[serde(default)]
    compression: Option<String>,
    #[serde(default = "yes")]
    follow_redirects: bool,
    #[serde(default)]
    fail_if_ssl: bool,
    #[serde(default)]
    fail_if_not_ssl: bool,
    #[serde(default)]
    fail_if_body_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_body_not_matches_regexp: Vec<String>,
    #[serde(default)]
    fail_if_header_matches: Vec<BbHeaderMatch>,
    #[serde(default)]
    fail_if_header_not_matches: Vec<BbHeaderMatch>,
    #[serde(default)]
    tls_config: TlsVerify,
    #[serde(default)]
    basic_auth: Option<BbBasicAuth>,
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    authorization: Option<BbAuthorization>,
    #[serde(default)]
    enable_http2: Option<bool>,
    #[serde(default)]
    enable_http3: Option<bool>,
    #[serde(default)]
    preferred_ip_protocol: Option<AddressFamily>,
    #[serde(default = "yes")]
    ip_protocol_fallback: bool,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_file: Option<PathBuf>,
    // Documented by blackbox and not implemented here: refused where they are set.
    #[serde(default)]
    fail_if_body_json_matches_cel: Option<Value>,
    #[serde(default)]
    fail_if_body_json_not_matches_cel: Option<Value>,
    #[serde(default)]
    http_headers: Option<Value>,
    #[serde(default)]
    proxy_url: Option<Value>,
    #[serde(default)]
    no_proxy: Option<Value>,
    #[serde(default)]
    proxy_from_environment: Option<Value>,
    #[serde(default)]
    proxy_connect_header: Option<Value>,
    #[serde(default)]
    skip_resolve_phase_with_proxy: Option<Value>,
    #[serde(default)]
    oauth2: Option<Value>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbHeaderMatch {
    header: String,
    regexp: String,
    #[serde(default)]
    allow_missing: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbBasicAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    username_file: Option<PathBuf>,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BbAuthorization {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    credentials: Option<String>,
    #[serde(default)]
    credentials_file: Option<PathBuf>,
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
            "unix" | "websocket" => {
                self.error(
                    &yaml::child(path, "prober"),
                    false,
                    format!("the blackbox_exporter `{}` prober is not supported by pathwatch yet (http, tcp, dns, icmp and grpc are)", m.prober),
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
        if !super::value::label_safe(name) {
            self.error(
                path,
                true,
                "a module name is 1-64 characters of letters, digits, `-`, `_`, `.`",
            );
        }
        Some(Module {
            name: name.to_string(),
            timeout: m.timeout.unwrap_or(BLACKBOX_DEFAULT_TIMEOUT),
            timeout_set: m.timeout.is_some(),
            spec,
        })
    }

    fn blackbox_http(
        &mut self,
        own: Value,
        path: &str,
        secrets: &mut Vec<String>,
    ) -> Option<HttpSpec> {
        let h: BbHttp = self.section(own, path)?;
        let at = |k: &str| yaml::child(path, k);
        let unsupported = [
            (
                "fail_if_body_json_matches_cel",
                &h.fail_if_body_json_matches_cel,
                "CEL expressions are not supported (no maintained CEL crate fits); use pathwatch's `expect.json` rules in a pathwatch config",
            ),
            (
                "fail_if_body_json_not_matches_cel",
                &h.fail_if_body_json_not_matches_cel,
                "CEL expressions are not supported (no maintained CEL crate fits); use pathwatch's `expect.json` rules in a pathwatch config",
            ),
            (
                "http_headers",
                &h.http_headers,
                "not supported yet; use `headers`",
            ),
            ("proxy_url", &h.proxy_url, "proxies are not supported yet"),
            ("no_proxy", &h.no_proxy, "proxies are not supported yet"),
            (
                "proxy_from_environment",
                &h.proxy_from_environment,
                "proxies are not supported yet",
            ),
            (
                "proxy_connect_header",
                &h.proxy_connect_header,
                "proxies are not supported yet",
            ),
            (
                "skip_resolve_phase_with_proxy",
                &h.skip_resolve_phase_with_proxy,
                "proxies are not supported yet",
            ),
            (
                "oauth2",
                &h.oauth2,
                "OAuth 2.0 client credentials are not supported yet",
            ),
        ];
        for (key, value, why) in unsupported {
            if value
                .as_ref()
                .is_some_and(|v| !v.is_null() && *v != Value::Bool(false))
            {
                self.error(&at(key), true, format!("`{key}`: {why}"));
            }
        }
        if h.enable_http2 == Some(true) {
            self.notes.push(format!(
                "{}: pathwatch speaks HTTP/1.1 (HTTP/2 is not supported yet): probe_http_version reads 1.1 where blackbox_exporter negotiates 2",
                at("enable_http2")
            ));
        }
        if h.enable_http3 == Some(true) {
            self.error(&at("enable_http3"), false, "HTTP/3 is not supported");
        }
        if let Some(c) = h.compression.as_deref().filter(|c| !c.is_empty()) {
            self.error(
                &at("compression"),
                false,
                format!("`compression: {c}`: decompressing bodies is not supported yet"),
            );
        }
        let mut headers = h.headers.clone();
        let read = |v: &mut Self, file: &PathBuf, key: &str| -> Option<String> {
            let full = v.base_dir().join(file);
            match std::fs::read_to_string(&full) {
                Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_string()),
                Err(e) => {
                    v.error(
                        &at(key),
                        false,
                        format!("cannot read {}: {e}", full.display()),
                    );
                    None
                }
            }
        };
        if let Some(b) = &h.basic_auth {
            let user = match &b.username_file {
                Some(f) => read(self, f, "basic_auth")?,
                None => b.username.clone().unwrap_or_default(),
            };
            let pass = match &b.password_file {
                Some(f) => read(self, f, "basic_auth")?,
                None => b.password.clone().unwrap_or_default(),
            };
            secrets.push(pass.clone());
            let token = data_encoding::BASE64.encode(format!("{user}:{pass}").as_bytes());
            headers.insert("Authorization".into(), format!("Basic {token}"));
        }
        let bearer = match (&h.bearer_token, &h.bearer_token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => Some(read(self, f, "bearer_token_file")?),
            (None, None) => None,
        };
        if let Some(t) = bearer {
            secrets.push(t.clone());
            headers.insert("Authorization".into(), format!("Bearer {t}"));
        }
        if let Some(a) = &h.authorization {
            let creds = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => read(self, f, "authorization")?,
                (None, None) => String::new(),
            };
            secrets.push(creds.clone());
            let kind = a.kind.clone().unwrap_or_else(|| "Bearer".into());
            headers.insert("Authorization".into(), format!("{kind} {creds}"));
        }
        let body = match (&h.body, &h.body_file) {
            (Some(_), Some(_)) => {
                self.error(
                    &at("body_file"),
                    true,
                    "`body` and `body_file` exclude each other",
                );
                None
            }
            (Some(b), None) => Some(b.clone()),
            (None, Some(f)) => Some(read(self, f, "body_file")?),
            (None, None) => None,
        };
        let max_body_bytes = match &h.body_size_limit {
            None => 0,
            Some(v) => match parse_size(v) {
                Ok(n) => n,
                Err(e) => {
                    self.error(&at("body_size_limit"), false, e);
                    0
                }
            },
        };
        let patterns = |v: &mut Self, list: &[String], key: &str| {
            let mut out = Vec::new();
            for (i, s) in list.iter().enumerate() {
                match GoPattern::text(s) {
                    Ok(p) => out.push(p),
                    Err(e) => v.error(&yaml::index(&at(key), i), false, e),
                }
            }
            out
        };
        let body_not_matches = patterns(
            self,
            &h.fail_if_body_matches_regexp,
            "fail_if_body_matches_regexp",
        );
        let body_matches = patterns(
            self,
            &h.fail_if_body_not_matches_regexp,
            "fail_if_body_not_matches_regexp",
        );
        let mut header_rules = Vec::new();
        for (key, list, fail_if_matches) in [
            ("fail_if_header_matches", &h.fail_if_header_matches, true),
            (
                "fail_if_header_not_matches",
                &h.fail_if_header_not_matches,
                false,
            ),
        ] {
            for (i, m) in list.iter().enumerate() {
                match GoPattern::text(&m.regexp) {
                    Ok(regexp) => header_rules.push(HeaderRule {
                        header: m.header.clone(),
                        regexp,
                        fail_if_matches,
                        allow_missing: m.allow_missing,
                    }),
                    Err(e) => {
                        self.error(&yaml::child(&yaml::index(&at(key), i), "regexp"), false, e)
                    }
                }
            }
        }
        let status = if h.valid_status_codes.is_empty() {
            vec![StatusRule::Range(200, 299)]
        } else {
            h.valid_status_codes
                .iter()
                .map(|c| StatusRule::Code(*c))
                .collect()
        };
        let mut spec = HttpSpec::side_request(
            h.method.as_deref().unwrap_or("GET"),
            headers,
            h.tls_config,
            max_body_bytes,
        );
        spec.body = body;
        spec.follow_redirects = h.follow_redirects;
        spec.max_redirects = 10;
        spec.fail_if_ssl = h.fail_if_ssl;
        spec.fail_if_not_ssl = h.fail_if_not_ssl;
        spec.valid_http_versions = h.valid_http_versions;
        spec.preferred_ip_protocol = Some(h.preferred_ip_protocol.unwrap_or_default());
        spec.ip_protocol_fallback = h.ip_protocol_fallback;
        spec.expect = HttpExpect {
            status,
            headers: BTreeMap::new(),
            body_matches,
            body_not_matches,
            json: Vec::new(),
            header_rules,
        };
        Some(spec)
    }
}

/// A size as the exporter toolkit writes it: bytes, or a number with KB/MB/GB/... (powers
/// of 1024, as Prometheus' units package reads them) or KiB/MiB/...; 0 is no limit.
fn parse_size(v: &Value) -> Result<usize, String> {
    let bad = || format!("`{v}` is not a size (e.g. 10MB, 512KiB, 1048576)");
    let text = match v {
        Value::Number(n) => return n.as_u64().map(|n| n as usize).ok_or_else(bad),
        Value::String(s) => s.trim(),
        _ => return Err(bad()),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_the_exporter_toolkit_reads_them() {
        assert_eq!(parse_size(&Value::from("10MB")), Ok(10 << 20));
        assert_eq!(parse_size(&Value::from("512KiB")), Ok(512 << 10));
        assert_eq!(parse_size(&Value::from(4096)), Ok(4096));
        assert!(parse_size(&Value::from("ten")).is_err());
    }
}
