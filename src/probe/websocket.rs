//! WebSocket: opening a connection the way both WebSocket check types need it (resolve,
//! connect, TLS verified like a `tls` check, the upgrade), the failures of a socket (refused
//! upgrade, close codes and their class), and the plain `websocket` check: connect,
//! optionally send one message, and wait for a frame that meets the expectations.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};
use url::Url;

use crate::clock::fmt_duration;
use crate::config::TlsClient;
use crate::config::spec::WebSocketSpec;
use crate::probe::certs::Alpn;
use crate::probe::http::{body_problems, excerpt};
use crate::probe::result::{Failure, Phase, ProbeResult, Reason};
use crate::probe::timing::Timeline;
use crate::probe::{Prober, net};

/// A plain or TLS stream under a WebSocket.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type Socket = WebSocketStream<Box<dyn Io>>;

/// Frames read while waiting for one that matches, before giving up (a chatty server
/// cannot keep the probe busy until its timeout).
const MAX_FRAMES: usize = 1000;

/// Resolve, connect, TLS for wss (nothing is sent over an unverified connection), and the
/// upgrade with `headers`; each step timed into `tl`.
pub(crate) async fn open(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    url: &Url,
    headers: &[(String, String)],
    tls: &TlsClient,
    max_frame_bytes: usize,
) -> Result<Socket, Failure> {
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = net::resolve(p, tl, &host).await?;
    let (tcp, ip) = net::connect(tl, &addrs, port).await?;
    result.ip = Some(ip);
    let stream: Box<dyn Io> = if url.scheme() == "wss" {
        let name = tls.server_name.as_deref().unwrap_or(&host);
        let hs = net::tls(tl, tcp, name, tls, Alpn::Http1).await?;
        result.tls = Some(hs.info);
        hs.verdict?;
        Box::new(hs.stream)
    } else {
        Box::new(tcp)
    };
    let mut request = url.as_str().into_client_request().map_err(|e| {
        Failure::new(
            Reason::Protocol,
            format!("cannot build the upgrade request: {e}"),
        )
    })?;
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(Failure::new(
                Reason::Protocol,
                format!("invalid header `{name}`"),
            ));
        };
        request.headers_mut().insert(name, value);
    }
    // Agent events are small frames: 8 KiB buffers instead of tungstenite's 128 KiB keep a
    // thousand concurrent runs from costing a quarter of a gigabyte (bigger frames still
    // arrive: the buffer grows up to max_frame_bytes).
    let config = WebSocketConfig::default()
        .read_buffer_size(8 << 10)
        .write_buffer_size(8 << 10)
        .max_frame_size(Some(max_frame_bytes))
        .max_message_size(Some(max_frame_bytes));
    let (ws, _) = tl
        .step(Phase::Upgrade, async {
            client_async_with_config(request, stream, Some(config))
                .await
                .map_err(upgrade_failure)
        })
        .await?;
    Ok(ws)
}

/// The `websocket` check.
pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &WebSocketSpec,
    url: &Url,
) -> Result<(), Failure> {
    let mut headers: Vec<(String, String)> = spec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !spec.subprotocols.is_empty() {
        headers.push((
            "Sec-WebSocket-Protocol".into(),
            spec.subprotocols.join(", "),
        ));
    }
    let mut ws = open(
        p,
        tl,
        result,
        url,
        &headers,
        &spec.tls,
        spec.max_frame_bytes,
    )
    .await?;
    if let Some(text) = &spec.send {
        let message = Message::Text(text.clone().into());
        tl.step(Phase::Reply, async {
            ws.send(message)
                .await
                .map_err(|e| closed_failure(&e, "sending the message"))
        })
        .await?;
    }
    if spec.send.is_some() || spec.expect.is_set() {
        let waited = tokio::time::Instant::now();
        let mut seen = Mismatch::default();
        let reply =
            tokio::time::timeout_at(tl.deadline(), expected_frame(&mut ws, spec, &mut seen));
        let outcome = match reply.await {
            Ok(outcome) => outcome,
            Err(_) => {
                let after = if spec.send.is_some() {
                    "sending the message"
                } else {
                    "the upgrade"
                };
                let within = fmt_duration(waited.elapsed());
                Err(match seen.last {
                    None => Failure::new(
                        Reason::Timeout,
                        format!("no frame within {within} of {after}"),
                    ),
                    Some(_) => Failure::new(
                        Reason::BodyMismatch,
                        format!("no frame matched within {within} of {after}"),
                    ),
                })
            }
        };
        tl.add(Phase::Reply, waited.elapsed());
        outcome.map_err(|f| seen.explain(f).in_phase(Phase::Reply))?;
    }
    let _ = tokio::time::timeout(Duration::from_millis(50), ws.close(None)).await;
    Ok(())
}

