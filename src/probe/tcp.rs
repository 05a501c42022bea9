//! `type: tcp`: connect (optionally from a source address, optionally over TLS), then the
//! `query_response` dialogue: read lines until one matches `expect` (or read exactly
//! `expect_bytes`), send a line with the match's groups, upgrade with `starttls`. A
//! failure names the step, what it waited for and what arrived instead.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use super::Prober;
use super::certs::Alpn;
use super::expect::excerpt;
use super::net::{self, io_words};
use super::result::{DialogueInfo, Failure, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use crate::config::HostPort;
use crate::config::TlsVerify;
use crate::config::spec::{QueryStep, TcpSpec, UnixSpec};

/// Longest line read while waiting for a match (Go's bufio.Scanner limit, as blackbox).
const MAX_LINE: usize = 64 * 1024;

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &TcpSpec,
    target: &HostPort,
) -> Result<(), Failure> {
    let mut info = DialogueInfo {
        steps: spec.query_response.len(),
        ..DialogueInfo::default()
    };
    let outcome = run(p, tl, result, &mut info, spec, target).await;
    result.dialogue = Some(info);
    outcome
}

async fn run(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    info: &mut DialogueInfo,
    spec: &TcpSpec,
    target: &HostPort,
) -> Result<(), Failure> {
    let ip = net::resolve_one(
        p,
        tl,
        &target.host,
        spec.preferred_ip_protocol,
        spec.ip_protocol_fallback,
    )
    .await?;
    result.ip = Some(ip);
    let (tcp, _) = connect_from(tl, &[ip], target.port, spec.source_ip_address).await?;
    let name = spec
        .tls_config
        .server_name
        .clone()
        .unwrap_or_else(|| target.host.clone());
    let conn = if spec.tls {
        Conn::Tls(Box::new(
            tls(tl, result, tcp, &name, &spec.tls_config).await?,
        ))
    } else {
        Conn::Plain(tcp)
    };
    dialogue(
        tl,
        result,
        conn,
        info,
        &spec.query_response,
        &spec.tls_config,
        &name,
    )
    .await
}

/// `type: unix` (blackbox's `unix` prober): the same dialogue over a unix socket.
pub async fn probe_unix(
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &UnixSpec,
    path: &str,
) -> Result<(), Failure> {
    let mut info = DialogueInfo {
        steps: spec.query_response.len(),
        ..DialogueInfo::default()
    };
    let outcome = async {
        let stream = tl
            .step(Phase::Connect, async {
                tokio::net::UnixStream::connect(path).await.map_err(|e| {
                    let why = match e.kind() {
                        std::io::ErrorKind::NotFound => "no such socket".to_string(),
                        std::io::ErrorKind::PermissionDenied => {
                            "permission denied (the socket's mode or owner does not let pathwatch in)".into()
                        }
                        std::io::ErrorKind::ConnectionRefused => {
                            "connection refused: nothing listens on it".into()
                        }
                        _ => io_words(&e),
                    };
                    Failure::new(Reason::Connect, format!("cannot connect to the unix socket {path}: {why}"))
                })
            })
            .await?;
        let name = spec.tls_config.server_name.clone().unwrap_or_default();
        dialogue(tl, result, Conn::Unix(stream), &mut info, &spec.query_response, &spec.tls_config, &name).await
    }
    .await;
    result.dialogue = Some(info);
    outcome
}

async fn dialogue(
    tl: &mut Timeline,
    result: &mut ProbeResult,
    mut conn: Conn,
    info: &mut DialogueInfo,
    steps: &[QueryStep],
    tls_config: &TlsVerify,
    name: &str,
) -> Result<(), Failure> {
    let mut lines = Lines::default();
    for (i, step) in steps.iter().enumerate() {
        let at = format!("query_response step {}", i + 1);
        let mut send = step.send.clone();
        if let Some(re) = &step.expect {
            let line = tl
                .step(Phase::Processing, lines.until(&mut conn, &re.0))
                .await
                .map_err(|f| {
                    if f.reason == Reason::BodyMismatch {
                        info.failed_due_to_regex = true;
                    }
                    say(f, &at, &format!("a line matching `{}`", re.0.as_str()))
                })?;
            let caps = re.0.captures(&line).ok_or_else(|| {
                Failure::new(Reason::BodyMismatch, format!("{at}: the match was lost"))
            })?;
            if let Some(s) = &send {
                let mut out = Vec::new();
                caps.expand(s.as_bytes(), &mut out);
                send = Some(String::from_utf8_lossy(&out).into_owned());
            }
            for label in &step.labels {
                let mut out = Vec::new();
                caps.expand(label.value.as_bytes(), &mut out);
                info.labels.push((
                    label.name.clone(),
                    String::from_utf8_lossy(&out).into_owned(),
                ));
            }
        }
        if let Some(bytes) = &step.expect_bytes {
            let want = bytes.as_bytes();
            let got = tl
                .step(Phase::Processing, lines.exactly(&mut conn, want.len()))
                .await
                .map_err(|f| say(f, &at, &format!("the bytes `{}`", excerpt(want))))?;
            if got != want {
                info.failed_due_to_bytes = true;
                return Err(Failure::new(
                    Reason::BodyMismatch,
                    format!(
                        "{at}: expected the bytes `{}`, got `{}`",
                        excerpt(want),
                        excerpt(&got)
                    ),
                )
                .in_phase(Phase::Processing));
            }
        }
        if let Some(line) = send {
            let mut out = line.into_bytes();
            out.push(b'\n');
            let io = conn.io();
            tl.step(Phase::Processing, async {
                let sent = async {
                    io.write_all(&out).await?;
                    io.flush().await
                };
                sent.await.map_err(|e| {
                    Failure::new(
                        Reason::Connect,
                        format!("{at}: sending failed: {}", io_words(&e)),
                    )
                })
            })
            .await?;
        }
        if step.starttls {
            let tcp = match conn {
                Conn::Plain(tcp) => tcp,
                Conn::Tls(_) => {
                    return Err(Failure::new(
                        Reason::Protocol,
                        format!("{at}: starttls on a connection that already speaks TLS"),
                    ));
                }
                Conn::Unix(_) => {
                    return Err(Failure::new(
                        Reason::Protocol,
                        format!("{at}: starttls over a unix socket is not supported"),
                    ));
                }
            };
            let stream = tls(tl, result, tcp, name, tls_config)
                .await
                .map_err(|f| Failure {
                    message: format!("{at} (starttls): {}", f.message),
                    ..f
                })?;
            conn = Conn::Tls(Box::new(stream));
            lines = Lines::default();
        }
        info.steps_done = i + 1;
    }
    Ok(())
}

