//! The dns check against a DNS server on loopback: answers, expected addresses, NXDOMAIN
//! and a server that never answers told apart.

mod support;

use std::net::IpAddr;

use pathwatch::probe::{Phase, ProbeResult, Reason};
use support::*;

async fn run(yaml: &str) -> ProbeResult {
    let cfg = config(yaml);
    probe_once(&cfg).await
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn resolves_to_the_expected_addresses() {
    let dns = spawn_dns(
        &[(
            "api-staging.example.test",
            &[ip("10.1.2.3"), ip("10.1.2.4")],
        )],
        &[],
    )
    .await;
    let yaml = format!(
        "checks:\n  - name: d\n    type: dns\n    target: api-staging.example.test\n    server: \"{dns}\"\n    record_type: A\n    expect_addresses: [10.1.2.4]\n"
    );
    let r = run(&yaml).await;
    assert!(r.success(), "{:?}", r.failure);
    assert_eq!(
        r.dns.clone().unwrap().addresses,
        vec![ip("10.1.2.3"), ip("10.1.2.4")]
    );
    assert!(r.phase(Phase::Resolve).is_some());
}

#[tokio::test]
async fn a_missing_expected_address_is_listed() {
    let dns = spawn_dns(&[("api.example.test", &[ip("10.9.9.9")])], &[]).await;
    let yaml = format!(
        "resolver:\n  nameservers: [\"{dns}\"]\nchecks:\n  - name: d\n    type: dns\n    target: api.example.test\n    record_type: A\n    expect_addresses: [10.1.2.3]\n"
    );
    let f = run(&yaml).await.failure.unwrap();
    assert_eq!(f.reason, Reason::Dns);
    assert_eq!(
        f.message,
        "`api.example.test` resolved to 10.9.9.9, missing expected 10.1.2.3"
    );
}

#[tokio::test]
async fn nxdomain_is_a_dns_failure() {
    let dns = spawn_dns(&[], &[]).await;
    let yaml = format!(
        "checks:\n  - name: d\n    type: dns\n    target: api.staging.example.test\n    server: \"{dns}\"\n"
    );
    let f = run(&yaml).await.failure.unwrap();
    assert_eq!(f.reason, Reason::Dns);
    assert_eq!(
        f.message,
        "`api.staging.example.test` does not exist (NXDOMAIN)"
    );
}

#[tokio::test]
async fn a_silent_server_is_a_timeout_in_resolve() {
    let dns = spawn_dns(&[], &["slow.example.test"]).await;
    let yaml = format!(
        "checks:\n  - name: d\n    type: dns\n    target: slow.example.test\n    server: \"{dns}\"\n    timeout: 500ms\n"
    );
    let f = run(&yaml).await.failure.unwrap();
    assert_eq!(f.reason, Reason::Timeout);
    assert_eq!(f.phase, Some(Phase::Resolve));
}
