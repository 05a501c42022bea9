//! The tls check (and https in the http check) against servers presenting certificates made
//! by rcgen at test time: trust, expiry of leaf and intermediate, hostname coverage.

mod support;

use pathwatch::probe::{ProbeResult, Reason};
use pathwatch::verdict::{Status, assess};
use support::*;

/// A `tls` check of `name` (resolved to the test server via a loopback DNS server).
async fn probe_tls(
    pki: &Pki,
    name: &str,
    trust_test_ca: bool,
) -> (ProbeResult, pathwatch::config::Config) {
    let addr = spawn_tls(pki).await;
    let ca = pki.ca_file();
    let ca_line = if trust_test_ca {
        format!("    ca_file: {}\n", ca.path().display())
    } else {
        String::new()
    };
    let yaml = format!(
        "checks:\n  - name: cert\n    type: tls\n    target: 127.0.0.1:{}\n    server_name: {name}\n    timeout: 2s\n{ca_line}",
        addr.port()
    );
    let cfg = config(&yaml);
    let r = probe_once(&cfg).await;
    (r, cfg)
}

#[tokio::test]
async fn a_valid_chain_from_the_test_ca_passes_and_is_reported() {
    let pki = Pki::builder(&["api-staging.example.test"]).build();
    let (r, _) = probe_tls(&pki, "api-staging.example.test", true).await;
    assert!(r.success(), "{:?}", r.failure);
    let tls = r.tls.unwrap();
    assert!(tls.verified);
    assert_eq!(tls.version, "TLS 1.3");
    assert_eq!(tls.chain.len(), 2);
    assert_eq!(tls.chain[0].sans, vec!["api-staging.example.test"]);
    assert!(tls.chain[1].is_ca);
    assert_eq!(tls.chain[1].subject, "CN=pathwatch Test Intermediate CA");
    assert_eq!(tls.chain[0].fingerprint_sha256.len(), 64);
}

#[tokio::test]
async fn two_labels_under_a_one_label_wildcard_is_the_incident() {
    let pki = Pki::builder(&["*.example.test", "example.test"]).build();
    let (r, _) = probe_tls(&pki, "api.staging.example.test", true).await;
    let f = r.failure.clone().unwrap();
    assert_eq!(f.reason, Reason::TlsHostname);
    assert_eq!(
        f.message,
        "certificate is valid for *.example.test, example.test; a wildcard covers exactly one label, \
         so *.example.test does not cover api.staging.example.test (did you mean api-staging.example.test?)"
    );
    // The chain is still reported, so the user sees what was served.
    let tls = r.tls.unwrap();
    assert!(!tls.verified);
    assert_eq!(tls.chain[0].sans, vec!["*.example.test", "example.test"]);

    let (ok, _) = probe_tls(&pki, "api-staging.example.test", true).await;
    assert!(ok.success(), "{:?}", ok.failure);
}

#[tokio::test]
async fn a_wrong_hostname_suggests_the_closest_name() {
    let pki = Pki::builder(&["api-staging.example.test", "www.example.test"]).build();
    let (r, _) = probe_tls(&pki, "api-stagng.example.test", true).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsHostname);
    assert!(
        f.message.ends_with(
            "which does not cover api-stagng.example.test (did you mean api-staging.example.test?)"
        ),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn an_expired_leaf_is_named_with_its_date() {
    let pki = Pki::builder(&["svc.example.test"])
        .leaf_valid_days(-60, -3)
        .build();
    let (r, _) = probe_tls(&pki, "svc.example.test", true).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsExpired);
    assert!(
        f.message
            .starts_with("the leaf certificate 'CN=svc.example.test' expired 3 days ago"),
        "{}",
        f.message
    );
    assert!(r.tls.unwrap().earliest_expiry().is_some());
}

#[tokio::test]
async fn an_expired_intermediate_is_named() {
    let pki = Pki::builder(&["svc.example.test"])
        .intermediate_valid_days(-400, -10)
        .build();
    let (r, _) = probe_tls(&pki, "svc.example.test", true).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsExpired);
    assert!(
        f.message.starts_with(
            "the intermediate certificate 'CN=pathwatch Test Intermediate CA' expired 10 days ago"
        ),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn an_untrusted_chain_and_a_self_signed_certificate() {
    let pki = Pki::builder(&["svc.example.test"]).build();
    let (r, _) = probe_tls(&pki, "svc.example.test", false).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsUntrusted);
    assert_eq!(
        f.message,
        "the chain does not lead to a trusted CA: issuer 'CN=pathwatch Test Root CA' is not in the trust store (Mozilla roots)"
    );

    let pki = Pki::builder(&["svc.example.test"]).self_signed().build();
    let (r, _) = probe_tls(&pki, "svc.example.test", false).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsUntrusted);
    assert_eq!(
        f.message,
        "the certificate 'CN=svc.example.test' is self-signed and not in the trust store (Mozilla roots)"
    );
}