/// A failure while waiting for `what`, worded for the step.
fn say(f: Failure, at: &str, what: &str) -> Failure {
    let message = if f.reason == Reason::Timeout {
        format!("{at}: waited for {what} until the timeout; {}", f.message)
    } else {
        format!("{at}: waiting for {what}: {}", f.message)
    };
    Failure { message, ..f }
}

async fn tls(
    tl: &mut Timeline,
    result: &mut ProbeResult,
    tcp: TcpStream,
    name: &str,
    tls_config: &TlsVerify,
) -> Result<TlsStream<TcpStream>, Failure> {
    let hs = net::handshake(tl, tcp, name, tls_config, Alpn::None).await?;
    result.tls = Some(hs.info);
    hs.verdict?;
    Ok(hs.stream)
}

/// [`net::connect`], from `source` when set.
async fn connect_from(
    tl: &mut Timeline,
    addrs: &[IpAddr],
    port: u16,
    source: Option<IpAddr>,
) -> Result<(TcpStream, IpAddr), Failure> {
    let Some(source) = source else {
        return net::connect(tl, addrs, port).await;
    };
    let ip = addrs[0];
    let addr = SocketAddr::new(ip, port);
    let stream = tl
        .step(Phase::Connect, async {
            let socket = if ip.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .and_then(|s| s.bind(SocketAddr::new(source, 0)).map(|()| s))
            .map_err(|e| {
                Failure::new(
                    Reason::Connect,
                    format!(
                        "cannot send from source_ip_address {source}: {}",
                        io_words(&e)
                    ),
                )
            })?;
            socket.connect(addr).await.map_err(|e| {
                Failure::new(
                    Reason::Connect,
                    format!("cannot connect to {addr} from {source}: {}", io_words(&e)),
                )
            })
        })
        .await?;
    Ok((stream, ip))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(tokio::net::UnixStream),
}

impl Conn {
    fn io(&mut self) -> &mut dyn Io {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.as_mut(),
            Conn::Unix(s) => s,
        }
    }
}

/// Bytes read and not yet consumed, split into lines as Go's bufio.Scanner does (`\n`,
/// a trailing `\r` dropped).
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    /// The last complete line read, for the message when nothing matched.
    last: Option<Vec<u8>>,
}

impl Lines {
    /// Reads lines until one matches `re`; returns it.
    async fn until(
        &mut self,
        conn: &mut Conn,
        re: &regex::bytes::Regex,
    ) -> Result<Vec<u8>, Failure> {
        loop {
            while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if re.is_match(&line) {
                    return Ok(line);
                }
                self.last = Some(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(Failure::new(
                    Reason::BodyMismatch,
                    format!(
                        "a line longer than {} KiB arrived without a newline: `{}`",
                        MAX_LINE / 1024,
                        excerpt(&self.buf)
                    ),
                ));
            }
            if self.fill(conn).await? == 0 {
                // At the end a last line without a newline still counts.
                let rest = std::mem::take(&mut self.buf);
                if !rest.is_empty() && re.is_match(&rest) {
                    return Ok(rest);
                }
                let seen = match (rest.is_empty(), &self.last) {
                    (false, _) => format!("; the last line was `{}`", excerpt(&rest)),
                    (true, Some(l)) => format!("; the last line was `{}`", excerpt(l)),
                    (true, None) => "; nothing arrived".to_string(),
                };
                return Err(Failure::new(
                    Reason::BodyMismatch,
                    format!("the server closed the connection{seen}"),
                ));
            }
        }
    }

    /// Reads exactly `n` bytes (fewer if the server closes first).
    async fn exactly(&mut self, conn: &mut Conn, n: usize) -> Result<Vec<u8>, Failure> {
        while self.buf.len() < n {
            if self.fill(conn).await? == 0 {
                break;
            }
        }
        let take = n.min(self.buf.len());
        Ok(self.buf.drain(..take).collect())
    }

    async fn fill(&mut self, conn: &mut Conn) -> Result<usize, Failure> {
        let mut chunk = [0u8; 4096];
        let n = conn.io().read(&mut chunk).await.map_err(|e| {
            Failure::new(
                Reason::Connect,
                format!("reading from the connection failed: {}", io_words(&e)),
            )
        })?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }
}
