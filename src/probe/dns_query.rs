//! `type: dns_query` (blackbox_exporter's `dns` prober): one query to the target server
//! over UDP, TCP or TLS, then its response code and its records judged by regexes on
//! their text form. Every failure names the rule and the record.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

use super::Prober;
use super::certs::Alpn;
use super::net::{self, io_words};
use super::result::{DnsQueryInfo, Failure, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use crate::config::HostPort;
use crate::config::spec::dns_query::RCODES;
use crate::config::spec::{DnsQuerySpec, RrRules};

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &DnsQuerySpec,
    server: &HostPort,
) -> Result<(), Failure> {
    let mut info = DnsQueryInfo::default();
    let outcome = query(p, tl, result, &mut info, spec, server).await;
    result.dns_query = Some(info);
    outcome
}

async fn query(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    info: &mut DnsQueryInfo,
    spec: &DnsQuerySpec,
    server: &HostPort,
) -> Result<(), Failure> {
    let ip = net::resolve_one(
        p,
        tl,
        &server.host,
        spec.preferred_ip_protocol,
        spec.ip_protocol_fallback,
    )
    .await?;
    result.ip = Some(ip);
    let addr = SocketAddr::new(ip, server.port);
    let qtype: RecordType = spec.query_type.parse().unwrap_or(RecordType::ANY);
    let name = Name::from_str_relaxed(&spec.query_name)
        .map(|mut n| {
            n.set_fqdn(true);
            n
        })
        .map_err(|_| {
            Failure::new(
                Reason::Dns,
                format!("`{}` is not a DNS name", spec.query_name),
            )
        })?;
    let id = {
        let mut b = [0u8; 2];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
        u16::from_be_bytes(b)
    };
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = spec.recursion_desired;
    let mut q = Query::query(name.clone(), qtype);
    q.set_query_class(spec.query_class.parse().unwrap_or(DNSClass::IN));
    msg.add_query(q);
    let wire = msg
        .to_vec()
        .map_err(|e| Failure::new(Reason::Protocol, format!("cannot write the query: {e}")))?;
    let asked = format!("{name} {qtype} at {addr}");
    let answer = if spec.transport_protocol == "tcp" {
        let tcp = tl
            .step(Phase::Connect, async {
                let socket = if ip.is_ipv4() {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }
                .map_err(|e| connect_failure(addr, &e))?;
                if let Some(src) = spec.source_ip_address {
                    socket
                        .bind(SocketAddr::new(src, 0))
                        .map_err(|e| source_failure(src, &e))?;
                }
                socket
                    .connect(addr)
                    .await
                    .map_err(|e| connect_failure(addr, &e))
            })
            .await?;
        if spec.dns_over_tls {
            let name = spec
                .tls_config
                .server_name
                .as_deref()
                .unwrap_or(&server.host);
            let hs = net::handshake(tl, tcp, name, &spec.tls_config, Alpn::None).await?;
            result.tls = Some(hs.info);
            hs.verdict?;
            exchange_stream(tl, hs.stream, &wire, &asked).await?
        } else {
            exchange_stream(tl, tcp, &wire, &asked).await?
        }
    } else {
        exchange_udp(tl, spec.source_ip_address, addr, &wire, id, &asked).await?
    };
    let response = Message::from_vec(&answer).map_err(|e| {
        Failure::new(
            Reason::Protocol,
            format!("the answer from {addr} is not a DNS message: {e}"),
        )
    })?;
    if response.metadata.id != id {
        return Err(Failure::new(
            Reason::Protocol,
            format!(
                "the answer from {addr} is for another query (id {})",
                response.metadata.id
            ),
        ));
    }
    info.answer_rrs = response.answers.len();
    info.authority_rrs = response.authorities.len();
    info.additional_rrs = response.additionals.len();
    info.succeeded = true;
    if qtype == RecordType::SOA {
        info.serial = Some(
            response
                .answers
                .iter()
                .find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(soa.serial),
                    _ => None,
                })
                .unwrap_or(0),
        );
    }
    let code = u16::from(response.metadata.response_code);
    if !spec.valid_codes().contains(&code) {
        let valid: Vec<&str> = spec
            .valid_codes()
            .iter()
            .filter_map(|c| rcode_name(*c))
            .collect();
        return Err(Failure::new(
            Reason::Dns,
            format!(
                "{asked}: the server answered {}, expected {}",
                rcode_name(code).map_or_else(|| code.to_string(), str::to_string),
                valid.join(" or ")
            ),
        ));
    }
    for (section, records, rules) in [
        ("answer", &response.answers, &spec.validate_answer_rrs),
        (
            "authority",
            &response.authorities,
            &spec.validate_authority_rrs,
        ),
        (
            "additional",
            &response.additionals,
            &spec.validate_additional_rrs,
        ),
    ] {
        judge(section, records, rules)
            .map_err(|why| Failure::new(Reason::Dns, format!("{asked}: {why}")))?;
    }
    Ok(())
}

fn rcode_name(code: u16) -> Option<&'static str> {
    RCODES.iter().find(|(_, c)| *c == code).map(|(n, _)| *n)
}

