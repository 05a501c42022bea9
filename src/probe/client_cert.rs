//! Client certificates: the settings of one handshake answer a server's request for a
//! client certificate with the configured one (mutual TLS) and remember that it asked, so a
//! server that requires one is named instead of failing obscurely (in TLS 1.3 it refuses
//! only after the handshake).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::{ClientConfig, SignatureScheme};

use super::certs::{Alpn, PROVIDER, build_with_versions, client_config};
use super::result::{Failure, Reason};
use crate::config::TlsVerify;

/// The client settings of one handshake: the shared ones, plus a record of whether the
/// server asked for a client certificate (and the configured one to answer with).
pub fn client_config_for(
    alpn: Alpn,
    client: &TlsVerify,
) -> Result<(Arc<ClientConfig>, Arc<ClientAuth>), Failure> {
    let cert = match &client.client_cert {
        None => None,
        Some(c) => {
            let key = PROVIDER
                .key_provider
                .load_private_key(c.key.clone_key())
                .map_err(|_| {
                    Failure::new(
                        Reason::TlsHandshake,
                        "the client key (tls.key_file) is of a kind pathwatch cannot sign with",
                    )
                })?;
            Some(Arc::new(rustls::sign::CertifiedKey::new(
                c.chain.clone(),
                key,
            )))
        }
    };
    let auth = Arc::new(ClientAuth {
        cert,
        asked: AtomicBool::new(false),
    });
    use crate::config::spec::tls::TlsVersion;
    let shared = match (client.min_version, client.max_version) {
        (Some(TlsVersion::Tls13), _) => build_with_versions(alpn, &[&rustls::version::TLS13]),
        (_, Some(TlsVersion::Tls12)) => build_with_versions(alpn, &[&rustls::version::TLS12]),
        _ => client_config(alpn),
    };
    let mut config = (*shared).clone();
    config.client_auth_cert_resolver = auth.clone();
    Ok((Arc::new(config), auth))
}

/// Answers a server's request for a client certificate, and remembers that it asked.
#[derive(Debug)]
pub struct ClientAuth {
    cert: Option<Arc<rustls::sign::CertifiedKey>>,
    asked: AtomicBool,
}

impl ClientAuth {
    /// The server asked for a client certificate and none is configured.
    pub fn asked_in_vain(&self) -> bool {
        self.asked.load(Ordering::Relaxed) && self.cert.is_none()
    }
}

impl rustls::client::ResolvesClientCert for ClientAuth {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.cert.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// What a probe says when the server wants a client certificate it did not get.
pub fn client_cert_required() -> Failure {
    Failure::new(
        Reason::TlsHandshake,
        "the server requires a client certificate (it asked for one in the handshake); configure tls.cert_file and tls.key_file",
    )
}
