//! One HTTP request on a fresh, hand-driven hyper connection, every phase (resolve,
//! connect, tls, processing, transfer) timed on the real connection. The http check makes
//! its requests with it; [`call`] is the one timed side request of other checks (agent
//! login, WebSocket ticket).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

use super::certs::Alpn;
use super::result::{Failure, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use super::{Prober, net, proxy};
use crate::config::spec::HttpSpec;

const USER_AGENT: &str = concat!("pathwatch/", env!("CARGO_PKG_VERSION"));

/// A request made on the way to a probe (agent login, WebSocket ticket).
pub struct Call<'a> {
    pub url: &'a Url,
    pub method: &'a str,
    pub headers: BTreeMap<String, String>,
    pub json_body: Option<&'a Value>,
    /// A form body (application/x-www-form-urlencoded), instead of `json_body`.
    pub form: Option<String>,
    pub tls: &'a crate::config::TlsVerify,
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
        form,
        tls,
    } = req;
    let mut headers = headers;
    if form.is_some() {
        headers.insert(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        );
    }
    if json_body.is_some()
        && !headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        headers.insert("Content-Type".into(), "application/json".into());
    }
    let spec = HttpSpec::side_request(method, headers, tls.clone(), 64 * 1024);
    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST);
    let body = match (json_body, form) {
        (_, Some(form)) => Bytes::from(form),
        (Some(json), None) => Bytes::from(json.to_string()),
        (None, None) => Bytes::new(),
    };
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
/// while the body is read. No OAuth here (see [`exchange_authorized`]).
pub(crate) async fn exchange(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &HttpSpec,
    url: &Url,
    method: &Method,
    body: Bytes,
) -> Result<(Response<Incoming>, AbortOnDrop), Failure> {
    let (via, addrs) = resolve_target(p, tl, result, spec, url).await?;
    connect_and_send(p, tl, result, spec, url, method, body, via, addrs, None).await
}

/// [`exchange`] for an http check: with `oauth2`, a token is fetched once the target is
/// resolved, as blackbox_exporter's OAuth transport does (the token request itself is a
/// plain [`exchange`]).
pub(crate) async fn exchange_authorized(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &HttpSpec,
    url: &Url,
    method: &Method,
    body: Bytes,
) -> Result<(Response<Incoming>, AbortOnDrop), Failure> {
    let (via, addrs) = resolve_target(p, tl, result, spec, url).await?;
    let token = match &spec.oauth2 {
        Some(o) => Some(oauth2_token(p, tl, o, &spec.tls).await?),
        None => None,
    };
    connect_and_send(p, tl, result, spec, url, method, body, via, addrs, token).await
}

/// The proxy that applies, and the target's addresses (none when the proxy resolves it).
async fn resolve_target(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &HttpSpec,
    url: &Url,
) -> Result<(Option<Url>, Vec<std::net::IpAddr>), Failure> {
    let host = url.host_str().unwrap_or_default();
    let via = proxy::for_target(spec, url)?;
    let mut addrs = Vec::new();
    if via.is_none() || !spec.skip_resolve_phase_with_proxy {
        addrs = net::resolve(p, tl, host).await?;
        if let Some(family) = spec.preferred_ip_protocol {
            addrs = net::pick(host, &addrs, family, spec.ip_protocol_fallback)?;
            // As blackbox_exporter: the address chosen, whether or not it accepts.
            result.ip = addrs.first().copied();
        }
    }
    Ok((via, addrs))
}

