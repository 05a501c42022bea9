//! pathwatch as a drop-in for blackbox_exporter, side by side with the real one (Debian's
//! prometheus-blackbox-exporter): both started with blackbox's flags on the same unchanged
//! files (the blackbox.yml Debian ships, and tests/blackbox/modules.yml with every prober
//! and field pathwatch reads), both asked `/probe` for the same loopback targets (HTTP,
//! HTTPS, banner servers, TLS and STARTTLS, a real gRPC health server, ICMP to 127.0.0.1
//! and ::1). They must agree on `probe_success` for every module and target, and every
//! metric name blackbox returns must be in pathwatch's answer.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const DEBIAN_FILE: &str = "/etc/prometheus/blackbox.yml";

/// Fails in CI when a tool is missing; elsewhere the test is skipped with a line saying why.
fn need(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing (.ci/run installs it)"
    );
    eprintln!("skipped: {what} is missing");
    false
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_port(port: u16) {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

/// The metric names and `probe_success` of one `/probe` answer.
struct Answer {
    success: Option<f64>,
    names: BTreeSet<String>,
    body: String,
}

/// Gauges whose values do not depend on timing: both exporters must write the same.
const SAME_VALUE: [&str; 15] = [
    "probe_http_status_code",
    "probe_http_version",
    "probe_http_ssl",
    "probe_http_redirects",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
    "probe_failed_due_to_regex",
    "probe_grpc_status_code",
    "probe_grpc_ssl",
    "probe_dns_answer_rrs",
    "probe_dns_authority_rrs",
    "probe_dns_additional_rrs",
    "probe_dns_serial",
    "probe_icmp_reply_hop_limit",
    "probe_http_uncompressed_body_length",
];

impl Answer {
    /// The value of an unlabelled sample, as a number.
    fn value(&self, name: &str) -> Option<f64> {
        self.body.lines().find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
    }
}

async fn probe(base: &str, module: &str, target: &str) -> Answer {
    let url = format!(
        "{base}/probe?module={module}&target={}",
        url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    );
    let (_, body) = get_text(&url, &[("X-Prometheus-Scrape-Timeout-Seconds", "3.5")]).await;
    let mut names = BTreeSet::new();
    let mut success = None;
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line
            .split(['{', ' '])
            .next()
            .unwrap_or_default()
            .to_string();
        if name == "probe_success" {
            success = line.rsplit(' ').next().and_then(|v| v.parse().ok());
        }
        names.insert(name);
    }
    Answer {
        success,
        names,
        body,
    }
}

/// The test's loopback servers.
struct Targets {
    http: SocketAddr,
    https: SocketAddr,
    ssh: SocketAddr,
    irc: SocketAddr,
    pop3s: SocketAddr,
    pop3: SocketAddr,
    ok_line: SocketAddr,
    starttls: SocketAddr,
    closed: SocketAddr,
    grpc: u16,
    grpc_tls: u16,
    /// A DNS server of the test's own, UDP and TCP on one port.
    dns: SocketAddr,
    /// An HTTP proxy (CONNECT and absolute form) that wants prober:pr0xy; counts its uses.
    proxy: SocketAddr,
    proxied: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// HTTPS that speaks HTTP/2 (and HTTP/1.1) by ALPN.
    h2: SocketAddr,
}

/// An HTTPS server that serves HTTP/2 when the client offers h2 by ALPN, else HTTP/1.1.
async fn spawn_h2(pki: &Pki) -> SocketAddr {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let mut config =
        pathwatch::demo::tls::server_config(pki.chain.clone(), pki.key.clone_key()).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    spawn_raw(move |s| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(s).await else {
                return;
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                let body = format!("hello over {:?}\n", req.version());
                Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                    bytes::Bytes::from(body),
                )))
            });
            let io = TokioIo::new(tls);
            if h2 {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            } else {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            }
        }
    })
    .await
}

