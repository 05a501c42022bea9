//! `/probe?target=&module=`: the blackbox_exporter multi-target pattern. Only configured
//! modules and only targets on `probe.allow_targets` (redirects included), so the endpoint
//! is not an open proxy into the network. Each request answers the gauges of its own probe.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::config::Spec;
use crate::metrics::render_probe;

/// Subtracted from Prometheus' scrape timeout so the answer arrives in time (as blackbox).
const SCRAPE_OFFSET: Duration = Duration::from_millis(500);
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

pub async fn handler(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let bad = |code: StatusCode, msg: String| (code, format!("{msg}\n")).into_response();
    // blackbox_exporter's default module.
    let module_name = q.get("module").map_or("http_2xx", String::as_str);
    let config = s.live.config();
    let Some(module) = config.modules.get(module_name) else {
        let known: Vec<&str> = config.modules.keys().map(String::as_str).collect();
        return bad(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown module `{module_name}`; configured: {}",
                known.join(", ")
            ),
        );
    };
    let Some(raw) = q.get("target").filter(|t| !t.is_empty()) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "the `target` parameter is missing".into(),
        );
    };
    // blackbox_exporter accepts a bare host for http modules.
    let raw = if module.spec.kind() == "http" && !raw.contains("://") {
        format!("http://{raw}")
    } else {
        raw.clone()
    };
    let target = match module.spec.parse_target(&raw) {
        Ok(t) => t,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad target: {e}")),
    };
    // `hostname`: the Host header of an http probe, the TLS server name of a tcp one.
    let mut spec = std::borrow::Cow::Borrowed(&module.spec);
    if let Some(hostname) = q.get("hostname").filter(|h| !h.is_empty()) {
        match spec.to_mut() {
            Spec::Http(h) => {
                if let Some((_, v)) = h
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("host"))
                    && v != hostname
                {
                    return bad(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "the module sets the Host header to `{v}` and the hostname parameter says `{hostname}`"
                        ),
                    );
                }
                h.headers.insert("Host".into(), hostname.clone());
            }
            Spec::Tcp(t) if t.tls_config.server_name.is_none() => {
                t.tls_config.server_name = Some(hostname.clone());
            }
            _ => {}
        }
    }
    let patterns = &config.probe.allow_targets;
    let (host, port) = target.host_port();
    if !target_allowed(patterns, &host, port) {
        return bad(
            StatusCode::FORBIDDEN,
            format!("target {host}:{port} is not allowed by probe.allow_targets"),
        );
    }
    let mut timeout = module.timeout;
    let offset = config.probe.timeout_offset.unwrap_or(SCRAPE_OFFSET);
    if let Some(v) = headers.get("X-Prometheus-Scrape-Timeout-Seconds") {
        match v
            .to_str()
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|x| x.is_finite() && *x > 0.0)
        {
            Some(secs) => {
                let budget = Duration::from_secs_f64(secs)
                    .saturating_sub(offset)
                    .max(MIN_TIMEOUT);
                timeout = timeout.min(budget);
            }
            None => {
                return bad(
                    StatusCode::BAD_REQUEST,
                    "bad X-Prometheus-Scrape-Timeout-Seconds header".into(),
                );
            }
        }
    }
    let allow = |h: &str, p: u16| target_allowed(patterns, h, p);
    let result = s
        .live
        .prober()
        .run_restricted(&target, &spec, timeout, Some(&allow))
        .await;
    if let Some(f) = &result.failure {
        tracing::debug!(module = %module.name, reason = %f.reason, "Probe via /probe failed.");
    }
    let body = render_probe(module.spec.kind(), &result, timeout);
    if q.get("debug").is_some_and(|d| d == "true") {
        let log = serde_json::to_string_pretty(&result).unwrap_or_default();
        return (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("Probe result:\n{log}\n\nMetrics:\n{body}"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Whether host:port matches one of the patterns: `host:port` globs, or a bare host glob
/// that allows any port. `*` matches any run of characters; case is ignored.
pub fn target_allowed(patterns: &[String], host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    let shown_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let host_port = format!("{shown_host}:{port}");
    patterns.iter().any(|p| {
        let p = p.to_ascii_lowercase();
        glob(&p, &host_port) || glob(&p, &host) || glob(&p, &shown_host)
    })
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_globs() {
        let pats = vec![
            "127.0.0.1:*".to_string(),
            "*.example.com:443".to_string(),
            "api.internal".to_string(),
        ];
        assert!(target_allowed(&pats, "127.0.0.1", 8080));
        assert!(target_allowed(&pats, "api.example.com", 443));
        assert!(!target_allowed(&pats, "api.example.com", 8443));
        assert!(target_allowed(&pats, "API.internal", 9999));
        assert!(!target_allowed(&pats, "169.254.169.254", 80));
        assert!(!target_allowed(&[], "127.0.0.1", 80));
        assert!(target_allowed(&["[::1]:*".to_string()], "::1", 80));
    }
}
