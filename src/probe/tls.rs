//! `type: tls`: connect to host:port, complete a handshake and judge the certificate chain
//! (trust, name coverage, validity); the chain is reported whatever the verdict.

use super::certs::Alpn;
use super::result::{Failure, ProbeResult};
use super::timing::Timeline;
use super::{Prober, net};
use crate::config::{HostPort, TlsVerify};

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &TlsVerify,
    target: &HostPort,
) -> Result<(), Failure> {
    let addrs = net::resolve(p, tl, &target.host).await?;
    let (tcp, ip) = net::connect(tl, &addrs, target.port).await?;
    result.ip = Some(ip);
    let name = spec.server_name.as_deref().unwrap_or(&target.host);
    let hs = net::handshake(tl, tcp, name, spec, Alpn::None).await?;
    result.tls = Some(hs.info);
    hs.verdict
}
