//! End to end with the real programs (Debian's `prometheus` and `prometheus-alertmanager`):
//! pathwatch and its demo, Prometheus scraping it with the shipped scrape config and the
//! rules generated for this config, Alertmanager with the shipped routing sending to a
//! webhook receiver here. A golden-path fault must page with the right labels and a useful
//! description, and clearing it must resolve the page. Then every PromQL query of the
//! shipped Grafana dashboards must parse and return data from that Prometheus.
//!
//! Without the programs the test fails in CI (`CI=true`) and is skipped with a note
//! elsewhere.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pathwatch::demo::{DemoBackend, DemoPki};
use serde_json::Value;
use support::*;

const PROMETHEUS: &str = "prometheus";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every query of a dashboard: panel targets and the selectors of label_values() variables.
fn dashboard_queries(file: &Path) -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert!(
        d["__inputs"][0]["pluginId"] == "prometheus",
        "{file:?}: datasource input"
    );
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                format!("panel \"{}\"", p["title"].as_str().unwrap()),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map(|(sel, _)| sel.to_string())
                .unwrap_or_else(|| panic!("variable query {q}"));
            out.push((format!("variable ${}", v["name"].as_str().unwrap()), inner));
        }
    }
    out
}

/// Grafana's variables as Grafana would expand them with "All" selected.
fn expand(expr: &str) -> String {
    expr.replace("$__rate_interval", "15s")
        .replace("$location", ".*")
        .replace("$check", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_golden_path_fault_pages_and_resolves_through_prometheus_and_alertmanager() {
    if !have(PROMETHEUS) || !have(ALERTMANAGER) {
        let why = format!(
            "{PROMETHEUS} and {ALERTMANAGER} are needed (apt-get install prometheus prometheus-alertmanager)"
        );
        if std::env::var("CI").is_ok() {
            panic!("{why}");
        }
        eprintln!("skipping outside CI: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let demo = spawn_demo(DemoBackend::default()).await;
    let pki = DemoPki::generate().unwrap();
    let tls = spawn_tls_demo(pki.server.clone(), DemoBackend::default()).await;
    let ca = dir.path().join("demo-ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    // A second demo that starts cold: its start-up feeds the dashboard's start-up panel.
    let cold = spawn_demo(
        DemoBackend::builder()
            .cold_start(Duration::from_secs(2))
            .build(),
    )
    .await;
    let yaml = format!(
        "location: e2e\ndefaults: {{interval: 1s, timeout: 800ms}}\nchecks:\n  - {{name: golden-path, type: agent_pipeline, target: \"ws://{demo}/ws\"}}\n  - {{name: golden-path-sse, type: agent_pipeline, target: \"http://{demo}/sse?profile=ag-ui\", profile: ag-ui}}\n  - {{name: backend-health, type: http, target: \"http://{demo}/health\"}}\n  - {{name: cold-health, type: http, target: \"http://{cold}/health\"}}\n  - {{name: backend-cert, type: tls, target: \"localhost:{}\", ca_file: \"{}\"}}\nmodules:\n  http_2xx: {{type: http, timeout: 2s}}\nprobe:\n  allow_targets: [\"127.0.0.1:*\"]\n",
        tls.port(),
        ca.display()
    );
    let cfg = config(&yaml);
    let rules = pathwatch::rules::generate(&cfg, pathwatch::rules::DEFAULT_SLO);
    let d = start(&yaml).await;
    let pathwatch_addr = d.base.trim_start_matches("http://").to_string();

    let (hook, inbox) = receiver().await;
    let prom_port = closed_port().await.port();
    let prom = format!("127.0.0.1:{prom_port}");
    let alertmanager = Alertmanager::start(dir.path(), hook, None).await;
    let am = &alertmanager.addr;

    // The shipped files, pointed at this test's addresses and made fast.
    let shipped = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    let prom_yml = shipped("deploy/prometheus/prometheus.yml")
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("127.0.0.1:9093", am)
        .replace("127.0.0.1:9115", &pathwatch_addr);
    let write = |name: &str, text: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let prom_file = write("prometheus.yml", &prom_yml);
    write("rules.yml", &rules);
    let arg = |k: &str, v: &dyn std::fmt::Display| format!("--{k}={v}");
    let _prometheus = run_program(
        PROMETHEUS,
        &[
            arg("config.file", &prom_file.display()),
            arg("storage.tsdb.path", &dir.path().join("tsdb").display()),
            arg("web.listen-address", &prom),
        ],
    );
    let prom = format!("http://{prom}");
    wait_http(&format!("{prom}/-/ready")).await;

    // Prometheus scrapes pathwatch and sees the golden path OK before the fault.
    let ok = r#"pathwatch_check_state{check="golden-path",state="ok"} == 1"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    while query(&prom, ok).await["data"]["result"]
        .as_array()
        .is_none_or(|r| r.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw the golden path OK"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The fault: tool_completed stops arriving.
    let (status, _) = http(
        "PUT",
        &format!("http://{demo}/demo/fault?ws=drop:tool_completed"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let fault_at = Instant::now();
    let page = wait_for_alert(
        &inbox,
        "/page",
        "firing",
        "PathwatchGoldenPathFailing",
        Duration::from_secs(90),
    )
    .await;
    let to_page = fault_at.elapsed();
    assert_eq!(page["labels"]["check"], "golden-path");
    assert_eq!(page["labels"]["severity"], "page");
    assert_eq!(page["labels"]["location"], "e2e");
    assert_eq!(page["labels"]["job"], "pathwatch");
    let description = page["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("waterfall of the last run on /checks/golden-path"),
        "{description}"
    );

    // Cleared: the page resolves.
    http("DELETE", &format!("http://{demo}/demo/fault"), None).await;
    let cleared_at = Instant::now();
    wait_for_alert(
        &inbox,
        "/page",
        "resolved",
        "PathwatchGoldenPathFailing",
        Duration::from_secs(90),
    )
    .await;
    let to_resolve = cleared_at.elapsed();
    println!(
        "fault -> page {:.1} s, clear -> resolve {:.1} s (each bounded at 90 s)",
        to_page.as_secs_f64(),
        to_resolve.as_secs_f64()
    );

    // Every dashboard query parses and returns data from this Prometheus.
    let mut failures = Vec::new();
    for file in ["dashboards/overview.json", "dashboards/golden-path.json"] {
        for (what, expr) in dashboard_queries(&root().join(file)) {
            let answer = query(&prom, &expand(&expr)).await;
            let rows = answer["data"]["result"].as_array().map_or(0, Vec::len);
            if answer["status"] != "success" || rows == 0 {
                failures.push(format!("{file} {what}: {expr}\n  -> {answer}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "dashboard queries without data:\n{}",
        failures.join("\n")
    );
}
