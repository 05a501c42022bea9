//! `type: http`: one request (following redirects) over hand-driven hyper connections so
//! every phase (resolve, connect, tls, processing, transfer) is measured on the real
//! connection; then the response is checked against the expectations.

use bytes::Bytes;
use hyper::header::{self, HeaderMap};
use hyper::{Method, StatusCode};
use url::Url;

use super::expect::{body_problems, excerpt};
use super::request::{count_body, exchange_authorized, is_too_large, read_body, too_large};
use super::result::{Failure, HttpInfo, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use super::{HopFilter, Prober};
use crate::config::spec::HttpSpec;
use crate::secrets::display_url;

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &HttpSpec,
    url: &Url,
    allow: Option<HopFilter<'_>>,
) -> Result<(), Failure> {
    let mut url = url.clone();
    let mut method = Method::from_bytes(spec.method.as_bytes()).unwrap_or(Method::GET);
    let mut body = spec.body.clone().map(Bytes::from).unwrap_or_default();
    let mut hops: Vec<String> = Vec::new();
    let (response, _conn) = loop {
        let (response, conn) =
            exchange_authorized(p, tl, result, spec, &url, &method, body.clone()).await?;
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok());
        let (Some(location), true) = (location, spec.follow_redirects && status.is_redirection())
        else {
            break (response, conn);
        };
        hops.push(short(&url));
        let next = url.join(location).map_err(|e| {
            Failure::new(
                Reason::HttpStatus,
                format!("{status} redirect to an invalid Location `{location}`: {e}"),
            )
        })?;
        let (host, port) = (
            next.host_str().unwrap_or_default(),
            next.port_or_known_default().unwrap_or(0),
        );
        if allow.is_some_and(|allowed| !allowed(host, port)) {
            return Err(Failure::new(
                Reason::HttpStatus,
                format!(
                    "{status} redirect to {host}:{port}, which probe.allow_targets does not allow"
                ),
            ));
        }
        if hops.len() as u32 > spec.max_redirects {
            let looped = hops.contains(&short(&next));
            hops.push(short(&next));
            return Err(Failure::new(
                Reason::HttpStatus,
                format!(
                    "stopped after {} redirects{}: {}",
                    spec.max_redirects,
                    if looped { " (redirect loop)" } else { "" },
                    tail(&hops, 6)
                ),
            ));
        }
        if status == StatusCode::SEE_OTHER || (method == Method::POST && status.as_u16() <= 302) {
            method = Method::GET;
            body = Bytes::new();
        }
        url = next;
        if let Some(info) = result.http.as_mut() {
            info.redirects += 1;
        }
    };
    let status = response.status();
    let headers = response.headers().clone();
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // As blackbox_exporter counts: a redirect not followed is one seen.
    let unfollowed =
        !spec.follow_redirects && status.is_redirection() && headers.contains_key(header::LOCATION);
    let redirects = hops.len() as u32 + u32::from(unfollowed);
    result.http = Some(HttpInfo {
        status: status.as_u16(),
        version: format!("{:?}", response.version())
            .trim_start_matches("HTTP/")
            .to_string(),
        content_length,
        body_bytes: 0,
        redirects,
        tls: url.scheme() == "https",
        failed_due_to_regex: false,
        last_modified: headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()
            })
            .map(|t| t.unix_timestamp()),
    });
    let limit = match spec.max_body_bytes {
        0 => usize::MAX,
        n => n,
    };
    if content_length.is_some_and(|n| n > limit as u64) && spec.compression.is_none() {
        return Err(over_limit(result, limit, too_large(limit)));
    }
    let version = response.version();
    let compressed = spec
        .compression
        .filter(|c| *c != crate::config::spec::http::Compression::Identity);
    let body = if let Some(c) = compressed {
        // Read as sent (the limit applies once decoded, as blackbox_exporter does).
        let raw = tl
            .step(Phase::Transfer, read_body(response.into_body(), usize::MAX))
            .await?;
        let keep = spec.expect.reads_body();
        let sent_as = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let (n, body) = decode(c, &raw, limit, keep).map_err(|f| match f.reason {
            Reason::BodyMismatch if is_too_large(&f) => over_limit(result, limit, f),
            _ => Failure {
                message: format!(
                    "{} (the server sent Content-Encoding: {sent_as})",
                    f.message
                ),
                ..f
            },
        })?;
        if let Some(info) = result.http.as_mut() {
            info.body_bytes = n;
        }
        body
    } else if spec.max_body_bytes == 0 && !spec.expect.reads_body() {
        let n = tl
            .step(Phase::Transfer, count_body(response.into_body()))
            .await?;
        if let Some(info) = result.http.as_mut() {
            info.body_bytes = n;
        }
        Bytes::new()
    } else {
        let body = tl
            .step(Phase::Transfer, read_body(response.into_body(), limit))
            .await
            .map_err(|f| match is_too_large(&f) {
                true => over_limit(result, limit, f),
                false => f,
            })?;
        if let Some(info) = result.http.as_mut() {
            info.body_bytes = body.len() as u64;
        }
        body
    };
    check_transport(spec, &url, version)?;
    check_expectations(spec, status, &headers, &body, result)
}

/// A body over the limit was read up to it (blackbox_exporter reports that many bytes).
fn over_limit(result: &mut ProbeResult, limit: usize, f: Failure) -> Failure {
    if let Some(info) = result.http.as_mut() {
        info.body_bytes = limit as u64;
    }
    f
}

