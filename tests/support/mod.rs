//! Test fixtures: real servers on 127.0.0.1:0 (HTTP via axum, raw TCP behaviours, TLS with
//! certificates made by rcgen at test time) and a DNS server on loopback.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, rdata};
use pathwatch::config::Config;
use pathwatch::demo::tls as demo_tls;
use rcgen::{CertificateParams, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Parses a config from text, panicking with every error (tests write valid configs).
pub fn config(yaml: &str) -> Config {
    Config::from_str(yaml, "test.yaml", &|_| None).unwrap_or_else(|e| panic!("config errors:\n{e}"))
}

pub async fn spawn_app(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    addr
}

/// A server that hands each accepted connection to `handle`.
pub async fn spawn_raw<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream));
        }
    });
    addr
}

/// Reads until the end of the request head.
pub async fn read_head(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An address where nothing listens (bound, then closed).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

// ---------------------------------------------------------------- TLS

/// How the test PKI should be built: root CA -> intermediate -> leaf.
pub struct PkiBuilder {
    names: Vec<String>,
    leaf_days: (i64, i64),
    intermediate_days: (i64, i64),
    intermediates: usize,
    self_signed: bool,
}

/// Certificates for one test server, and the PEM of the root to trust.
pub struct Pki {
    pub root_pem: String,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn builder(names: &[&str]) -> PkiBuilder {
        PkiBuilder {
            names: names.iter().map(|s| s.to_string()).collect(),
            leaf_days: (-1, 90),
            intermediate_days: (-30, 365),
            intermediates: 1,
            self_signed: false,
        }
    }

    /// Writes the chain (leaf first) and key as PEM to `dir/NAME.crt` and `dir/NAME.key`.
    pub fn write_pem(&self, dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let chain: String = self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
        std::fs::write(&cert, chain).unwrap();
        std::fs::write(&key, pem("PRIVATE KEY", self.key.secret_der())).unwrap();
        (cert, key)
    }

    /// Writes the root CA to a temp file for `ca_file:`.
    pub fn ca_file(&self) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, self.root_pem.as_bytes()).unwrap();
        f
    }
}

/// DER as PEM.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = data_encoding::BASE64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn days(d: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc()
        + time::Duration::days(d)
        + time::Duration::minutes(if d > 0 { 5 } else { 0 })
}

fn ca_params(cn: &str, validity: (i64, i64)) -> CertificateParams {
    demo_tls::ca_params(cn, days(validity.0), days(validity.1)).unwrap()
}

impl PkiBuilder {
    pub fn leaf_valid_days(mut self, from: i64, to: i64) -> Self {
        self.leaf_days = (from, to);
        self
    }
    pub fn intermediate_valid_days(mut self, from: i64, to: i64) -> Self {
        self.intermediate_days = (from, to);
        self
    }
    /// Intermediates between the root and the leaf (default 1).
    pub fn intermediates(mut self, n: usize) -> Self {
        self.intermediates = n;
        self
    }
    pub fn self_signed(mut self) -> Self {
        self.self_signed = true;
        self
    }

    pub fn build(self) -> Pki {
        let leaf =
            demo_tls::leaf_params(&self.names, days(self.leaf_days.0), days(self.leaf_days.1))
                .unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        if self.self_signed {
            let cert = leaf.self_signed(&leaf_key).unwrap();
            return Pki {
                root_pem: cert.pem(),
                chain: vec![cert.der().clone()],
                key,
            };
        }
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca_params("pathwatch Test Root CA", (-365, 3650));
        let root = root_params.self_signed(&root_key).unwrap();
        let root_issuer = Issuer::new(root_params, root_key);
        let mut issuer = root_issuer;
        let mut intermediates = Vec::new();
        for i in 0..self.intermediates {
            let int_key = KeyPair::generate().unwrap();
            let cn = match i {
                0 => "pathwatch Test Intermediate CA".to_string(),
                n => format!("pathwatch Test Intermediate CA {n}"),
            };
            let int_params = ca_params(&cn, self.intermediate_days);
            let int = int_params.signed_by(&int_key, &issuer).unwrap();
            intermediates.insert(0, int.der().clone());
            issuer = Issuer::new(int_params, int_key);
        }
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let mut chain = vec![leaf_cert.der().clone()];
        chain.extend(intermediates);
        Pki {
            root_pem: root.pem(),
            chain,
            key,
        }
    }
}