/// Frames that arrived but did not match: the evidence when no frame does.
#[derive(Default)]
struct Mismatch {
    frames: usize,
    last: Option<String>,
}

impl Mismatch {
    fn explain(&self, mut f: Failure) -> Failure {
        if let Some(last) = &self.last {
            f.message = format!(
                "{} ({} frame(s) did not match; last: {last})",
                f.message, self.frames
            );
        }
        f
    }
}

/// Reads frames until one meets the expectations (any frame, when there are none).
async fn expected_frame(
    ws: &mut Socket,
    spec: &WebSocketSpec,
    seen: &mut Mismatch,
) -> Result<(), Failure> {
    let e = &spec.expect;
    while seen.frames < MAX_FRAMES {
        let body = match ws.next().await {
            None => return Err(close_failure(None, "")),
            Some(Err(err)) => return Err(closed_failure(&err, "reading")),
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                    .unwrap_or((None, String::new()));
                return Err(close_failure(code, &reason));
            }
            Some(Ok(_)) => continue, // ping/pong are answered by tungstenite
        };
        let (problems, _) = body_problems(&e.body_matches, &e.body_not_matches, &e.json, &body);
        if problems.is_empty() {
            return Ok(());
        }
        seen.frames += 1;
        seen.last = Some(format!(
            "{}; frame: {}",
            problems.join("; "),
            excerpt(&body)
        ));
    }
    Err(Failure::new(
        Reason::BodyMismatch,
        format!("none of {MAX_FRAMES} frames matched"),
    ))
}

pub(crate) fn upgrade_failure(e: WsError) -> Failure {
    match e {
        WsError::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned())
                .filter(|b| !b.is_empty())
                .map(|b| format!("; body: {b}"))
                .unwrap_or_default();
            let reason = if matches!(status.as_u16(), 401 | 403) {
                Reason::WsAuth
            } else {
                Reason::WsUpgrade
            };
            Failure::new(
                reason,
                format!("server refused the WebSocket upgrade with HTTP {status}{body}"),
            )
        }
        other => Failure::new(
            Reason::WsUpgrade,
            format!("WebSocket upgrade failed: {other}"),
        ),
    }
}

pub(crate) fn closed_failure(e: &WsError, doing: &str) -> Failure {
    match e {
        WsError::Capacity(c) => Failure::new(
            Reason::Protocol,
            format!("frame over the max_frame_bytes limit ({c})"),
        ),
        WsError::ConnectionClosed | WsError::AlreadyClosed => close_failure(None, ""),
        WsError::Protocol(p) => Failure::new(
            Reason::WsClosed,
            format!("connection broke while {doing}: {p} (1006: infrastructure)"),
        ),
        WsError::Io(io) => Failure::new(
            Reason::WsClosed,
            format!("connection broke while {doing}: {io} (1006: infrastructure)"),
        ),
        other => Failure::new(
            Reason::Protocol,
            format!("WebSocket error while {doing}: {other}"),
        ),
    }
}

/// The class of a close code (AGENT_PROTOCOL.md §7).
pub fn close_class(code: u16) -> &'static str {
    match code {
        1000 | 1001 => "normal",
        1006 | 1015 => "infrastructure",
        1008 => "auth/policy",
        1011..=1014 => "server error",
        1002 | 1003 | 1007 | 1009 | 1010 => "client/protocol",
        _ => "other",
    }
}

pub(crate) fn close_failure(code: Option<u16>, reason: &str) -> Failure {
    let Some(code) = code else {
        return Failure::new(
            Reason::WsClosed,
            "connection closed without a close frame (1006: infrastructure)",
        );
    };
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(" \"{reason}\"")
    };
    let kind = if code == 1008 {
        Reason::WsAuth
    } else {
        Reason::WsClosed
    };
    Failure::new(
        kind,
        format!(
            "server closed the connection with {code}{why} ({})",
            close_class(code)
        ),
    )
}
