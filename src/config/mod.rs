//! The config file: its top-level sections, loading with `${...}` interpolation, and
//! validation that reports every problem at once with file:line:column and field path.
//! Pure data: it never builds runtime objects (keys, TLS server configs) and imports
//! neither the probe nor the demo. Sections here; one check in [`check`]; per-type
//! settings in [`spec`]; the walk that finds every problem in [`validate`].

pub mod alerting;
pub mod blackbox;
pub mod check;
pub mod error;
pub mod spec;
mod validate;
pub(crate) mod value;
pub mod web;
pub mod yaml;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::secrets::Secrets;
pub use alerting::AlertingConfig;
pub use check::{Check, Damping, Module, Thresholds};
pub use error::{ConfigError, ConfigErrors};
pub use spec::{BrowserConfig, DnsSpec, HostPort, HttpSpec, Spec, Target, TlsVerify, Trust};
use validate::Validator;
use value::opt_duration;
use yaml::Located;

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
    /// The Chromium that `type: browser` checks drive.
    pub browser: BrowserConfig,
    /// Start the built-in demo agent backend in-process (what makes the default config
    /// work offline).
    pub demo: Option<DemoConfig>,
    pub history: HistoryConfig,
    /// Post alerts to Alertmanager directly (no Prometheus needed).
    pub alerting: Option<AlertingConfig>,
    /// Share the checks among the members of a deployment (each check runs on one).
    pub cluster: Option<ClusterConfig>,
    /// The config file's folder (relative paths in the config are taken from it).
    pub base_dir: PathBuf,
    pub secrets: Secrets,
    /// What loading adjusted rather than refused, one line each (`validate` prints them,
    /// the daemon logs them).
    pub notes: Vec<String>,
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
    /// Start cold: for this long after start, health answers `503 Startup in progress` and
    /// `/ws` closes with 1011 "Service not ready" (`PUT /demo/fault?restart=20s` does it
    /// again in a running demo).
    #[serde(default, deserialize_with = "opt_duration")]
    pub cold_start: Option<Duration>,
}

/// `cluster:`: the members of this deployment; each check runs on exactly one of them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `dns:NAME:PORT` (the A/AAAA answer for NAME, e.g. a headless Service that lists
    /// ready pods only, each with PORT), or a fixed list of `host:port`.
    pub peers: PeersValue,
    /// This instance as the member list names it (e.g. `${POD_IP}:9115`).
    #[serde(rename = "self")]
    pub me: String,
    /// How often the DNS answer is read again (default 10s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub refresh: Option<Duration>,
    /// How this instance asks the others for their checks (`/cluster`,
    /// `?scope=cluster`): as their secured listener demands.
    #[serde(default)]
    pub client: PeerClient,
}

/// `cluster.client`: the TLS and credentials of the peers' listener (`--web.config.file`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerClient {
    /// https to the peers, verified with `ca_file`; `server_name` is the name their
    /// certificate covers (members are addresses, which certificates rarely name); a
    /// client certificate when their listener asks for one. Without it: plain http.
    #[serde(default)]
    pub tls: Option<TlsVerify>,
    /// Sent to every peer; the password by `${ENV}` or `${file:...}`.
    #[serde(default)]
    pub basic_auth: Option<alerting::BasicAuth>,
}

impl PartialEq for PeerClient {
    fn eq(&self, other: &PeerClient) -> bool {
        let tls_same = match (&self.tls, &other.tls) {
            (Some(a), Some(b)) => {
                a.same_files(b)
                    && a.server_name == b.server_name
                    && a.insecure_skip_verify == b.insecure_skip_verify
            }
            (None, None) => true,
            _ => false,
        };
        tls_same && self.basic_auth == other.basic_auth
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PeersValue {
    Text(String),
    List(Vec<String>),
}

/// Where the members come from.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerSource {
    Dns { name: String, port: u16 },
    Fixed(Vec<String>),
}

impl ClusterConfig {
    pub fn refresh(&self) -> Duration {
        self.refresh.unwrap_or(Duration::from_secs(10))
    }