/// The demo backend on 127.0.0.1:0, served as the daemon serves it.
pub async fn spawn_demo(demo: pathwatch::demo::DemoBackend) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    demo.spawn(listener, None);
    addr
}

/// The demo backend over TLS on 127.0.0.1:0 with `server`'s certificate.
pub async fn spawn_tls_demo(
    server: Arc<rustls::ServerConfig>,
    demo: pathwatch::demo::DemoBackend,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    demo.spawn(listener, Some(server));
    addr
}

/// A TLS server on 127.0.0.1:0 presenting `pki`'s chain; it answers any HTTP request with
/// `200 {"status":"ok"}`.
pub async fn spawn_tls(pki: &Pki) -> SocketAddr {
    let config = demo_tls::server_config(pki.chain.clone(), pki.key.clone_key()).unwrap();
    spawn_tls_with(config).await
}

/// [`spawn_tls`] with TLS settings of the test's own (versions, client certificates).
pub async fn spawn_tls_with(config: rustls::ServerConfig) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = [0u8; 4096];
                if tls.read(&mut buf).await.unwrap_or(0) > 0 {
                    let body = r#"{"status":"ok"}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(resp.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

// ---------------------------------------------------------------- DNS

/// A DNS server on 127.0.0.1:0 (UDP) that answers `records`, stays silent for `silent`
/// names, and answers NXDOMAIN for everything else.
pub async fn spawn_dns(records: &[(&str, &[IpAddr])], silent: &[&str]) -> SocketAddr {
    spawn_dns_live(records, silent, 60).await.0
}

/// Answers a DNS server gives, changeable while it runs.
pub type DnsRecords = std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<IpAddr>>>>;

fn dns_name(n: &str) -> String {
    n.trim_end_matches('.').to_ascii_lowercase()
}

/// Changes the answer for `name` of a [`spawn_dns_live`] server.
pub fn set_dns(records: &DnsRecords, name: &str, addrs: &[IpAddr]) {
    records
        .lock()
        .unwrap()
        .insert(dns_name(name), addrs.to_vec());
}

/// [`spawn_dns`] with answers of `ttl` seconds that can change while it runs.
pub async fn spawn_dns_live(
    records: &[(&str, &[IpAddr])],
    silent: &[&str],
    ttl: u32,
) -> (SocketAddr, DnsRecords) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let norm = dns_name;
    let shared: DnsRecords = std::sync::Arc::new(std::sync::Mutex::new(
        records.iter().map(|(n, a)| (norm(n), a.to_vec())).collect(),
    ));
    let records = shared.clone();
    let silent: Vec<String> = silent.iter().map(|n| norm(n)).collect();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(q) = query.queries.first().cloned() else {
                continue;
            };
            let name = norm(&q.name().to_string());
            if silent.contains(&name) {
                continue;
            }
            let mut resp = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
            resp.metadata.recursion_desired = query.metadata.recursion_desired;
            resp.metadata.recursion_available = true;
            resp.add_query(q.clone());
            let answer = records.lock().unwrap().get(&name).cloned();
            match answer {
                Some(addrs) => {
                    for a in &addrs {
                        let data = match (a, q.query_type()) {
                            (IpAddr::V4(v4), hickory_proto::rr::RecordType::A) => {
                                RData::A(rdata::A(*v4))
                            }
                            (IpAddr::V6(v6), hickory_proto::rr::RecordType::AAAA) => {
                                RData::AAAA(rdata::AAAA(*v6))
                            }
                            _ => continue,
                        };
                        resp.add_answer(Record::from_rdata(q.name().clone(), ttl, data));
                    }
                }
                None => resp.metadata.response_code = ResponseCode::NXDomain,
            }
            if let Ok(bytes) = resp.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    (addr, shared)
}