#[allow(clippy::too_many_arguments)]
async fn connect_and_send(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &HttpSpec,
    url: &Url,
    method: &Method,
    body: Bytes,
    via: Option<Url>,
    addrs: Vec<std::net::IpAddr>,
    token: Option<String>,
) -> Result<(Response<Incoming>, AbortOnDrop), Failure> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut request = build_request(spec, url, method, body)?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Failure::new(
                Reason::Login,
                "the OAuth 2.0 access token is not header-safe",
            )
        })?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let tcp = match &via {
        None => {
            let (tcp, ip) = net::connect(tl, &addrs, port).await?;
            result.ip = Some(ip);
            tcp
        }
        Some(proxy) => {
            let tcp = to_proxy(p, tl, proxy).await?;
            if url.scheme() == "https" {
                // To the address resolved here, or (skip_resolve_phase_with_proxy) the name.
                let target = match addrs.first() {
                    Some(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
                    Some(ip) => format!("{ip}:{port}"),
                    None => format!("{host}:{port}"),
                };
                proxy::connect_tunnel(tl, tcp, proxy, &target, spec).await?
            } else {
                *request.uri_mut() = url.as_str().parse().map_err(|_| {
                    Failure::new(Reason::Protocol, "the target URL cannot be sent to a proxy")
                })?;
                if let Some(auth) = proxy::authorization(proxy) {
                    let value = HeaderValue::from_str(&auth).map_err(|_| {
                        Failure::new(
                            Reason::Protocol,
                            "the proxy's credentials are not header-safe",
                        )
                    })?;
                    request.headers_mut().insert("proxy-authorization", value);
                }
                tcp
            }
        }
    };
    if url.scheme() == "https" {
        // SNI: tls.server_name, else the Host header (blackbox's `hostname=`), else the host.
        let host_header = spec
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.rsplit_once(':').map_or(v.as_str(), |(h, _)| h));
        let name = spec
            .tls
            .server_name
            .as_deref()
            .or(host_header)
            .unwrap_or(host);
        let alpn = if spec.enable_http2 {
            Alpn::H2OrHttp1
        } else {
            Alpn::Http1
        };
        let hs = net::handshake(tl, tcp, name, &spec.tls, alpn).await?;
        result.tls = Some(hs.info);
        hs.verdict?;
        if hs.stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            send(tl, hs.stream, as_h2(request, url)?, true).await
        } else {
            send(tl, hs.stream, request, false).await
        }
    } else {
        send(tl, tcp, request, false).await
    }
}

/// A token by the client credentials grant (timed as `login`); a refusal names the status
/// and what the endpoint said (its `error` and `error_description`).
async fn oauth2_token(
    p: &Prober,
    tl: &mut Timeline,
    o: &crate::config::spec::http::OAuth2,
    tls: &crate::config::TlsVerify,
) -> Result<String, Failure> {
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if !o.scopes.is_empty() {
            form.append_pair("scope", &o.scopes.join(" "));
        }
        for (k, v) in &o.endpoint_params {
            form.append_pair(k, v);
        }
        form.finish()
    };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = data_encoding::BASE64
        .encode(format!("{}:{}", enc(&o.client_id), enc(&o.client_secret)).as_bytes());
    let req = Call {
        url: &o.token_url.0,
        method: "POST",
        headers: [("Authorization".to_string(), format!("Basic {basic}"))].into(),
        json_body: None,
        form: Some(form),
        tls,
    };
    let at = crate::secrets::display_url(&o.token_url.0);
    let (status, body) = call(p, tl, Phase::Login, req).await?;
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let field = |k: &str| {
        json.as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    if !status.is_success() {
        let said = match (field("error"), field("error_description")) {
            (Some(e), Some(d)) => format!(": {e} ({d})"),
            (Some(e), None) => format!(": {e}"),
            _ if !body.is_empty() => format!(": {}", super::expect::excerpt(&body)),
            _ => String::new(),
        };
        return Err(Failure::new(
            Reason::Login,
            format!(
                "the OAuth 2.0 token endpoint {at} answered {}{said}",
                crate::probe::result::status_words(status)
            ),
        )
        .in_phase(Phase::Login));
    }
    field("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Failure::new(
                Reason::Login,
                format!("the OAuth 2.0 token endpoint {at} answered without an access_token"),
            )
            .in_phase(Phase::Login)
        })
}

/// A connection to the proxy (its name resolved, its connect timed as `connect`).
async fn to_proxy(p: &Prober, tl: &mut Timeline, proxy: &Url) -> Result<TcpStream, Failure> {
    let host = proxy.host_str().unwrap_or_default();
    let port = proxy.port_or_known_default().unwrap_or(80);
    let addrs = net::resolve(p, tl, host)
        .await
        .map_err(|f| Failure::new(f.reason, format!("the proxy: {}", f.message)))?;
    let (tcp, _) = net::connect(tl, &addrs, port).await.map_err(|f| Failure {
        message: format!("cannot reach the proxy {host}:{port}: {}", f.message),
        ..f
    })?;
    Ok(tcp)
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
    if let Some(c) = spec.compression {
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(c.token()));
    }
    for (name, v) in &spec.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Failure::new(Reason::Protocol, format!("invalid header name `{name}`")))?;
        headers.insert(name, value(v)?);
    }
    Ok(req)
}

