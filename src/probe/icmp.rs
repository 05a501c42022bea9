//! `type: icmp`: one echo request, one echo reply. An unprivileged ping socket where
//! `net.ipv4.ping_group_range` allows this process's group, else a raw socket (root or
//! CAP_NET_RAW); when neither opens, the message says which permission is missing.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::Prober;
use super::net::{self, io_words};
use super::result::{Failure, IcmpInfo, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use crate::config::spec::IcmpSpec;

/// blackbox_exporter's default hop limit.
const DEFAULT_TTL: u32 = 64;

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &IcmpSpec,
    host: &str,
) -> Result<(), Failure> {
    result.icmp = Some(IcmpInfo::default());
    let ip = net::resolve_one(
        p,
        tl,
        host,
        spec.preferred_ip_protocol,
        spec.ip_protocol_fallback,
    )
    .await?;
    result.ip = Some(ip);
    let setup = Instant::now();
    let opened = open(ip, spec);
    let mut info = IcmpInfo {
        setup_seconds: setup.elapsed().as_secs_f64(),
        ..IcmpInfo::default()
    };
    tl.add(Phase::Connect, setup.elapsed());
    let (socket, kind) = match opened {
        Ok(s) => s,
        Err(f) => {
            result.icmp = Some(info);
            return Err(f.in_phase(Phase::Connect));
        }
    };
    // The identifier: a ping socket's is its port, which the kernel sets and filters on.
    let id = (std::process::id() as u16) ^ (rand_u16());
    let seq = rand_u16();
    let packet = echo_request(ip.is_ipv6(), id, seq, spec.payload());
    let packet = match kind {
        Kind::RawHeader => ipv4_header(&packet, spec.ttl.unwrap_or(DEFAULT_TTL), ip),
        _ => packet,
    };
    let sent_at = Instant::now();
    let outcome = tl
        .step(Phase::Processing, async {
            socket
                .send_to(&packet, SocketAddr::new(ip, 0))
                .await
                .map_err(|e| {
                    Failure::new(
                        Reason::Connect,
                        format!("cannot send the echo request to {ip}: {}", io_words(&e)),
                    )
                })?;
            wait_reply(&socket, kind, ip, id, seq).await
        })
        .await;
    match outcome {
        Ok(hop_limit) => {
            info.rtt_seconds = Some(sent_at.elapsed().as_secs_f64());
            info.reply_hop_limit = hop_limit;
            result.icmp = Some(info);
            Ok(())
        }
        Err(f) => {
            result.icmp = Some(info);
            if f.reason == Reason::Timeout {
                let hops = spec
                    .ttl
                    .map(|t| format!(" (ttl {t}: the host may be more hops away)"))
                    .unwrap_or_default();
                return Err(Failure::new(
                    Reason::Timeout,
                    format!("no echo reply from {ip} within the timeout{hops}"),
                )
                .in_phase(Phase::Processing));
            }
            Err(f)
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// SOCK_DGRAM ping socket: no IP header either way; the kernel owns the identifier.
    Ping,
    /// SOCK_RAW: IPv4 replies come with their IP header.
    Raw,
    /// SOCK_RAW with IP_HDRINCL: we write the IPv4 header (the don't-fragment bit).
    RawHeader,
}

fn open(ip: IpAddr, spec: &IcmpSpec) -> Result<(UdpSocket, Kind), Failure> {
    let (domain, proto) = if ip.is_ipv4() {
        (Domain::IPV4, Protocol::ICMPV4)
    } else {
        (Domain::IPV6, Protocol::ICMPV6)
    };
    if spec.dont_fragment && ip.is_ipv6() {
        return Err(Failure::new(
            Reason::Protocol,
            "dont_fragment is an IPv4 setting (IPv6 routers never fragment)",
        ));
    }
    let ping = if spec.dont_fragment {
        None
    } else {
        Some(Socket::new(domain, Type::DGRAM, Some(proto)))
    };
    let (socket, kind) = match ping {
        Some(Ok(s)) => (s, Kind::Ping),
        other => match Socket::new(domain, Type::RAW, Some(proto)) {
            Ok(s) if spec.dont_fragment => (s, Kind::RawHeader),
            Ok(s) => (s, Kind::Raw),
            Err(raw) => {
                let ping_why = match other {
                    Some(Err(e)) => format!(
                        "an unprivileged ping socket was refused ({}: net.ipv4.ping_group_range does not include this process's group {})",
                        io_words(&e),
                        rustix::process::getgid().as_raw()
                    ),
                    _ => "dont_fragment needs a raw socket".into(),
                };
                return Err(Failure::new(
                    Reason::Unavailable,
                    format!(
                        "cannot ping from here: {ping_why}, and a raw socket was refused ({}: it needs root or CAP_NET_RAW). Allow the group with `sysctl net.ipv4.ping_group_range=\"0 2147483647\"`, or grant CAP_NET_RAW",
                        io_words(&raw)
                    ),
                ));
            }
        },
    };
    let fail = |what: &str, e: std::io::Error| {
        Failure::new(Reason::Connect, format!("cannot {what}: {}", io_words(&e)))
    };
    if let Some(src) = spec.source_ip_address {
        socket
            .bind(&SocketAddr::new(src, 0).into())
            .map_err(|e| fail(&format!("send from source_ip_address {src}"), e))?;
    }
    let ttl = spec.ttl.unwrap_or(DEFAULT_TTL);
    match (ip.is_ipv4(), kind) {
        (true, Kind::RawHeader) => socket
            .set_header_included_v4(true)
            .map_err(|e| fail("write the IP header (dont_fragment)", e))?,
        (true, _) => socket.set_ttl_v4(ttl).map_err(|e| fail("set the ttl", e))?,
        (false, _) => socket
            .set_unicast_hops_v6(ttl)
            .map_err(|e| fail("set the hop limit", e))?,
    }
    socket
        .set_nonblocking(true)
        .map_err(|e| fail("open the socket", e))?;
    let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))
        .map_err(|e| fail("open the socket", e))?;
    Ok((socket, kind))
}