    pub fn source(&self) -> Result<PeerSource, String> {
        match &self.peers {
            PeersValue::List(list) if list.is_empty() => Err("an empty list of peers".into()),
            PeersValue::List(list) => Ok(PeerSource::Fixed(
                list.iter().map(|m| member_name(m)).collect(),
            )),
            PeersValue::Text(text) => {
                let bad =
                    || format!("peers is `dns:NAME:PORT` or a list of host:port, not `{text}`");
                let rest = text.strip_prefix("dns:").ok_or_else(bad)?;
                let (name, port) = rest.rsplit_once(':').ok_or_else(bad)?;
                let port = port.parse().map_err(|_| bad())?;
                if name.is_empty() {
                    return Err(bad());
                }
                Ok(PeerSource::Dns {
                    name: name.to_string(),
                    port,
                })
            }
        }
    }

    /// This instance's member name, written as the DNS answers are (`10.0.0.1:9115`,
    /// `[fd00::1]:9115`).
    pub fn me(&self) -> String {
        member_name(&self.me)
    }
}

/// A member's name: an address written the one way `SocketAddr` writes it, else as given.
fn member_name(text: &str) -> String {
    text.trim()
        .parse::<SocketAddr>()
        .map_or_else(|_| text.trim().to_string(), |a| a.to_string())
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
    #[serde(default = "default_grace", deserialize_with = "value::duration")]
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
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
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
    /// Taken from Prometheus' scrape timeout (its `X-Prometheus-Scrape-Timeout-Seconds`
    /// header) so the answer arrives in time (default 500ms; `--timeout-offset`).
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout_offset: Option<Duration>,
}

/// Settings given on the command line, which win over the file's on every load.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--web.listen-address`.
    pub listen: Option<SocketAddr>,
    /// `--timeout-offset`.
    pub timeout_offset: Option<Duration>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.listen {
            config.server.listen = listen;
        }
        if let Some(offset) = self.timeout_offset {
            config.probe.timeout_offset = Some(offset);
        }
    }
}

/// Longest error message: a message quoting a megabyte value quotes its ends.
const MAX_MESSAGE_CHARS: usize = 400;

fn bounded(message: String) -> String {
    let n = message.chars().count();
    if n <= MAX_MESSAGE_CHARS {
        return message;
    }
    let head: String = message.chars().take(240).collect();
    let tail: String = message.chars().skip(n - 120).collect();
    format!("{head}… ({} characters left out) …{tail}", n - 360)
}

/// Largest config file read (10,000 checks take about 1.5 MB). The file and its nesting
/// are bounded, not its lines: generated configs are often one line of JSON.
const MAX_FILE_BYTES: u64 = 16 << 20;

impl Config {
    /// Reads and validates a config file; `${ENV}` comes from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let error = |line: Option<usize>, col: Option<usize>, message: String| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line,
                col,
                path: String::new(),
                message,
            }])
        };
        let size = std::fs::metadata(path)
            .map_err(|e| error(None, None, format!("cannot read config file: {e}")))?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(error(
                None,
                None,
                format!(
                    "the config file is {size} bytes; pathwatch reads at most {} MiB",
                    MAX_FILE_BYTES >> 20
                ),
            ));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| error(None, None, format!("cannot read config file: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let col =
                valid.len() - valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
            let bad = e.as_bytes()[valid.len()];
            error(
                Some(line),
                Some(col),
                format!("the file is not UTF-8 here (byte 0x{bad:02x}); save it as UTF-8"),
            )
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
                        message: bounded(secrets.redact(&e.message)),
                    })
                    .collect(),
            )
        };
        let base_dir = Path::new(file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        // A blackbox_exporter file is read as written: `${1}` is a regex group there.
        let literal = if text.contains("prober") {
            yaml::parse(text, None)
                .ok()
                .filter(|d| blackbox::is_blackbox(&d.value))
        } else {
            None
        };
        let (doc, blackbox) = match literal {
            Some(doc) => (doc, true),
            None => (
                yaml::parse(text, Some(env)).map_err(|e| located(e, &Secrets::default()))?,
                false,
            ),
        };
        let mut v = Validator::new(&doc, base_dir);
        let (config, secrets) = if blackbox {
            let c = v.blackbox_config();
            let secrets = c.as_ref().map(|c| c.secrets.clone()).unwrap_or_default();
            (c, secrets)
        } else {
            let secrets = Secrets::new(doc.secrets.clone());
            let mut c = v.config(secrets.clone());
            if v.module_secrets.is_empty() {
                (c, secrets)
            } else {
                // The passwords and tokens of a modules_file are secrets too.
                let mut all = doc.secrets.clone();
                all.append(&mut v.module_secrets);
                let secrets = Secrets::new(all);
                if let Some(c) = c.as_mut() {
                    c.secrets = secrets.clone();
                }
                (c, secrets)
            }
        };
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