/// A forward proxy: Basic credentials prober:pr0xy (407 otherwise), CONNECT tunnels and
/// absolute-form requests.
async fn spawn_proxy() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let addr = spawn_raw(move |mut client| {
        let seen = seen.clone();
        async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if client.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let want = format!("Basic {}", data_encoding::BASE64.encode(b"prober:pr0xy"));
            if !text
                .lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("proxy-authorization: {want}")))
            {
                let _ = client
                    .write_all(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
                    )
                    .await;
                return;
            }
            let first = text.lines().next().unwrap_or_default().to_string();
            let mut parts = first.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if method == "CONNECT" {
                let Ok(mut up) = tokio::net::TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            } else {
                let Ok(url) = url::Url::parse(target) else {
                    return;
                };
                let upstream = format!(
                    "{}:{}",
                    url.host_str().unwrap_or_default(),
                    url.port_or_known_default().unwrap_or(80)
                );
                let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let origin = &url[url::Position::BeforePath..];
                let rest = text.split_once("\r\n").map(|(_, r)| r).unwrap_or_default();
                let _ = up
                    .write_all(format!("{method} {origin} HTTP/1.1\r\n{rest}").as_bytes())
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
            }
        }
    })
    .await;
    (addr, count)
}

/// The test's DNS zone: `example.test.` (two A, an MX, a SOA; an NS in authority),
/// `refused.test.` answers REFUSED, anything else NXDOMAIN with the SOA in authority.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata};
    let query = Message::from_vec(query).ok()?;
    let q = query.queries.first()?.clone();
    let mut resp = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.metadata.authoritative = true;
    resp.add_query(q.clone());
    let zone = Name::from_ascii("example.test.").unwrap();
    let soa = || {
        Record::from_rdata(
            zone.clone(),
            3600,
            RData::SOA(rdata::SOA::new(
                Name::from_ascii("ns1.example.test.").unwrap(),
                Name::from_ascii("hostmaster.example.test.").unwrap(),
                2026120701,
                7200,
                3600,
                1209600,
                300,
            )),
        )
    };
    let name = q.name().to_ascii().to_ascii_lowercase();
    match name.as_str() {
        "example.test." => {
            let t = q.query_type();
            if matches!(t, RecordType::A | RecordType::ANY) {
                for ip in [[192, 0, 2, 1], [192, 0, 2, 2]] {
                    resp.add_answer(Record::from_rdata(
                        zone.clone(),
                        300,
                        RData::A(rdata::A(std::net::Ipv4Addr::from(ip))),
                    ));
                }
            }
            if matches!(t, RecordType::MX | RecordType::ANY) {
                resp.add_answer(Record::from_rdata(
                    zone.clone(),
                    300,
                    RData::MX(rdata::MX::new(
                        10,
                        Name::from_ascii("mail.example.test.").unwrap(),
                    )),
                ));
            }
            if matches!(t, RecordType::SOA | RecordType::ANY) {
                resp.add_answer(soa());
            }
            resp.add_authority(Record::from_rdata(
                zone.clone(),
                3600,
                RData::NS(rdata::NS(Name::from_ascii("ns1.example.test.").unwrap())),
            ));
        }
        "refused.test." => resp.metadata.response_code = ResponseCode::Refused,
        _ => {
            resp.metadata.response_code = ResponseCode::NXDomain;
            resp.add_authority(soa());
        }
    }
    resp.to_vec().ok()
}

async fn spawn_dns_server() -> SocketAddr {
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            if let Some(a) = dns_answer(&buf[..n]) {
                let _ = udp.send_to(&a, peer).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if s.read_exact(&mut q).await.is_err() {
                    return;
                }
                if let Some(a) = dns_answer(&q) {
                    let mut out = (a.len() as u16).to_be_bytes().to_vec();
                    out.extend_from_slice(&a);
                    let _ = s.write_all(&out).await;
                }
            });
        }
    });
    addr
}