/// Reads until the echo reply of (`id`, `seq`) from `ip`; returns its hop limit when the
/// packet carries it (raw IPv4).
async fn wait_reply(
    socket: &UdpSocket,
    kind: Kind,
    ip: IpAddr,
    id: u16,
    seq: u16,
) -> Result<Option<u8>, Failure> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await.map_err(|e| {
            Failure::new(
                Reason::Connect,
                format!("reading the echo reply failed: {}", io_words(&e)),
            )
        })?;
        if from.ip() != ip {
            continue;
        }
        let mut packet = &buf[..n];
        let mut hop_limit = None;
        if ip.is_ipv4() && kind != Kind::Ping {
            let header = usize::from(packet.first().map_or(0, |b| b & 0x0f)) * 4;
            if packet.len() < header + 8 {
                continue;
            }
            hop_limit = Some(packet[8]);
            packet = &packet[header..];
        }
        if packet.len() < 8 {
            continue;
        }
        let reply_type = if ip.is_ipv6() { 129 } else { 0 };
        let unreachable = if ip.is_ipv6() { 1 } else { 3 };
        let time_exceeded = if ip.is_ipv6() { 3 } else { 11 };
        let got_id = u16::from_be_bytes([packet[4], packet[5]]);
        let got_seq = u16::from_be_bytes([packet[6], packet[7]]);
        let ours = got_seq == seq && (kind == Kind::Ping || got_id == id);
        match packet[0] {
            t if t == reply_type && ours => return Ok(hop_limit),
            t if t == unreachable && from.ip() == ip => {
                return Err(Failure::new(
                    Reason::Connect,
                    format!("{ip} answered destination unreachable (code {})", packet[1]),
                ));
            }
            t if t == time_exceeded => {
                return Err(Failure::new(
                    Reason::Connect,
                    format!("time exceeded on the way to {ip}: the ttl ran out"),
                ));
            }
            _ => {}
        }
    }
}

/// An ICMP echo request: type, code, checksum, identifier, sequence, payload. ICMPv6's
/// checksum covers a pseudo-header: the kernel computes it.
fn echo_request(v6: bool, id: u16, seq: u16, payload: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + payload);
    p.push(if v6 { 128 } else { 8 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..payload).map(|i| (i % 256) as u8));
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// An IPv4 header with the don't-fragment bit before `icmp`; the kernel fills the source,
/// the identification and the header checksum.
fn ipv4_header(icmp: &[u8], ttl: u32, dst: IpAddr) -> Vec<u8> {
    let IpAddr::V4(dst) = dst else {
        return icmp.to_vec();
    };
    let total = (20 + icmp.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0]);
    p.push(ttl.min(255) as u8);
    p.push(1);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&[0, 0, 0, 0]);
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(icmp);
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn rand_u16() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_requests_carry_a_valid_checksum() {
        let p = echo_request(false, 0x1234, 7, 36);
        assert_eq!(p.len(), 44);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        let h = ipv4_header(&p, 5, "127.0.0.1".parse().unwrap());
        assert_eq!((h[6], h[8], h[9]), (0x40, 5, 1));
    }
}
