//! `type: http`: one request (following redirects) over hand-driven hyper connections so
//! every phase (resolve, connect, tls, processing, transfer) is measured on the real
//! connection; then the response is checked against the expectations.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use url::Url;

use super::certs::Alpn;
use super::result::{Failure, HttpInfo, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use super::{HopFilter, Prober, net};
use crate::config::spec::{HttpSpec, JsonRule, Pattern};
use crate::secrets::display_url;

const USER_AGENT: &str = concat!("pathwatch/", env!("CARGO_PKG_VERSION"));
const EXCERPT: usize = 200;

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
        let (response, conn) = exchange(p, tl, result, spec, &url, &method, body.clone()).await?;
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
    let redirects = hops.len() as u32;
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
    });
    if content_length.is_some_and(|n| n > spec.max_body_bytes as u64) {
        return Err(too_large(spec.max_body_bytes));
    }
    let body = tl
        .step(
            Phase::Transfer,
            read_body(response.into_body(), spec.max_body_bytes),
        )
        .await?;
    if let Some(info) = result.http.as_mut() {
        info.body_bytes = body.len() as u64;
    }
    check_expectations(spec, status, &headers, &body, result)
}

/// A request made on the way to a probe (agent login, WebSocket ticket).
pub struct Call<'a> {
    pub url: &'a Url,
    pub method: &'a str,
    pub headers: BTreeMap<String, String>,
    pub json_body: Option<&'a Value>,
    pub tls: &'a crate::config::TlsClient,
}

/// One request outside a check of its own: resolve, connect, TLS, request, and a body of at
/// most 64 KiB, all timed as `phase` of `tl`. Returns the status and body; wording a
/// non-2xx answer is the caller's.
pub async fn call(
    p: &Prober,
    tl: &mut Timeline,
    phase: Phase,
    req: Call<'_>,
) -> Result<(StatusCode, Bytes), Failure> {
    let Call {
        url,
        method,
        headers,
        json_body,
        tls,
    } = req;
    let mut headers = headers;
    if json_body.is_some()
        && !headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        headers.insert("Content-Type".into(), "application/json".into());
    }
    let spec = HttpSpec {
        method: method.to_string(),
        headers,
        body: None,
        expect: crate::config::spec::HttpExpect::default(),
        follow_redirects: false,
        max_redirects: 0,
        max_body_bytes: 64 * 1024,
        tls: tls.clone(),
    };
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);
    let body = json_body
        .map(|b| Bytes::from(b.to_string()))
        .unwrap_or_default();
    let mut sub = tl.child();
    let mut scratch = ProbeResult::empty(std::time::SystemTime::now());
    let outcome = async {
        let (response, _conn) =
            exchange(p, &mut sub, &mut scratch, &spec, url, &method, body).await?;
        let status = response.status();
        let bytes = sub
            .step(
                Phase::Transfer,
                read_body(response.into_body(), spec.max_body_bytes),
            )
            .await?;
        Ok((status, bytes))
    }
    .await;
    tl.add(phase, sub.elapsed());
    outcome.map_err(|f: Failure| f.in_phase(phase))
}

/// One request on a fresh connection; the returned guard keeps the connection driven
/// while the body is read.
async fn exchange(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &HttpSpec,
    url: &Url,
    method: &Method,
    body: Bytes,
) -> Result<(Response<Incoming>, AbortOnDrop), Failure> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = net::resolve(p, tl, host).await?;
    let (tcp, ip) = net::connect(tl, &addrs, port).await?;
    result.ip = Some(ip);
    let request = build_request(spec, url, method, body)?;
    if url.scheme() == "https" {
        let name = spec.tls.server_name.as_deref().unwrap_or(host);
        let hs = net::tls(tl, tcp, name, &spec.tls, Alpn::Http1).await?;
        result.tls = Some(hs.info);
        hs.verdict?;
        send(tl, hs.stream, request).await
    } else {
        send(tl, tcp, request).await
    }
}

fn build_request(
    spec: &HttpSpec,
    url: &Url,
    method: &Method,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Failure> {
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let mut req = Request::builder()
        .method(method.clone())
        .uri(path)
        .body(Full::new(body))
        .map_err(|e| Failure::new(Reason::Protocol, format!("cannot build the request: {e}")))?;
    let headers = req.headers_mut();
    let value = |s: &str| {
        HeaderValue::from_str(s).map_err(|_| Failure::new(Reason::Protocol, "invalid header value"))
    };
    headers.insert(header::HOST, value(&host)?);
    headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
    for (name, v) in &spec.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Failure::new(Reason::Protocol, format!("invalid header name `{name}`")))?;
        headers.insert(name, value(v)?);
    }
    Ok(req)
}

/// Drives a hyper connection in its own task, cut when the probe ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send<S>(
    tl: &mut Timeline,
    io: S,
    request: Request<Full<Bytes>>,
) -> Result<(Response<Incoming>, AbortOnDrop), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tl.step(Phase::Processing, async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| hyper_failure(&e))?;
        let guard = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| hyper_failure(&e))?;
        Ok((response, guard))
    })
    .await
}

