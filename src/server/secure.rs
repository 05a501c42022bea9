//! The secured listener from the web config: TLS (optionally verifying client
//! certificates), basic auth over every endpoint, extra response headers. The web config
//! and the files it names are re-read when their checksum changes, so certificates rotate
//! without a restart; a bad new version is logged and the running one stays.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::config::web::{ClientAuth, TlsVersion, WebConfig};

/// What the listener enforces now.
pub struct Web {
    tls: Option<tokio_rustls::TlsAcceptor>,
    users: BTreeMap<String, String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Digests of credentials that passed: bcrypt is slow on purpose (tens of ms), and a
    /// scraper sends the same ones every few seconds.
    passed: Mutex<HashSet<[u8; 32]>>,
}

impl Web {
    /// No TLS, no users: what runs without `--web.config.file`.
    pub fn open() -> Web {
        Web {
            tls: None,
            users: BTreeMap::new(),
            headers: Vec::new(),
            passed: Mutex::default(),
        }
    }

    pub fn build(cfg: &WebConfig) -> Result<Web, String> {
        let tls = match &cfg.tls_server_config {
            None => None,
            Some(t) => {
                let chain: Vec<CertificateDer<'static>> = read_pem(&t.cert_file, |pem| {
                    CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()
                })?;
                if chain.is_empty() {
                    return Err(format!("{} holds no certificate", t.cert_file.display()));
                }
                let key = read_pem(&t.key_file, PrivateKeyDer::from_pem_slice)?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version {
                    Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
                    _ => rustls::DEFAULT_VERSIONS,
                };
                let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
                    .with_protocol_versions(versions)
                    .map_err(|e| format!("TLS settings: {e}"))?;
                let builder = match (t.client_auth_type, &t.client_ca_file) {
                    (ClientAuth::NoClientCert, _) | (_, None) => builder.with_no_client_auth(),
                    (auth, Some(ca)) => {
                        let mut roots = RootCertStore::empty();
                        for cert in read_pem(ca, |pem| {
                            CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()
                        })? {
                            roots
                                .add(cert)
                                .map_err(|e| format!("{}: {e}", ca.display()))?;
                        }
                        let verifier =
                            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                        let verifier = if auth == ClientAuth::VerifyClientCertIfGiven {
                            verifier.allow_unauthenticated()
                        } else {
                            verifier
                        };
                        builder.with_client_cert_verifier(
                            verifier
                                .build()
                                .map_err(|e| format!("{}: {e}", ca.display()))?,
                        )
                    }
                };
                let mut server = builder.with_single_cert(chain, key).map_err(|e| {
                    format!(
                        "{} and {} do not make a server certificate: {e}",
                        t.cert_file.display(),
                        t.key_file.display()
                    )
                })?;
                server.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
            }
        };
        let headers = cfg
            .http_server_config
            .headers
            .iter()
            .map(|(k, v)| {
                let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("{k}: {e}"))?;
                let value = HeaderValue::from_str(v).map_err(|e| format!("{k}: {e}"))?;
                Ok((name, value))
            })
            .collect::<Result<_, String>>()?;
        Ok(Web {
            tls,
            users: cfg.basic_auth_users.clone(),
            headers,
            passed: Mutex::default(),
        })
    }

    /// Whether the `Authorization` header names a user with the right password.
    fn admits(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| data_encoding::BASE64.decode(b.trim().as_bytes()).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
        else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        let digest: [u8; 32] = ring::digest::digest(
            &ring::digest::SHA256,
            format!("{user}\0{password}\0{hash}").as_bytes(),
        )
        .as_ref()
        .try_into()
        .unwrap_or([0; 32]);
        let mut passed = self.passed.lock().unwrap_or_else(PoisonError::into_inner);
        if passed.contains(&digest) {
            return true;
        }
        drop(passed);
        let ok = bcrypt::verify(&password, hash).unwrap_or(false);
        if ok {
            passed = self.passed.lock().unwrap_or_else(PoisonError::into_inner);
            // Bounded: a few users, each with one password at a time.
            if passed.len() > 1024 {
                passed.clear();
            }
            passed.insert(digest);
        }
        ok
    }
}

fn read_pem<T, E: std::fmt::Display>(
    file: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<T, String> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    parse(&pem).map_err(|e| format!("{} is not usable PEM: {e}", file.display()))
}

/// A checksum of files' bytes (None when one cannot be read).
pub fn checksum(files: &[PathBuf]) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in files {
        std::fs::read(f).ok()?.hash(&mut h);
    }
    Some(h.finish())
}

