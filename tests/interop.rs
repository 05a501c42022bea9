//! The protocols' own libraries against pathwatch, in both directions (pinned in
//! tests/interop/): streams made by `@ag-ui/encoder` and the Vercel AI SDK's `streamText`
//! read by the probe, each healthy one passing and each fault named; and the demo read by
//! the official clients (`@ag-ui/client`, `ai`, `openai`, `anthropic`) with strict types.
//! Needs node with `npm ci` run in tests/interop and python3 with its requirements.txt
//! (`.ci/run` installs both); in CI a missing one fails.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pathwatch::demo::DemoBackend;
use pathwatch::probe::Reason;
use pathwatch::protocol::profiles::Stage;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");

/// Whether node with the pinned packages and python3 with the pinned SDKs are here.
fn ready() -> bool {
    let node = Path::new(DIR).join("node_modules/@ag-ui/encoder").exists() && have("node");
    let python = std::process::Command::new("python3")
        .args(["-c", "import openai, anthropic, websockets"])
        .output()
        .is_ok_and(|o| o.status.success());
    if node && python {
        return true;
    }
    let why = "the interop tests need node with `npm ci` in tests/interop and python3 with \
               `pip install -r tests/interop/requirements.txt`";
    if std::env::var("CI").is_ok() {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

/// streams.mjs on 127.0.0.1: its port, and the process (killed when dropped).
async fn stream_server() -> (u16, tokio::process::Child) {
    let mut child = tokio::process::Command::new("node")
        .arg("streams.mjs")
        .current_dir(DIR)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("streams.mjs says its port within 30s")
        .unwrap()
        .expect("streams.mjs printed its port");
    let port: serde_json::Value = serde_json::from_str(&first).unwrap();
    (port["port"].as_u64().unwrap() as u16, child)
}

/// What a case must give: a pass, or a reason and words of the message.
enum Expect {
    Pass(&'static [Stage]),
    Fail(Reason, &'static [&'static str]),
}
use Expect::*;

const TRUNCATED: &[&str] = &["the stream broke off", "(truncated)"];

const CASES: [(&str, &str, &str, Expect); 15] = [
    (
        "ag-ui",
        "happy",
        "ag-ui",
        Pass(&[Stage::ToolStart, Stage::ToolEnd]),
    ),
    ("ag-ui", "rich", "ag-ui", Pass(&[Stage::FirstToken])),
    (
        "ag-ui",
        "chunked",
        "ag-ui",
        Pass(&[Stage::ToolStart, Stage::ToolEnd]),
    ),
    (
        "ag-ui",
        "run-error",
        "ag-ui",
        Fail(
            Reason::AgentError,
            &["RUN_ERROR at", "rate_limited: LLM provider returned 429"],
        ),
    ),
    (
        "ag-ui",
        "interrupt",
        "ag-ui",
        Fail(
            Reason::AgentError,
            &[
                "RUN_FINISHED at",
                "the run stopped for approval: \"Approve sending the email to ops@example.ai?\" (tool_approval)",
            ],
        ),
    ),
    (
        "ag-ui",
        "cancelled",
        "ag-ui",
        Fail(Reason::AgentError, &["the run was cancelled"]),
    ),
    (
        "ag-ui",
        "truncated",
        "ag-ui",
        Fail(Reason::Protocol, TRUNCATED),
    ),
    (
        "ag-ui",
        "hang",
        "ag-ui",
        Fail(
            Reason::EventTimeout,
            &[
                "TEXT_MESSAGE_CONTENT at",
                "completed (RUN_FINISHED) never arrived",
            ],
        ),
    ),
    (
        "ai-sdk",
        "happy-tool",
        "ai-sdk",
        Pass(&[Stage::ToolStart, Stage::ToolEnd]),
    ),
    (
        "ai-sdk",
        "multi-step",
        "ai-sdk",
        Pass(&[Stage::ToolStart, Stage::ToolEnd]),
    ),
    (
        "ai-sdk",
        "error-part",
        "ai-sdk",
        Fail(
            Reason::AgentError,
            &["error at", "rate limited by the provider"],
        ),
    ),
    (
        "ai-sdk",
        "abort",
        "ai-sdk",
        Fail(
            Reason::AgentError,
            &["the stream was aborted: This operation was aborted"],
        ),
    ),
    // A model stream that throws errors the response body: the connection breaks off.
    (
        "ai-sdk",
        "throws",
        "ai-sdk",
        Fail(Reason::Protocol, TRUNCATED),
    ),
    (
        "ai-sdk",
        "truncated",
        "ai-sdk",
        Fail(Reason::Protocol, TRUNCATED),
    ),
    (
        "ai-sdk",
        "hang",
        "ai-sdk",
        Fail(
            Reason::EventTimeout,
            &["text-delta at", "completed (finish) never arrived"],
        ),
    ),
];

#[tokio::test]
async fn the_probe_reads_streams_made_by_the_protocols_own_libraries() {
    if !ready() {
        return;
    }
    let (port, _server) = stream_server().await;
    for (family, case, profile, expect) in &CASES {
        let yaml = format!(
            "checks:\n  - name: c\n    type: agent_pipeline\n    profile: {profile}\n    timeout: 2s\n    target: http://127.0.0.1:{port}/{family}/{case}\n"
        );
        let r = probe_once(&config(&yaml)).await;
        let what = format!("{family}/{case}");
        match expect {
            Pass(stages) => {
                assert!(r.success(), "{what}: {:?}", r.failure);
                let stats = r.agent.as_ref().unwrap();
                for s in [Stage::Started, Stage::FirstToken, Stage::Completed]
                    .iter()
                    .chain(stages.iter())
                {
                    assert!(stats.stage(*s).is_some(), "{what}: {s:?} not measured");
                }
            }
            Fail(reason, words) => {
                let f = r
                    .failure
                    .unwrap_or_else(|| panic!("{what} passed: {:?}", r.events));
                assert_eq!(f.reason, *reason, "{what}: {}", f.message);
                for w in *words {
                    assert!(f.message.contains(w), "{what}: {w:?} not in {}", f.message);
                }
                // Words, not a library's error chain.
                assert!(!f.message.contains("hyper"), "{what}: {}", f.message);
            }
        }
    }
}

/// Runs one client script against the demo; panics with what it said when it fails.
async fn client(program: &str, script: &str, base: &str) {
    let run = tokio::process::Command::new(program)
        .args([script, base])
        .current_dir(DIR)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .unwrap_or_else(|_| panic!("{script} ran for 2 minutes"))
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script}: {said}");
    print!("{said}");
}

#[tokio::test]
async fn the_official_clients_read_the_demo_in_every_profile() {
    if !ready() {
        return;
    }
    let addr = spawn_demo(DemoBackend::default()).await;
    let base = format!("http://{addr}");
    client("node", "agui_client.mjs", &base).await;
    client("node", "aisdk_client.mjs", &base).await;
    client("python3", "openai_client.py", &base).await;
    client("python3", "anthropic_client.py", &base).await;
}
