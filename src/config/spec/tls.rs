//! Certificate verification settings: `type: tls`, and the `tls:` key of the others.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::{Context, Problems};
use crate::config::yaml;

/// Certificate verification settings (the `tls:` key of http checks, and `type: tls` itself).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsVerify {
    /// PEM file of CA certificates to trust instead of the built-in Mozilla roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to send as SNI and verify the certificate against (default: the target host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Report the certificate but do not fail the probe when it does not verify.
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// A client certificate (PEM chain, leaf first) and its key, for servers that ask for
    /// one (mutual TLS). Both or neither.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Oldest and newest TLS version offered: `TLS12` or `TLS13` (default: both).
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    #[serde(default)]
    pub max_version: Option<TlsVersion>,
    /// What `ca_file` says to trust, read when the config loads.
    #[serde(skip)]
    pub trust: Trust,
    /// The certificates of `ca_file` as read (a browser's NSS database is filled from
    /// them; a trust store keeps only their anchors).
    #[serde(skip)]
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// `cert_file` and `key_file`, read when the config loads.
    #[serde(skip)]
    pub client_cert: Option<Arc<ClientCert>>,
}

/// A TLS version as the exporter toolkit writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TryFrom<String> for TlsVersion {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            "TLS10" | "TLS11" => Err(format!(
                "`{s}`: TLS 1.0 and 1.1 are not offered (deprecated by RFC 8996; pathwatch's TLS library, rustls, does not implement them); use TLS12 or TLS13"
            )),
            _ => Err(format!("`{s}` is not a TLS version (TLS12 or TLS13)")),
        }
    }
}

/// A client certificate chain and its private key (never printed).
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCert({} certificates, key)", self.chain.len())
    }
}

/// The trust anchors of a check: data, not a TLS client (the probe builds that).
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// The built-in Mozilla roots (no `ca_file`).
    #[default]
    Mozilla,
    /// The CA certificates of `ca_file`.
    Roots(Arc<RootCertStore>),
    /// `ca_file: demo`: the demo backend's CA, which exists only once the app has made it
    /// (the app resolves this marker into [`Trust::Roots`] when it starts the demo).
    Demo,
}

impl TlsVerify {
    /// The CA and client certificate files read the same as `other`'s (a reload re-reads
    /// them: a rotated file makes the check a changed one).
    pub fn same_files(&self, other: &TlsVerify) -> bool {
        let roots_same = match (&self.trust, &other.trust) {
            (Trust::Roots(a), Trust::Roots(b)) => a.roots == b.roots,
            (Trust::Mozilla, Trust::Mozilla) | (Trust::Demo, Trust::Demo) => true,
            // `ca_file: demo` resolved against unresolved: the same file text.
            _ => self.ca_file == other.ca_file,
        };
        let cert_same = match (&self.client_cert, &other.client_cert) {
            (Some(a), Some(b)) => a.chain == b.chain && a.key.secret_der() == b.key.secret_der(),
            (None, None) => true,
            _ => false,
        };
        roots_same && cert_same
    }

    pub(crate) fn validate(&mut self, path: &str, ctx: &Context<'_>, out: &mut Problems) {
        if let (Some(lo), Some(hi)) = (self.min_version, self.max_version)
            && lo > hi
        {
            out.value(
                yaml::child(path, "min_version"),
                "min_version is newer than max_version: no version is left",
            );
        }
        if let Some(name) = &self.server_name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            out.value(
                yaml::child(path, "server_name"),
                format!("`{name}` is not a valid server name"),
            );
        }
        if self.ca_file.as_deref() == Some(Path::new("demo")) {
            self.trust = Trust::Demo;
            if !ctx.demo_tls {
                out.value(
                    yaml::child(path, "ca_file"),
                    "`ca_file: demo` trusts the demo backend's certificate; it needs `demo.tls_listen`",
                );
            }
        } else if let Some(file) = &self.ca_file {
            match load_roots(&ctx.base_dir.join(file)) {
                Ok((roots, certs)) => {
                    self.trust = Trust::Roots(Arc::new(roots));
                    self.ca_certs = certs;
                }
                Err(e) => out.value(yaml::child(path, "ca_file"), e),
            }
        }
        match (&self.cert_file, &self.key_file) {
            (None, None) => {}
            (Some(cert), Some(key)) => {
                match load_client_cert(&ctx.base_dir.join(cert), &ctx.base_dir.join(key)) {
                    Ok(c) => self.client_cert = Some(Arc::new(c)),
                    Err(e) => out.value(yaml::child(path, "cert_file"), e),
                }
            }
            (Some(_), None) => out.value(
                yaml::child(path, "cert_file"),
                "a client certificate needs `key_file` too",
            ),
            (None, Some(_)) => out.value(
                yaml::child(path, "key_file"),
                "a client key needs `cert_file` too",
            ),
        }
    }
}

/// Reads a PEM file of CA certificates into a trust store.
pub fn load_roots(file: &Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut roots = RootCertStore::empty();
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{} is not valid PEM: {e}", file.display()))?;
        certs.push(cert.clone());
        roots.add(cert).map_err(|e| {
            format!(
                "{} holds a certificate that cannot be a trust anchor: {e}",
                file.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no PEM certificate", file.display()));
    }
    Ok((roots, certs))
}

/// Reads a client certificate chain and its key (PEM).
fn load_client_cert(cert: &Path, key: &Path) -> Result<ClientCert, String> {
    let pem = std::fs::read(cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not valid PEM: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let pem = std::fs::read(key).map_err(|e| format!("cannot read {}: {e}", key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| format!("{} holds no PEM private key", key.display()))?;
    Ok(ClientCert { chain, key })
}
