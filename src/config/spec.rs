//! What each check type is configured with. The doc comments on these structs are the user
//! documentation of their keys (the README repeats them with examples).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use rustls::RootCertStore;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

/// The probe settings of a check or a `/probe` module, by `type`.
// Built once per check when the config loads and then only borrowed: size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Spec {
    Http(HttpSpec),
    Tls(TlsClient),
    Dns(DnsSpec),
    Agent(AgentSpec),
    WebSocket(WebSocketSpec),
}

impl Spec {
    pub const KINDS: [&'static str; 5] = ["http", "tls", "dns", "agent_pipeline", "websocket"];

    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Http(_) => "http",
            Spec::Tls(_) => "tls",
            Spec::Dns(_) => "dns",
            Spec::Agent(_) => "agent_pipeline",
            Spec::WebSocket(_) => "websocket",
        }
    }

    /// Parses a `target` for this type: a URL for http, host:port for tls, a name for dns.
    pub fn parse_target(&self, text: &str) -> Result<Target, String> {
        match self {
            Spec::Http(_) => parse_http_url(text).map(Target::Url),
            Spec::Tls(_) => HostPort::parse(text).map(Target::HostPort),
            Spec::Dns(_) => parse_dns_name(text).map(Target::Name),
            Spec::Agent(_) | Spec::WebSocket(_) => parse_ws_target(text).map(Target::Url),
        }
    }

    pub fn tls_client_mut(&mut self) -> Option<&mut TlsClient> {
        match self {
            Spec::Http(h) => Some(&mut h.tls),
            Spec::Tls(t) => Some(t),
            Spec::Agent(a) => Some(&mut a.tls),
            Spec::WebSocket(w) => Some(&mut w.tls),
            Spec::Dns(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Url(Url),
    HostPort(HostPort),
    Name(String),
}

impl Target {
    /// The target as shown in pages and APIs: URLs without credentials or query values.
    pub fn display(&self) -> String {
        match self {
            Target::Url(u) => crate::secrets::display_url(u),
            Target::HostPort(hp) if hp.host.contains(':') => format!("[{}]:{}", hp.host, hp.port),
            Target::HostPort(hp) => format!("{}:{}", hp.host, hp.port),
            Target::Name(n) => n.clone(),
        }
    }

    /// host:port for the `/probe` allowlist (DNS names get port 53).
    pub fn host_port(&self) -> (String, u16) {
        match self {
            Target::Url(u) => (
                u.host_str().unwrap_or_default().to_string(),
                u.port_or_known_default().unwrap_or(0),
            ),
            Target::HostPort(hp) => (hp.host.clone(), hp.port),
            Target::Name(n) => (n.clone(), 53),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostPort {
    /// A name or an IP literal (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn parse(text: &str) -> Result<HostPort, String> {
        let bad = || format!("`{text}` is not host:port (e.g. api.example.com:443 or [::1]:443)");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (h, p)
        } else {
            text.rsplit_once(':').ok_or_else(bad)?
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 || host.is_empty() || host.contains(['/', ' ', ':']) && !text.starts_with('[')
        {
            return Err(bad());
        }
        if host.parse::<IpAddr>().is_err() {
            parse_dns_name(host)?;
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

/// An http(s) URL with a host (check targets, login and ticket URLs).
pub fn parse_http_url(text: &str) -> Result<Url, String> {
    parse_url(text, ["http", "https"], "URL")
}

fn parse_ws_target(text: &str) -> Result<Url, String> {
    parse_url(text, ["ws", "wss"], "WebSocket URL")
}

/// A URL with a host and one of two schemes (plain, TLS).
fn parse_url(text: &str, schemes: [&str; 2], what: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!(
            "{what} scheme must be {} or {}, not `{}`",
            schemes[0],
            schemes[1],
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL `{text}` has no host"));
    }
    Ok(url)
}

fn parse_dns_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'*')
        });
    if ok {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}` is not a valid host name"))
    }
}

/// `type: http`: a health endpoint answers as expected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// HTTP method (default GET).
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers. Values may use `${ENV}` / `${file:...}`; they are never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as-is.
    #[serde(default)]
    pub body: Option<String>,
    /// What the response must look like.
    #[serde(default)]
    pub expect: HttpExpect,
    /// Follow 3xx redirects (default true), at most `max_redirects` (default 10).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Largest body read, in bytes (default 1 MiB); a larger body fails the probe.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Certificate verification for https targets.
    #[serde(default)]
    pub tls: TlsClient,
}

/// `type: websocket`: the upgrade succeeds and, when asked, a frame answers as expected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSpec {
    /// Headers on the upgrade request. Values may use `${ENV}` / `${file:...}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Subprotocols offered (`Sec-WebSocket-Protocol`); the server must pick one of them.
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// A text message sent after the upgrade; then a reply is awaited.
    #[serde(default)]
    pub send: Option<String>,
    /// A frame that must arrive (frames before it that do not match are skipped).
    #[serde(default)]
    pub expect: FrameExpect,
    /// Largest frame accepted, in bytes (default 1 MiB).
    #[serde(default = "default_max_body")]
    pub max_frame_bytes: usize,
    /// Certificate verification for wss targets.
    #[serde(default)]
    pub tls: TlsClient,
}

/// `expect:` of a websocket check: rules one frame must meet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameExpect {
    #[serde(default)]
    pub body_matches: Vec<Pattern>,
    #[serde(default)]
    pub body_not_matches: Vec<Pattern>,
    #[serde(default)]
    pub json: Vec<JsonRule>,
}

impl FrameExpect {
    pub fn is_set(&self) -> bool {
        !(self.body_matches.is_empty() && self.body_not_matches.is_empty() && self.json.is_empty())
    }
}

fn default_method() -> String {
    "GET".into()
}
fn yes() -> bool {
    true
}
fn default_max_redirects() -> u32 {
    10
}
fn default_max_body() -> usize {
    1 << 20
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Accepted status codes: numbers (`200`), classes (`2xx`) or ranges (`200-299`).
    /// Default `[2xx]`.
    #[serde(default = "default_status")]
    pub status: Vec<StatusRule>,
    /// Response header name -> regex its value must match.
    #[serde(default)]
    pub headers: BTreeMap<String, Pattern>,
    /// Regexes the body must match.
    #[serde(default)]
    pub body_matches: Vec<Pattern>,
    /// Regexes the body must not match.
    #[serde(default)]
    pub body_not_matches: Vec<Pattern>,
    /// Rules on fields of a JSON body.
    #[serde(default)]
    pub json: Vec<JsonRule>,
}

impl Default for HttpExpect {
    fn default() -> Self {
        HttpExpect {
            status: default_status(),
            headers: BTreeMap::new(),
            body_matches: Vec::new(),
            body_not_matches: Vec::new(),
            json: Vec::new(),
        }
    }
}

fn default_status() -> Vec<StatusRule> {
    vec![StatusRule::Range(200, 299)]
}

/// An accepted HTTP status: `200`, `"2xx"` or `"200-204"`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub enum StatusRule {
    Code(u16),
    Range(u16, u16),
}

impl StatusRule {
    pub fn accepts(&self, status: u16) -> bool {
        match *self {
            StatusRule::Code(c) => c == status,
            StatusRule::Range(lo, hi) => (lo..=hi).contains(&status),
        }
    }
}

impl std::fmt::Display for StatusRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            StatusRule::Code(c) => write!(f, "{c}"),
            StatusRule::Range(lo, hi) if lo % 100 == 0 && hi == lo + 99 => {
                write!(f, "{}xx", lo / 100)
            }
            StatusRule::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

impl TryFrom<Value> for StatusRule {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        let bad = || format!("`{v}` is not a status code, class (2xx) or range (200-299)");
        let code = |n: u64| -> Result<u16, String> {
            if (100..=599).contains(&n) {
                Ok(n as u16)
            } else {
                Err(bad())
            }
        };
        match &v {
            Value::Number(n) => Ok(StatusRule::Code(code(n.as_u64().ok_or_else(bad)?)?)),
            Value::String(s) => {
                if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
                    let c: u64 = class.parse().map_err(|_| bad())?;
                    let lo = code(c * 100)?;
                    Ok(StatusRule::Range(lo, lo + 99))
                } else if let Some((lo, hi)) = s.split_once('-') {
                    let lo = code(lo.trim().parse().map_err(|_| bad())?)?;
                    let hi = code(hi.trim().parse().map_err(|_| bad())?)?;
                    if lo > hi {
                        return Err(bad());
                    }
                    Ok(StatusRule::Range(lo, hi))
                } else {
                    Ok(StatusRule::Code(code(s.parse().map_err(|_| bad())?)?))
                }
            }
            _ => Err(bad()),
        }
    }
}