#[tokio::test]
async fn a_certificate_expiring_in_5_days_passes_but_warns() {
    let pki = Pki::builder(&["svc.example.test"])
        .leaf_valid_days(-80, 5)
        .build();
    let (r, cfg) = probe_tls(&pki, "svc.example.test", true).await;
    assert!(r.success(), "{:?}", r.failure);
    let mut thresholds = cfg.checks[0].thresholds;
    thresholds.cert_days_crit = 3;
    let verdict = assess(&r, &thresholds);
    assert_eq!(verdict.status, Status::Warn);
    assert_eq!(
        verdict.why.as_deref(),
        Some("certificate 'CN=svc.example.test' expires in 5 days (≤ 14-day warning threshold)")
    );
    // The default critical threshold is 7 days.
    assert_eq!(assess(&r, &cfg.checks[0].thresholds).status, Status::Crit);
}

#[tokio::test]
async fn a_plain_http_port_is_a_handshake_failure() {
    let addr = spawn_raw(|mut s| async move {
        use tokio::io::AsyncWriteExt;
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    })
    .await;
    let cfg = config(&format!(
        "checks:\n  - name: c\n    type: tls\n    target: {addr}\n    timeout: 2s\n"
    ));
    let r = probe_once(&cfg).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsHandshake);
    assert!(f.message.contains("TLS handshake with"), "{}", f.message);
}

#[tokio::test]
async fn https_checks_report_the_served_certificate() {
    let pki = Pki::builder(&["localhost"]).build();
    let addr = spawn_tls(&pki).await;
    let ca = pki.ca_file();
    let yaml = format!(
        "checks:\n  - name: h\n    type: http\n    target: https://localhost:{}/health\n    timeout: 2s\n    tls:\n      ca_file: {}\n    expect:\n      json:\n        - path: status\n          equals: ok\n",
        addr.port(),
        ca.path().display()
    );
    let cfg = config(&yaml);
    let r = probe_once(&cfg).await;
    assert!(r.success(), "{:?}", r.failure);
    assert!(r.http.as_ref().unwrap().tls);
    assert!(r.phase(pathwatch::probe::Phase::Tls).is_some());
    assert_eq!(r.tls.unwrap().chain[0].sans, vec!["localhost"]);

    // Without the test CA, the request is never sent and the chain is still reported.
    let yaml = format!(
        "checks:\n  - name: h\n    type: http\n    target: https://localhost:{}/health\n    timeout: 2s\n",
        addr.port()
    );
    let cfg = config(&yaml);
    let r = probe_once(&cfg).await;
    assert_eq!(r.failure.unwrap().reason, Reason::TlsUntrusted);
    assert!(r.http.is_none());
    assert!(r.tls.is_some());
}

/// A chain longer than webpki follows is named in words, not as the library's error value.
#[tokio::test]
async fn a_chain_too_long_to_verify_is_said_in_words() {
    let pki = Pki::builder(&["api.example.test"]).intermediates(8).build();
    let (r, _) = probe_tls(&pki, "api.example.test", true).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::TlsUntrusted);
    assert_eq!(
        f.message,
        "the certificate chain does not verify: the chain is longer than a verifier follows (more than 6 intermediates)"
    );
}

/// A TLS server (TLS 1.2 only, or 1.3 only) that requires a client certificate from
/// `client_ca`.
async fn spawn_mtls(server: &Pki, client_ca: &Pki, tls13: bool) -> std::net::SocketAddr {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(client_ca.root_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12]
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain.clone(), server.key.clone_key())
        .unwrap();
    spawn_tls_with(config).await
}

/// A server that requires a client certificate: named whether it refuses during the
/// handshake (TLS 1.2) or only after it (TLS 1.3); with `tls.cert_file`/`key_file` it passes.
#[tokio::test]
async fn a_server_that_requires_a_client_certificate_is_named_in_tls_12_and_13() {
    let server = Pki::builder(&["localhost"]).build();
    let clients = Pki::builder(&["pathwatch-client"]).build();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = clients.write_pem(dir.path(), "client");
    let ca = server.ca_file();
    for tls13 in [false, true] {
        let addr = spawn_mtls(&server, &clients, tls13).await;
        for (kind, target, tls_key) in [
            ("tls", format!("localhost:{}", addr.port()), ""),
            (
                "http",
                format!("https://localhost:{}/", addr.port()),
                "    tls:\n",
            ),
        ] {
            let indent = if tls_key.is_empty() { "    " } else { "      " };
            let base = format!(
                "checks:\n  - name: m\n    type: {kind}\n    target: {target}\n    timeout: 2s\n{tls_key}{indent}ca_file: {}\n",
                ca.path().display()
            );
            let f = probe_once(&config(&base)).await.failure.unwrap_or_else(|| {
                panic!(
                    "{kind} over TLS 1.{} passed without a client certificate",
                    if tls13 { 3 } else { 2 }
                )
            });
            assert_eq!(
                f.reason,
                Reason::TlsHandshake,
                "{kind} tls13={tls13}: {}",
                f.message
            );
            assert_eq!(
                f.message,
                "the server requires a client certificate (it asked for one in the handshake); configure tls.cert_file and tls.key_file"
            );
            let with_cert = format!(
                "{base}{indent}cert_file: {}\n{indent}key_file: {}\n",
                cert.display(),
                key.display()
            );
            let r = probe_once(&config(&with_cert)).await;
            assert!(
                r.success(),
                "{kind} tls13={tls13} with a client certificate: {:?}",
                r.failure
            );
        }
    }
}
