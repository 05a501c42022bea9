//! `type: grpc` (blackbox_exporter's `grpc` prober, with its keys): the standard health
//! service, `grpc.health.v1.Health/Check`, over HTTP/2.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::tls::TlsVerify;
use super::{AddressFamily, Problems, yes};
use crate::config::yaml;

/// `type: grpc`: a gRPC server reports SERVING. The target is host:port.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcSpec {
    /// The service whose health is asked (default: the server as a whole, "").
    #[serde(default)]
    pub service: String,
    /// Connect with TLS (h2 by ALPN); else HTTP/2 without TLS (h2c, prior knowledge).
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: TlsVerify,
    /// Request metadata: name -> values (sent as HTTP/2 headers).
    #[serde(default)]
    pub metadata: BTreeMap<String, Vec<String>>,
    /// `ip4` or `ip6` (default): which address of a name is used.
    #[serde(default)]
    pub preferred_ip_protocol: AddressFamily,
    /// Use the other family when the name has no address of the preferred one (default true).
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
}

impl GrpcSpec {
    pub(crate) fn validate(&self, path: &str, out: &mut Problems) {
        let meta = yaml::child(path, "metadata");
        for (name, values) in &self.metadata {
            let at = yaml::child(&meta, name);
            let lower = name.to_ascii_lowercase();
            if hyper::header::HeaderName::from_bytes(lower.as_bytes()).is_err()
                || lower.starts_with("grpc-")
                || lower.starts_with(':')
            {
                out.key(
                    at.clone(),
                    format!("`{name}` cannot be gRPC metadata (a header name, not grpc-* or :*)"),
                );
            }
            if values
                .iter()
                .any(|v| hyper::header::HeaderValue::from_str(v).is_err())
            {
                out.value(at, "a metadata value has characters HTTP does not allow");
            }
        }
    }
}
