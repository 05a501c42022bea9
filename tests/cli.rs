//! The `pathwatch` binary as a deploy gate: exit codes, text / JSON / JUnit reports, and
//! no secret in anything it prints.

mod support;

use std::process::Output;

use axum::Router;
use axum::routing::get;
use support::*;

async fn pathwatch(args: &[&str], config: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"));
    cmd.args(args)
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[tokio::test]
async fn check_passes_with_exit_0_and_fails_with_exit_1() {
    let app = Router::new().route("/health", get(|| async { r#"{"status":"ok"}"# }));
    let addr = spawn_app(app).await;
    let down = closed_port().await;
    let ok = format!("checks:\n  - name: api\n    type: http\n    target: http://{addr}/health\n");
    let out = pathwatch(&["check"], &ok, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("OK    api"), "{stdout}");
    assert!(
        stdout.contains("1 checks: 1 ok, 0 warn, 0 crit"),
        "{stdout}"
    );

    let bad = format!("{ok}  - name: backend\n    type: http\n    target: http://{down}/health\n");
    let out = pathwatch(&["check"], &bad, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("CRIT  backend"),
        "{}",
        text(&out.stdout)
    );

    // Selecting only the healthy check passes again.
    let out = pathwatch(&["check", "--check", "api"], &bad, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    let out = pathwatch(&["check", "--check", "nope"], &bad, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no check named nope"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn json_report_of_a_wrong_hostname_certificate() {
    let pki = Pki::builder(&["*.example.test"]).build();
    let addr = spawn_tls(&pki).await;
    let ca = pki.ca_file();
    let cfg = format!(
        "checks:\n  - name: ws-cert\n    type: tls\n    target: 127.0.0.1:{}\n    server_name: api.staging.example.test\n    ca_file: {}\n",
        addr.port(),
        ca.path().display()
    );
    let out = pathwatch(&["check", "--format", "json"], &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["passed"], false);
    let c = &doc["checks"][0];
    assert_eq!(c["name"], "ws-cert");
    assert_eq!(c["type"], "tls");
    assert_eq!(c["success"], false);
    assert_eq!(c["status"], "crit");
    assert_eq!(c["reason"], "tls_hostname");
    assert_eq!(c["phase"], "tls");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .ends_with("(did you mean api-staging.example.test?)"),
        "{c}"
    );
    assert!(c["duration_seconds"].as_f64().unwrap() > 0.0);
    for phase in ["resolve", "connect", "tls"] {
        assert!(c["phases"][phase].is_number(), "{c}");
    }
    assert_eq!(c["tls"]["sans"][0], "*.example.test");
    assert_eq!(c["tls"]["days_left"], 90);
    assert_eq!(c["tls"]["chain"].as_array().unwrap().len(), 2);
    assert!(c["tls"]["not_after"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn junit_report_for_ci_systems() {
    let down = closed_port().await;
    let cfg = format!("checks:\n  - name: backend\n    type: http\n    target: http://{down}/\n");
    let out = pathwatch(&["check", "--format", "junit"], &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let xml = text(&out.stdout);
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(
        xml.contains(r#"<testcase name="backend" classname="pathwatch.http""#),
        "{xml}"
    );
    assert!(xml.contains(r#"type="connect""#), "{xml}");
    assert!(xml.contains("failures=\"1\""), "{xml}");
}

#[tokio::test]
async fn bad_config_exits_2_with_every_error() {
    let cfg = "checks:\n  - name: a\n    type: http\n    target: ftp://x/\n    tmeout: 5s\n";
    for cmd in [&["validate"][..], &["check"][..], &["run"][..]] {
        let out = pathwatch(cmd, cfg, &[]).await;
        assert_eq!(out.status.code(), Some(2), "{cmd:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains(":4:13: checks[0].target: URL scheme must be http or https"),
            "{err}"
        );
        assert!(
            err.contains(":5:5: checks[0].tmeout: unknown key `tmeout`"),
            "{err}"
        );
        assert!(err.contains("2 error(s)"), "{err}");
    }
    let out = pathwatch(&["validate"], "checks: []\n", &[]).await;
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test]
async fn secrets_appear_in_no_output() {
    // The target echoes the Authorization header into an error body.
    let app = Router::new().route(
        "/",
        get(|h: axum::http::HeaderMap| async move {
            let auth = h
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (
                axum::http::StatusCode::UNAUTHORIZED,
                format!("denied for {auth}"),
            )
        }),
    );
    let addr = spawn_app(app).await;
    let cfg = format!(
        "checks:\n  - name: api\n    type: http\n    target: http://{addr}/?token=${{TOKEN}}\n    headers:\n      Authorization: Bearer ${{TOKEN}}\n"
    );
    let secret = "sk-live-0123456789abcdef";
    for format in ["text", "json", "junit"] {
        let out = pathwatch(&["check", "--format", format], &cfg, &[("TOKEN", secret)]).await;
        assert_eq!(out.status.code(), Some(1));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        let shown = all.replace("&lt;", "<").replace("&gt;", ">");
        assert!(shown.contains("denied for Bearer <redacted>"), "{all}");
        assert!(!all.contains(secret), "{format}: {all}");
    }
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let app = Router::new().route("/", get(|| async { "ok" }));
    let addr = spawn_app(app).await;
    std::fs::write(
        &path,
        format!("server:\n  listen: 127.0.0.1:0\nchecks:\n  - name: a\n    type: http\n    target: http://{addr}/\n    interval: 200ms\n    timeout: 100ms\n"),
    )
    .unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
        .args(["run", "--config"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(err.contains("pathwatch is running."), "{err}");
    assert!(err.contains("Shutting down"), "{err}");
    assert!(err.contains("Stopped."), "{err}");
}

#[tokio::test]
async fn check_starts_the_demo_backend_and_reports_a_dropped_event() {
    let port = closed_port().await.port();
    let cfg = format!(
        "demo:\n  listen: 127.0.0.1:{port}\nchecks:\n  - name: golden-path\n    type: agent_pipeline\n    target: ws://127.0.0.1:{port}/ws\n  - name: golden-path-broken\n    type: agent_pipeline\n    target: ws://127.0.0.1:{port}/ws?fault=drop:tool_completed\n"
    );
    let out = pathwatch(
        &["check", "--check", "golden-path", "--format", "json"],
        &cfg,
        &[],
    )
    .await;
    assert_exit(&out, 0);
    let out = pathwatch(
        &["check", "--check", "golden-path-broken", "--format", "json"],
        &cfg,
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &doc["checks"][0];
    assert_eq!(c["type"], "agent_pipeline");
    assert_eq!(c["reason"], "event_missing");
    assert_eq!(c["phase"], "complete");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("but tool_completed never arrived"),
        "{c}"
    );
    let names: Vec<&str> = c["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "agent_completed"
        ]
    );
    for phase in ["connect", "upgrade", "first_frame", "complete"] {
        assert!(c["phases"][phase].is_number(), "{c}");
    }
}

#[tokio::test]
async fn agent_credentials_appear_in_no_output() {
    let port = closed_port().await.port();
    let cfg = format!(
        "demo:\n  listen: 127.0.0.1:{port}\nchecks:\n  - name: ok\n    type: agent_pipeline\n    target: ws://127.0.0.1:{port}/ws?auth=required\n    login:\n      url: http://127.0.0.1:{port}/auth/e2e/test-auth\n      headers: {{X-E2E-Bypass-Key: \"${{BYPASS}}\"}}\n      body: {{email: e2e@pathwatch.local}}\n    token: {{transport: query}}\n  - name: refused\n    type: agent_pipeline\n    target: ws://127.0.0.1:{port}/ws?auth=required&fault=reject401\n    login:\n      url: http://127.0.0.1:{port}/auth/login\n      body: {{email: demo@pathwatch.local, password: \"${{PW}}\"}}\n    token: {{transport: subprotocol}}\n  - name: bad-login\n    type: agent_pipeline\n    target: ws://127.0.0.1:{port}/ws\n    login:\n      url: http://127.0.0.1:{port}/auth/login\n      body: {{email: demo@pathwatch.local, password: \"${{BADPW}}\"}}\n"
    );
    let env = [
        ("BYPASS", "demo-bypass-key"),
        ("PW", "demo-password"),
        ("BADPW", "not-the-password-42"),
    ];
    for format in ["text", "json", "junit"] {
        let out = pathwatch(&["check", "--format", format], &cfg, &env).await;
        assert_eq!(out.status.code(), Some(1));
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            all.contains("bad-login") && all.contains("refused"),
            "{all}"
        );
        for secret in [
            "demo-bypass-key",
            "demo-password",
            "not-the-password-42",
            "demo-token-",
        ] {
            assert!(!all.contains(secret), "{format}: {secret} leaked:\n{all}");
        }
    }
}

/// The shipped config.yaml, on free ports: every check green offline, over ws://, wss://
/// (the demo's generated certificate) and plain TLS.
#[tokio::test]
async fn the_shipped_config_passes_offline() {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml")).unwrap();
    let mut cfg = shipped.clone();
    for fixed in ["9115", "9116", "9117"] {
        assert!(shipped.contains(fixed));
        let free = closed_port().await.port().to_string();
        cfg = cfg.replace(&format!(":{fixed}"), &format!(":{free}"));
    }
    let out = pathwatch(&["check", "--format", "json"], &cfg, &[]).await;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}{}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{doc:#}");
    let checks = doc["checks"].as_array().unwrap();
    let types: std::collections::BTreeSet<&str> =
        checks.iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        [
            "agent_pipeline",
            "browser",
            "dns",
            "http",
            "tls",
            "websocket"
        ]
    );
    let cert = checks.iter().find(|c| c["type"] == "tls").unwrap();
    assert_eq!(cert["status"], "ok", "{cert}");
}

/// `pathwatch demo-backend --tls-listen --ca-out` serves wss:// with a certificate another
/// pathwatch process can trust through the written CA file.
#[tokio::test]
async fn the_standalone_demo_serves_tls_with_its_ca_written_out() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("demo-ca.pem");
    let (plain, tls) = (closed_port().await, closed_port().await);
    let mut demo = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
        .args(["demo-backend", "--listen", &plain.to_string()])
        .args(["--tls-listen", &tls.to_string(), "--ca-out"])
        .arg(&ca)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if ca.exists() && tokio::net::TcpStream::connect(tls).await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let cfg = format!(
        "checks:\n  - name: cert\n    type: tls\n    target: localhost:{port}\n    ca_file: {ca}\n  - name: gp\n    type: agent_pipeline\n    target: wss://127.0.0.1:{port}/ws\n    tls: {{ca_file: {ca}}}\n",
        port = tls.port(),
        ca = ca.display()
    );
    let out = pathwatch(&["check"], &cfg, &[]).await;
    demo.kill().await.unwrap();
    assert_exit(&out, 0);
}

#[tokio::test]
async fn a_corrupt_history_stops_the_daemon_at_start_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.db"), vec![0x5au8; 4096]).unwrap();
    let cfg = format!(
        "server: {{listen: \"{}\"}}\nhistory: {{path: {}}}\nchecks: []\n",
        closed_port().await,
        dir.path().join("history.db").display()
    );
    let out = pathwatch(&["run"], &cfg, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("history.db is not usable: file is not a database")
            && err.contains("move it away to start a new history"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("history.db")).unwrap(),
        vec![0x5au8; 4096],
        "the file is left as it was"
    );
}

/// deploy/prometheus/rules.yml is exactly what `pathwatch rules` makes of the shipped config.
#[tokio::test]
async fn the_shipped_rules_are_what_the_generator_makes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
        .args(["rules", "--config", &format!("{root}/config.yaml")])
        .output()
        .await
        .unwrap();
    assert_exit(&out, 0);
    let shipped = std::fs::read_to_string(format!("{root}/deploy/prometheus/rules.yml")).unwrap();
    assert!(
        text(&out.stdout) == shipped,
        "deploy/prometheus/rules.yml drifted from the generator: run\n  cargo run -q -- rules > deploy/prometheus/rules.yml"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
        .args([
            "rules",
            "--quorum",
            "2",
            "--config",
            &format!("{root}/config.yaml"),
        ])
        .output()
        .await
        .unwrap();
    assert_exit(&out, 0);
    let shipped =
        std::fs::read_to_string(format!("{root}/deploy/prometheus/rules.quorum.yml")).unwrap();
    assert!(
        text(&out.stdout) == shipped,
        "deploy/prometheus/rules.quorum.yml drifted from the generator: run\n  cargo run -q -- rules --quorum 2 > deploy/prometheus/rules.quorum.yml"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
        .args([
            "rules",
            "--slo",
            "1.5",
            "--config",
            &format!("{root}/config.yaml"),
        ])
        .output()
        .await
        .unwrap();
    assert_exit(&out, 2);
}

/// The Kubernetes example: the ConfigMap holds exactly config/pathwatch.yaml, that config is
/// valid, and the PrometheusRule is what the generator makes of it.
#[tokio::test]
async fn the_kubernetes_example_is_consistent() {
    let root = format!("{}/deploy/kubernetes", env!("CARGO_MANIFEST_DIR"));
    let config = std::fs::read_to_string(format!("{root}/config/pathwatch.yaml")).unwrap();
    let configmap = std::fs::read_to_string(format!("{root}/configmap.yaml")).unwrap();
    let embedded: String = configmap
        .split_once("  config.yaml: |\n")
        .unwrap()
        .1
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert_eq!(
        embedded, config,
        "configmap.yaml differs from config/pathwatch.yaml"
    );
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
        .args(["rules", "--kubernetes", "--quorum", "2", "--config"])
        .arg(format!("{root}/config/pathwatch.yaml"))
        .env("SYNTHETIC_PASSWORD", "not-a-real-password")
        .env("POD_IP", "10.0.0.1")
        .env("POD_NAMESPACE", "monitoring")
        .env("PATHWATCH_LOCATION", "eu-west-1")
        .output()
        .await
        .unwrap();
    assert_exit(&out, 0);
    let shipped = std::fs::read_to_string(format!("{root}/prometheusrule.yaml")).unwrap();
    assert!(
        text(&out.stdout) == shipped,
        "deploy/kubernetes/prometheusrule.yaml drifted: run\n  SYNTHETIC_PASSWORD=x POD_IP=10.0.0.1 POD_NAMESPACE=monitoring PATHWATCH_LOCATION=eu-west-1 cargo run -q -- rules --kubernetes --quorum 2 --config deploy/kubernetes/config/pathwatch.yaml > deploy/kubernetes/prometheusrule.yaml"
    );
    assert!(!text(&out.stdout).contains("not-a-real-password"));
}

/// `pathwatch healthcheck` (the image's HEALTHCHECK, without curl): 0 for a running
/// daemon, 1 with the cause in words when nothing answers or the answer is not 200.
#[tokio::test]
async fn healthcheck_asks_a_running_daemon() {
    let d = start("checks: []\n").await;
    let addr = d.base.trim_start_matches("http://").to_string();
    let run = |address: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
            .args(["healthcheck", "--address", &address])
            .output()
            .await
            .unwrap()
    };
    assert_exit(&run(addr).await, 0);
    let closed = closed_port().await.to_string();
    let out = run(closed.clone()).await;
    assert_exit(&out, 1);
    assert_eq!(
        text(&out.stderr).trim(),
        format!("not healthy: cannot connect to {closed}: connection refused")
    );
    let not_found = spawn_app(Router::new()).await.to_string();
    let out = run(not_found.clone()).await;
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("answered HTTP 404"),
        "{}",
        text(&out.stderr)
    );
}
