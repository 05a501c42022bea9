//! `type: grpc`: one `grpc.health.v1.Health/Check` call over HTTP/2 (h2 by ALPN with TLS,
//! h2c with prior knowledge without). The request and answer are two tiny protobuf
//! messages, written and read here rather than through a gRPC stack: field 1 of each
//! (the service name, the serving status).

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Prober;
use super::certs::Alpn;
use super::net;
use super::result::{Failure, GrpcInfo, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use crate::config::HostPort;
use crate::config::spec::GrpcSpec;

const PATH: &str = "/grpc.health.v1.Health/Check";
/// The answer is a few bytes; anything larger is not a health answer.
const MAX_ANSWER: usize = 64 * 1024;

/// The serving statuses of grpc.health.v1, by number.
pub const SERVING_STATUSES: [&str; 4] = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &GrpcSpec,
    target: &HostPort,
) -> Result<(), Failure> {
    let mut info = GrpcInfo::default();
    let mut answered = false;
    let outcome = check(p, tl, result, &mut info, &mut answered, spec, target).await;
    if outcome.is_err() && !answered {
        // What a gRPC client reports when no answer came: UNAVAILABLE.
        info.status_code = 14;
    }
    result.grpc = Some(info);
    outcome
}

async fn check(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    info: &mut GrpcInfo,
    answered: &mut bool,
    spec: &GrpcSpec,
    target: &HostPort,
) -> Result<(), Failure> {
    let addrs = net::resolve(p, tl, &target.host).await?;
    let chosen = net::pick(
        &target.host,
        &addrs,
        spec.preferred_ip_protocol,
        spec.ip_protocol_fallback,
    )?;
    result.ip = Some(chosen[0]);
    // As a gRPC client (and so blackbox_exporter) does: every address of the name, the
    // chosen one first; with ip_protocol_fallback false, only its family.
    let mut order = chosen.clone();
    order.extend(
        addrs
            .iter()
            .filter(|a| !chosen.contains(a))
            .filter(|a| spec.ip_protocol_fallback || a.is_ipv6() == chosen[0].is_ipv6()),
    );
    let (tcp, ip) = net::connect(tl, &order, target.port).await?;
    result.ip = Some(ip);
    let request = build_request(spec, target)?;
    let (status, headers, body, trailers) = if spec.tls {
        let name = spec
            .tls_config
            .server_name
            .as_deref()
            .unwrap_or(&target.host);
        let hs = net::handshake(tl, tcp, name, &spec.tls_config, Alpn::H2).await?;
        result.tls = Some(hs.info);
        hs.verdict?;
        info.tls = true;
        let alpn = hs.stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        if alpn.as_deref() != Some(b"h2") {
            return Err(Failure::new(
                Reason::Protocol,
                "the server did not agree to HTTP/2 in the TLS handshake (no h2 by ALPN): it is not a gRPC server, or a proxy in front of it speaks HTTP/1.1 only",
            )
            .in_phase(Phase::Tls));
        }
        call(tl, Sniff::new(hs.stream), request).await?
    } else {
        call(tl, Sniff::new(tcp), request).await?
    };
    *answered = true;
    judge(info, spec, status, &headers, &body, &trailers)
}

