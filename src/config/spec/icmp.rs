//! `type: icmp` (blackbox_exporter's `icmp` prober, with its keys): one echo request, one
//! echo reply.

use serde::Deserialize;

use super::{AddressFamily, Problems, yes};
use crate::config::yaml;

/// `type: icmp`: a host answers ping. The target is a host name or address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpSpec {
    /// `ip4` or `ip6` (default): which address of a name is pinged.
    #[serde(default)]
    pub preferred_ip_protocol: AddressFamily,
    /// Use the other family when the name has no address of the preferred one (default true).
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    /// Send from this local address.
    #[serde(default)]
    pub source_ip_address: Option<std::net::IpAddr>,
    /// Set the IPv4 don't-fragment bit (with `payload_size`, a path MTU test).
    #[serde(default)]
    pub dont_fragment: bool,
    /// Bytes of payload after the 8-byte ICMP header (default 36, as blackbox_exporter).
    #[serde(default)]
    pub payload_size: Option<usize>,
    /// Hop limit of the request (1-255): a reply within N hops, or not.
    #[serde(default)]
    pub ttl: Option<u32>,
}

/// Largest payload: an IPv4 datagram of 65,535 bytes less its IP and ICMP headers.
const MAX_PAYLOAD: usize = 65_507;

impl IcmpSpec {
    pub(crate) fn validate(&self, path: &str, out: &mut Problems) {
        if let Some(ttl) = self.ttl
            && !(1..=255).contains(&ttl)
        {
            out.value(yaml::child(path, "ttl"), "ttl is from 1 to 255 hops");
        }
        if self.payload_size.is_some_and(|n| n > MAX_PAYLOAD) {
            out.value(
                yaml::child(path, "payload_size"),
                format!("at most {MAX_PAYLOAD} bytes"),
            );
        }
    }

    pub fn payload(&self) -> usize {
        self.payload_size.unwrap_or(36)
    }
}