/// Drives a hyper connection in its own task, cut when the probe ends.
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends the request over HTTP/1.1, or HTTP/2 when `h2` (the server chose it by ALPN).
async fn send<S>(
    tl: &mut Timeline,
    io: S,
    request: Request<Full<Bytes>>,
    h2: bool,
) -> Result<(Response<Incoming>, AbortOnDrop), Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tl.step(Phase::Processing, async {
        let io = TokioIo::new(io);
        let (response, driver) = if h2 {
            let executor = hyper_util::rt::TokioExecutor::new();
            let (mut sender, conn) = hyper::client::conn::http2::handshake(executor, io)
                .await
                .map_err(|e| hyper_failure(&e))?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            (sender.send_request(request).await, driver)
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| hyper_failure(&e))?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            (sender.send_request(request).await, driver)
        };
        let guard = AbortOnDrop(driver);
        Ok((response.map_err(|e| hyper_failure(&e))?, guard))
    })
    .await
}

/// The request in HTTP/2's form: an absolute URI (its authority from the Host header, so
/// `hostname=` still names the virtual host), no Host header.
fn as_h2(mut req: Request<Full<Bytes>>, url: &Url) -> Result<Request<Full<Bytes>>, Failure> {
    let authority = req
        .headers_mut()
        .remove(header::HOST)
        .and_then(|h| h.to_str().ok().map(str::to_string))
        .unwrap_or_else(|| url.authority().to_string());
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    *req.uri_mut() = format!("https://{authority}{path}")
        .parse()
        .map_err(|_| Failure::new(Reason::Protocol, "the URL cannot be sent over HTTP/2"))?;
    Ok(req)
}

/// The deepest I/O error under a hyper error, in words: what happened to the connection.
fn io_cause(e: &hyper::Error) -> Option<String> {
    let mut io = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(err) = s.downcast_ref::<std::io::Error>() {
            io = Some(net::io_words(err));
        }
        source = s.source();
    }
    io
}

fn hyper_failure(e: &hyper::Error) -> Failure {
    // hyper's own text names what it was doing.
    let io = io_cause(e);
    let message = if e.is_parse() || e.is_parse_status() {
        format!("the server did not answer with valid HTTP/1.1 ({e})")
    } else if e.is_incomplete_message() {
        "the server closed the connection before sending a complete response".to_string()
    } else {
        match io {
            Some(io) => format!("HTTP exchange failed: {e}: {io}"),
            None => format!("HTTP exchange failed: {e}"),
        }
    };
    Failure::new(Reason::Protocol, message)
}

pub(crate) async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, Failure> {
    let mut buf = BytesMut::new();
    let broke =
        |f: Failure| Failure::new(f.reason, format!("reading the body failed: {}", f.message));
    while let Some(data) = next_chunk(&mut body).await.map_err(broke)? {
        if buf.len() + data.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// Reads a body to its end, counting its bytes without keeping them.
pub(crate) async fn count_body(mut body: Incoming) -> Result<u64, Failure> {
    let mut n = 0u64;
    let broke =
        |f: Failure| Failure::new(f.reason, format!("reading the body failed: {}", f.message));
    while let Some(data) = next_chunk(&mut body).await.map_err(broke)? {
        n += data.len() as u64;
    }
    Ok(n)
}

/// The next piece of a body as it arrives; None at its end. A failure says in words what
/// happened to the connection.
pub(crate) async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, Failure> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let words = io_cause(&e).unwrap_or_else(|| {
                if e.is_incomplete_message() {
                    "the server closed the connection before the body was complete".into()
                } else {
                    hyper_failure(&e).message
                }
            });
            Failure::new(Reason::Protocol, words)
        })?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

const TOO_LARGE: &str = "the body is larger than the";

pub(crate) fn too_large(limit: usize) -> Failure {
    Failure::new(
        Reason::BodyMismatch,
        format!("{TOO_LARGE} {limit}-byte limit (max_body_bytes); stopped reading"),
    )
}

/// Whether a failure is [`too_large`]'s.
pub(crate) fn is_too_large(f: &Failure) -> bool {
    f.reason == Reason::BodyMismatch && f.message.starts_with(TOO_LARGE)
}
