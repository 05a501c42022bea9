//! blackbox_exporter-compatible `probe_*` gauges: the facts of one probe, kept per check by
//! the daemon and written for a single probe by `/probe`.

use std::time::Duration;

use super::text::{Family, Rows, Text, write_families};
use crate::probe::{Phase, ProbeResult};

const TLS_VERSIONS: [&str; 4] = ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"];

/// What the `probe_*` gauges say about one probe.
#[derive(Debug, Clone)]
pub struct Facts {
    success: bool,
    duration: f64,
    dns_lookup: Option<f64>,
    ip_protocol: Option<u8>,
    /// Present for http checks (zeros when no response came).
    http: Option<HttpFacts>,
    /// Present when a certificate was seen, verified or not.
    tls: Option<TlsFacts>,
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
}

#[derive(Debug, Clone)]
struct TlsFacts {
    earliest: Option<i64>,
    verified: bool,
    version: Option<&'static str>,
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
            }
        });
        Facts {
            success: r.success(),
            duration: r.duration.as_secs_f64(),
            dns_lookup: r.phase(Phase::Resolve).map(|d| d.as_secs_f64()),
            ip_protocol: r.ip.map(|ip| if ip.is_ipv4() { 4 } else { 6 }),
            http,
            tls: r.tls.as_ref().map(|t| TlsFacts {
                earliest: t.earliest_expiry(),
                verified: t.verified,
                version: TLS_VERSIONS.into_iter().find(|v| *v == t.version),
            }),
        }
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

const FAMILIES: [Family<Facts>; 15] = [
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
        "probe_failed_due_to_regex",
        "gauge",
        "Whether a body regex rule failed the probe.",
        |t, n, l, f| {
            if let Some(h) = &f.http {
                t.sample(n, l, None, flag(h.failed_due_to_regex))
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
        "Earliest notAfter of the verified chain, unix seconds (absent when it did not verify).",
        |t, n, l, f| {
            if let Some(e) = f
                .tls
                .as_ref()
                .filter(|t| t.verified)
                .and_then(|t| t.earliest)
            {
                t.sample(n, l, None, e as f64)
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
];

/// Writes every `probe_*` family for many probes. Families without samples are left out.
pub fn write(text: &mut Text, rows: Rows<Facts>) {
    write_families(text, &FAMILIES, rows);
}

/// The `/probe` answer: the gauges of one probe, without labels.
pub fn render_one(kind: &str, r: &ProbeResult) -> String {
    let facts = Facts::of(kind, r);
    let mut out = String::new();
    let mut text = Text::streaming(|piece| out.push_str(&piece));
    write(&mut text, &|f| f("", &facts));
    text.finish();
    out
}
