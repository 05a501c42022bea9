//! What each check type is configured with, one file per type, each with the checks serde
//! cannot do (its `validate`). The doc comments on these structs are the user documentation
//! of their keys (the README repeats them with examples). Targets are parsed here too.

pub mod agent;
pub mod browser;
pub mod dns;
pub mod dns_query;
pub mod expect;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod tcp;
pub mod tls;
pub mod websocket;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;
use url::Url;

use super::yaml;
pub use agent::{AgentExpect, AgentSpec, CustomProfile, LoginSpec, Order, TokenSpec, Transport};
pub use browser::{BrowserConfig, BrowserSpec, MessageStep, PageEvents, Step, WaitFor};
pub use dns::{DnsSpec, RecordKind};
pub use dns_query::{DnsQuerySpec, RrRules};
pub use expect::{
    GoPattern, JsonRule, Pattern, Phrase, STARTING_PHRASES, StatusRule, default_starting,
};
pub use grpc::GrpcSpec;
pub use http::{HttpExpect, HttpSpec};
pub use icmp::IcmpSpec;
pub use tcp::{QueryStep, TcpSpec, UnixSpec};
pub use tls::{TlsVerify, Trust};
pub use websocket::{FrameExpect, WebSocketSpec};

/// The probe settings of a check or a `/probe` module, by `type`.
// Built once per check when the config loads and then only borrowed: size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Spec {
    Http(HttpSpec),
    Tls(TlsVerify),
    Dns(DnsSpec),
    Agent(AgentSpec),
    WebSocket(WebSocketSpec),
    Browser(BrowserSpec),
    Tcp(TcpSpec),
    Icmp(IcmpSpec),
    Grpc(GrpcSpec),
    DnsQuery(DnsQuerySpec),
    Unix(UnixSpec),
}

