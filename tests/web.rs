//! The secured listener on the real binary: the exporter-toolkit web config (TLS, basic
//! auth with bcrypt, headers), certificate rotation without a restart, and a real
//! Prometheus scraping pathwatch over TLS with basic auth.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD: &str = "correct-horse-battery";

/// Writes the server certificate chain and key of a fresh PKI; returns it.
fn write_pki(dir: &Path) -> Pki {
    let pki = Pki::builder(&["localhost", "127.0.0.1"]).build();
    pki.write_pem(dir, "server");
    std::fs::write(dir.join("ca.pem"), &pki.root_pem).unwrap();
    pki
}

async fn setup(dir: &Path) -> (Binary, Pki) {
    let target = spawn_app(Router::new().route("/up", get(|| async { "ok" }))).await;
    let pki = write_pki(dir);
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(
        dir.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: \"{hash}\"\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n"
        ),
    )
    .unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{listen: 127.0.0.1:0}}\nchecks:\n  - {{name: up, type: http, target: \"http://{target}/up\", interval: 500ms, timeout: 400ms}}\n"
        ),
    )
    .unwrap();
    let web = dir.join("web.yml").display().to_string();
    let d = Binary::start(&config, &["--web.config.file", &web]).await;
    (d, pki)
}

#[tokio::test]
async fn tls_and_basic_auth_guard_every_endpoint_and_certificates_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let (d, pki) = setup(dir.path()).await;
    let addr = d.base.trim_start_matches("http://").to_string();
    for path in ["/metrics", "/", "/api/v1/checks", "/-/healthy", "/-/reload"] {
        let (status, head, ..) = https(&addr, &pki.root_pem, path, None).await;
        assert_eq!(status, 401, "{path} without credentials");
        assert!(
            head.contains("www-authenticate: basic realm=\"pathwatch\""),
            "{head}"
        );
        assert!(head.contains("x-frame-options: deny"), "{head}");
    }
    let (status, ..) = https(
        &addr,
        &pki.root_pem,
        "/metrics",
        Some(("prometheus", "wrong")),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, body, first_leaf) = https(
        &addr,
        &pki.root_pem,
        "/metrics",
        Some(("prometheus", PASSWORD)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("pathwatch_build_info"), "{body}");
    // Plain HTTP on the TLS port gets nothing.
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain
        .write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(6), plain.read_to_end(&mut got)).await;
    assert!(!String::from_utf8_lossy(&got).contains("pathwatch_"));

    // A new certificate from another CA: served within a few seconds, no restart.
    let rotated = write_pki(dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, _, leaf) = https(
            &addr,
            &rotated.root_pem,
            "/-/healthy",
            Some(("prometheus", PASSWORD)),
        )
        .await;
        if status == 200 {
            assert_ne!(leaf, first_leaf);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate is never served"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = d.stop().await;
    assert!(log.contains("Web config reloaded"), "{log}");
    assert!(!log.contains(PASSWORD), "no secret in the log");
}

/// A real Prometheus scrapes pathwatch with `scheme: https`, `tls_config` and `basic_auth`.
#[tokio::test]
async fn prometheus_scrapes_over_tls_with_basic_auth() {
    if !have("prometheus") {
        let why = "prometheus is needed (apt-get install prometheus)";
        if std::env::var("CI").is_ok() {
            panic!("{why}");
        }
        eprintln!("skipping outside CI: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (d, _) = setup(dir.path()).await;
    let addr = d.base.trim_start_matches("http://").to_string();
    let prom = format!("127.0.0.1:{}", closed_port().await.port());
    let prom_yml = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: pathwatch\n    scheme: https\n    tls_config: {{ca_file: {}, server_name: localhost}}\n    basic_auth: {{username: prometheus, password: {PASSWORD}}}\n    static_configs: [{{targets: [\"{addr}\"]}}]\n",
        dir.path().join("ca.pem").display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), prom_yml).unwrap();
    let _prometheus = run_program(
        "prometheus",
        &[
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address={prom}"),
        ],
    );
    let prom = format!("http://{prom}");
    wait_http(&format!("{prom}/-/ready")).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = query(
            &prom,
            r#"pathwatch_check_state{job="pathwatch",check="up",state="ok"}"#,
        )
        .await;
        if r["data"]["result"][0]["value"][1] == "1" {
            break;
        }
        let up = query(&prom, "up").await;
        assert!(Instant::now() < deadline, "never scraped over TLS: {up}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    d.stop().await;
}
