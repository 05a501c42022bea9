//! A WebSocket client the way both WebSocket check types need it: resolve, connect, TLS
//! verified like a `tls` check (nothing is sent over an unverified connection), the
//! upgrade, reading the next data frame, and the failures of a socket (a refused upgrade,
//! close codes and their class).

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};
use url::Url;

use super::certs::Alpn;
use super::result::{Failure, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use super::{Prober, net};
use crate::config::TlsVerify;

/// A plain or TLS stream under a WebSocket.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type Socket = WebSocketStream<Box<dyn Io>>;

/// Resolve, connect, TLS for wss (nothing is sent over an unverified connection), and the
/// upgrade with `headers`; each step timed into `tl`.
pub(crate) async fn open(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    url: &Url,
    headers: &[(String, String)],
    tls: &TlsVerify,
    max_frame_bytes: usize,
) -> Result<Socket, Failure> {
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = net::resolve(p, tl, &host).await?;
    let (tcp, ip) = net::connect(tl, &addrs, port).await?;
    result.ip = Some(ip);
    let stream: Box<dyn Io> = if url.scheme() == "wss" {
        let name = tls.server_name.as_deref().unwrap_or(&host);
        let hs = net::handshake(tl, tcp, name, tls, Alpn::Http1).await?;
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

/// A data frame off the socket.
pub(crate) enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// Reads until a data frame arrives (ping/pong are answered by tungstenite); a close or
/// a broken connection is a failure that names the close code and its class.
pub(crate) async fn next_frame(ws: &mut Socket) -> Result<Frame, Failure> {
    loop {
        match ws.next().await {
            None => return Err(close_failure(None, "")),
            Some(Err(err)) => return Err(closed_failure(&err, "reading")),
            Some(Ok(Message::Text(t))) => return Ok(Frame::Text(t.as_str().to_string())),
            Some(Ok(Message::Binary(b))) => return Ok(Frame::Binary(b.to_vec())),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                    .unwrap_or((None, String::new()));
                return Err(close_failure(code, &reason));
            }
            Some(Ok(_)) => {}
        }
    }
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
