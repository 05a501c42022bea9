//! The status page in a real headless Chromium (Debian's `chromium`, driven by
//! `playwright-core` from tests/browser/status.mjs): the page agrees with the API, a fault
//! injected into the demo turns the golden-path row CRIT without a reload, and the detail
//! page's waterfall names the missing event. Screenshots go to target/browser-artifacts/.
//!
//! Needs node, /usr/bin/chromium and `npm ci --prefix tests/browser`; without them the test
//! fails in CI (`CI=true`) and is skipped with a note elsewhere.

mod support;

use std::path::Path;

use pathwatch::demo::DemoBackend;
use support::*;

fn missing_tool() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} is missing (apt-get install chromium)"));
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Some("playwright-core is missing (npm ci --prefix tests/browser)".into());
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("node is missing".into());
    }
    None
}

const PASSWORD: &str = "status-page-pass";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_failing_golden_path_in_a_real_browser() {
    if let Some(why) = missing_tool() {
        if std::env::var("CI").is_ok() {
            panic!("the browser test needs its tools in CI: {why}");
        }
        eprintln!("skipping the browser test outside CI: {why}");
        return;
    }
    let demo = spawn_demo(DemoBackend::default()).await;
    // Behind basic auth from a web config: the browser logs in.
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  oncall: \"{hash}\"\n")).unwrap();
    let options = pathwatch::app::RunOptions {
        web_config: Some(web),
        ..Default::default()
    };
    let d = start_with(&format!(
        "defaults: {{interval: 1s, timeout: 900ms}}\nchecks:\n  - {{name: golden-path, type: agent_pipeline, target: \"ws://{demo}/ws\"}}\n  - {{name: backend-health, type: http, target: \"http://{demo}/health\"}}\n  - {{name: backend-ready, type: http, target: \"http://{demo}/health/ready\"}}\n"
    ), options)
    .await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out_dir = root.join("target/browser-artifacts");
    let out = tokio::process::Command::new("node")
        .env("PW_USER", "oncall")
        .env("PW_PASS", PASSWORD)
        .arg(root.join("tests/browser/status.mjs"))
        .arg(&d.base)
        .arg(format!("http://{demo}"))
        .arg(&out_dir)
        .output()
        .await
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser test failed:\n{said}");
    println!("{said}");
    for shot in [
        "overview.png",
        "overview-crit.png",
        "detail.png",
        "overview-phone-dark.png",
    ] {
        assert!(out_dir.join(shot).exists(), "{shot} was not saved");
    }
}