/// Decodes a body sent compressed as `c`: its decoded length, and the decoded bytes when a
/// rule reads them. More than `limit` decoded bytes fail (a compression bomb stops there).
fn decode(
    c: crate::config::spec::http::Compression,
    raw: &[u8],
    limit: usize,
    keep: bool,
) -> Result<(u64, Bytes), Failure> {
    use crate::config::spec::http::Compression;
    use std::io::Read;
    let mut reader: Box<dyn Read + '_> = match c {
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(raw)),
        Compression::Deflate => Box::new(flate2::read::DeflateDecoder::new(raw)),
        Compression::Identity => Box::new(raw),
    };
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut n = 0usize;
    loop {
        let got = reader.read(&mut chunk).map_err(|_| {
            Failure::new(
                Reason::BodyMismatch,
                format!(
                    "the body is not {} as `compression` expects: decoding stopped after {n} of {} bytes",
                    c.token(),
                    raw.len()
                ),
            )
        })?;
        if got == 0 {
            return Ok((n as u64, Bytes::from(out)));
        }
        n += got;
        if n > limit {
            return Err(too_large(limit));
        }
        if keep {
            out.extend_from_slice(&chunk[..got]);
        }
    }
}

/// `fail_if_ssl`, `fail_if_not_ssl` and `valid_http_versions` on the final response.
fn check_transport(spec: &HttpSpec, url: &Url, version: hyper::Version) -> Result<(), Failure> {
    let tls = url.scheme() == "https";
    if spec.fail_if_ssl && tls {
        return Err(Failure::new(
            Reason::HttpStatus,
            format!(
                "the final response came over TLS ({}), and fail_if_ssl is set",
                short(url)
            ),
        ));
    }
    if spec.fail_if_not_ssl && !tls {
        return Err(Failure::new(
            Reason::HttpStatus,
            format!(
                "the final response came over plain HTTP ({}), and fail_if_not_ssl is set",
                short(url)
            ),
        ));
    }
    let shown = format!("{version:?}");
    if !spec.valid_http_versions.is_empty() && !spec.valid_http_versions.contains(&shown) {
        return Err(Failure::new(
            Reason::Protocol,
            format!(
                "the server answered in {shown}, expected {}",
                spec.valid_http_versions.join(" or ")
            ),
        ));
    }
    Ok(())
}

fn check_expectations(
    spec: &HttpSpec,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    result: &mut ProbeResult,
) -> Result<(), Failure> {
    let expect = &spec.expect;
    if !expect.status.iter().any(|r| r.accepts(status.as_u16())) {
        let wanted: Vec<String> = expect.status.iter().map(|r| r.to_string()).collect();
        let status_text = crate::probe::result::status_words(status);
        let mut msg = format!("got HTTP {status_text}, expected {}", wanted.join(" or "));
        if !body.is_empty() {
            msg.push_str(&format!("; body: {}", excerpt(body)));
        }
        let failure = Failure::new(Reason::HttpStatus, msg);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let retry_after = headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok());
            return Err(failure.saying(body, retry_after));
        }
        return Err(failure);
    }
    let mut problems = Vec::new();
    for (name, pattern) in &expect.headers {
        match headers
            .get(name.as_str())
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        {
            None => problems.push(format!("header {name} is missing")),
            Some(v) if !pattern.0.is_match(&v) => problems.push(format!(
                "header {name} is `{v}`, expected to match `{}`",
                pattern.0
            )),
            Some(_) => {}
        }
    }
    for rule in &expect.header_rules {
        let values: Vec<String> = headers
            .get_all(rule.header.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let name = &rule.header;
        let pattern = rule.regexp.0.as_str();
        if values.is_empty() {
            if !rule.allow_missing && !rule.fail_if_matches {
                problems.push(format!("header {name} is missing"));
            }
            continue;
        }
        let matched = values.iter().find(|v| rule.regexp.0.is_match(v));
        match (matched, rule.fail_if_matches) {
            (Some(v), true) => problems.push(format!(
                "header {name} is `{}`, which matches `{pattern}` (fail_if_header_matches)",
                excerpt(v.as_bytes())
            )),
            (None, false) => problems.push(format!(
                "header {name} is `{}`, expected to match `{pattern}`",
                excerpt(values[0].as_bytes())
            )),
            _ => {}
        }
    }
    let problems_before_body = problems.len();
    let (body_problems, regex_failed) = body_problems(
        &expect.body_matches,
        &expect.body_not_matches,
        &expect.json,
        body,
    );
    problems.extend(body_problems);
    if let Some(info) = result.http.as_mut() {
        // blackbox_exporter counts a header regex as a regex too.
        info.failed_due_to_regex = regex_failed || problems_before_body > 0;
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut msg = problems.join("; ");
    if !body.is_empty() {
        msg.push_str(&format!("; body: {}", excerpt(body)));
    }
    // pathwatch sends no Accept-Encoding: an encoded body is the server's doing.
    if let Some(enc) = headers
        .get(hyper::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|e| !e.eq_ignore_ascii_case("identity"))
    {
        msg.push_str(&format!(
            " (sent with Content-Encoding: {enc}, which was not asked for)"
        ));
    }
    Err(Failure::new(Reason::BodyMismatch, msg))
}

/// Host and path of a URL for redirect narration; no query (it may hold tokens).
fn short(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    display_url(&u)
}

fn tail(hops: &[String], n: usize) -> String {
    let skip = hops.len().saturating_sub(n);
    let mut s = if skip > 0 {
        "… -> ".to_string()
    } else {
        String::new()
    };
    s.push_str(&hops[skip..].join(" -> "));
    s
}