fn build_request(spec: &GrpcSpec, target: &HostPort) -> Result<Request<Full<Bytes>>, Failure> {
    let scheme = if spec.tls { "https" } else { "http" };
    let authority = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let mut message = Vec::new();
    if !spec.service.is_empty() {
        message.push(0x0a);
        varint(&mut message, spec.service.len() as u64);
        message.extend_from_slice(spec.service.as_bytes());
    }
    let mut body = Vec::with_capacity(5 + message.len());
    body.push(0);
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let mut req = Request::post(format!("{scheme}://{authority}{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(
            "user-agent",
            concat!("grpc-pathwatch/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::new(Reason::Protocol, format!("cannot build the request: {e}")))?;
    for (name, values) in &spec.metadata {
        let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .map_err(|_| Failure::new(Reason::Protocol, format!("invalid metadata `{name}`")))?;
        for v in values {
            let v = HeaderValue::from_str(v)
                .map_err(|_| Failure::new(Reason::Protocol, "invalid metadata value"))?;
            req.headers_mut().append(name.clone(), v);
        }
    }
    Ok(req)
}

type Answer = (StatusCode, HeaderMap, Bytes, HeaderMap);

async fn call<S>(
    tl: &mut Timeline,
    io: Sniff<S>,
    request: Request<Full<Bytes>>,
) -> Result<Answer, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let first = io.first.clone();
    let said_http1 = move |f: Failure| {
        let got = first.lock().map(|b| b.clone()).unwrap_or_default();
        if got.starts_with(b"HTTP/1") {
            let line = got
                .split(|b| *b == b'\r' || *b == b'\n')
                .next()
                .unwrap_or_default();
            Failure::new(
                Reason::Protocol,
                format!(
                    "the server answered in HTTP/1 (`{}`): this port does not speak HTTP/2, which gRPC needs",
                    crate::probe::expect::excerpt(line)
                ),
            )
        } else if got.is_empty() && f.reason == Reason::Protocol {
            Failure::new(
                Reason::Protocol,
                format!(
                    "{}, before answering anything to HTTP/2's connection preface: this port likely speaks HTTP/1 only, and gRPC needs HTTP/2",
                    f.message
                ),
            )
        } else {
            f
        }
    };
    let outcome = tl
        .step(Phase::Processing, async {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                    .await
                    .map_err(|e| h2_failure("the HTTP/2 handshake failed", &e))?;
            let driver = tokio::spawn(async move {
                let _ = conn.await;
            });
            let answer = async {
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| h2_failure("the health call failed", &e))?;
                let (parts, mut body) = response.into_parts();
                let mut data = BytesMut::new();
                let mut trailers = HeaderMap::new();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| h2_failure("reading the answer failed", &e))?;
                    match frame.into_data() {
                        Ok(d) => {
                            if data.len() + d.len() > MAX_ANSWER {
                                return Err(Failure::new(
                                    Reason::Protocol,
                                    format!(
                                        "the answer is larger than {} KiB: not a health answer",
                                        MAX_ANSWER / 1024
                                    ),
                                ));
                            }
                            data.extend_from_slice(&d);
                        }
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                trailers.extend(t);
                            }
                        }
                    }
                }
                Ok((parts.status, parts.headers, data.freeze(), trailers))
            }
            .await;
            driver.abort();
            answer
        })
        .await;
    outcome.map_err(said_http1)
}

