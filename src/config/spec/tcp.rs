//! `type: tcp` (blackbox_exporter's `tcp` prober, with its keys): connect, optionally over
//! TLS, then a dialogue of expected lines and sent lines.

use serde::Deserialize;

use super::expect::GoPattern;
use super::tls::TlsVerify;
use super::{AddressFamily, Problems, yes};
use crate::config::yaml;

/// `type: tcp`: a port accepts connections and, with `query_response`, speaks as expected.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSpec {
    /// The dialogue, in order: each step reads lines until one matches `expect` (or reads
    /// exactly `expect_bytes`), then sends `send` (with `${1}`, `${name}` from the match)
    /// and a newline, then upgrades to TLS when `starttls` is set.
    #[serde(default)]
    pub query_response: Vec<QueryStep>,
    /// Speak TLS from the first byte (e.g. pop3s, imaps).
    #[serde(default)]
    pub tls: bool,
    /// Verification for `tls` and `starttls`.
    #[serde(default)]
    pub tls_config: TlsVerify,
    /// Connect from this local address.
    #[serde(default)]
    pub source_ip_address: Option<std::net::IpAddr>,
    /// `ip4` or `ip6` (default): which address of a name is used.
    #[serde(default)]
    pub preferred_ip_protocol: AddressFamily,
    /// Use the other family when the name has no address of the preferred one (default true).
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryStep {
    /// A regex (Go RE2 syntax, as blackbox_exporter reads it) a line must match.
    #[serde(default)]
    pub expect: Option<GoPattern>,
    /// Bytes that must arrive exactly.
    #[serde(default)]
    pub expect_bytes: Option<String>,
    /// Labels of `probe_expect_info`; values may use the groups of `expect`.
    #[serde(default)]
    pub labels: Vec<ExpectLabel>,
    /// A line to send (a newline is added).
    #[serde(default)]
    pub send: Option<String>,
    /// Upgrade the connection to TLS after this step.
    #[serde(default)]
    pub starttls: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectLabel {
    pub name: String,
    pub value: String,
}

/// `type: unix` (blackbox_exporter's `unix` prober): the `query_response` dialogue over a
/// unix socket; the target is its path.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnixSpec {
    #[serde(default)]
    pub query_response: Vec<QueryStep>,
    /// TLS over the socket: not supported (refused at load).
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: TlsVerify,
}

impl UnixSpec {
    pub(crate) fn validate(&self, path: &str, out: &mut Problems) {
        if self.tls {
            out.value(
                yaml::child(path, "tls"),
                "TLS over a unix socket is not supported",
            );
        }
        let as_tcp = TcpSpec {
            query_response: self.query_response.clone(),
            ..TcpSpec::default()
        };
        as_tcp.validate(path, out);
        for (i, step) in self.query_response.iter().enumerate() {
            if step.starttls {
                out.value(
                    yaml::child(
                        &yaml::index(&yaml::child(path, "query_response"), i),
                        "starttls",
                    ),
                    "starttls over a unix socket is not supported",
                );
            }
        }
    }
}

impl TcpSpec {
    pub(crate) fn validate(&self, path: &str, out: &mut Problems) {
        let steps = yaml::child(path, "query_response");
        for (i, step) in self.query_response.iter().enumerate() {
            let at = yaml::index(&steps, i);
            if step.expect.is_some() && step.expect_bytes.is_some() {
                out.value(
                    yaml::child(&at, "expect_bytes"),
                    "`expect` and `expect_bytes` exclude each other",
                );
            }
            if step.starttls && self.tls {
                out.value(
                    yaml::child(&at, "starttls"),
                    "`starttls` upgrades a plain connection; this one speaks TLS from the start (`tls: true`)",
                );
            }
            if !step.labels.is_empty() && step.expect.is_none() {
                out.value(
                    yaml::child(&at, "labels"),
                    "`labels` take their values from the `expect` match; this step has no `expect`",
                );
            }
            for (j, l) in step.labels.iter().enumerate() {
                if !crate::config::value::prom_label_name(&l.name) {
                    out.value(
                        yaml::child(&yaml::index(&yaml::child(&at, "labels"), j), "name"),
                        format!("`{}` is not a Prometheus label name", l.name),
                    );
                }
            }
        }
    }

    /// Whether any TLS is spoken (`tls`, or a `starttls` step).
    pub fn uses_tls(&self) -> bool {
        self.tls || self.query_response.iter().any(|s| s.starttls)
    }
}
