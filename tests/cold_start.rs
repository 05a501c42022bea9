//! Cold starts on the real binary: a demo that starts cold makes its checks WARN
//! (`starting`) and then OK, and the start-up lands in `pathwatch_cold_start_seconds`; a
//! start-up longer than `cold_start_grace` is CRIT and says so; `PUT /demo/fault?restart=`
//! starts another one; `pathwatch check --wait-ready` waits for a cold demo, and fails
//! saying so when its budget is shorter than the start-up.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn config(demo: std::net::SocketAddr, cold: &str) -> String {
    format!(
        "server: {{listen: 127.0.0.1:0}}
location: here
demo: {{listen: {demo}, cold_start: {cold}}}
defaults: {{interval: 500ms, timeout: 400ms}}
checks:
  - {{name: health, type: http, target: \"http://{demo}/health\"}}
  - {{name: golden, type: agent_pipeline, target: \"ws://{demo}/ws\", interval: 1s, timeout: 900ms}}
  - {{name: impatient, type: http, target: \"http://{demo}/health/ready\", thresholds: {{cold_start_grace: 1s}}}}
"
    )
}

/// Waits up to `secs` for `name` to be in `state`.
async fn wait_for(d: &Binary, name: &str, state: &str, secs: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = d.check(name).await.unwrap();
        if c["state"] == state {
            return c;
        }
        assert!(Instant::now() < until, "{name} never became {state}: {c}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cold_start_is_warn_then_ok_and_its_length_is_measured() {
    let demo = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(demo, "5s")).unwrap();
    let d = Binary::start(&path, &[]).await;

    let warn = wait_for(&d, "health", "warn", 5).await;
    let cause = warn["cause"].as_str().unwrap();
    assert!(cause.contains("starting: got HTTP 503"), "{cause}");
    assert_eq!(warn["last"]["reason"], "starting", "{warn}");
    assert!(
        warn["last"]["why"]
            .as_str()
            .unwrap()
            .starts_with("starting"),
        "{warn}"
    );
    assert!(
        warn["last"]["message"]
            .as_str()
            .unwrap()
            .contains("Startup in progress"),
        "{warn}"
    );
    let golden = wait_for(&d, "golden", "warn", 5).await;
    assert!(
        golden["last"]["message"]
            .as_str()
            .unwrap()
            .contains("1011 \"Service not ready\""),
        "{golden}"
    );

    // Longer than its 1 s grace: CRIT, and the cause says how long it has been starting.
    let crit = wait_for(&d, "impatient", "crit", 6).await;
    let why = crit["last"]["why"].as_str().unwrap();
    assert!(
        why.starts_with("still starting after") && why.contains("(cold_start_grace 1.0s)"),
        "{why}"
    );

    for name in ["health", "golden", "impatient"] {
        wait_for(&d, name, "ok", 10).await;
    }
    let m = d.metrics().await;
    let count = "pathwatch_cold_start_seconds_count{check=\"health\",location=\"here\"}";
    let sum = "pathwatch_cold_start_seconds_sum{check=\"health\",location=\"here\"}";
    assert_eq!(metric(&m, count), Some(1.0), "{m}");
    let took = metric(&m, sum).unwrap();
    assert!((4.0..7.0).contains(&took), "a 5 s cold start took {took} s");
    println!("a 5 s demo cold start: pathwatch_cold_start_seconds observed {took:.2} s");

    // The API and the status page show it, with the advice.
    let (_, detail) = get_text(&format!("{}/api/v1/checks/health", d.base), &[]).await;
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["start_ups"]["count"], 1, "{detail}");
    let (_, page) = get_text(&format!("{}/checks/health", d.base), &[]).await;
    assert!(page.contains("Start-ups"), "{page}");
    assert!(page.contains("readiness probe must allow"), "{page}");

    // A redeploy of the running demo: starting again, then OK, a second start-up.
    let (status, _) = http("PUT", &format!("http://{demo}/demo/fault?restart=2s"), None).await;
    assert_eq!(status, 200);
    wait_for(&d, "health", "warn", 5).await;
    wait_for(&d, "health", "ok", 10).await;
    let m = d.metrics().await;
    assert_eq!(metric(&m, count), Some(2.0), "{m}");
    let log = d.stop().await;
    assert!(log.contains("Start-up finished."), "{log}");
}

async fn gate(args: &[&str], cold: &str) -> (Option<i32>, String) {
    let demo = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config(demo, cold)).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pathwatch"))
        .args(["check", "--check", "health", "--check", "golden"])
        .args(args)
        .arg("--config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test]
async fn the_deploy_gate_waits_for_a_start_up_within_its_budget() {
    let (code, out) = gate(&["--wait-ready", "20s"], "3s").await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ready after"), "{out}");

    let (code, out) = gate(&["--wait-ready", "1s"], "30s").await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("starting: got HTTP 503"), "{out}");
    assert!(out.contains("not ready within --wait-ready 1.0s"), "{out}");

    // Without waiting, a starting target fails the gate and says how to wait for it.
    let (code, out) = gate(&[], "30s").await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--wait-ready"), "{out}");
}