/// A regular expression (Rust `regex` syntax), compiled when the config loads.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Pattern(pub Regex);

impl TryFrom<String> for Pattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        regex::RegexBuilder::new(&s)
            .size_limit(1 << 20)
            .build()
            .map(Pattern)
            .map_err(|e| {
                // Syntax errors come as a multi-line drawing; its last line says what is wrong.
                let text = e.to_string();
                let why = text
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ");
                format!("invalid regex `{s}`: {why}")
            })
    }
}

/// A rule on one field of a JSON body. `path` is dotted (`checks.db.status`, `items.0.id`);
/// exactly one of `equals`, `one_of`, `matches`, `exists` is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRule {
    pub path: String,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    #[serde(default)]
    pub matches: Option<Pattern>,
    #[serde(default)]
    pub exists: Option<bool>,
}

impl JsonRule {
    pub fn condition_count(&self) -> usize {
        [
            self.equals.is_some(),
            self.one_of.is_some(),
            self.matches.is_some(),
            self.exists.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count()
    }
}

/// Certificate verification settings (the `tls:` key of http checks, and `type: tls` itself).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClient {
    /// PEM file of CA certificates to trust instead of the built-in Mozilla roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to send as SNI and verify the certificate against (default: the target host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Report the certificate but do not fail the probe when it does not verify.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Loaded from `ca_file` when the config loads.
    #[serde(skip)]
    pub roots: Option<Arc<RootCertStore>>,
}