async fn http_root(headers: HeaderMap) -> impl IntoResponse {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let known = [
        format!("Basic {}", data_encoding::BASE64.encode(b"prober:s3cret")),
        "Bearer tok123".to_string(),
        "Token abc".to_string(),
    ];
    if !auth.is_empty() && !known.contains(&auth) {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    (
        [
            ("content-type", "text/plain; charset=utf-8"),
            ("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT"),
        ],
        "hello from the compat test\n",
    )
        .into_response()
}

async fn spawn_servers(pki: &Pki, dir: &Path) -> (Targets, Vec<tokio::process::Child>) {
    let http = spawn_app(
        axum::Router::new()
            .route("/", any(http_root))
            .route("/auth", any(http_root))
            .route(
                "/token",
                axum::routing::post(|headers: HeaderMap, body: String| async move {
                    let want = format!(
                        "Basic {}",
                        data_encoding::BASE64.encode(b"pw-client:s3cret-client")
                    );
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
                    let in_body = body.contains("client_id=pw-client")
                        && body.contains("client_secret=s3cret-client");
                    if (auth != Some(want.as_str()) && !in_body)
                        || !body.contains("grant_type=client_credentials")
                    {
                        return (
                            StatusCode::UNAUTHORIZED,
                            [("content-type", "application/json")],
                            r#"{"error":"invalid_client","error_description":"unknown client"}"#,
                        )
                            .into_response();
                    }
                    (
                        [("content-type", "application/json")],
                        r#"{"access_token":"tok123","token_type":"Bearer","expires_in":3600}"#,
                    )
                        .into_response()
                }),
            )
            .route(
                "/gzip",
                get(|headers: HeaderMap| async move {
                    let wants = headers
                        .get("accept-encoding")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.contains("gzip"));
                    let body = "hello, compressed ".repeat(100);
                    if !wants {
                        return ([("content-type", "text/plain")], body.into_bytes())
                            .into_response();
                    }
                    let mut enc =
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                    std::io::Write::write_all(&mut enc, body.as_bytes()).unwrap();
                    (
                        [("content-type", "text/plain"), ("content-encoding", "gzip")],
                        enc.finish().unwrap(),
                    )
                        .into_response()
                }),
            )
            .route(
                "/redirect",
                get(|| async { (StatusCode::FOUND, [("location", "/")]) }),
            )
            .route(
                "/missing",
                get(|| async { (StatusCode::NOT_FOUND, "no such page") }),
            ),
    )
    .await;
    let https = spawn_tls(pki).await;
    let ssh = spawn_raw(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6 Debian\r\n").await;
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).await;
    })
    .await;
    let irc = spawn_raw(|s| async move {
        let (r, mut w) = s.into_split();
        let mut lines = BufReader::new(r).lines();
        let _nick = lines.next_line().await;
        let _user = lines.next_line().await;
        let _ = w.write_all(b"PING :c0ffee\r\n").await;
        let reply = match lines.next_line().await {
            Ok(Some(l)) if l.trim() == "PONG c0ffee" => ":irc.test 001 prober :welcome\r\n",
            _ => "ERROR :bad pong\r\n",
        };
        let _ = w.write_all(reply.as_bytes()).await;
    })
    .await;
    let server = std::sync::Arc::new(
        pathwatch::demo::tls::server_config(pki.chain.clone(), pki.key.clone_key()).unwrap(),
    );
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let a = acceptor.clone();
    let pop3s = spawn_raw(move |s| {
        let a = a.clone();
        async move {
            if let Ok(mut tls) = a.accept(s).await {
                let _ = tls.write_all(b"+OK POP3 ready\r\n").await;
                let mut buf = [0u8; 64];
                let _ = tls.read(&mut buf).await;
            }
        }
    })
    .await;
    let pop3 = spawn_raw(|mut s| async move {
        let _ = s.write_all(b"+OK POP3 ready\r\n").await;
    })
    .await;
    let ok_line = spawn_raw(|mut s| async move {
        let _ = s.write_all(b"+OK POP3 ready\r\nOK second line\r\n").await;
    })
    .await;
    let a = acceptor.clone();
    let starttls = spawn_raw(move |mut s| {
        let a = a.clone();
        async move {
            let _ = s.write_all(b"220 compat ESMTP\r\n").await;
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while s.read(&mut byte).await.unwrap_or(0) == 1 && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            if !line.starts_with(b"STARTTLS") {
                return;
            }
            let _ = s.write_all(b"220 ready to start TLS\r\n").await;
            if let Ok(tls) = a.accept(s).await {
                let (r, mut w) = tokio::io::split(tls);
                let mut lines = BufReader::new(r).lines();
                if let Ok(Some(l)) = lines.next_line().await
                    && l.trim() == "NOOP"
                {
                    let _ = w.write_all(b"250 ok\r\n").await;
                }
            }
        }
    })
    .await;
    let closed = closed_port().await;
    let dns = spawn_dns_server().await;
    let (proxy, proxied) = spawn_proxy().await;
    let h2 = spawn_h2(pki).await;
    let (cert, key) = pki.write_pem(dir, "grpc");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/blackbox/health_server.py");
    let (grpc, grpc_tls) = (free_port(), free_port());
    let spawn = |args: Vec<String>| {
        tokio::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs the gRPC health server")
    };
    let children = vec![
        spawn(vec![grpc.to_string()]),
        spawn(vec![
            grpc_tls.to_string(),
            cert.display().to_string(),
            key.display().to_string(),
        ]),
    ];
    wait_port(grpc).await;
    wait_port(grpc_tls).await;
    (
        Targets {
            http,
            https,
            ssh,
            irc,
            pop3s,
            pop3,
            ok_line,
            starttls,
            closed,
            grpc,
            grpc_tls,
            dns,
            proxy,
            proxied,
            h2,
        },
        children,
    )
}

