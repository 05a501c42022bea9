//! A WebSocket client the way both WebSocket check types need it: resolve, connect, TLS
//! verified like a `tls` check (nothing is sent over an unverified connection), the
//! upgrade, reading the next data frame, and the failures of a socket (a refused upgrade,
//! close codes and their class).

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{WebSocketStream, client_async_with_config};
use url::Url;

use super::certs::Alpn;
use super::expect::excerpt;
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
    let (reason, why) = match e {
        WsError::Http(resp) => return refused(&resp),
        WsError::Protocol(p) => (Reason::WsUpgrade, handshake_words(&p)),
        WsError::Io(io) => (Reason::WsUpgrade, net::io_words(&io)),
        WsError::ConnectionClosed | WsError::AlreadyClosed => (
            Reason::WsUpgrade,
            "the server closed the connection before answering".into(),
        ),
        WsError::Url(_) | WsError::HttpFormat(_) => (
            Reason::Protocol,
            "the target cannot be made into an upgrade request".into(),
        ),
        other => (Reason::WsUpgrade, other.to_string()),
    };
    Failure::new(reason, format!("WebSocket upgrade failed: {why}"))
}

/// A non-101 answer to the upgrade: the status, where a redirect points, a body excerpt.
fn refused(resp: &tokio_tungstenite::tungstenite::handshake::client::Response) -> Failure {
    let status = resp.status();
    let status_text = crate::probe::result::status_words(status);
    if status.is_redirection() {
        let to = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("nowhere (no Location header)");
        return Failure::new(
            Reason::WsUpgrade,
            format!(
                "server answered the WebSocket upgrade with HTTP {status_text}, redirecting to {}; an upgrade is not redirected: point the target there",
                crate::secrets::display_str(to)
            ),
        );
    }
    let body = resp
        .body()
        .as_ref()
        .filter(|b| !b.is_empty())
        .map(|b| format!("; body: {}", excerpt(b)))
        .unwrap_or_default();
    let reason = if matches!(status.as_u16(), 401 | 403) {
        Reason::WsAuth
    } else {
        Reason::WsUpgrade
    };
    let failure = Failure::new(
        reason,
        format!("server refused the WebSocket upgrade with HTTP {status_text}{body}"),
    );
    if status.as_u16() != 503 {
        return failure;
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok());
    failure.saying(resp.body().as_deref().unwrap_or_default(), retry_after)
}

/// What went wrong in the upgrade's answer, in words.
fn handshake_words(p: &ProtocolError) -> String {
    match p {
        ProtocolError::SecWebSocketAcceptKeyMismatch => {
            "the answer's Sec-WebSocket-Accept does not match the key (not a WebSocket server, or a proxy in the way)".into()
        }
        ProtocolError::MissingConnectionUpgradeHeader
        | ProtocolError::MissingUpgradeWebSocketHeader => {
            "the 101 answer lacks `Connection: Upgrade` / `Upgrade: websocket`".into()
        }
        ProtocolError::SecWebSocketSubProtocolError(SubProtocolError::NoSubProtocol) => {
            "the server picked none of the offered subprotocols".into()
        }
        ProtocolError::SecWebSocketSubProtocolError(_) => {
            "the server picked a subprotocol that was not offered".into()
        }
        ProtocolError::HandshakeIncomplete => {
            "the server closed the connection before the upgrade completed".into()
        }
        ProtocolError::HttparseError(_) | ProtocolError::WrongHttpVersion => {
            "the answer to the upgrade is not HTTP/1.1".into()
        }
        other => other.to_string(),
    }
}

/// A broken frame from the server, in words; None for a connection that just ended.
fn violation_words(p: &ProtocolError) -> Option<String> {
    Some(match p {
        ProtocolError::NonZeroReservedBits => {
            "a frame with reserved bits set (no extension was negotiated)".into()
        }
        ProtocolError::MaskedFrameFromServer => "a masked frame (servers must not mask)".into(),
        ProtocolError::FragmentedControlFrame => "a fragmented control frame".into(),
        ProtocolError::ControlFrameTooBig => "a control frame over 125 bytes".into(),
        ProtocolError::UnknownControlFrameType(op) => {
            format!("a frame with reserved control opcode {op:#x}")
        }
        ProtocolError::UnknownDataFrameType(op) => {
            format!("a frame with reserved data opcode {op:#x}")
        }
        ProtocolError::InvalidOpcode(op) => format!("a frame with reserved opcode {op:#x}"),
        ProtocolError::UnexpectedContinueFrame => {
            "a continuation frame with no message to continue".into()
        }
        ProtocolError::ExpectedFragment(_) => {
            "a new message before the fragmented one ended".into()
        }
        ProtocolError::InvalidCloseSequence => "a close frame with an invalid payload".into(),
        ProtocolError::ReceivedAfterClosing => "frames after its close frame".into(),
        _ => return None,
    })
}

pub(crate) fn closed_failure(e: &WsError, doing: &str) -> Failure {
    match e {
        WsError::Capacity(_) => Failure::new(
            Reason::Protocol,
            "a frame over the max_frame_bytes limit; stopped reading",
        ),
        WsError::ConnectionClosed | WsError::AlreadyClosed => close_failure(None, ""),
        WsError::Protocol(p) => match violation_words(p) {
            Some(words) => Failure::new(
                Reason::Protocol,
                format!("the server broke the WebSocket protocol while {doing}: {words}"),
            ),
            None => Failure::new(
                Reason::WsClosed,
                format!(
                    "connection broke while {doing} without a close frame (1006: infrastructure)"
                ),
            ),
        },
        WsError::Utf8(_) => Failure::new(
            Reason::Protocol,
            format!("the server sent a text frame that is not valid UTF-8 while {doing}"),
        ),
        WsError::AttackAttempt => Failure::new(
            Reason::Protocol,
            "the server's frames look like an attack on the client; stopped reading",
        ),
        WsError::Io(io) => Failure::new(
            Reason::WsClosed,
            format!(
                "connection broke while {doing}: {} (1006: infrastructure)",
                net::io_words(io)
            ),
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
    let failure = Failure::new(
        kind,
        format!(
            "server closed the connection with {code}{why} ({})",
            close_class(code)
        ),
    );
    // 1011 (internal error) and 1013 (try again later): the reason may say "not ready".
    match code {
        1011 | 1013 => failure.saying(reason.as_bytes(), None),
        _ => failure,
    }
}
