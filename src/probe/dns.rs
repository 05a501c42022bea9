//! `type: dns`: a name resolves (A, AAAA or both), optionally to expected addresses.
//! "Does not exist" (reason `dns`) is told apart from "nobody answered" (reason `timeout`).

use std::net::IpAddr;

use hickory_resolver::proto::rr::{RData, RecordType};

use super::result::{DnsInfo, Failure, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use super::{Prober, net};
use crate::config::spec::{DnsSpec, RecordKind};

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &DnsSpec,
    name: &str,
) -> Result<(), Failure> {
    let resolver = p.resolver_for(spec.server)?;
    let addresses: Vec<IpAddr> = tl
        .step(Phase::Resolve, async {
            let found = match spec.record_type {
                RecordKind::Ip => resolver.lookup_ip(name).await.map(|l| l.iter().collect()),
                RecordKind::A => resolver
                    .lookup(name, RecordType::A)
                    .await
                    .map(|l| addresses_of(l.answers())),
                RecordKind::Aaaa => resolver
                    .lookup(name, RecordType::AAAA)
                    .await
                    .map(|l| addresses_of(l.answers())),
            };
            found.map_err(|e| net::dns_failure(name, &e))
        })
        .await?;
    result.dns = Some(DnsInfo {
        addresses: addresses.clone(),
    });
    if addresses.is_empty() {
        return Err(Failure::new(
            Reason::Dns,
            format!("`{name}` resolved to no address"),
        ));
    }
    let missing: Vec<String> = spec
        .expect_addresses
        .iter()
        .filter(|a| !addresses.contains(a))
        .map(|a| a.to_string())
        .collect();
    if !missing.is_empty() {
        let got: Vec<String> = addresses.iter().map(|a| a.to_string()).collect();
        return Err(Failure::new(
            Reason::Dns,
            format!(
                "`{name}` resolved to {}, missing expected {}",
                got.join(", "),
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

fn addresses_of(records: &[hickory_resolver::proto::rr::Record]) -> Vec<IpAddr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}
