//! `type: dns_query` (blackbox_exporter's `dns` prober, with its keys): the target is a DNS
//! server; one query, its response code and its records judged.

use serde::Deserialize;

use super::expect::GoPattern;
use super::tls::TlsVerify;
use super::{AddressFamily, Problems, yes};
use crate::config::yaml;

/// `type: dns_query`: a DNS server answers a query as expected. The target is the server
/// (`host`, `host:port`; port 53, or 853 with `dns_over_tls`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsQuerySpec {
    pub query_name: String,
    /// Any record type by name (`A`, `MX`, `SOA`, `TXT`, ...; default `ANY`).
    #[serde(default = "any")]
    pub query_type: String,
    /// `IN` (default), `CH`, `HS`, `NONE`, `ANY`.
    #[serde(default = "class_in")]
    pub query_class: String,
    /// Accepted response codes (default `[NOERROR]`).
    #[serde(default)]
    pub valid_rcodes: Option<Vec<String>>,
    #[serde(default)]
    pub validate_answer_rrs: RrRules,
    #[serde(default)]
    pub validate_authority_rrs: RrRules,
    #[serde(default)]
    pub validate_additional_rrs: RrRules,
    /// `udp` (default) or `tcp`.
    #[serde(default = "udp")]
    pub transport_protocol: String,
    /// DNS over TLS (needs `transport_protocol: tcp`).
    #[serde(default)]
    pub dns_over_tls: bool,
    #[serde(default)]
    pub tls_config: TlsVerify,
    /// Set the RD flag (default true).
    #[serde(default = "yes")]
    pub recursion_desired: bool,
    #[serde(default)]
    pub source_ip_address: Option<std::net::IpAddr>,
    #[serde(default)]
    pub preferred_ip_protocol: AddressFamily,
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
}

/// Regexes (Go RE2) matched against each record in its text form,
/// `name<TAB>ttl<TAB>class<TAB>type<TAB>data` (`www.example.com.\t300\tIN\tA\t192.0.2.1`
/// with `\t` a tab).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrRules {
    /// Fail when any record matches one of these.
    #[serde(default)]
    pub fail_if_matches_regexp: Vec<GoPattern>,
    /// Fail unless every record matches all of these: what blackbox_exporter does,
    /// whatever the name says.
    #[serde(default)]
    pub fail_if_all_match_regexp: Vec<GoPattern>,
    /// Fail when a record does not match one of these (or there are no records).
    #[serde(default)]
    pub fail_if_not_matches_regexp: Vec<GoPattern>,
    /// Fail when no record matches one of these (or there are no records).
    #[serde(default)]
    pub fail_if_none_matches_regexp: Vec<GoPattern>,
}

fn any() -> String {
    "ANY".into()
}
fn class_in() -> String {
    "IN".into()
}
fn udp() -> String {
    "udp".into()
}

/// The response codes by name, as blackbox_exporter (miekg/dns) spells them.
pub const RCODES: [(&str, u16); 20] = [
    ("NOERROR", 0),
    ("FORMERR", 1),
    ("SERVFAIL", 2),
    ("NXDOMAIN", 3),
    ("NOTIMP", 4),
    ("REFUSED", 5),
    ("YXDOMAIN", 6),
    ("YXRRSET", 7),
    ("NXRRSET", 8),
    ("NOTAUTH", 9),
    ("NOTZONE", 10),
    ("BADSIG", 16),
    ("BADVERS", 16),
    ("BADKEY", 17),
    ("BADTIME", 18),
    ("BADMODE", 19),
    ("BADNAME", 20),
    ("BADALG", 21),
    ("BADTRUNC", 22),
    ("BADCOOKIE", 23),
];

impl DnsQuerySpec {
    pub(crate) fn validate(&self, path: &str, out: &mut Problems) {
        if self.query_name.trim().is_empty() {
            out.value(yaml::child(path, "query_name"), "the name to ask for");
        }
        if self
            .query_type
            .parse::<hickory_resolver::proto::rr::RecordType>()
            .is_err()
            || self.query_type.starts_with(|c: char| c.is_ascii_digit())
        {
            out.value(
                yaml::child(path, "query_type"),
                format!(
                    "`{}` is not a DNS record type (A, AAAA, MX, SOA, TXT, ANY, ...)",
                    self.query_type
                ),
            );
        }
        if self
            .query_class
            .parse::<hickory_resolver::proto::rr::DNSClass>()
            .is_err()
        {
            out.value(
                yaml::child(path, "query_class"),
                format!(
                    "`{}` is not a DNS class (IN, CH, HS, NONE, ANY)",
                    self.query_class
                ),
            );
        }
        for (i, rc) in self.valid_rcodes.iter().flatten().enumerate() {
            if !RCODES.iter().any(|(n, _)| n == rc) {
                let names: Vec<&str> = RCODES.iter().map(|(n, _)| *n).collect();
                out.value(
                    yaml::index(&yaml::child(path, "valid_rcodes"), i),
                    format!("`{rc}` is not a response code ({})", names.join(", ")),
                );
            }
        }
        match self.transport_protocol.as_str() {
            "udp" if self.dns_over_tls => out.value(
                yaml::child(path, "dns_over_tls"),
                "DNS over TLS runs over TCP: set `transport_protocol: tcp`",
            ),
            "udp" | "tcp" => {}
            other => out.value(
                yaml::child(path, "transport_protocol"),
                format!("`{other}`: udp or tcp"),
            ),
        }
    }

    /// The accepted response codes, as numbers.
    pub fn valid_codes(&self) -> Vec<u16> {
        match &self.valid_rcodes {
            None => vec![0],
            Some(list) => list
                .iter()
                .filter_map(|n| RCODES.iter().find(|(name, _)| name == n).map(|(_, c)| *c))
                .collect(),
        }
    }
}
