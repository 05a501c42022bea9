//! `type: tls`: connect to host:port, complete a handshake and judge the certificate chain
//! (trust, name coverage, validity); the chain is reported whatever the verdict.

use std::net::SocketAddr;

use super::certs::Alpn;
use super::result::{Failure, ProbeResult};
use super::timing::Timeline;
use super::{Prober, net};
use crate::config::{HostPort, TlsClient};

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &TlsClient,
    target: &HostPort,
) -> Result<(), Failure> {
    let ip = net::resolve(p, tl, &target.host).await?;
    result.ip = Some(ip);
    let tcp = net::connect(tl, SocketAddr::new(ip, target.port)).await?;
    let name = spec.server_name.as_deref().unwrap_or(&target.host);
    let hs = net::tls(tl, tcp, name, spec, Alpn::None).await?;
    result.tls = Some(hs.info);
    hs.verdict
}