/// `type: dns`: a name resolves, optionally to expected addresses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// `A`, `AAAA`, or `ip` (both, the default).
    #[serde(default)]
    pub record_type: RecordKind,
    /// Addresses that must all be in the answer.
    #[serde(default)]
    pub expect_addresses: Vec<IpAddr>,
    /// Ask this server (ip:port) instead of the resolver of the `resolver:` section.
    #[serde(default)]
    pub server: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub enum RecordKind {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[default]
    #[serde(rename = "ip")]
    Ip,
}

/// Thresholds that turn a successful probe into WARN or CRIT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub latency_warn: Option<Duration>,
    pub latency_crit: Option<Duration>,
    pub cert_days_warn: u32,
    pub cert_days_crit: u32,
    pub damping: Damping,
}

/// How many runs move a check's state: CRIT (or WARN) after `failures` bad runs among the
/// last `window`, back after `recover` consecutive better runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Damping {
    pub failures: u32,
    pub window: u32,
    pub recover: u32,
}

/// `type: agent_pipeline`: the golden path over a WebSocket. `target` is the ws:// or
/// wss:// URL of the chat socket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Headers of the upgrade request (e.g. `Authorization: Bearer ${TOKEN}`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The message that starts a run, any JSON. Default: the canonical `user_message`.
    #[serde(default = "default_agent_message")]
    pub message: Value,
    /// Wait for the server's first frame (`connection_established`) before sending (default true).
    #[serde(default = "yes")]
    pub server_first: bool,
    /// The handshake variant: wait for `handshake_response`, answer
    /// `handshake_acknowledged` with its thread_id, and send the message in that thread.
    #[serde(default)]
    pub handshake: bool,
    /// What the run must show.
    #[serde(default)]
    pub expect: AgentExpect,
    /// Largest frame accepted, in bytes (default 1 MiB); a larger one fails the probe.
    #[serde(default = "default_max_body")]
    pub max_frame_bytes: usize,
    /// Certificate verification for wss targets.
    #[serde(default)]
    pub tls: TlsClient,
    /// Get a token over HTTP first (password login or a test-bypass endpoint).
    #[serde(default)]
    pub login: Option<LoginSpec>,
    /// How the token travels on the upgrade.
    #[serde(default)]
    pub token: TokenSpec,
    /// Built from `expect` when the config loads.
    #[serde(skip)]
    pub rules: crate::probe::agent::run::RunRules,
}

/// `login:` of an agent_pipeline check. The answer must be JSON with the token at
/// `token_path`; any other answer fails the check with reason `login` (never a made-up token).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSpec {
    /// e.g. `https://auth.example.ai/auth/login` or `/auth/e2e/test-auth`.
    pub url: String,
    #[serde(default = "default_post")]
    pub method: String,
    /// e.g. `X-E2E-Bypass-Key: ${BYPASS_KEY}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body, e.g. `{email: ..., password: "${PASSWORD}"}`.
    #[serde(default)]
    pub body: Value,
    /// Dotted path of the token in the answer (default `access_token`).
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// Dotted path of the lifetime in seconds (default `expires_in`); the token is reused
    /// until shortly before it expires.
    #[serde(default = "default_expires_path")]
    pub expires_path: String,
    #[serde(skip)]
    pub parsed_url: Option<Url>,
}

fn default_post() -> String {
    "POST".into()
}
fn default_token_path() -> String {
    "access_token".into()
}
fn default_expires_path() -> String {
    "expires_in".into()
}

/// How the token is passed on the WebSocket upgrade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `Authorization: Bearer <token>` (default).
    #[default]
    Header,
    /// `Sec-WebSocket-Protocol: jwt-auth, jwt.<token>`.
    Subprotocol,
    /// `?token=<token>`.
    Query,
    /// POST for a ticket with the token, then `?ticket=<id>`.
    Ticket,
    /// No token.
    None,
}