/// A record as blackbox_exporter (miekg/dns) writes it: tab-separated name, TTL, class,
/// type and data.
pub fn rr_text(r: &Record) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        r.name,
        r.ttl,
        r.dns_class,
        r.record_type(),
        r.data
    )
}

/// blackbox's four rules on one section of the answer.
fn judge(section: &str, records: &[Record], rules: &RrRules) -> Result<(), String> {
    let texts: Vec<String> = records.iter().map(rr_text).collect();
    let quote = |t: &str| crate::probe::expect::excerpt(t.as_bytes());
    if texts.is_empty() {
        if let Some(re) = rules
            .fail_if_not_matches_regexp
            .first()
            .or(rules.fail_if_none_matches_regexp.first())
        {
            return Err(format!(
                "the {section} section is empty, and `{}` must match its records",
                re.0.as_str()
            ));
        }
        return Ok(());
    }
    for t in &texts {
        if let Some(re) = rules
            .fail_if_matches_regexp
            .iter()
            .find(|re| re.0.is_match(t.as_bytes()))
        {
            return Err(format!(
                "{section} record `{}` matches fail_if_matches_regexp `{}`",
                quote(t),
                re.0.as_str()
            ));
        }
        if let Some(re) = rules
            .fail_if_not_matches_regexp
            .iter()
            .find(|re| !re.0.is_match(t.as_bytes()))
        {
            return Err(format!(
                "{section} record `{}` does not match fail_if_not_matches_regexp `{}`",
                quote(t),
                re.0.as_str()
            ));
        }
    }
    // As blackbox_exporter's code does (its documentation says the opposite): the probe
    // fails when a record does not match every fail_if_all_match_regexp.
    let unmatched = texts.iter().find_map(|t| {
        rules
            .fail_if_all_match_regexp
            .iter()
            .find(|re| !re.0.is_match(t.as_bytes()))
            .map(|re| (t, re))
    });
    if let Some((t, re)) = unmatched {
        return Err(format!(
            "{section} record `{}` does not match fail_if_all_match_regexp `{}` (blackbox_exporter fails unless every record matches)",
            quote(t),
            re.0.as_str()
        ));
    }
    let any_match = texts.iter().any(|t| {
        rules
            .fail_if_none_matches_regexp
            .iter()
            .any(|re| re.0.is_match(t.as_bytes()))
    });
    if !rules.fail_if_none_matches_regexp.is_empty() && !any_match {
        return Err(format!(
            "no {section} record matches fail_if_none_matches_regexp `{}` (first record: `{}`)",
            rules.fail_if_none_matches_regexp[0].0.as_str(),
            quote(&texts[0])
        ));
    }
    Ok(())
}

fn connect_failure(addr: SocketAddr, e: &std::io::Error) -> Failure {
    Failure::new(
        Reason::Connect,
        format!("cannot connect to the DNS server {addr}: {}", io_words(e)),
    )
}

fn source_failure(src: IpAddr, e: &std::io::Error) -> Failure {
    Failure::new(
        Reason::Connect,
        format!("cannot send from source_ip_address {src}: {}", io_words(e)),
    )
}

/// One query over UDP: answers with another id (stray or spoofed) are skipped.
async fn exchange_udp(
    tl: &mut Timeline,
    source: Option<IpAddr>,
    addr: SocketAddr,
    wire: &[u8],
    id: u16,
    asked: &str,
) -> Result<Vec<u8>, Failure> {
    let local = match (source, addr.ip()) {
        (Some(src), _) => SocketAddr::new(src, 0),
        (None, IpAddr::V4(_)) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (None, IpAddr::V6(_)) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = tl
        .step(Phase::Connect, async {
            let s = UdpSocket::bind(local).await.map_err(|e| match source {
                Some(src) => source_failure(src, &e),
                None => connect_failure(addr, &e),
            })?;
            s.connect(addr)
                .await
                .map_err(|e| connect_failure(addr, &e))?;
            Ok(s)
        })
        .await?;
    tl.step(Phase::Processing, async {
        socket
            .send(wire)
            .await
            .map_err(|e| connect_failure(addr, &e))?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = socket.recv(&mut buf).await.map_err(|e| {
                let refused = e.kind() == std::io::ErrorKind::ConnectionRefused;
                Failure::new(
                    Reason::Connect,
                    if refused {
                        format!("{asked}: nothing answers DNS on {addr} (port unreachable)")
                    } else {
                        format!("{asked}: reading the answer failed: {}", io_words(&e))
                    },
                )
            })?;
            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                return Ok(buf[..n].to_vec());
            }
        }
    })
    .await
}

/// One query over a stream (TCP or TLS): two bytes of length, then the message.
async fn exchange_stream<S: AsyncRead + AsyncWrite + Unpin>(
    tl: &mut Timeline,
    mut stream: S,
    wire: &[u8],
    asked: &str,
) -> Result<Vec<u8>, Failure> {
    tl.step(Phase::Processing, async {
        let broke = |e: std::io::Error| {
            Failure::new(
                Reason::Connect,
                format!("{asked}: the connection broke: {}", io_words(&e)),
            )
        };
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(wire);
        stream.write_all(&framed).await.map_err(broke)?;
        stream.flush().await.map_err(broke)?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.map_err(broke)?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut answer).await.map_err(broke)?;
        Ok(answer)
    })
    .await
}