fn hyper_failure(e: &hyper::Error) -> Failure {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        source = s.source();
    }
    let message = if e.is_parse() || e.is_parse_status() {
        format!("the server did not answer with valid HTTP/1.1 ({detail})")
    } else if e.is_incomplete_message() {
        "the server closed the connection before sending a complete response".to_string()
    } else {
        format!("HTTP exchange failed: {detail}")
    };
    Failure::new(Reason::Protocol, message)
}

async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, Failure> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Failure::new(
                Reason::Protocol,
                format!("reading the body failed: {}", hyper_failure(&e).message),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn too_large(limit: usize) -> Failure {
    Failure::new(
        Reason::BodyMismatch,
        format!("the body is larger than the {limit}-byte limit (max_body_bytes); stopped reading"),
    )
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
        let mut msg = format!("got HTTP {status}, expected {}", wanted.join(" or "));
        if !body.is_empty() {
            msg.push_str(&format!("; body: {}", excerpt(body)));
        }
        return Err(Failure::new(Reason::HttpStatus, msg));
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
    let (body_problems, regex_failed) = body_problems(
        &expect.body_matches,
        &expect.body_not_matches,
        &expect.json,
        body,
    );
    problems.extend(body_problems);
    if let Some(info) = result.http.as_mut() {
        info.failed_due_to_regex = regex_failed;
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut msg = problems.join("; ");
    if !body.is_empty() {
        msg.push_str(&format!("; body: {}", excerpt(body)));
    }
    Err(Failure::new(Reason::BodyMismatch, msg))
}

/// What is wrong with a body (an HTTP body or a WebSocket frame) under regex and JSON
/// rules, and whether a regex rule failed.
pub(crate) fn body_problems(
    matches: &[Pattern],
    not_matches: &[Pattern],
    json: &[JsonRule],
    body: &[u8],
) -> (Vec<String>, bool) {
    let mut problems = Vec::new();
    let text = String::from_utf8_lossy(body);
    let mut regex_failed = false;
    for pattern in matches {
        if !pattern.0.is_match(&text) {
            regex_failed = true;
            problems.push(format!("body does not match `{}`", pattern.0));
        }
    }
    for pattern in not_matches {
        if let Some(m) = pattern.0.find(&text) {
            regex_failed = true;
            problems.push(format!(
                "body matches forbidden `{}` at `{}`",
                pattern.0,
                one_line(m.as_str(), 60)
            ));
        }
    }
    if !json.is_empty() {
        match serde_json::from_slice::<Value>(body) {
            Ok(doc) => problems.extend(json.iter().filter_map(|rule| json_problem(rule, &doc))),
            Err(e) => problems.push(format!("body is not JSON ({e})")),
        }
    }
    (problems, regex_failed)
}

/// Looks up a dotted path (`a.b.0.c`) in a JSON document.
pub(crate) fn lookup<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(doc, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// JSON equality that also lets `200` equal `"200"`, as configs are written by people.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || scalar_text(a).is_some_and(|x| Some(x) == scalar_text(b))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_problem(rule: &JsonRule, doc: &Value) -> Option<String> {
    let path = &rule.path;
    let found = lookup(doc, path);
    if let Some(want) = rule.exists {
        return match (want, found.is_some()) {
            (true, false) => Some(format!("JSON field `{path}` is missing")),
            (false, true) => Some(format!("JSON field `{path}` is present, expected absent")),
            _ => None,
        };
    }
    let Some(found) = found else {
        return Some(format!("JSON field `{path}` is missing"));
    };
    let shown = one_line(&found.to_string(), 80);
    if let Some(want) = &rule.equals
        && !loosely_equal(found, want)
    {
        return Some(format!("JSON field `{path}` is {shown}, expected {want}"));
    }
    if let Some(options) = &rule.one_of
        && !options.iter().any(|o| loosely_equal(found, o))
    {
        let list: Vec<String> = options
            .iter()
            .map(|o| scalar_text(o).unwrap_or_else(|| o.to_string()))
            .collect();
        return Some(format!(
            "JSON field `{path}` is {shown}, expected one of {}",
            list.join(", ")
        ));
    }
    if let Some(pattern) = &rule.matches {
        let text = scalar_text(found).unwrap_or_else(|| found.to_string());
        if !pattern.0.is_match(&text) {
            return Some(format!(
                "JSON field `{path}` is {shown}, expected to match `{}`",
                pattern.0
            ));
        }
    }
    None
}

pub(crate) fn excerpt(body: &[u8]) -> String {
    one_line(
        &String::from_utf8_lossy(&body[..body.len().min(EXCERPT * 4)]),
        EXCERPT,
    )
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_reach_into_objects_and_arrays() {
        let doc: Value = serde_json::json!({"a": {"b": [{"c": 1}]}, "status": "ok"});
        assert_eq!(lookup(&doc, "a.b.0.c"), Some(&Value::from(1)));
        assert_eq!(lookup(&doc, "status"), Some(&Value::from("ok")));
        assert_eq!(lookup(&doc, "a.x"), None);
    }

    #[test]
    fn numbers_and_strings_compare_loosely() {
        assert!(loosely_equal(&Value::from(200), &Value::from("200")));
        assert!(!loosely_equal(&Value::from("ok"), &Value::from("healthy")));
    }
}