/// Starts blackbox_exporter and pathwatch on `file` (cwd `dir`, for relative paths).
async fn start_both(file: &Path, dir: &Path) -> (tokio::process::Child, String, Binary) {
    let port = free_port();
    let bb = tokio::process::Command::new("prometheus-blackbox-exporter")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("blackbox_exporter starts");
    wait_port(port).await;
    let pw = Binary::start(file, &["--web.listen-address", "127.0.0.1:0"]).await;
    (bb, format!("http://127.0.0.1:{port}"), pw)
}

/// Metric names blackbox_exporter writes that pathwatch leaves out, each in the README's
/// list of differences: 0.23 registers `probe_ssl_earliest_cert_expiry` for every gRPC
/// probe and writes 0 without TLS (an expiry alert would fire; 0.28 writes it only with
/// TLS); the hop limit of an ICMPv6 reply comes only as ancillary data, which pathwatch
/// does not read (no safe API for it in the crates it uses).
fn known_difference(module: &str, target: &str, name: &str, blackbox_body: &str) -> bool {
    let grpc_plain_expiry = module.starts_with("grpc")
        && name == "probe_ssl_earliest_cert_expiry"
        && blackbox_body.contains("probe_ssl_earliest_cert_expiry 0");
    let icmp6_hop_limit =
        module.starts_with("icmp") && target.contains(':') && name == "probe_icmp_reply_hop_limit";
    grpc_plain_expiry || icmp6_hop_limit
}

