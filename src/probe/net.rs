//! The steps every network probe shares: resolve, connect, TLS handshake with certificate
//! inspection. Each is timed as its phase under the probe's deadline.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::Prober;
use super::result::{Failure, Phase, Reason, TlsInfo};
use super::timing::Timeline;
use super::{certs, client_cert};
use crate::config::TlsVerify;
use crate::config::spec::AddressFamily;

/// Resolves `host` to its addresses (an IP literal resolves to itself in no time).
pub async fn resolve(p: &Prober, tl: &mut Timeline, host: &str) -> Result<Vec<IpAddr>, Failure> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        tl.add(Phase::Resolve, std::time::Duration::ZERO);
        return Ok(vec![ip]);
    }
    tl.step(Phase::Resolve, async {
        let answer = p
            .resolver()
            .lookup_ip(host)
            .await
            .map_err(|e| dns_failure(host, &e))?;
        let addrs: Vec<IpAddr> = answer.iter().collect();
        if addrs.is_empty() {
            return Err(Failure::new(
                Reason::Dns,
                format!("`{host}` resolved to no address"),
            ));
        }
        Ok(addrs)
    })
    .await
}

/// Resolves `host` and [`pick`]s the one address blackbox_exporter would use.
pub async fn resolve_one(
    p: &Prober,
    tl: &mut Timeline,
    host: &str,
    preferred: AddressFamily,
    fallback: bool,
) -> Result<IpAddr, Failure> {
    let addrs = resolve(p, tl, host).await?;
    pick(host, &addrs, preferred, fallback).map(|a| a[0])
}

/// The one address blackbox_exporter would use: the first of the preferred family, else
/// (with `fallback`) the first of the other. An IP literal is used as it is.
pub fn pick(
    host: &str,
    addrs: &[IpAddr],
    preferred: AddressFamily,
    fallback: bool,
) -> Result<Vec<IpAddr>, Failure> {
    let wants_v6 = preferred == AddressFamily::Ip6;
    let first = |v6: bool| addrs.iter().find(|ip| ip.is_ipv6() == v6).copied();
    match first(wants_v6).or_else(|| fallback.then(|| first(!wants_v6)).flatten()) {
        Some(ip) => Ok(vec![ip]),
        None => {
            let (want, have) = if wants_v6 {
                ("IPv6", "IPv4")
            } else {
                ("IPv4", "IPv6")
            };
            Err(Failure::new(
                Reason::Dns,
                format!(
                    "`{host}` has no {want} address (only {have}), and ip_protocol_fallback is false"
                ),
            )
            .in_phase(Phase::Resolve))
        }
    }
}

/// Tells "the name does not exist" apart from "nobody answered".
pub fn dns_failure(name: &str, err: &NetError) -> Failure {
    match err {
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if nr.response_code == ResponseCode::NXDomain =>
        {
            Failure::new(Reason::Dns, format!("`{name}` does not exist (NXDOMAIN)"))
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => Failure::new(
            Reason::Dns,
            format!("`{name}` exists but has no address records of the asked type"),
        ),
        NetError::Dns(DnsError::ResponseCode(rc)) => Failure::new(
            Reason::Dns,
            format!("DNS server answered {rc} for `{name}`"),
        ),
        NetError::Timeout => Failure::new(
            Reason::Timeout,
            format!("no DNS server answered for `{name}` (DNS timeout)"),
        ),
        NetError::NoConnections => Failure::new(
            Reason::Dns,
            format!("no DNS server is configured to resolve `{name}`"),
        ),
        other => Failure::new(Reason::Dns, format!("cannot resolve `{name}`: {other}")),
    }
}

/// How long a connection attempt runs alone before the next address is tried beside it
/// (RFC 8305's recommended Connection Attempt Delay).
const ATTEMPT_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// Connects to the first address that accepts: Happy Eyeballs (RFC 8305). Addresses are
/// tried with the families interleaved, starting with the resolver's first; each next one
/// starts when the one before fails or has run for 250 ms, so an address that drops packets
/// no longer eats the whole timeout (a name that resolves to ::1 and 127.0.0.1 works when
/// only one of them listens). The first to connect wins; the others are dropped.
pub async fn connect(
    tl: &mut Timeline,
    addrs: &[IpAddr],
    port: u16,
) -> Result<(TcpStream, IpAddr), Failure> {
    let order = interleave(addrs);
    let (stream, ip) = tl
        .step(Phase::Connect, async {
            let mut attempts = tokio::task::JoinSet::new();
            let mut next = 0;
            let mut errors: Vec<(usize, String)> = Vec::new();
            loop {
                if let Some(ip) = order.get(next).copied() {
                    let at = next;
                    attempts.spawn(async move {
                        (at, ip, TcpStream::connect(SocketAddr::new(ip, port)).await)
                    });
                    next += 1;
                }
                if attempts.is_empty() {
                    break;
                }
                let more = next < order.len();
                tokio::select! {
                    Some(done) = attempts.join_next() => match done {
                        Ok((_, ip, Ok(s))) => return Ok((s, ip)),
                        Ok((at, ip, Err(e))) => errors.push((at, attempt_error(SocketAddr::new(ip, port), &e))),
                        Err(_) => {}
                    },
                    _ = tokio::time::sleep(ATTEMPT_DELAY), if more => {}
                }
            }
            errors.sort();
            let all_refused = errors.iter().all(|(_, e)| e.starts_with("connection refused"));
            let mut message = errors
                .into_iter()
                .map(|(_, e)| e)
                .collect::<Vec<_>>()
                .join("; ");
            if all_refused {
                message.push_str(&format!(": nothing listens on port {port}"));
            }
            Err(Failure::new(Reason::Connect, message))
        })
        .await?;
    let _ = stream.set_nodelay(true);
    Ok((stream, ip))
}

fn attempt_error(addr: SocketAddr, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        format!("connection refused by {addr}")
    } else {
        format!("cannot connect to {addr}: {}", io_words(e))
    }
}

