//! Certificates for the demo's TLS port, made at start: a CA that exists only in memory
//! (and in the PEM file `demo-backend --ca-out` writes) and a leaf for `localhost`,
//! `127.0.0.1` and `::1`, valid 90 days, like a freshly issued ACME certificate.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// Names on the demo's leaf certificate.
/// `*.demo.test` is the wildcard of the incident: the demo frontend's `wrong-host` fault
/// points its socket at `api.staging.demo.test`, two labels under it.
pub const DEMO_TLS_NAMES: [&str; 5] = ["localhost", "127.0.0.1", "::1", "demo.test", "*.demo.test"];

/// The demo's generated PKI: the CA to trust (`ca_file: demo`) and the server settings.
pub struct DemoPki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    pub roots: Arc<RootCertStore>,
    pub server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for DemoPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DemoPki")
    }
}

impl DemoPki {
    pub fn generate() -> Result<DemoPki, String> {
        let err = |e: rcgen::Error| format!("cannot make the demo certificates: {e}");
        let now = OffsetDateTime::now_utc();
        let ca = ca_params(
            "pathwatch demo CA",
            now - Duration::hours(1),
            now + Duration::days(365),
        )
        .map_err(err)?;
        let ca_key = KeyPair::generate().map_err(err)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca, ca_key);

        let names: Vec<String> = DEMO_TLS_NAMES.iter().map(|n| n.to_string()).collect();
        let leaf =
            leaf_params(&names, now - Duration::hours(1), now + Duration::days(90)).map_err(err)?;
        let leaf_key = KeyPair::generate().map_err(err)?;
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(err)?;

        let mut roots = RootCertStore::empty();
        roots
            .add(ca_cert.der().clone())
            .map_err(|e| format!("demo CA: {e}"))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let server = server_config(vec![leaf_cert.der().clone()], key)
            .map_err(|e| format!("demo TLS settings: {e}"))?;
        Ok(DemoPki {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            roots: Arc::new(roots),
            server: Arc::new(server),
        })
    }
}

/// A CA certificate's parameters: `cn`, valid from `not_before` to `not_after`, allowed to
/// sign certificates (and intermediates below it).
pub fn ca_params(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, cn);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    Ok(ca)
}

/// A server certificate's parameters: `names` as SANs (the first is also the CN).
pub fn leaf_params(
    names: &[String],
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, rcgen::Error> {
    let mut leaf = CertificateParams::new(names.to_vec())?;
    let cn = names.first().cloned().unwrap_or_default();
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.not_before = not_before;
    leaf.not_after = not_after;
    Ok(leaf)
}

/// A TLS server presenting `chain` (leaf first) with `key`, speaking HTTP/1.1.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(server)
}

/// The demo over TLS (wss://, https://): TCP accept, then the TLS handshake, bounded so a
/// client that never finishes it cannot stall the others for long.
pub struct TlsListener {
    pub tcp: tokio::net::TcpListener,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), handshake).await
            {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