/// Runs `f` and returns how long it took, for deadline checks.
pub async fn timed<T>(f: impl Future<Output = T>) -> (T, Duration) {
    let start = std::time::Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

/// Runs the first check of `cfg` once with a fresh prober.
pub async fn probe_once(cfg: &Config) -> pathwatch::probe::ProbeResult {
    let c = &cfg.checks[0];
    pathwatch::probe::Prober::new(&cfg.resolver, cfg.secrets.clone())
        .unwrap()
        .run(&c.target, &c.spec, c.timeout)
        .await
}

// ---------------------------------------------------------------- daemon

/// A daemon running in-process on 127.0.0.1:0.
pub struct Daemon {
    pub base: String,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn start(yaml: &str) -> Daemon {
    start_with(yaml, pathwatch::app::RunOptions::default()).await
}

/// [`start`] with reload and web config options.
pub async fn start_with(yaml: &str, options: pathwatch::app::RunOptions) -> Daemon {
    let cfg = config(yaml);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pathwatch::app::run_with(cfg, options, listener, async {
        let _ = rx.await;
    }));
    Daemon {
        base,
        stop: Some(tx),
        task,
    }
}

/// A minimal HTTP GET over a fresh connection (the probe code is what is under test, so
/// the test does not reuse it).
pub async fn get_text(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    // HTTP/1.0: the answer is never chunked (the body ends with the connection).
    let req = format!("GET {path} HTTP/1.0\r\nhost: {host}\r\n{extra}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The body of a GET as bytes (an image), over a fresh HTTP/1.0 connection.
#[allow(dead_code)]
pub async fn get_bytes(url: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!("GET /{path} HTTP/1.0\r\nhost: {host}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    buf.split_off(end + 4)
}

/// An HTTP/1.1 request with hyper over a fresh connection: (status, body). For talking to
/// real programs (Prometheus, Alertmanager) whose answers may be chunked.
pub async fn http(method: &str, url: &str, body: Option<String>) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    let uri: hyper::Uri = url.parse().unwrap();
    let host = uri.authority().unwrap().to_string();
    let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
        .header("host", host);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[allow(dead_code)]
pub fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok()
}

/// Starts a program that is killed when the returned handle drops.
#[allow(dead_code)]
pub fn run_program(program: &str, args: &[String]) -> tokio::process::Child {
    tokio::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

#[allow(dead_code)]
pub async fn wait_http(url: &str) {
    for _ in 0..300 {
        let host = url.trim_start_matches("http://");
        let host = host.split('/').next().unwrap();
        if tokio::net::TcpStream::connect(host).await.is_ok()
            && http("GET", url, None).await.0 == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered");
}

#[allow(dead_code)]
pub async fn query(prom: &str, q: &str) -> Value {
    let url = format!(
        "{prom}/api/v1/query?query={}",
        url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
    );
    let (_, body) = http("GET", &url, None).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{q}: {e}: {body}"))
}

/// The daemon binary on a config file, with its log collected.
#[allow(dead_code)]
pub struct Binary {
    pub child: tokio::process::Child,
    pub base: String,
    log: Arc<Mutex<String>>,
}

#[allow(dead_code)]
impl Binary {
    pub async fn start(path: &Path, extra: &[&str]) -> Binary {
        Binary::start_env(path, extra, &[]).await
    }

    /// [`Binary::start`] with environment variables (secrets for `${…}`).
    pub async fn start_env(path: &Path, extra: &[&str], env: &[(&str, &str)]) -> Binary {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
            .args(["run", "--log-format", "json", "--config"])
            .arg(path)
            .args(extra)
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("pathwatch is running.")
                    && let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Some(addr) = v["fields"]["addr"].as_str()
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .expect("the daemon starts")
            .unwrap();
        Binary {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().unwrap().to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    pub async fn checks(&self) -> Vec<Value> {
        let (_, body) = get_text(&format!("{}/api/v1/checks", self.base), &[]).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        v["checks"].as_array().unwrap().clone()
    }

    pub async fn check(&self, name: &str) -> Option<Value> {
        self.checks().await.into_iter().find(|c| c["name"] == name)
    }

    /// Waits until `check` is in `state` (10 s).
    pub async fn wait(&self, name: &str, state: &str) -> Value {
        self.wait_within(name, state, 200).await
    }

    /// [`Binary::wait`] for up to 30 s (browser runs take seconds).
    pub async fn wait_long(&self, name: &str, state: &str) -> Value {
        self.wait_within(name, state, 600).await
    }

    async fn wait_within(&self, name: &str, state: &str, polls: usize) -> Value {
        for _ in 0..polls {
            if let Some(c) = self.check(name).await
                && c["state"] == state
            {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{name} never became {state}: {:?}", self.check(name).await);
    }

    pub async fn metrics(&self) -> String {
        get_text(&format!("{}/metrics", self.base), &[]).await.1
    }

    pub async fn reload(&self, method: &str) -> (u16, String) {
        http(method, &format!("{}/-/reload", self.base), None).await
    }

    pub async fn stop(mut self) -> String {
        self.signal("-TERM");
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exits after SIGTERM")
            .unwrap();
        assert_eq!(status.code(), Some(0), "{}", self.log());
        self.log()
    }
}

// ---------------------------------------------------------------- Alertmanager webhooks

/// Notifications the webhook receiver got: (path, body, when).
pub type Inbox = Arc<Mutex<Vec<(String, Value, std::time::Instant)>>>;

pub async fn receiver() -> (std::net::SocketAddr, Inbox) {
    let inbox: Inbox = Arc::default();
    async fn take(
        axum::extract::State(inbox): axum::extract::State<Inbox>,
        uri: axum::http::Uri,
        axum::Json(body): axum::Json<Value>,
    ) {
        inbox
            .lock()
            .unwrap()
            .push((uri.path().to_string(), body, std::time::Instant::now()));
    }
    let app = axum::Router::new()
        .route("/page", axum::routing::post(take))
        .route("/ticket", axum::routing::post(take))
        .with_state(inbox.clone());
    (spawn_app(app).await, inbox)
}

/// The first notification to `path` with `status` holding an alert named `alert`.
pub async fn wait_for_alert(
    inbox: &Inbox,
    path: &str,
    status: &str,
    alert: &str,
    limit: Duration,
) -> Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        {
            let got = inbox.lock().unwrap();
            for (p, body, _) in got.iter() {
                let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
                if p == path
                    && let Some(a) = alerts
                        .iter()
                        .find(|a| a["labels"]["alertname"] == alert && a["status"] == status)
                {
                    return a.clone();
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {status} {alert} on {path} within {limit:?}; got: {:#?}",
                got.iter().map(|(p, b, _)| (p, b)).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Debian's Alertmanager binary.
pub const ALERTMANAGER: &str = "prometheus-alertmanager";

/// Alertmanager with the shipped routing (deploy/alertmanager/alertmanager.yml), made fast
/// (group_wait and group_interval 1 s) and sending to the webhook receiver at `hook`.
pub struct Alertmanager {
    pub addr: String,
    args: Vec<String>,
    child: Option<tokio::process::Child>,
}

impl Alertmanager {
    /// Starts it with its files under `dir`, on `addr` (a free port when None).
    pub async fn start(dir: &Path, hook: SocketAddr, addr: Option<String>) -> Alertmanager {
        let addr = match addr {
            Some(a) => a,
            None => format!("127.0.0.1:{}", closed_port().await.port()),
        };
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/alertmanager/alertmanager.yml"),
        )
        .unwrap();
        let yml = shipped
            .replace("http://127.0.0.1:9099", &format!("http://{hook}"))
            .replace("group_wait: 30s", "group_wait: 1s")
            .replace("group_wait: 10s", "group_wait: 1s")
            .replace("group_interval: 5m", "group_interval: 1s")
            .replace("group_interval: 1m", "group_interval: 1s");
        let file = dir.join("alertmanager.yml");
        std::fs::write(&file, yml).unwrap();
        let args = vec![
            format!("--config.file={}", file.display()),
            format!("--storage.path={}", dir.join("am").display()),
            format!("--web.listen-address={addr}"),
            "--cluster.listen-address=".into(),
        ];
        let mut am = Alertmanager {
            addr,
            args,
            child: None,
        };
        am.resume().await;
        am
    }

    /// Stops it (its storage stays).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Starts it again on the same address and storage.
    pub async fn resume(&mut self) {
        self.child = Some(run_program(ALERTMANAGER, &self.args));
        wait_http(&format!("http://{}/-/ready", self.addr)).await;
    }
}

/// One HTTPS request (HTTP/1.0) trusting `ca`: (status, head, body, the leaf presented).
pub async fn https(
    addr: &str,
    ca: &str,
    path: &str,
    auth: Option<(&str, &str)>,
) -> (u16, String, String, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(ca.as_bytes()) {
        let c: CertificateDer = c.unwrap();
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Status 0: the handshake failed (e.g. a certificate this client does not trust).
    let Ok(mut tls) = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
    else {
        return (0, String::new(), String::new(), Vec::new());
    };
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let header = auth
        .map(|(u, p)| {
            let token = data_encoding::BASE64.encode(format!("{u}:{p}").as_bytes());
            format!("authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    tls.write_all(format!("GET {path} HTTP/1.0\r\nhost: localhost\r\n{header}\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string(), leaf)
}