/// The addresses with the two families alternating, the resolver's first family first.
fn interleave(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (same, other): (Vec<IpAddr>, Vec<IpAddr>) =
        addrs.iter().partition(|ip| ip.is_ipv6() == first.is_ipv6());
    let mut out = Vec::with_capacity(addrs.len());
    let (mut a, mut b) = (same.into_iter(), other.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// What a TLS handshake yields: the stream, what was seen, and the verification verdict
/// (kept apart so the certificate is reported even when it does not verify).
pub struct Handshake {
    pub stream: TlsStream<TcpStream>,
    pub info: TlsInfo,
    pub verdict: Result<(), Failure>,
}

/// How long a server that asked for a client certificate and got none has to refuse.
const CLIENT_CERT_VERDICT: std::time::Duration = std::time::Duration::from_millis(200);

pub async fn handshake(
    tl: &mut Timeline,
    tcp: TcpStream,
    name: &str,
    client: &TlsVerify,
    alpn: certs::Alpn,
) -> Result<Handshake, Failure> {
    let server_name = ServerName::try_from(
        name.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
    .map_err(|_| {
        Failure::new(
            Reason::TlsHandshake,
            format!("`{name}` is not a valid TLS server name"),
        )
    })?;
    let peer = tcp.peer_addr().ok();
    let (config, auth) = client_cert::client_config_for(alpn, client)?;
    let connector = TlsConnector::from(config);
    let mut stream = tl
        .step(Phase::Tls, async {
            connector
                .connect(server_name.clone(), tcp)
                .await
                .map_err(|e| {
                    if auth.asked_in_vain() {
                        return client_cert::client_cert_required();
                    }
                    let at = peer.map(|p| format!(" with {p}")).unwrap_or_default();
                    Failure::new(
                        Reason::TlsHandshake,
                        format!("TLS handshake{at} failed: {}", handshake_error(&e)),
                    )
                })
        })
        .await?;
    // In TLS 1.3 a server that requires a client certificate says so only after the
    // handshake is complete on this side: when it asked and got none, wait a moment for
    // its verdict before calling the handshake good.
    if auth.asked_in_vain() {
        let verdict = tl
            .step(Phase::Tls, async {
                let mut byte = [0u8; 1];
                let read = tokio::io::AsyncReadExt::read(&mut stream, &mut byte);
                match tokio::time::timeout(CLIENT_CERT_VERDICT, read).await {
                    Ok(Err(_)) | Ok(Ok(0)) => Err(client_cert::client_cert_required()),
                    _ => Ok(()),
                }
            })
            .await;
        verdict?;
    }
    let (info, verdict) = certs::inspect(stream.get_ref().1, name, &server_name, client);
    let verdict = verdict.map_err(|f| f.in_phase(Phase::Tls));
    let verdict = if client.insecure_skip_verify {
        Ok(())
    } else {
        verdict
    };
    Ok(Handshake {
        stream,
        info,
        verdict,
    })
}

fn handshake_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        "the server did not answer with TLS; is this a plain HTTP port?".into()
    } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "the server closed the connection during the handshake".into()
    } else if let Some(alert) = text.split("received fatal alert: ").nth(1) {
        format!(
            "the server ended the handshake with a fatal alert ({})",
            certs::words(alert)
        )
    } else if text.contains("peer is incompatible") {
        format!(
            "the server and pathwatch have no TLS version or cipher suite in common ({})",
            certs::words(&text)
        )
    } else if e.kind() == std::io::ErrorKind::InvalidData {
        format!(
            "the server broke the TLS protocol ({})",
            certs::words(&text)
        )
    } else {
        io_words(e)
    }
}

/// An I/O error in words (not the OS's text with its error number).
pub(crate) fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "the connection was reset".into(),
        K::ConnectionAborted => "the connection was aborted".into(),
        K::BrokenPipe => "the connection was closed while writing".into(),
        K::UnexpectedEof => "the connection ended in the middle of a message".into(),
        K::TimedOut => "the operation timed out".into(),
        K::AddrNotAvailable => "the address is not available here".into(),
        K::HostUnreachable => "the host is unreachable".into(),
        K::NetworkUnreachable => "the network is unreachable".into(),
        kind => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_alternate_from_the_first() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let got = interleave(&[
            ip("::1"),
            ip("::2"),
            ip("127.0.0.1"),
            ip("::3"),
            ip("127.0.0.2"),
        ]);
        let want = ["::1", "127.0.0.1", "::2", "127.0.0.2", "::3"].map(ip);
        assert_eq!(got, want);
        assert!(interleave(&[]).is_empty());
    }
}