async fn compare(
    bb: &str,
    pw: &str,
    cases: &[(&str, String)],
    table: &mut Vec<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (module, target) in cases {
        let (b, p) = tokio::join!(probe(bb, module, target), probe(pw, module, target));
        table.push(format!(
            "{module:<24} {target:<34} blackbox={:?} pathwatch={:?}",
            b.success, p.success
        ));
        if b.success.is_none() {
            problems.push(format!(
                "{module} {target}: blackbox gave no probe_success:\n{}",
                b.body
            ));
            continue;
        }
        if b.success != p.success {
            problems.push(format!(
                "{module} {target}: probe_success blackbox {:?}, pathwatch {:?}\n--- blackbox:\n{}\n--- pathwatch:\n{}",
                b.success, p.success, b.body, p.body
            ));
        }
        for name in SAME_VALUE {
            if let (Some(bv), Some(pv)) = (b.value(name), p.value(name))
                && bv != pv
            {
                problems.push(format!(
                    "{module} {target}: {name} is {bv} for blackbox and {pv} for pathwatch"
                ));
            }
        }
        let missing: Vec<&String> = b
            .names
            .iter()
            .filter(|n| !p.names.contains(*n) && !known_difference(module, target, n, &b.body))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{module} {target}: pathwatch lacks {missing:?}\n--- blackbox:\n{}\n--- pathwatch:\n{}",
                b.body, p.body
            ));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_exporters_agree_on_the_same_files() {
    if !need(
        have("prometheus-blackbox-exporter"),
        "prometheus-blackbox-exporter",
    ) || !need(Path::new(DEBIAN_FILE).exists(), DEBIAN_FILE)
        || !need(
            std::process::Command::new("python3")
                .args(["-c", "import grpc_health.v1.health"])
                .status()
                .is_ok_and(|s| s.success()),
            "python3 with grpcio-health-checking (tests/interop/requirements.txt)",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::builder(&["localhost"]).build();
    std::fs::write(dir.path().join("ca.pem"), &pki.root_pem).unwrap();
    std::fs::write(dir.path().join("token"), "tok123\n").unwrap();
    std::fs::write(dir.path().join("body.json"), r#"{"ping":true}"#).unwrap();
    let debian = dir.path().join("debian-blackbox.yml");
    std::fs::copy(DEBIAN_FILE, &debian).unwrap();
    let (t, _children) = spawn_servers(&pki, dir.path()).await;
    let own = copy_modules("modules.yml", dir.path(), t.proxy.port(), t.http.port());
    let h = |path: &str| format!("http://{}{path}", t.http);
    let s = |path: &str| format!("https://{}{path}", t.https);
    let grpc = format!("127.0.0.1:{}", t.grpc);
    let mut table = Vec::new();
    let mut problems = Vec::new();

    let debian_cases: Vec<(&str, String)> = vec![
        ("http_2xx", h("/")),
        ("http_2xx", t.http.to_string()),
        ("http_2xx", h("/missing")),
        ("http_2xx", h("/redirect")),
        ("http_2xx", s("/")),
        ("http_2xx", t.closed.to_string()),
        ("http_post_2xx", h("/")),
        ("tcp_connect", t.ssh.to_string()),
        ("tcp_connect", t.closed.to_string()),
        ("ssh_banner", t.ssh.to_string()),
        ("irc_banner", t.irc.to_string()),
        ("pop3s_banner", t.pop3s.to_string()),
        ("grpc_plain", grpc.clone()),
        ("grpc", grpc.clone()),
        ("icmp", "127.0.0.1".into()),
        ("icmp", "::1".into()),
        ("icmp_ttl5", "127.0.0.1".into()),
    ];
    let (_bb, bb, pw) = start_both(&debian, dir.path()).await;
    problems.extend(compare(&bb, &pw.base, &debian_cases, &mut table).await);
    drop(_bb);
    let log = pw.stop().await;
    assert!(
        log.contains("this is a blackbox_exporter file: /probe probes any target"),
        "one warning line says every target is allowed: {log}"
    );

    let grpc_tls = format!("localhost:{}", t.grpc_tls);
    let own_cases: Vec<(&str, String)> = vec![
        ("http_2xx", h("/")),
        ("http_get_rules", h("/")),
        ("http_get_rules", h("/missing")),
        ("http_body_mismatch", h("/")),
        ("http_no_redirects", h("/redirect")),
        ("http_no_redirects", h("/")),
        ("http_404_is_ok", h("/missing")),
        ("http_post", h("/auth")),
        ("http_bearer", h("/auth")),
        ("http_authorization", h("/auth")),
        ("http_header_required", h("/")),
        ("https_ca", s("/")),
        ("https_ca", h("/")),
        ("https_h2", format!("https://{}/", t.h2)),
        ("https_h2", s("/")),
        ("https_h1_only", format!("https://{}/", t.h2)),
        ("https_ca", format!("https://{}/", t.h2)),
        ("http_gzip", h("/gzip")),
        ("http_gzip", h("/")),
        ("http_gzip_small_limit", h("/gzip")),
        ("http_oauth2", h("/auth")),
        ("http_oauth2_wrong_secret", h("/auth")),
        ("http_via_proxy", h("/")),
        ("https_via_proxy", s("/")),
        (
            "https_via_proxy_no_resolve",
            format!("https://localhost:{}/", t.https.port()),
        ),
        ("http_proxy_wrong_password", s("/")),
        ("https_untrusted", s("/")),
        ("https_skip_verify", s("/")),
        ("https_fail_if_ssl", s("/")),
        ("tcp_connect_ip4", t.ssh.to_string()),
        ("pop3_go_regex", t.pop3.to_string()),
        ("pop3_go_regex", t.ok_line.to_string()),
        ("tcp_tls", t.pop3s.to_string()),
        ("tcp_tls", t.ssh.to_string()),
        ("tcp_starttls", t.starttls.to_string()),
        ("icmp_payload", "127.0.0.1".into()),
        ("icmp_payload", "::1".into()),
        ("icmp_df", "127.0.0.1".into()),
        ("icmp_ip6_only", "::1".into()),
        ("icmp_ip6_only", "127.0.0.1".into()),
        ("dns_a", t.dns.to_string()),
        ("dns_a_tcp", t.dns.to_string()),
        ("dns_a_wrong_address", t.dns.to_string()),
        ("dns_mx_all_match", t.dns.to_string()),
        ("dns_soa", t.dns.to_string()),
        ("dns_nxdomain", t.dns.to_string()),
        ("dns_nxdomain_allowed", t.dns.to_string()),
        ("dns_refused", t.dns.to_string()),
        ("dns_authority", t.dns.to_string()),
        ("dns_additional_required", t.dns.to_string()),
        ("dns_a", t.closed.to_string()),
        ("grpc_service", grpc.clone()),
        ("grpc_down", grpc.clone()),
        ("grpc_unknown_service", grpc.clone()),
        ("grpc_tls", grpc_tls.clone()),
        ("grpc_tls", grpc.clone()),
    ];
    let (_bb, bb, pw) = start_both(&own, dir.path()).await;
    problems.extend(compare(&bb, &pw.base, &own_cases, &mut table).await);
    let debug = debug_answer(&pw.base, "dns_a_wrong_address", &t.dns.to_string()).await;
    assert!(
        debug.contains("example.test. A at ")
            && debug.contains(
                "no answer record matches fail_if_none_matches_regexp `10\\\\.0\\\\.0\\\\.1`"
            ),
        "{debug}"
    );
    let debug = debug_answer(&pw.base, "http_proxy_wrong_password", &s("/")).await;
    assert!(
        debug.contains("answered 407 Proxy Authentication Required to CONNECT 127.0.0.1:")
            && !debug.contains("wrong@"),
        "{debug}"
    );
    let debug = debug_answer(&pw.base, "http_oauth2_wrong_secret", &h("/auth")).await;
    assert!(
        debug.contains("\"reason\": \"login\"")
            && debug.contains("/token answered 401 Unauthorized: invalid_client (unknown client)"),
        "{debug}"
    );
    let secret = probe(&pw.base, "http_post", &h("/auth")).await;
    assert!(!secret.body.contains("s3cret"));
    drop(_bb);
    let log = pw.stop().await;
    assert!(
        !log.contains("s3cret") && !log.contains("tok123") && !log.contains("s3cret-client"),
        "{log}"
    );
    println!("{}", table.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));

    // Fields of later blackbox versions than Debian's: pathwatch alone, with the outcome
    // blackbox 0.28 documents.
    let newer = copy_modules(
        "modules-0.28.yml",
        dir.path(),
        t.proxy.port(),
        t.http.port(),
    );
    let sock = dir.path().join("banner.sock");
    let unix = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = unix.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"220 unix ready\r\n").await;
                let mut buf = [0u8; 64];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let sock = sock.display().to_string();
    let pw = Binary::start(&newer, &["--web.listen-address", "127.0.0.1:0"]).await;
    for (module, target, want) in [
        ("tcp_expect_labels", t.ssh.to_string(), 1.0),
        ("tcp_expect_bytes", t.ssh.to_string(), 1.0),
        ("tcp_expect_bytes_wrong", t.ssh.to_string(), 0.0),
        ("http_post_file", h("/"), 1.0),
        ("grpc_metadata", grpc.clone(), 1.0),
        ("https_proxy_connect_header", s("/"), 1.0),
        ("http_no_proxy", h("/"), 1.0),
        ("http_headers_secret", h("/auth"), 1.0),
        ("http_headers_wrong_secret", h("/auth"), 0.0),
        ("unix_banner", sock.clone(), 1.0),
        ("unix_banner", format!("{sock}.missing"), 0.0),
    ] {
        let a = probe(&pw.base, module, &target).await;
        assert_eq!(a.success, Some(want), "{module} {target}:\n{}", a.body);
    }
    let before = t.proxied.load(std::sync::atomic::Ordering::SeqCst);
    let _ = probe(&pw.base, "https_proxy_connect_header", &s("/")).await;
    assert_eq!(
        t.proxied.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "the probe went through the proxy"
    );
    let wrong = probe(&pw.base, "tcp_expect_bytes_wrong", &t.ssh.to_string()).await;
    assert!(
        wrong.body.contains("probe_failed_due_to_bytes 1"),
        "{}",
        wrong.body
    );

    // What pathwatch adds: the failure in words, in the debug answer.
    let debug = debug_answer(&pw.base, "tcp_expect_bytes_wrong", &t.ssh.to_string()).await;
    assert!(
        debug.contains("query_response step 1: expected the bytes `HTTP/1`, got `SSH-2.`"),
        "{debug}"
    );
    let labels = probe(&pw.base, "tcp_expect_labels", &t.ssh.to_string()).await;
    assert!(
        labels
            .body
            .contains(r#"probe_expect_info{ssh_version="2.0",software="OpenSSH_9.6 Debian"} 1"#),
        "{}",
        labels.body
    );
    pw.stop().await;
}

/// pathwatch's `debug=true` answer: the whole result, then the metrics.
async fn debug_answer(base: &str, module: &str, target: &str) -> String {
    let url = format!(
        "{base}/probe?module={module}&target={}&debug=true",
        url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>()
    );
    get_text(&url, &[]).await.1
}

/// A module file of tests/blackbox copied into `dir`, with the test proxy's port.
fn copy_modules(name: &str, dir: &Path, proxy_port: u16, http_port: u16) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/blackbox")
            .join(name),
    )
    .unwrap();
    let path = dir.join(name);
    let text = text
        .replace("PROXY_PORT", &proxy_port.to_string())
        .replace("HTTP_PORT", &http_port.to_string());
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn refused_blackbox_fields_name_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blackbox.yml");
    std::fs::write(
        &file,
        "modules:\n  http_2xx:\n    prober: http\n    http:\n      fail_if_body_json_matches_cel: x\n      compression: br\n  tcp_x:\n    prober: tcp\n    tcp:\n      query_response:\n        - expect: \"(\"\n  old:\n    prober: http\n    http:\n      tls_config:\n        min_version: TLS10\n  socks:\n    prober: http\n    http:\n      proxy_url: socks5://proxy:1080\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
        .args(["--config.file"])
        .arg(&file)
        .arg("--config.check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "blackbox.yml:5:7: modules.http_2xx.http.fail_if_body_json_matches_cel: `fail_if_body_json_matches_cel`: CEL expressions are not supported",
        "blackbox.yml:20:18: modules.socks.http.proxy_url: `socks5` proxies are not supported",
        "blackbox.yml:6:20: modules.http_2xx.http.compression: `br`: Brotli bodies are not supported",
        "blackbox.yml:11:19: modules.tcp_x.tcp.query_response[0].expect: invalid regex `(`",
        "blackbox.yml:16:22: modules.old.http.tls_config.min_version: `TLS10`: TLS 1.0 and 1.1 are not offered",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}

/// pathwatch's own config takes the modules of a blackbox file: scheduled checks name
/// them, `/probe` serves them under the config's allowlist, and their secrets stay secret.
#[tokio::test]
async fn a_pathwatch_config_names_blackbox_modules() {
    let banner = spawn_raw(|mut s| async move {
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("blackbox.yml"),
        "modules:\n  ssh_banner:\n    prober: tcp\n    timeout: 2s\n    tcp:\n      query_response:\n        - expect: \"^SSH-2.0-\"\n  http_auth:\n    prober: http\n    http:\n      basic_auth: {username: u, password: hunter22}\n",
    )
    .unwrap();
    let yaml = format!(
        "modules_file: blackbox.yml\nprobe:\n  allow_targets: [\"127.0.0.1:{}\"]\nchecks:\n  - name: ssh\n    module: ssh_banner\n    target: {banner}\n    interval: 10s\n",
        banner.port()
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let cfg = pathwatch::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.checks[0].timeout,
        Duration::from_secs(2),
        "the module's timeout"
    );
    assert_eq!(cfg.secrets.redact("x hunter22 y"), "x <redacted> y");
    let r = probe_once(&cfg).await;
    assert!(r.success(), "{:?}", r.failure);

    let pw = Binary::start(&path, &["--web.listen-address", "127.0.0.1:0"]).await;
    let allowed = probe(&pw.base, "ssh_banner", &banner.to_string()).await;
    assert_eq!(allowed.success, Some(1.0), "{}", allowed.body);
    let (status, body) = get_text(
        &format!("{}/probe?module=ssh_banner&target=127.0.0.2:22", pw.base),
        &[],
    )
    .await;
    assert_eq!(status, 403, "the config's allowlist holds: {body}");
    assert!(!pw.log().contains("/probe probes any target"));
    pw.stop().await;
}