/// The web settings in force, swapped when the web config or its files change.
pub struct Guard {
    current: RwLock<Arc<Web>>,
    path: Option<PathBuf>,
    checksum: Mutex<Option<u64>>,
}

impl Guard {
    /// No web config: plain HTTP, no auth.
    pub fn open() -> Arc<Guard> {
        Arc::new(Guard {
            current: RwLock::new(Arc::new(Web::open())),
            path: None,
            checksum: Mutex::new(None),
        })
    }

    /// The web config at `path`; an error here stops the daemon at start.
    pub fn load(path: &Path) -> Result<Arc<Guard>, String> {
        let cfg = WebConfig::load(path).map_err(|e| e.to_string())?;
        let web = Web::build(&cfg)?;
        Ok(Arc::new(Guard {
            current: RwLock::new(Arc::new(web)),
            path: Some(path.to_path_buf()),
            checksum: Mutex::new(Self::sum(path, &cfg)),
        }))
    }

    fn sum(path: &Path, cfg: &WebConfig) -> Option<u64> {
        let mut files = vec![path.to_path_buf()];
        files.extend(cfg.files());
        checksum(&files)
    }

    pub fn web(&self) -> Arc<Web> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the web config and its files every `every` when their checksum changed.
    pub async fn watch(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let Some(path) = self.path.clone() else {
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let this = self.clone();
            let path = path.clone();
            let _ = tokio::task::spawn_blocking(move || this.refresh(&path)).await;
        }
    }

    fn refresh(&self, path: &Path) {
        let cfg = match WebConfig::load(path) {
            Ok(c) => c,
            Err(e) => {
                let sum = checksum(&[path.to_path_buf()]);
                let mut last = self.checksum.lock().unwrap_or_else(PoisonError::into_inner);
                if *last != sum {
                    *last = sum;
                    tracing::error!(error = %e, "Web config not reloaded; the running one stays.");
                }
                return;
            }
        };
        let sum = Self::sum(path, &cfg);
        let mut last = self.checksum.lock().unwrap_or_else(PoisonError::into_inner);
        if sum.is_none() || *last == sum {
            return;
        }
        *last = sum;
        match Web::build(&cfg) {
            Ok(web) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(web);
                tracing::info!(path = %path.display(), "Web config reloaded (TLS certificates, users, headers).");
            }
            Err(e) => {
                tracing::error!(error = %e, "Web config not reloaded; the running one stays.")
            }
        }
    }
}

/// Basic auth (when users are configured) and the configured headers, on every route.
pub async fn layer(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let web = guard.web();
    if !web.users.is_empty() {
        let authorization = req.headers().get(AUTHORIZATION).cloned();
        let check = web.clone();
        let ok = tokio::task::spawn_blocking(move || check.admits(authorization.as_ref()))
            .await
            .unwrap_or(false);
        if !ok {
            let mut r = (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response();
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"pathwatch\""),
            );
            return with_headers(r, &web);
        }
    }
    with_headers(next.run(req).await, &web)
}

fn with_headers(mut r: Response, web: &Web) -> Response {
    for (k, v) in &web.headers {
        r.headers_mut().insert(k.clone(), v.clone());
    }
    r
}

/// A plain or TLS connection.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Accepts TCP and, while the web config asks for TLS, completes each handshake in a task
/// of its own (bounded), so a client that never finishes one stalls nobody else.
pub struct SecureListener {
    ready: tokio::sync::mpsc::Receiver<(Box<dyn Io>, std::net::SocketAddr)>,
    addr: std::net::SocketAddr,
}

impl SecureListener {
    pub fn new(tcp: TcpListener, guard: Arc<Guard>) -> std::io::Result<SecureListener> {
        let addr = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel::<(Box<dyn Io>, std::net::SocketAddr)>(64);
        tokio::spawn(async move {
            loop {
                // The server went away (shutdown): let the port go at once, not at the
                // next connection.
                let accepted = tokio::select! {
                    a = tcp.accept() => a,
                    _ = tx.closed() => return,
                };
                let (tcp, peer): (TcpStream, _) = match accepted {
                    Ok(c) => c,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let Some(acceptor) = guard.web().tls.clone() else {
                    if tx.send((Box::new(tcp), peer)).await.is_err() {
                        return;
                    }
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((Box::new(tls), peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed."),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out."),
                    }
                });
            }
        });
        Ok(SecureListener { ready, addr })
    }
}

impl axum::serve::Listener for SecureListener {
    type Io = Box<dyn Io>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(conn) = self.ready.recv().await {
                return conn;
            }
            // The accept loop ended (the runtime is going away).
            std::future::pending::<()>().await;
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
