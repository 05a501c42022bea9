//! Certificates: the TLS client settings every probe shares, the post-handshake chain
//! verification (webpki) and its diagnosis: which certificate expired, which names a
//! certificate covers under RFC 6125 (a wildcard covers exactly one label) and which name
//! the user probably meant.

use std::sync::{Arc, LazyLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::result::{CertInfo, Failure, Reason, TlsInfo};
use crate::clock::{now_unix, rfc3339_secs as date};
use crate::config::{TlsVerify, Trust};

/// ALPN offered in the handshake.
#[derive(Debug, Clone, Copy)]
pub enum Alpn {
    None,
    Http1,
    /// HTTP/2 only (gRPC).
    H2,
    /// HTTP/2 if the server speaks it, else HTTP/1.1 (http checks with `enable_http2`).
    H2OrHttp1,
}

/// ring, with the SHA-256 suites offered first (AES-128-GCM before AES-256-GCM), as Go and
/// browsers do: SHA-256 runs on the CPU's SHA extensions where SHA-384 does not, and the
/// handshake hashes its transcript many times (SHA-384 was 4% of an HTTPS probe's CPU).
pub(crate) static PROVIDER: LazyLock<Arc<CryptoProvider>> = LazyLock::new(|| {
    let mut provider = rustls::crypto::ring::default_provider();
    use rustls::CipherSuite as C;
    let sha384 = [
        C::TLS13_AES_256_GCM_SHA384,
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ];
    provider
        .cipher_suites
        .sort_by_key(|s| sha384.contains(&s.suite()));
    Arc::new(provider)
});

static DEFAULT_ROOTS: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
    Arc::new(RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
});

fn build_client_config(alpn: Alpn) -> Arc<ClientConfig> {
    build_with_versions(alpn, rustls::DEFAULT_VERSIONS)
}

/// The shared settings, offering only `versions` (`tls_config.min_version`/`max_version`).
pub(crate) fn build_with_versions(
    alpn: Alpn,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(PROVIDER.clone())
        .with_protocol_versions(versions)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordOnly))
        .with_no_client_auth();
    // Every probe does a full handshake, so the tls phase measures one.
    config.resumption = rustls::client::Resumption::disabled();
    match alpn {
        Alpn::None => {}
        Alpn::Http1 => config.alpn_protocols = vec![b"http/1.1".to_vec()],
        Alpn::H2 => config.alpn_protocols = vec![b"h2".to_vec()],
        Alpn::H2OrHttp1 => config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    }
    Arc::new(config)
}

static CONFIG_NONE: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| build_client_config(Alpn::None));
static CONFIG_HTTP1: LazyLock<Arc<ClientConfig>> =
    LazyLock::new(|| build_client_config(Alpn::Http1));
static CONFIG_H2: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| build_client_config(Alpn::H2));
static CONFIG_H2_OR_HTTP1: LazyLock<Arc<ClientConfig>> =
    LazyLock::new(|| build_client_config(Alpn::H2OrHttp1));

pub fn client_config(alpn: Alpn) -> Arc<ClientConfig> {
    match alpn {
        Alpn::None => CONFIG_NONE.clone(),
        Alpn::Http1 => CONFIG_HTTP1.clone(),
        Alpn::H2 => CONFIG_H2.clone(),
        Alpn::H2OrHttp1 => CONFIG_H2_OR_HTTP1.clone(),
    }
}

/// Lets every chain through the handshake (handshake signatures are still verified), so
/// the chain can be recorded and then verified in [`inspect`] with a diagnosis. A probe
/// whose chain fails verification stops before sending anything.
#[derive(Debug)]
struct RecordOnly;

