//! `type: dns`.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

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