/// `token:` of an agent_pipeline check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Default: `header` when there is a token (login or value), else `none`.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// A fixed token instead of a login (e.g. `${AGENT_TOKEN}`).
    #[serde(default)]
    pub value: Option<String>,
    /// Header name and scheme for `header` (default `Authorization`, `Bearer`).
    #[serde(default = "default_auth_header")]
    pub header: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// For `subprotocol`: the prefix of the token protocol (`jwt.`, `jwt-auth.`, `bearer.`),
    /// whether the token is sent `raw` or `base64url`, and the protocols offered before it.
    #[serde(default = "default_prefix")]
    pub subprotocol_prefix: String,
    #[serde(default)]
    pub subprotocol_base64url: bool,
    #[serde(default = "default_offer")]
    pub subprotocol_offer: Vec<String>,
    /// For `query`: the parameter name (`token` or `access_token`).
    #[serde(default = "default_query_param")]
    pub query_param: String,
    /// For `ticket`: where to get one, with which body, where its id is in the answer.
    #[serde(default)]
    pub ticket_url: Option<String>,
    #[serde(default = "default_ticket_body")]
    pub ticket_body: Value,
    #[serde(default = "default_ticket_path")]
    pub ticket_path: String,
    #[serde(skip)]
    pub parsed_ticket_url: Option<Url>,
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec {
            transport: None,
            value: None,
            header: default_auth_header(),
            scheme: default_scheme(),
            subprotocol_prefix: default_prefix(),
            subprotocol_base64url: false,
            subprotocol_offer: default_offer(),
            query_param: default_query_param(),
            ticket_url: None,
            ticket_body: default_ticket_body(),
            ticket_path: default_ticket_path(),
            parsed_ticket_url: None,
        }
    }
}

fn default_auth_header() -> String {
    "Authorization".into()
}
fn default_scheme() -> String {
    "Bearer".into()
}
fn default_prefix() -> String {
    "jwt.".into()
}
fn default_offer() -> Vec<String> {
    vec!["jwt-auth".into()]
}
fn default_query_param() -> String {
    "token".into()
}
fn default_ticket_body() -> Value {
    serde_json::json!({"ttl_seconds": 300, "single_use": true})
}
fn default_ticket_path() -> String {
    "ticket_id".into()
}

impl AgentSpec {
    /// The transport in effect: as configured, else `header` when a token exists.
    pub fn transport(&self) -> Transport {
        let has_token = self.login.is_some() || self.token.value.is_some();
        match self.token.transport {
            Some(t) => t,
            None if has_token => Transport::Header,
            None => Transport::None,
        }
    }
}

/// Parses an http(s) URL of a login or ticket endpoint.
fn default_agent_message() -> Value {
    serde_json::json!({"type": "user_message", "payload": {"content": "pathwatch synthetic check: say hello"}})
}

/// `expect:` of an agent_pipeline check; unset keys take the protocol's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentExpect {
    /// Events that must appear (default the five golden events).
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// `strict`, `first` (the first is agent_started; default) or `any`.
    #[serde(default)]
    pub order: Option<String>,
    /// Deadline per event from the message being sent (default agent_started: 10s).
    #[serde(default)]
    pub deadlines: BTreeMap<String, String>,
    /// The whole run, from send to completion (default 120s; the check timeout also bounds it).
    #[serde(default, deserialize_with = "super::opt_duration")]
    pub run_deadline: Option<Duration>,
    /// Fields each event must carry (`a|b`: either); replaces the default table per event.
    #[serde(default)]
    pub required_fields: BTreeMap<String, Vec<String>>,
    /// Every tool_executing needs a tool_completed (default true).
    #[serde(default)]
    pub pair_tools: Option<bool>,
    /// Most events read in one run (default 10000).
    #[serde(default)]
    pub max_events: Option<usize>,
}

impl AgentExpect {
    /// The run rules, or what is wrong with this section.
    pub fn rules(&self) -> Result<crate::probe::agent::run::RunRules, String> {
        use crate::probe::agent::run::{Order, RunRules};
        let mut r = RunRules::default();
        if let Some(e) = &self.events {
            r.events = e.clone();
        }
        r.order = match self.order.as_deref() {
            None | Some("first") => Order::FirstIsStarted,
            Some("strict") => Order::Strict,
            Some("any") => Order::Any,
            Some(other) => return Err(format!("order `{other}` is not one of strict, first, any")),
        };
        for (event, text) in &self.deadlines {
            let d = humantime::parse_duration(text)
                .map_err(|e| format!("deadline of {event}: `{text}` is not a duration ({e})"))?;
            r.deadlines.insert(event.clone(), d);
        }
        if let Some(d) = self.run_deadline {
            r.run_deadline = d;
        }
        for (event, fields) in &self.required_fields {
            r.required_fields.insert(event.clone(), fields.clone());
        }
        if let Some(p) = self.pair_tools {
            r.pair_tools = p;
        }
        if let Some(m) = self.max_events {
            r.max_events = m;
        }
        Ok(r)
    }
}