impl ServerCertVerifier for RecordOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &PROVIDER.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &PROVIDER.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        PROVIDER
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Records what the server presented and verifies it for `name`.
pub fn inspect(
    conn: &ClientConnection,
    name: &str,
    server_name: &ServerName<'static>,
    client: &TlsVerify,
) -> (TlsInfo, Result<(), Failure>) {
    let presented: &[CertificateDer<'static>] = conn.peer_certificates().unwrap_or(&[]);
    let chain: Vec<CertInfo> = presented.iter().filter_map(|c| parse_cert(c)).collect();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let verdict = check_chain(presented, &chain, name, server_name, client);
    let verified_chain_expiry = verdict
        .is_ok()
        .then(|| verified_chain_expiry(presented, &chain, &roots_of(client)))
        .flatten();
    let info = TlsInfo {
        server_name: name.to_string(),
        version,
        cipher,
        chain,
        verified: verdict.is_ok(),
        verified_chain_expiry,
    };
    (info, verdict)
}

/// The earliest notAfter of the chain that verified (leaf, the intermediates the path
/// used, and the root when the server sent it): blackbox_exporter's
/// `probe_ssl_last_chain_expiry_timestamp_seconds`. A presented certificate the path does
/// not use (an expiring cross-signed intermediate) does not count. With one intermediate
/// or none, the path is what was presented.
fn verified_chain_expiry(
    presented: &[CertificateDer<'_>],
    chain: &[CertInfo],
    roots: &RootCertStore,
) -> Option<i64> {
    let earliest = || chain.iter().map(|c| c.not_after).min();
    if presented.len() <= 2 {
        return earliest();
    }
    let (leaf, intermediates) = presented.split_first()?;
    let ee = webpki::EndEntityCert::try_from(leaf).ok()?;
    let path = ee
        .verify_for_usage(
            PROVIDER.signature_verification_algorithms.all,
            &roots.roots,
            intermediates,
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .ok()?;
    let used: Vec<CertificateDer<'_>> = path.intermediate_certificates().map(|c| c.der()).collect();
    presented
        .iter()
        .zip(chain)
        .filter(|(der, _)| *der == leaf || used.contains(der) || is_self_signed_root(der, roots))
        .map(|(_, info)| info.not_after)
        .min()
}

/// A presented certificate that is one of the trust anchors (servers sometimes send the root).
fn is_self_signed_root(der: &CertificateDer<'_>, roots: &RootCertStore) -> bool {
    webpki::anchor_from_trusted_cert(der).is_ok_and(|a| {
        roots.roots.iter().any(|r| {
            r.subject == a.subject && r.subject_public_key_info == a.subject_public_key_info
        })
    })
}

fn roots_of(client: &TlsVerify) -> Arc<RootCertStore> {
    match &client.trust {
        Trust::Mozilla => DEFAULT_ROOTS.clone(),
        Trust::Roots(roots) => roots.clone(),
        // Unresolved outside the app (no demo running here): nothing is trusted.
        Trust::Demo => Arc::new(RootCertStore::empty()),
    }
}

/// Verifies a presented chain (already parsed into `chain`) for `name`, and says what is
/// wrong when it does not verify.
pub fn check_chain(
    presented: &[CertificateDer<'_>],
    chain: &[CertInfo],
    name: &str,
    server_name: &ServerName<'_>,
    client: &TlsVerify,
) -> Result<(), Failure> {
    verify(presented, server_name, roots_of(client))
        .map_err(|e| diagnose(&e, chain, name, presented.len(), client.ca_file.is_some()))
}

fn verify(
    presented: &[CertificateDer<'_>],
    name: &ServerName<'_>,
    roots: Arc<RootCertStore>,
) -> Result<(), rustls::Error> {
    let Some((leaf, intermediates)) = presented.split_first() else {
        return Err(rustls::Error::NoCertificatesPresented);
    };
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, PROVIDER.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    verifier
        .verify_server_cert(leaf, intermediates, name, &[], UnixTime::now())
        .map(|_| ())
}

pub fn parse_cert(der: &CertificateDer<'_>) -> Option<CertInfo> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for gn in &ext.value.general_names {
            match gn {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Some(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        serial: cert.tbs_certificate.raw_serial_as_string(),
        fingerprint_sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.is_ca(),
    })
}

fn ip_from_bytes(b: &[u8]) -> Option<std::net::IpAddr> {
    match b.len() {
        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

fn role(i: usize) -> &'static str {
    if i == 0 { "leaf" } else { "intermediate" }
}

/// Turns a verification error into a reason and a message that says what to fix.
fn diagnose(
    err: &rustls::Error,
    chain: &[CertInfo],
    name: &str,
    presented: usize,
    custom_ca: bool,
) -> Failure {
    let now = now_unix();
    let name_problem = chain
        .first()
        .filter(|leaf| !name_covered(name, &leaf.sans))
        .map(|leaf| hostname_message(name, &leaf.sans));

    if chain.len() < presented {
        return Failure::new(
            Reason::TlsUntrusted,
            "the server sent a certificate that cannot be parsed",
        );
    }
    // An out-of-date certificate is the most specific cause, whatever webpki tripped on first.
    for (i, c) in chain.iter().enumerate() {
        let what = if c.not_after < now {
            Some(format!(
                "expired {} days ago ({})",
                (now - c.not_after) / 86_400,
                date(c.not_after)
            ))
        } else if c.not_before > now {
            Some(format!("is not valid until {}", date(c.not_before)))
        } else {
            None
        };
        if let Some(what) = what {
            let mut msg = format!("the {} certificate {} {what}", role(i), quoted(&c.subject));
            if let Some(p) = &name_problem {
                msg.push_str(&format!("; also: {p}"));
            }
            return Failure::new(Reason::TlsExpired, msg);
        }
    }
    let rustls::Error::InvalidCertificate(cert_err) = err else {
        let why = match err {
            rustls::Error::NoCertificatesPresented => "the server presented no certificate".into(),
            other => format!(
                "the certificate was rejected ({})",
                words(&other.to_string())
            ),
        };
        return Failure::new(Reason::TlsUntrusted, why);
    };
    match cert_err {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Failure::new(
                Reason::TlsHostname,
                name_problem.unwrap_or_else(|| format!("certificate does not cover `{name}`")),
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => Failure::new(
            Reason::TlsExpired,
            "a certificate between the server's chain and the trust anchor has expired",
        ),
        CertificateError::UnknownIssuer => {
            let store = if custom_ca {
                "the configured ca_file"
            } else {
                "the trust store (Mozilla roots)"
            };
            let mut msg = match chain {
                [only] if only.subject == only.issuer => {
                    format!(
                        "the certificate {} is self-signed and not in {store}",
                        quoted(&only.subject)
                    )
                }
                _ => {
                    let top = chain.last().map(|c| c.issuer.as_str()).unwrap_or("?");
                    format!(
                        "the chain does not lead to a trusted CA: issuer {} is not in {store}",
                        quoted(top)
                    )
                }
            };
            if let Some(p) = &name_problem {
                msg.push_str(&format!("; also: {p}"));
            }
            Failure::new(Reason::TlsUntrusted, msg)
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            let from = chain
                .iter()
                .max_by_key(|c| c.not_before)
                .map(|c| format!(" (valid from {}; is a clock wrong?)", date(c.not_before)))
                .unwrap_or_default();
            Failure::new(
                Reason::TlsExpired,
                format!("a certificate in the chain is not valid yet{from}"),
            )
        }
        other => Failure::new(Reason::TlsUntrusted, rejected(other)),
    }
}

/// Why webpki refused a chain, in words (never the library's Debug text).
fn rejected(e: &CertificateError) -> String {
    let why = match e {
        CertificateError::BadEncoding => "a certificate is not valid DER".into(),
        CertificateError::Revoked => "a certificate in the chain is revoked".into(),
        CertificateError::BadSignature => "a signature in the chain does not verify".into(),
        CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "a certificate is signed with an algorithm pathwatch does not accept".into()
        }
        CertificateError::UnhandledCriticalExtension => {
            "a certificate has a critical extension pathwatch does not understand".into()
        }
        CertificateError::Other(other) => {
            let text = other.to_string();
            if text.contains("MaximumPathDepthExceeded") {
                "the chain is longer than a verifier follows (more than 6 intermediates)".into()
            } else if text.contains("MaximumSignatureChecksExceeded")
                || text.contains("MaximumPathBuildCallsExceeded")
            {
                "the chain offers too many candidate paths to verify".into()
            } else if text.contains("CaUsedAsEndEntity") {
                "the server's certificate is a CA certificate".into()
            } else if text.contains("EndEntityUsedAsCa") {
                "a certificate that is not a CA signs another one".into()
            } else if text.contains("RequiredEkuNotFound") {
                "the certificate is not issued for TLS servers (extended key usage)".into()
            } else if text.contains("NameConstraintViolation") {
                "the name is outside what an issuing CA may certify (name constraints)".into()
            } else {
                words(&text)
            }
        }
        other => words(&format!("{other:?}")),
    };
    format!("the certificate chain does not verify: {why}")
}

/// `OtherError(MaximumPathDepthExceeded)` -> `maximum path depth exceeded`: the last
/// identifier of a library's error text, as words.
pub(crate) fn words(text: &str) -> String {
    let ident = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .rfind(|t| !t.is_empty())
        .unwrap_or("unknown");
    let mut out = String::new();
    for (i, ch) in ident.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

fn quoted(s: &str) -> String {
    format!("'{s}'")
}

/// RFC 6125: exact match, or `*.rest` covering exactly one extra leftmost label.
pub fn name_covered(name: &str, sans: &[String]) -> bool {
    sans.iter().any(|san| san_covers(san, name))
}

fn san_covers(san: &str, name: &str) -> bool {
    let san = san.trim_end_matches('.').to_ascii_lowercase();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    match san.strip_prefix("*.") {
        Some(base) => name
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == base),
        None => san == name,
    }
}

/// Says which names the certificate covers, why `name` is not one of them, and the
/// closest name that would be.
pub fn hostname_message(name: &str, sans: &[String]) -> String {
    let listed = if sans.is_empty() {
        "no names (no subjectAltName)".to_string()
    } else {
        sans.join(", ")
    };
    let lname = name.trim_end_matches('.').to_ascii_lowercase();
    let mut msg = format!("certificate is valid for {listed}");
    // A wildcard whose base the name sits under, but more than one label deep.
    let deep = sans.iter().find_map(|san| {
        let base = san.strip_prefix("*.")?.to_ascii_lowercase();
        let prefix = lname.strip_suffix(&format!(".{base}"))?;
        prefix
            .contains('.')
            .then(|| (san.clone(), format!("{}.{base}", prefix.replace('.', "-"))))
    });
    if let Some((wildcard, suggestion)) = deep {
        msg.push_str(&format!(
            "; a wildcard covers exactly one label, so {wildcard} does not cover {name} (did you mean {suggestion}?)"
        ));
        return msg;
    }
    msg.push_str(&format!(", which does not cover {name}"));
    let closest = sans
        .iter()
        .filter(|s| !s.starts_with("*."))
        .map(|s| (strsim::levenshtein(&lname, &s.to_ascii_lowercase()), s))
        .min();
    if let Some((distance, s)) = closest
        && distance <= (lname.len() / 3).max(2)
    {
        msg.push_str(&format!(" (did you mean {s}?)"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        let s = sans(&["*.example.ai"]);
        assert!(name_covered("api-staging.example.ai", &s));
        assert!(name_covered("API-STAGING.example.ai.", &s));
        assert!(!name_covered("api.staging.example.ai", &s));
        assert!(!name_covered("example.ai", &s));
    }

    #[test]
    fn the_incident_gets_its_fix_suggested() {
        let msg = hostname_message(
            "api.staging.example.ai",
            &sans(&["*.example.ai", "example.ai"]),
        );
        assert_eq!(
            msg,
            "certificate is valid for *.example.ai, example.ai; a wildcard covers exactly one label, \
             so *.example.ai does not cover api.staging.example.ai (did you mean api-staging.example.ai?)"
        );
    }

    #[test]
    fn a_typo_gets_the_closest_name() {
        let msg = hostname_message(
            "api-stagin.example.ai",
            &sans(&["api-staging.example.ai", "www.other.org"]),
        );
        assert!(
            msg.ends_with("(did you mean api-staging.example.ai?)"),
            "{msg}"
        );
        let msg = hostname_message("totally.different.org", &sans(&["api-staging.example.ai"]));
        assert!(!msg.contains("did you mean"), "{msg}");
    }
}