impl Spec {
    pub const KINDS: [&'static str; 11] = [
        "http",
        "tls",
        "dns",
        "agent_pipeline",
        "websocket",
        "browser",
        "tcp",
        "icmp",
        "grpc",
        "dns_query",
        "unix",
    ];

    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Http(_) => "http",
            Spec::Tls(_) => "tls",
            Spec::Dns(_) => "dns",
            Spec::Agent(_) => "agent_pipeline",
            Spec::WebSocket(_) => "websocket",
            Spec::Browser(_) => "browser",
            Spec::Tcp(_) => "tcp",
            Spec::Icmp(_) => "icmp",
            Spec::Grpc(_) => "grpc",
            Spec::DnsQuery(_) => "dns_query",
            Spec::Unix(_) => "unix",
        }
    }

    /// Parses a `target` for this type: a URL for http, host:port for tls, a name for dns.
    pub fn parse_target(&self, text: &str) -> Result<Target, String> {
        match self {
            Spec::Http(_) => parse_http_url(text).map(Target::Url),
            Spec::Tls(_) => HostPort::parse(text).map(Target::HostPort),
            Spec::Dns(_) => parse_dns_name(text).map(Target::Name),
            Spec::Agent(a) => {
                let url = parse_url(text, ["ws", "wss", "http", "https"], "agent URL")?;
                a.fits(&url)?;
                Ok(Target::Url(url))
            }
            Spec::WebSocket(_) => parse_ws_target(text).map(Target::Url),
            Spec::Browser(_) => parse_http_url(text).map(Target::Url),
            Spec::Tcp(_) => HostPort::parse(text).map(Target::HostPort),
            Spec::Grpc(g) => parse_grpc_target(text, g.tls).map(Target::HostPort),
            Spec::Icmp(_) => parse_host(text).map(Target::Name),
            Spec::Unix(_) => {
                if text.starts_with('/') && !text.contains('\0') {
                    Ok(Target::Name(text.to_string()))
                } else {
                    Err(format!(
                        "`{text}` is not the absolute path of a unix socket"
                    ))
                }
            }
            Spec::DnsQuery(d) => {
                let port = if d.dns_over_tls { 853 } else { 53 };
                HostPort::parse(text)
                    .or_else(|e| {
                        let host = parse_host(text).map_err(|_| e)?;
                        Ok(HostPort { host, port })
                    })
                    .map(Target::HostPort)
            }
        }
    }

    /// Checks what serde cannot (header syntax, rule shapes, URLs, CA files); problems go
    /// to `out` with paths under `path`.
    pub(crate) fn validate(&mut self, path: &str, ctx: &Context<'_>, out: &mut Problems) {
        self.validate_own(path, out);
        let tls_path = match self {
            Spec::Tls(_) => path.to_string(),
            Spec::Tcp(_) | Spec::Grpc(_) | Spec::DnsQuery(_) | Spec::Unix(_) => {
                yaml::child(path, "tls_config")
            }
            _ => yaml::child(path, "tls"),
        };
        if let Some(tls) = self.tls_client_mut() {
            tls.validate(&tls_path, ctx, out);
        }
    }

    /// The type's own checks, without its TLS settings.
    pub(crate) fn validate_own(&mut self, path: &str, out: &mut Problems) {
        match self {
            Spec::Http(h) => h.validate(path, out),
            Spec::WebSocket(w) => w.validate(path, out),
            Spec::Agent(a) => a.validate(path, out),
            Spec::Browser(b) => b.validate(path, out),
            Spec::Tcp(t) => t.validate(path, out),
            Spec::Icmp(i) => i.validate(path, out),
            Spec::Grpc(g) => g.validate(path, out),
            Spec::DnsQuery(d) => d.validate(path, out),
            Spec::Unix(u) => u.validate(path, out),
            Spec::Tls(_) | Spec::Dns(_) => {}
        }
    }

    /// The phrases that say this check's target is starting (none for tls and dns).
    pub fn starting_patterns(&self) -> &[Phrase] {
        let own = match self {
            Spec::Http(h) => &h.starting_patterns,
            Spec::Agent(a) => &a.starting_patterns,
            Spec::WebSocket(w) => &w.starting_patterns,
            Spec::Tls(_)
            | Spec::Dns(_)
            | Spec::Browser(_)
            | Spec::Tcp(_)
            | Spec::Icmp(_)
            | Spec::Grpc(_)
            | Spec::DnsQuery(_)
            | Spec::Unix(_) => return &[],
        };
        own.as_deref().unwrap_or(default_starting())
    }

    /// Gives a check that sets no `starting_patterns` those of `defaults:`.
    pub(crate) fn inherit_starting(&mut self, inherited: Option<&Vec<Phrase>>) {
        let own = match self {
            Spec::Http(h) => &mut h.starting_patterns,
            Spec::Agent(a) => &mut a.starting_patterns,
            Spec::WebSocket(w) => &mut w.starting_patterns,
            Spec::Tls(_)
            | Spec::Dns(_)
            | Spec::Browser(_)
            | Spec::Tcp(_)
            | Spec::Icmp(_)
            | Spec::Grpc(_)
            | Spec::DnsQuery(_)
            | Spec::Unix(_) => return,
        };
        if own.is_none() {
            *own = inherited.cloned();
        }
    }

    pub fn tls_client(&self) -> Option<&TlsVerify> {
        match self {
            Spec::Http(h) => Some(&h.tls),
            Spec::Tls(t) => Some(t),
            Spec::Agent(a) => Some(&a.tls),
            Spec::WebSocket(w) => Some(&w.tls),
            Spec::Browser(b) => Some(&b.tls),
            Spec::Tcp(t) => t.uses_tls().then_some(&t.tls_config),
            Spec::Grpc(g) => g.tls.then_some(&g.tls_config),
            Spec::DnsQuery(d) => d.dns_over_tls.then_some(&d.tls_config),
            Spec::Dns(_) | Spec::Icmp(_) | Spec::Unix(_) => None,
        }
    }

    pub fn tls_client_mut(&mut self) -> Option<&mut TlsVerify> {
        match self {
            Spec::Http(h) => Some(&mut h.tls),
            Spec::Tls(t) => Some(t),
            Spec::Agent(a) => Some(&mut a.tls),
            Spec::WebSocket(w) => Some(&mut w.tls),
            Spec::Browser(b) => Some(&mut b.tls),
            Spec::Tcp(t) => Some(&mut t.tls_config),
            Spec::Grpc(g) => Some(&mut g.tls_config),
            Spec::DnsQuery(d) => Some(&mut d.tls_config),
            Spec::Unix(u) => Some(&mut u.tls_config),
            Spec::Dns(_) | Spec::Icmp(_) => None,
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

/// A URL with a host and one of `schemes`.
fn parse_url<const N: usize>(text: &str, schemes: [&str; N], what: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !schemes.contains(&url.scheme()) {
        let (last, first) = schemes.split_last().unwrap_or((&"", &[]));
        return Err(format!(
            "{what} scheme must be {} or {last}, not `{}`",
            first.join(", "),
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("URL `{text}` has no host"));
    }
    Ok(url)
}

/// A gRPC target as blackbox_exporter takes it: host:port, optionally as an http(s) URL;
/// without a port, 443 with TLS, else 80.
fn parse_grpc_target(text: &str, tls: bool) -> Result<HostPort, String> {
    let bare = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .unwrap_or(text)
        .trim_end_matches('/');
    HostPort::parse(bare).or_else(|e| {
        let port = if tls { 443 } else { 80 };
        let host = bare.trim_start_matches('[').trim_end_matches(']');
        let shown = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        HostPort::parse(&shown).map_err(|_| e)
    })
}

/// A host to ping: a name, or an IP literal (IPv6 with or without brackets).
fn parse_host(text: &str) -> Result<String, String> {
    let literal = text.trim_start_matches('[').trim_end_matches(']');
    if literal.parse::<IpAddr>().is_ok() {
        return Ok(literal.to_string());
    }
    parse_dns_name(text)
}

/// Which address family of a name a probe uses (`preferred_ip_protocol`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub enum AddressFamily {
    #[serde(rename = "ip4", alias = "ipv4", alias = "IP4", alias = "IPv4")]
    Ip4,
    #[default]
    #[serde(rename = "ip6", alias = "ipv6", alias = "IP6", alias = "IPv6")]
    Ip6,
}

pub(crate) fn parse_dns_name(text: &str) -> Result<String, String> {
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

fn yes() -> bool {
    true
}
fn default_max_body() -> usize {
    1 << 20
}

/// What a spec's validation may need from the rest of the file.
pub(crate) struct Context<'a> {
    /// Relative `ca_file` paths are taken from the config file's folder.
    pub base_dir: &'a Path,
    /// `demo.tls_listen` is set, so `ca_file: demo` has a CA to trust.
    pub demo_tls: bool,
}

/// Problems found by a spec's validation, each at a field path; the validator gives them
/// their file positions.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<Problem>);

pub(crate) struct Problem {
    pub path: String,
    /// Point at the key rather than its value (a bad header name).
    pub at_key: bool,
    pub message: String,
}

impl Problems {
    pub fn value(&mut self, path: String, message: impl Into<String>) {
        self.0.push(Problem {
            path,
            at_key: false,
            message: message.into(),
        });
    }

    pub fn key(&mut self, path: String, message: impl Into<String>) {
        self.0.push(Problem {
            path,
            at_key: true,
            message: message.into(),
        });
    }

    /// Request headers at `path.headers`: names and values HTTP allows.
    pub fn headers(&mut self, path: &str, headers: &BTreeMap<String, String>) {
        for (name, value) in headers {
            let hp = yaml::child(&yaml::child(path, "headers"), name);
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                self.key(hp.clone(), format!("`{name}` is not a valid header name"));
            }
            if hyper::header::HeaderValue::from_str(value).is_err() {
                self.value(hp, "header value has characters HTTP does not allow");
            }
        }
    }

    /// JSON rules at `path`: exactly one condition each.
    pub fn json_rules(&mut self, path: &str, rules: &[JsonRule]) {
        for (i, rule) in rules.iter().enumerate() {
            if rule.condition_count() != 1 {
                self.value(
                    yaml::index(path, i),
                    "a JSON rule needs exactly one of equals, one_of, matches, exists",
                );
            }
        }
    }
}
