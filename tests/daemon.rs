//! The daemon end to end on loopback: checks run on schedule, `/metrics` carries the
//! blackbox-compatible and pathwatch families and passes `promtool check metrics`, `/probe`
//! only serves configured modules and allowed targets, shutdown drains.

mod support;

use std::time::Duration;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use support::*;

async fn wait_for(base: &str, needle: &str) -> String {
    for _ in 0..100 {
        let (_, body) = get_text(&format!("{base}/metrics"), &[]).await;
        if body.contains(needle) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{needle} never appeared in /metrics");
}

/// GET with `Accept-Encoding: gzip`: the answer must say gzip; returns it unzipped.
async fn get_gzipped(url: &str) -> String {
    use std::io::Read;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!("GET /{path} HTTP/1.0\r\nhost: {host}\r\naccept-encoding: gzip\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[split + 4..])
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn promtool_check(metrics: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var("CI").is_err() => {
            eprintln!("promtool not installed ({e}); skipping the lint outside CI");
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics complained:\n{said}"
    );
}

#[tokio::test]
async fn metrics_after_probes_pass_promtool() {
    let app = Router::new()
        .route("/health", get(|| async { r#"{"status":"ok"}"# }))
        .route(
            "/down",
            get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }),
        );
    let addr = spawn_app(app).await;
    let pki = Pki::builder(&["localhost"]).leaf_valid_days(-1, 10).build();
    let tls = spawn_tls(&pki).await;
    let ca = pki.ca_file();
    let yaml = format!(
        "location: eu-1\nchecks:\n  - name: up\n    type: http\n    target: http://{addr}/health\n    interval: 200ms\n    timeout: 150ms\n  - name: down\n    type: http\n    target: http://{addr}/down\n    interval: 200ms\n    timeout: 150ms\n  - name: cert\n    type: tls\n    target: localhost:{}\n    ca_file: {}\n    interval: 200ms\n    timeout: 150ms\n",
        tls.port(),
        ca.path().display()
    );
    let mut d = start(&yaml).await;
    wait_for(&d.base, r#"probe_success{check="cert",location="eu-1"} 1"#).await;
    // The state is damped: CRIT after 2 failed runs of the last 3 (default).
    let body = wait_for(
        &d.base,
        r#"pathwatch_check_state{check="down",location="eu-1",state="crit"} 1"#,
    )
    .await;
    for line in [
        r#"probe_success{check="up",location="eu-1"} 1"#,
        r#"probe_success{check="down",location="eu-1"} 0"#,
        r#"probe_http_status_code{check="down",location="eu-1"} 503"#,
        r#"probe_tls_version_info{check="cert",location="eu-1",version="TLS 1.3"} 1"#,
        r#"pathwatch_check_state{check="up",location="eu-1",state="ok"} 1"#,
        r#"pathwatch_check_state{check="down",location="eu-1",state="crit"} 1"#,
        r#"pathwatch_check_state{check="cert",location="eu-1",state="warn"} 1"#,
        r#"pathwatch_threshold_cert_expiry_seconds{check="cert",location="eu-1",level="warn"} 1209600"#,
        r#"pathwatch_state_transitions_total{check="down",location="eu-1",to="crit"} 1"#,
        r#"pathwatch_state_transitions_total{check="down",location="eu-1",to="ok"} 0"#,
    ] {
        assert!(body.contains(line), "missing {line}");
    }
    for prefix in [
        r#"probe_http_duration_seconds{check="up",location="eu-1",phase="processing"}"#,
        r#"probe_ssl_earliest_cert_expiry{check="cert",location="eu-1"}"#,
        r#"probe_ssl_last_chain_expiry_timestamp_seconds{check="cert",location="eu-1"}"#,
        r#"pathwatch_probe_failures_total{check="down",location="eu-1",reason="http_status"}"#,
        r#"pathwatch_probes_total{check="up",location="eu-1",result="success"}"#,
        r#"pathwatch_phase_duration_seconds{check="up",location="eu-1",phase="connect"}"#,
        r#"pathwatch_probe_duration_seconds_count{check="up",location="eu-1"}"#,
        "pathwatch_scheduler_lag_seconds_bucket",
        "pathwatch_probes_in_flight",
        "process_resident_memory_bytes",
    ] {
        assert!(body.contains(prefix), "missing {prefix}");
    }
    // Certificate thresholds only where certificates are seen.
    assert!(!body.contains(r#"pathwatch_threshold_cert_expiry_seconds{check="up""#));
    promtool_check(&body);
    // What Prometheus asks for: the same text, gzipped.
    let gzipped = get_gzipped(&format!("{}/metrics", d.base)).await;
    assert!(gzipped.contains(r#"probe_success{check="up",location="eu-1"} 1"#));
    promtool_check(&gzipped);

    let (status, ready) = get_text(&format!("{}/-/ready", d.base), &[]).await;
    assert_eq!((status, ready.as_str()), (200, "Ready.\n"));
    let (status, _) = get_text(&format!("{}/-/healthy", d.base), &[]).await;
    assert_eq!(status, 200);

    d.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut d.task)
        .await
        .expect("drained in time")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn probe_endpoint_serves_only_modules_and_allowed_targets() {
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route(
            "/escape",
            get(|| async { Redirect::temporary("http://169.254.169.254/latest/meta-data") }),
        );
    let addr = spawn_app(app).await;
    let yaml = "modules:\n  http_2xx:\n    type: http\n    timeout: 5s\nprobe:\n  allow_targets: [\"127.0.0.1:*\"]\n";
    let d = start(yaml).await;
    let probe = |q: String| {
        let base = d.base.clone();
        async move {
            get_text(
                &format!("{base}/probe?{q}"),
                &[("X-Prometheus-Scrape-Timeout-Seconds", "3")],
            )
            .await
        }
    };

    let (status, body) = probe(format!("module=http_2xx&target=http://{addr}/health")).await;
    assert_eq!(status, 200);
    assert!(body.contains("probe_success 1"), "{body}");
    assert!(body.contains("probe_http_status_code 200"), "{body}");
    promtool_check(&body);

    let (status, body) = probe(format!("module=http_2xx&target={addr}/health")).await;
    assert_eq!(
        status, 200,
        "bare host:port gets http:// as in blackbox_exporter: {body}"
    );

    let (status, body) = probe("module=http_2xx&target=http://10.0.0.1/".into()).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        "target 10.0.0.1:80 is not allowed by probe.allow_targets\n"
    );

    let (status, body) = probe(format!("module=tcp_connect&target={addr}")).await;
    assert_eq!(status, 400);
    assert!(body.starts_with("unknown module"), "{body}");

    // A redirect out of the allowlist is not followed.
    let (status, body) = probe(format!("module=http_2xx&target=http://{addr}/escape")).await;
    assert_eq!(status, 200);
    assert!(body.contains("probe_success 0"), "{body}");

    let (status, body) = probe(format!(
        "module=http_2xx&target=http://{addr}/escape&debug=true"
    ))
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("which probe.allow_targets does not allow"),
        "{body}"
    );
}
