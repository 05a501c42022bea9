//! An HTTP proxy on the way to an http check's target: which proxy applies (`proxy_url`,
//! or the environment's with `proxy_from_environment`, less `no_proxy`), and the CONNECT
//! tunnel for https targets. Plain http targets go to the proxy in absolute form.

use std::net::IpAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use super::net::io_words;
use super::result::{Failure, Phase, Reason};
use super::timing::Timeline;
use crate::config::spec::HttpSpec;
use crate::config::spec::http::parse_proxy;

/// Longest CONNECT answer head read.
const MAX_HEAD: usize = 16 * 1024;

/// The proxy for `target`, if one applies.
pub fn for_target(spec: &HttpSpec, target: &Url) -> Result<Option<Url>, Failure> {
    let env = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    };
    let (proxy, no_proxy) = match (&spec.proxy_url, spec.proxy_from_environment) {
        (Some(p), _) => (Some(p.0.clone()), spec.no_proxy.clone()),
        (None, true) => {
            let names: &[&str] = if target.scheme() == "https" {
                &["HTTPS_PROXY", "https_proxy"]
            } else {
                &["HTTP_PROXY", "http_proxy"]
            };
            let proxy = match env(names) {
                Some(text) => Some(
                    parse_proxy(&text)
                        .map_err(|e| Failure::new(Reason::Connect, format!("{}: {e}", names[0])))?,
                ),
                None => None,
            };
            (
                proxy,
                env(&["NO_PROXY", "no_proxy"]).or(spec.no_proxy.clone()),
            )
        }
        (None, false) => (None, None),
    };
    let Some(proxy) = proxy else {
        return Ok(None);
    };
    let host = target.host_str().unwrap_or_default();
    let port = target.port_or_known_default().unwrap_or(0);
    if no_proxy.is_some_and(|list| bypasses(&list, host, port)) {
        return Ok(None);
    }
    Ok(Some(proxy))
}

/// Whether `no_proxy` (comma-separated: `*`, hosts, `.domain`, IPs, CIDRs, each with an
/// optional `:port`) exempts host:port, as Go's httpproxy reads it.
pub fn bypasses(list: &str, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some((net, bits)) = entry.split_once('/') {
                return match (ip, net.parse::<IpAddr>(), bits.parse::<u32>()) {
                    (Some(ip), Ok(net), Ok(bits)) => in_cidr(ip, net, bits),
                    _ => false,
                };
            }
            let (name, want_port) = match entry.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h, p.parse::<u16>().ok()),
                _ => (entry, None),
            };
            if want_port.is_some_and(|p| p != port) {
                return false;
            }
            let name = name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase();
            if let (Some(ip), Ok(e)) = (ip, name.parse::<IpAddr>()) {
                return ip == e;
            }
            let bare = name.trim_start_matches("*.").trim_start_matches('.');
            host == bare || host.ends_with(&format!(".{bare}"))
        })
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `Proxy-Authorization` for a proxy URL with credentials.
pub fn authorization(proxy: &Url) -> Option<String> {
    if proxy.username().is_empty() {
        return None;
    }
    let decode = super::expect::percent_decode;
    let pass = proxy.password().map(decode).unwrap_or_default();
    let token =
        data_encoding::BASE64.encode(format!("{}:{pass}", decode(proxy.username())).as_bytes());
    Some(format!("Basic {token}"))
}

/// Opens a tunnel to `authority` (host:port) through the proxy on `tcp`: CONNECT, with
/// `proxy_connect_header` and the proxy's credentials; a refusal names the status.
pub async fn connect_tunnel(
    tl: &mut Timeline,
    mut tcp: TcpStream,
    proxy: &Url,
    authority: &str,
    spec: &HttpSpec,
) -> Result<TcpStream, Failure> {
    let shown = format!(
        "{}:{}",
        proxy.host_str().unwrap_or_default(),
        proxy.port_or_known_default().unwrap_or(80)
    );
    tl.step(Phase::Connect, async {
        let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(auth) = authorization(proxy) {
            head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        for (name, values) in &spec.proxy_connect_header {
            for v in values {
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        head.push_str("\r\n");
        let broke = |e: std::io::Error| {
            Failure::new(
                Reason::Connect,
                format!("the proxy {shown} broke the CONNECT to {authority}: {}", io_words(&e)),
            )
        };
        tcp.write_all(head.as_bytes()).await.map_err(broke)?;
        // Byte by byte: nothing of the tunnel's own bytes may be read here.
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            if got.len() > MAX_HEAD {
                return Err(Failure::new(
                    Reason::Protocol,
                    format!("the proxy {shown} sent a CONNECT answer head over {} KiB", MAX_HEAD / 1024),
                ));
            }
            match tcp.read(&mut byte).await.map_err(broke)? {
                0 => {
                    return Err(Failure::new(
                        Reason::Connect,
                        format!("the proxy {shown} closed the connection instead of answering the CONNECT to {authority}"),
                    ));
                }
                _ => got.push(byte[0]),
            }
        }
        let text = String::from_utf8_lossy(&got);
        let status_line = text.lines().next().unwrap_or_default();
        let code = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok());
        match code {
            Some(200..=299) => Ok(()),
            Some(c) => Err(Failure::new(
                Reason::Connect,
                format!(
                    "the proxy {shown} answered {} to CONNECT {authority}{}",
                    status_line.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
                    if c == 407 { " (configure its credentials in proxy_url)" } else { "" }
                ),
            )),
            None => Err(Failure::new(
                Reason::Protocol,
                format!("the proxy {shown} did not answer the CONNECT with HTTP: `{}`", super::expect::excerpt(status_line.as_bytes())),
            )),
        }
    })
    .await?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_reads_as_go_reads_it() {
        let list = "localhost, .internal, example.com:8443, 10.0.0.0/8, ::1, [fd00::1]:443";
        assert!(bypasses(list, "localhost", 80));
        assert!(bypasses(list, "api.internal", 443));
        assert!(bypasses(list, "internal", 443));
        assert!(!bypasses(list, "notinternal", 443));
        assert!(bypasses(list, "www.example.com", 8443));
        assert!(!bypasses(list, "example.com", 443));
        assert!(bypasses(list, "10.1.2.3", 80));
        assert!(!bypasses(list, "11.1.2.3", 80));
        assert!(bypasses(list, "[::1]", 80));
        assert!(bypasses(list, "fd00::1", 443));
        assert!(bypasses("*", "anything", 1));
        let p = parse_proxy("http://u%40x:p%3Aw@proxy:3128").unwrap();
        assert_eq!(
            authorization(&p),
            Some(format!(
                "Basic {}",
                data_encoding::BASE64.encode(b"u@x:p:w")
            ))
        );
        assert!(
            parse_proxy("socks5://proxy:1080")
                .unwrap_err()
                .contains("not supported")
        );
    }
}