/// The connection, keeping the first bytes the server sent (an HTTP/1 server answers an
/// HTTP/2 preface with an HTTP/1 status line: the failure then says so).
struct Sniff<S> {
    inner: S,
    first: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl<S> Sniff<S> {
    fn new(inner: S) -> Self {
        Sniff {
            inner,
            first: Default::default(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniff<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Ok(mut first) = self.first.lock()
            && first.len() < 64
        {
            let new = &buf.filled()[before..];
            let room = 64 - first.len();
            first.extend_from_slice(&new[..new.len().min(room)]);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniff<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn h2_failure(what: &str, e: &hyper::Error) -> Failure {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            cause = net::io_words(io);
        }
        source = s.source();
    }
    let hint = if cause.contains("frame with invalid size") || cause.contains("connection error") {
        " (is this an HTTP/1 port? gRPC needs HTTP/2)"
    } else {
        ""
    };
    Failure::new(Reason::Protocol, format!("{what}: {cause}{hint}"))
}

/// The gRPC status and the serving status, in words.
fn judge(
    info: &mut GrpcInfo,
    spec: &GrpcSpec,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    trailers: &HeaderMap,
) -> Result<(), Failure> {
    let service = if spec.service.is_empty() {
        "the server".to_string()
    } else {
        format!("service `{}`", spec.service)
    };
    if status != StatusCode::OK {
        return Err(Failure::new(
            Reason::HttpStatus,
            format!(
                "the server answered HTTP {} to the gRPC health call (a gRPC server answers 200)",
                crate::probe::result::status_words(status)
            ),
        ));
    }
    // A trailers-only answer carries grpc-status in its headers.
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| headers.get(name))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let Some(code) = field("grpc-status") else {
        return Err(Failure::new(
            Reason::Protocol,
            "the answer has no grpc-status: not a gRPC server",
        ));
    };
    let code: u32 = code.trim().parse().map_err(|_| {
        Failure::new(
            Reason::Protocol,
            format!("grpc-status `{code}` is not a number"),
        )
    })?;
    info.status_code = code;
    let said = field("grpc-message")
        .filter(|m| !m.is_empty())
        .map(|m| {
            format!(
                ": {}",
                crate::probe::expect::excerpt(crate::probe::expect::percent_decode(&m).as_bytes())
            )
        })
        .unwrap_or_default();
    match code {
        0 => {}
        5 => {
            return Err(Failure::new(
                Reason::NotServing,
                format!("the health service does not know {service} (NOT_FOUND){said}"),
            ));
        }
        12 => {
            return Err(Failure::new(
                Reason::Protocol,
                format!(
                    "the server does not implement grpc.health.v1.Health (UNIMPLEMENTED){said}"
                ),
            ));
        }
        c => {
            return Err(Failure::new(
                Reason::Protocol,
                format!(
                    "the health call ended with gRPC status {}{said}",
                    code_name(c)
                ),
            ));
        }
    }
    let serving = serving_status(body)?;
    info.serving_status = Some(
        SERVING_STATUSES
            .get(serving as usize)
            .copied()
            .unwrap_or("UNKNOWN"),
    );
    match serving {
        1 => Ok(()),
        2 => Err(Failure::new(
            Reason::NotServing,
            format!("{service} is NOT_SERVING"),
        )),
        3 => Err(Failure::new(
            Reason::NotServing,
            format!("the health service does not know {service} (SERVICE_UNKNOWN)"),
        )),
        0 => Err(Failure::new(
            Reason::NotServing,
            format!("{service} reports UNKNOWN health"),
        )),
        n => Err(Failure::new(
            Reason::NotServing,
            format!("{service} reports serving status {n}, which grpc.health.v1 does not define"),
        )),
    }
}

/// The serving status in a length-prefixed HealthCheckResponse (field 1, a varint; absent
/// means 0, UNKNOWN).
fn serving_status(body: &[u8]) -> Result<u64, Failure> {
    let bad = |why: &str| {
        Failure::new(
            Reason::Protocol,
            format!("the health answer is not a HealthCheckResponse: {why}"),
        )
    };
    if body.len() < 5 {
        return Err(bad("no message"));
    }
    if body[0] != 0 {
        return Err(bad("it is compressed, and no compression was offered"));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let mut msg = body
        .get(5..5 + len)
        .ok_or_else(|| bad("the message is cut short"))?;
    let mut status = 0;
    while !msg.is_empty() {
        let (key, rest) = read_varint(msg).ok_or_else(|| bad("a broken field"))?;
        msg = rest;
        match key & 7 {
            0 => {
                let (v, rest) = read_varint(msg).ok_or_else(|| bad("a broken field"))?;
                if key >> 3 == 1 {
                    status = v;
                }
                msg = rest;
            }
            2 => {
                let (n, rest) = read_varint(msg).ok_or_else(|| bad("a broken field"))?;
                msg = rest
                    .get(n as usize..)
                    .ok_or_else(|| bad("a field is cut short"))?;
            }
            1 => msg = msg.get(8..).ok_or_else(|| bad("a field is cut short"))?,
            5 => msg = msg.get(4..).ok_or_else(|| bad("a field is cut short"))?,
            _ => return Err(bad("an unknown wire type")),
        }
    }
    Ok(status)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(data: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, b) in data.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, &data[i + 1..]));
        }
    }
    None
}

fn code_name(c: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    match NAMES.get(c as usize) {
        Some(n) => format!("{c} ({n})"),
        None => c.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_answers_are_read() {
        assert_eq!(serving_status(&[0, 0, 0, 0, 2, 0x08, 1]).unwrap(), 1);
        assert_eq!(serving_status(&[0, 0, 0, 0, 0]).unwrap(), 0);
        assert!(serving_status(&[0, 0, 0, 0, 9, 0x08]).is_err());
        assert!(serving_status(&[1, 0, 0, 0, 0]).is_err());
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(read_varint(&v), Some((300, &[][..])));
    }
}
