//! blackbox_exporter-compatible `probe_*` gauges: the facts of one probe, kept per check by
//! the daemon and written for a single probe by `/probe`.

use std::time::Duration;

use super::text::{Family, Rows, Text, label_set, write_families};
use crate::probe::{Phase, ProbeResult};

/// The check types that are blackbox_exporter probers.
const BLACKBOX_PROBERS: [&str; 5] = ["http", "tcp", "icmp", "grpc", "dns_query"];

/// Go's `time.Time{}.Unix()`: what blackbox_exporter writes for a chain that was not verified.
const GO_ZERO_TIME: i64 = -62_135_596_800;

const TLS_VERSIONS: [&str; 4] = ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"];

/// What the `probe_*` gauges say about one probe.
#[derive(Debug, Clone)]
pub struct Facts {
    success: bool,
    duration: f64,
    dns_lookup: Option<f64>,
    ip_protocol: Option<u8>,
    ip_addr_hash: Option<u32>,
    /// `/probe` only: the timeout the probe ran with.
    timeout: Option<f64>,
    /// Present for http checks (zeros when no response came).
    http: Option<HttpFacts>,
    /// Present when a certificate was seen, verified or not.
    tls: Option<TlsFacts>,
    /// tcp checks: (failed due to regex, failed due to bytes, `probe_expect_info` labels).
    dialogue: Option<(bool, bool, Option<String>)>,
    /// icmp checks: phase durations (resolve, setup, rtt) and the reply's hop limit.
    icmp: Option<([f64; 3], Option<u8>)>,
    /// grpc checks: phase durations (resolve, check), TLS, status code, serving status.
    grpc: Option<([f64; 2], bool, u32, Option<&'static str>)>,
    /// dns_query checks: phases (resolve, connect, request) and what the answer held.
    dns: Option<([f64; 3], crate::probe::result::DnsQueryInfo)>,
}

#[derive(Debug, Clone)]
struct HttpFacts {
    status: u16,
    phases: [f64; 5],
    content_length: f64,
    body_bytes: u64,
    redirects: u32,
    ssl: bool,
    version: f64,
    failed_due_to_regex: bool,
    last_modified: Option<i64>,
}

#[derive(Debug, Clone)]
struct TlsFacts {
    earliest: Option<i64>,
    /// blackbox's `probe_ssl_last_chain_expiry_timestamp_seconds`: the verified chain's
    /// earliest expiry; Go's zero time when the connection went on unverified
    /// (`insecure_skip_verify`); None when the handshake was refused.
    last_chain: Option<i64>,
    version: Option<&'static str>,
    /// Go's name of the cipher suite.
    cipher: String,
    /// `probe_ssl_last_chain_info`'s labels, escaped.
    leaf: Option<String>,
}

impl Facts {
    pub fn of(kind: &str, r: &ProbeResult) -> Facts {
        let http = (kind == "http").then(|| {
            let h = r.http.as_ref();
            HttpFacts {
                status: h.map_or(0, |h| h.status),
                phases: Phase::HTTP.map(|p| r.phase(p).unwrap_or(Duration::ZERO).as_secs_f64()),
                content_length: h.and_then(|h| h.content_length).map_or(-1.0, |n| n as f64),
                body_bytes: h.map_or(0, |h| h.body_bytes),
                redirects: h.map_or(0, |h| h.redirects),
                ssl: h.is_some_and(|h| h.tls),
                version: h.and_then(|h| h.version.parse::<f64>().ok()).unwrap_or(0.0),
                failed_due_to_regex: h.is_some_and(|h| h.failed_due_to_regex),
                last_modified: h.and_then(|h| h.last_modified),
            }
        });
        let dialogue = r.dialogue.as_ref().map(|d| {
            let labels: Vec<(&str, &str)> = d
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            (
                d.failed_due_to_regex,
                d.failed_due_to_bytes,
                (!labels.is_empty()).then(|| label_set(&labels)),
            )
        });
        let icmp = r.icmp.as_ref().map(|i| {
            let resolve = r
                .phase(Phase::Resolve)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64();
            (
                [resolve, i.setup_seconds, i.rtt_seconds.unwrap_or(0.0)],
                i.reply_hop_limit,
            )
        });
        Facts {
            success: r.success(),
            duration: r.duration.as_secs_f64(),
            dns_lookup: r.phase(Phase::Resolve).map(|d| d.as_secs_f64()),
            // blackbox's probers write 0 for both when no address was chosen.
            ip_protocol: r
                .ip
                .map(|ip| if ip.is_ipv4() { 4 } else { 6 })
                .or(BLACKBOX_PROBERS.contains(&kind).then_some(0)),
            ip_addr_hash: r
                .ip
                .map(ip_hash)
                .or(BLACKBOX_PROBERS.contains(&kind).then_some(0)),
            timeout: None,
            http,
            tls: r.tls.as_ref().map(|t| TlsFacts {
                earliest: t.earliest_expiry(),
                last_chain: match (t.verified_chain_expiry, &r.failure) {
                    (Some(e), _) => Some(e),
                    (None, Some(f)) if f.phase == Some(Phase::Tls) => None,
                    (None, _) => Some(GO_ZERO_TIME),
                },
                version: TLS_VERSIONS.into_iter().find(|v| *v == t.version),
                cipher: t.cipher.replace("TLS13_", "TLS_"),
                leaf: t.chain.first().map(|c| {
                    label_set(&[
                        ("fingerprint_sha256", &c.fingerprint_sha256),
                        ("subject", &c.subject),
                        ("issuer", &c.issuer),
                        ("subjectalternative", &c.sans.join(",")),
                        ("serialnumber", &c.serial.replace(':', "")),
                    ])
                }),
            }),
            dialogue,
            icmp,
            dns: r.dns_query.as_ref().map(|d| {
                let p = |ph| r.phase(ph).unwrap_or(Duration::ZERO).as_secs_f64();
                (
                    [p(Phase::Resolve), p(Phase::Connect), p(Phase::Processing)],
                    d.clone(),
                )
            }),
            grpc: r.grpc.as_ref().map(|g| {
                let resolve = r
                    .phase(Phase::Resolve)
                    .unwrap_or(Duration::ZERO)
                    .as_secs_f64();
                (
                    [resolve, (r.duration.as_secs_f64() - resolve).max(0.0)],
                    g.tls,
                    g.status_code,
                    g.serving_status,
                )
            }),
        }
    }
}

/// blackbox_exporter's `probe_ip_addr_hash`: FNV-1a (32 bits) of the address's bytes
/// (4 for IPv4, 16 for IPv6), so a changed address shows as a changed value.
fn ip_hash(ip: std::net::IpAddr) -> u32 {
    let bytes: Vec<u8> = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `labels` and one more pre-escaped label set, joined.
fn joined(labels: &str, more: &str) -> String {
    match (labels.is_empty(), more.is_empty()) {
        (true, _) => more.to_string(),
        (_, true) => labels.to_string(),
        _ => format!("{labels},{more}"),
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

const FAMILIES: [Family<Facts>; 34] = [
    (
        "probe_success",
        "gauge",
        "Whether the probe succeeded (1) or not (0).",
        |t, n, l, f| t.sample(n, l, None, flag(f.success)),
    ),
    (
        "probe_duration_seconds",
        "gauge",
        "How long the probe took.",
        |t, n, l, f| t.sample(n, l, None, f.duration),
    ),
    (
        "probe_timeout_seconds",
        "gauge",
        "How long the probe may take.",
        |t, n, l, f| {
            if let Some(v) = f.timeout {
                t.sample(n, l, None, v)
            }
        },
    ),
    (
        "probe_ip_addr_hash",
        "gauge",
        "FNV-1a hash of the IP address connected to (a change shows the address changed).",
        |t, n, l, f| {
            if let Some(v) = f.ip_addr_hash {
                t.sample(n, l, None, f64::from(v))
            }
        },
    ),
    (
        "probe_dns_lookup_time_seconds",
        "gauge",
        "Time taken to resolve the target.",
        |t, n, l, f| {
            if let Some(v) = f.dns_lookup {
                t.sample(n, l, None, v)
            }
        },
    ),
    (
        "probe_ip_protocol",
        "gauge",
        "IP protocol of the connection (4 or 6).",
        |t, n, l, f| {
            if let Some(v) = f.ip_protocol {
                t.sample(n, l, None, u64::from(v))
            }
        },
    ),
    (
        "probe_http_status_code",
        "gauge",
        "HTTP status code of the final response, 0 if none.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                t.sample(n, l, None, u64::from(h.status))
            }
        },
    ),
    (
        "probe_http_duration_seconds",
        "gauge",
        "Duration of each HTTP phase, summed over redirects.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                for (p, v) in Phase::HTTP.iter().zip(h.phases) {
                    t.sample(n, l, Some(("phase", p.as_str())), v)
                }
            }
        },
    ),
    (
        "probe_http_content_length",
        "gauge",
        "Content-Length of the response, -1 when unknown.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                t.sample(n, l, None, h.content_length)
            }
        },
    ),
    (
        "probe_http_uncompressed_body_length",
        "gauge",
        "Bytes of body read.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                t.sample(n, l, None, h.body_bytes)
            }
        },
    ),
    (
        "probe_http_redirects",
        "gauge",
        "Number of redirects followed.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                t.sample(n, l, None, u64::from(h.redirects))
            }
        },
    ),
    (
        "probe_http_ssl",
        "gauge",
        "Whether the final response came over TLS.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                t.sample(n, l, None, flag(h.ssl))
            }
        },
    ),
    (
        "probe_http_version",
        "gauge",
        "HTTP version of the final response.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                t.sample(n, l, None, h.version)
            }
        },
    ),
    (
        "probe_http_last_modified_timestamp_seconds",
        "gauge",
        "Last-Modified of the final response, unix seconds.",
        |t, n, l, f| {
            if let Some(v) = f.http.as_ref().and_then(|h| h.last_modified) {
                t.sample(n, l, None, v as f64)
            }
        },
    ),
    (
        "probe_failed_due_to_regex",
        "gauge",
        "Whether a regex rule (body, or a tcp expect) failed the probe.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                t.sample(n, l, None, flag(h.failed_due_to_regex))
            }
            if let Some((regex, _, _)) = &f.dialogue {
                t.sample(n, l, None, flag(*regex))
            }
        },
    ),
    (
        "probe_failed_due_to_bytes",
        "gauge",
        "Whether a tcp expect_bytes failed the probe.",
        |t, n, l, f| {
            if let Some((_, bytes, _)) = &f.dialogue {
                t.sample(n, l, None, flag(*bytes))
            }
        },
    ),
    (
        "probe_expect_info",
        "gauge",
        "The labels of the tcp expect steps that matched.",
        |t, n, l, f| {
            if let Some((_, _, Some(labels))) = &f.dialogue {
                t.sample(n, &joined(l, labels), None, 1.0)
            }
        },
    ),
    (
        "probe_icmp_duration_seconds",
        "gauge",
        "Duration of the ICMP echo by phase.",
        |t, n, l, f| {
            if let Some((phases, _)) = &f.icmp {
                for (p, v) in ["resolve", "setup", "rtt"].iter().zip(phases) {
                    t.sample(n, l, Some(("phase", p)), *v)
                }
            }
        },
    ),
    (
        "probe_icmp_reply_hop_limit",
        "gauge",
        "Hop limit (TTL) of the echo reply.",
        |t, n, l, f| {
            if let Some(v) = f.icmp.as_ref().and_then(|i| i.1) {
                t.sample(n, l, None, u64::from(v))
            }
        },
    ),
    (
        "probe_ssl_earliest_cert_expiry",
        "gauge",
        "Earliest notAfter of the presented certificates, unix seconds.",
        |t, n, l, f| {
            if let Some(e) = f.tls.as_ref().and_then(|t| t.earliest) {
                t.sample(n, l, None, e as f64)
            }
        },
    ),
    (
        "probe_ssl_last_chain_expiry_timestamp_seconds",
        "gauge",
        "Earliest notAfter of the chain that verified, unix seconds (a presented certificate the verified path does not use does not count; -62135596800 when unverified, as blackbox_exporter).",
        |t, n, l, f| {
            if let Some(e) = f.tls.as_ref().and_then(|t| t.last_chain) {
                t.sample(n, l, None, e as f64)
            }
        },
    ),
    (
        "probe_dns_duration_seconds",
        "gauge",
        "Duration of the DNS query by phase.",
        |t, n, l, f| {
            if let Some((phases, _)) = &f.dns {
                for (p, v) in ["resolve", "connect", "request"].iter().zip(phases) {
                    t.sample(n, l, Some(("phase", p)), *v)
                }
            }
        },
    ),
    (
        "probe_dns_answer_rrs",
        "gauge",
        "Records in the answer section.",
        |t, n, l, f| {
            if let Some((_, d)) = &f.dns {
                t.sample(n, l, None, d.answer_rrs as u64)
            }
        },
    ),
    (
        "probe_dns_authority_rrs",
        "gauge",
        "Records in the authority section.",
        |t, n, l, f| {
            if let Some((_, d)) = &f.dns {
                t.sample(n, l, None, d.authority_rrs as u64)
            }
        },
    ),
    (
        "probe_dns_additional_rrs",
        "gauge",
        "Records in the additional section.",
        |t, n, l, f| {
            if let Some((_, d)) = &f.dns {
                t.sample(n, l, None, d.additional_rrs as u64)
            }
        },
    ),
    (
        "probe_dns_query_succeeded",
        "gauge",
        "Whether an answer came (whatever its response code).",
        |t, n, l, f| {
            if let Some((_, d)) = &f.dns {
                t.sample(n, l, None, flag(d.succeeded))
            }
        },
    ),
    (
        "probe_dns_serial",
        "gauge",
        "The zone's serial (SOA queries).",
        |t, n, l, f| {
            if let Some(serial) = f.dns.as_ref().and_then(|(_, d)| d.serial) {
                t.sample(n, l, None, u64::from(serial))
            }
        },
    ),
    (
        "probe_grpc_duration_seconds",
        "gauge",
        "Duration of the gRPC health call by phase.",
        |t, n, l, f| {
            if let Some((phases, ..)) = &f.grpc {
                for (p, v) in ["resolve", "check"].iter().zip(phases) {
                    t.sample(n, l, Some(("phase", p)), *v)
                }
            }
        },
    ),
    (
        "probe_grpc_ssl",
        "gauge",
        "Whether the gRPC connection used TLS.",
        |t, n, l, f| {
            if let Some((_, ssl, ..)) = &f.grpc {
                t.sample(n, l, None, flag(*ssl))
            }
        },
    ),
    (
        "probe_grpc_status_code",
        "gauge",
        "gRPC status code of the health call (0 OK).",
        |t, n, l, f| {
            if let Some((_, _, code, _)) = &f.grpc {
                t.sample(n, l, None, u64::from(*code))
            }
        },
    ),
    (
        "probe_grpc_healthcheck_response",
        "gauge",
        "The serving status the health service answered (1 on its label).",
        |t, n, l, f| {
            if let Some((.., status)) = &f.grpc {
                for s in crate::probe::grpc::SERVING_STATUSES {
                    t.sample(n, l, Some(("serving_status", s)), flag(*status == Some(s)))
                }
            }
        },
    ),
    (
        "probe_ssl_last_chain_info",
        "gauge",
        "The leaf certificate: fingerprint, subject, issuer, DNS names, serial number.",
        |t, n, l, f| {
            if let Some(leaf) = f.tls.as_ref().and_then(|t| t.leaf.as_deref()) {
                t.sample(n, &joined(l, leaf), None, 1.0)
            }
        },
    ),
    (
        "probe_tls_version_info",
        "gauge",
        "TLS version used, as a label.",
        |t, n, l, f| {
            if let Some(v) = f.tls.as_ref().and_then(|t| t.version) {
                t.sample(n, l, Some(("version", v)), 1.0)
            }
        },
    ),
    (
        "probe_tls_cipher_info",
        "gauge",
        "TLS cipher suite negotiated, as a label.",
        |t, n, l, f| {
            if let Some(c) = f.tls.as_ref().filter(|t| !t.cipher.is_empty()) {
                t.sample(n, l, Some(("cipher", &c.cipher)), 1.0)
            }
        },
    ),
];

/// Writes every `probe_*` family for many probes. Families without samples are left out.
pub fn write(text: &mut Text, rows: Rows<Facts>) {
    write_families(text, &FAMILIES, rows);
}

/// The `/probe` answer: the gauges of one probe, without labels.
pub fn render_one(kind: &str, r: &ProbeResult, timeout: Duration) -> String {
    let mut facts = Facts::of(kind, r);
    facts.timeout = Some(timeout.as_secs_f64());
    let mut out = String::new();
    let mut text = Text::streaming(|piece| out.push_str(&piece));
    write(&mut text, &|f| f("", &facts));
    text.finish();
    out
}
