//! Every agent protocol profile against the demo, which speaks each one: a green run with
//! its stages, first token and output rate measured against when the demo really sent
//! them, and each fault giving the right reason and a message that names the event or
//! stage.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use pathwatch::demo::DemoBackend;
use pathwatch::probe::{ProbeResult, Reason};
use pathwatch::protocol::profiles::Stage;
use support::*;

/// A profile as the demo speaks it: how faults name its events, and its error event.
struct Case {
    profile: &'static str,
    /// The event that starts a run (delayed by the deadline test), and how the run names it.
    start: &'static str,
    shown: &'static str,
    /// An event whose loss the run must notice, and the reason that loss gives.
    lost: &'static str,
    lost_reason: Reason,
    lost_words: &'static str,
    /// How the run names the error event.
    error: &'static str,
    error_words: &'static str,
}

const CASES: [Case; 7] = [
    Case {
        profile: "ag-ui",
        start: "RUN_STARTED",
        shown: "RUN_STARTED",
        // TOOL_CALL_END only ends the arguments: a lost result is the unfinished call.
        lost: "TOOL_CALL_RESULT",
        lost_reason: Reason::EventMissing,
        lost_words: "has no TOOL_CALL_RESULT",
        error: "RUN_ERROR at",
        error_words: "rate_limited: LLM provider returned 429",
    },
    Case {
        profile: "openai-responses",
        start: "response.created",
        shown: "response.created",
        lost: "response.function_call_arguments.done",
        lost_reason: Reason::Protocol,
        lost_words: "1 event lost",
        error: "response.failed at",
        error_words: "server_error: LLM provider returned 429",
    },
    Case {
        profile: "openai-chat",
        start: "role",
        shown: "first chunk",
        lost: "[DONE]",
        lost_reason: Reason::Protocol,
        lost_words: "ended the stream before the run completed",
        error: "error at",
        error_words: "server_error: LLM provider returned 429",
    },
    Case {
        profile: "anthropic-messages",
        start: "message_start",
        shown: "message_start",
        lost: "content_block_stop",
        lost_reason: Reason::EventMissing,
        lost_words: "content_block_start(search_docs) at",
        error: "error at",
        error_words: "overloaded_error: Overloaded",
    },
    Case {
        profile: "langgraph",
        start: "metadata",
        shown: "metadata",
        lost: "tool_message",
        lost_reason: Reason::EventMissing,
        lost_words: "messages(search_docs) at",
        error: "error at",
        error_words: "RateLimitError: LLM provider returned 429",
    },
    Case {
        profile: "ai-sdk",
        start: "start",
        shown: "start",
        lost: "tool-output-available",
        lost_reason: Reason::EventMissing,
        lost_words: "tool-input-start(search_docs) at",
        error: "error at",
        error_words: "LLM provider returned 429",
    },
    Case {
        profile: "openai-realtime",
        start: "response.created",
        shown: "response.created",
        lost: "response.function_call_arguments.done",
        lost_reason: Reason::EventMissing,
        lost_words: "response.output_item.added(search_docs) at",
        error: "error at",
        error_words: "server_error: LLM provider returned 429",
    },
];

fn target(addr: SocketAddr, case: &Case, query: &str) -> String {
    match case.profile {
        "openai-realtime" => format!("ws://{addr}/ws?profile={}&{query}", case.profile),
        p => format!("http://{addr}/sse?profile={p}&{query}"),
    }
}

async fn run(addr: SocketAddr, case: &Case, query: &str, extra: &str) -> ProbeResult {
    let yaml = format!(
        "checks:\n  - name: p\n    type: agent_pipeline\n    target: {}\n    profile: {}\n    timeout: 3s\n{extra}",
        target(addr, case, query),
        case.profile
    );
    probe_once(&config(&yaml)).await
}

#[tokio::test]
async fn every_profile_runs_green_and_measures_its_stages_against_the_truth() {
    for case in &CASES {
        let demo = DemoBackend::default();
        let log = demo.sent.clone();
        let addr = spawn_demo(demo).await;
        let r = run(addr, case, "deltas=40", "").await;
        assert!(r.success(), "{}: {:?}", case.profile, r.failure);
        let stats = r.agent.as_ref().expect("agent stats");
        assert_eq!(stats.profile, case.profile);
        let truth = log.last().expect("the demo logged its run");
        for (stage, sent) in &truth {
            let stage = Stage::named(stage).unwrap();
            let at = stats
                .stage(stage)
                .unwrap_or_else(|| panic!("{}: {stage:?} not measured", case.profile));
            assert!(
                at >= *sent && at - *sent < Duration::from_millis(50),
                "{}: {stage:?} measured {at:?}, sent at {sent:?}",
                case.profile
            );
        }
        // Anthropic streams no tool result: a client tool's result is the next request.
        let stages = if case.profile == "anthropic-messages" {
            4
        } else {
            5
        };
        assert_eq!(truth.len(), stages, "{}: {truth:?}", case.profile);
        assert!(
            stats.deltas >= 40,
            "{}: {} deltas",
            case.profile,
            stats.deltas
        );
        assert!(
            stats.chars_per_second.is_some_and(|c| c > 0.0),
            "{}: {stats:?}",
            case.profile
        );
        if case.profile != "langgraph" && case.profile != "ag-ui" && case.profile != "ai-sdk" {
            assert!(stats.tokens_per_second.is_some(), "{}", case.profile);
        }
        // Deltas are counted, not kept one by one.
        assert!(
            r.events.len() < 30,
            "{}: {} events kept",
            case.profile,
            r.events.len()
        );
        assert!(
            r.events.iter().any(|e| e.name == case.shown),
            "{}: {:?}",
            case.profile,
            r.events
        );
    }
}

#[tokio::test]
async fn every_profile_names_what_broke() {
    let addr = spawn_demo(DemoBackend::default()).await;
    for case in &CASES {
        let p = case.profile;
        let fail = |r: ProbeResult, what: &str| {
            r.failure
                .unwrap_or_else(|| panic!("{p} with {what} passed"))
        };

        let f = fail(run(addr, case, "fault=error", "").await, "error");
        assert_eq!(f.reason, Reason::AgentError, "{p}: {}", f.message);
        assert!(f.message.contains(case.error), "{p}: {}", f.message);
        assert!(f.message.contains(case.error_words), "{p}: {}", f.message);

        let q = format!("fault=drop:{}", case.lost);
        let f = fail(run(addr, case, &q, "").await, &q);
        assert_eq!(f.reason, case.lost_reason, "{p}: {}", f.message);
        assert!(f.message.contains(case.lost_words), "{p}: {}", f.message);

        let f = fail(run(addr, case, "fault=malformed", "").await, "malformed");
        assert_eq!(f.reason, Reason::Protocol, "{p}: {}", f.message);
        assert!(f.message.contains("not JSON"), "{p}: {}", f.message);

        let f = fail(
            run(
                addr,
                case,
                "fault=never",
                "    expect: {run_deadline: 1s}\n",
            )
            .await,
            "never",
        );
        assert_eq!(f.reason, Reason::EventTimeout, "{p}: {}", f.message);
        let awaited = if p == "openai-chat" {
            "finish_reason"
        } else {
            "completed"
        };
        // A stage is named with the profile's word for it: `completed (RUN_FINISHED)`.
        assert!(
            f.message.contains(&format!("{awaited} never arrived"))
                || f.message.contains(&format!("{awaited} (")),
            "{p}: {}",
            f.message
        );

        let f = fail(run(addr, case, "fault=truncate", "").await, "truncate");
        if p == "openai-realtime" {
            assert_eq!(f.reason, Reason::WsClosed, "{p}: {}", f.message);
        } else {
            assert_eq!(f.reason, Reason::Protocol, "{p}: {}", f.message);
            assert!(f.message.contains("truncated"), "{p}: {}", f.message);
        }

        // A stage deadline: the run ends within the deadline (+100 ms), naming the stage.
        let q = format!("fault=delay:{}:1500", case.start);
        let deadline = "    expect: {deadlines: {started: 500ms}}\n";
        let (r, took) = timed(run(addr, case, &q, deadline)).await;
        let f = fail(r, &q);
        assert_eq!(f.reason, Reason::EventTimeout, "{p}: {}", f.message);
        assert!(
            f.message.contains("started never arrived")
                || f.message
                    .contains(&format!("started ({}) never arrived", case.shown)),
            "{p}: {}",
            f.message
        );
        assert!(
            took < Duration::from_millis(600) + Duration::from_millis(100),
            "{p}: {took:?}"
        );

        let f = fail(
            run(
                addr,
                case,
                "fault=slow",
                "    expect: {deadlines: {first_token: 400ms}}\n",
            )
            .await,
            "slow",
        );
        assert_eq!(f.reason, Reason::EventTimeout, "{p}: {}", f.message);
        assert!(
            f.message.contains("first_token never arrived"),
            "{p}: {}",
            f.message
        );
    }
}

#[tokio::test]
async fn refusals_before_the_stream_carry_the_providers_words() {
    let addr = spawn_demo(DemoBackend::default()).await;
    for (case, fault, said) in [
        (
            &CASES[3],
            "fault=reject529",
            "HTTP 529: overloaded_error: Overloaded",
        ),
        (
            &CASES[1],
            "fault=reject429",
            "HTTP 429 Too Many Requests: rate_limit_error: Number of requests has exceeded your rate limit",
        ),
        (
            &CASES[0],
            "fault=reject401",
            "HTTP 401 Unauthorized: invalid x-api-key",
        ),
    ] {
        let f = run(addr, case, fault, "").await.failure.unwrap();
        assert_eq!(f.reason, Reason::HttpStatus);
        assert_eq!(
            f.message,
            format!("the agent refused the message with {said}")
        );
    }
}

#[tokio::test]
async fn a_custom_profile_reads_any_stream_by_its_names() {
    let addr = spawn_demo(DemoBackend::default()).await;
    let custom = "    custom:\n      started: [start]\n      deltas: [text-delta]\n      delta_path: delta\n      tool_start: [tool-input-start]\n      tool_end: [tool-output-available]\n      tool_id_path: toolCallId\n      completed: [finish]\n      error: [error]\n      error_path: errorText\n";
    let yaml = |q: &str| {
        format!(
            "checks:\n  - name: c\n    type: agent_pipeline\n    target: http://{addr}/sse?profile=ai-sdk&{q}\n    profile: custom\n    timeout: 3s\n    message: {{messages: [{{id: m1, role: user, parts: [{{type: text, text: hi}}]}}]}}\n{custom}    expect: {{events: [started, first_token, tool_start, tool_end, completed]}}\n"
        )
    };
    let r = probe_once(&config(&yaml(""))).await;
    assert!(r.success(), "{:?}", r.failure);
    let stats = r.agent.unwrap();
    assert_eq!(stats.stages.len(), 5, "{stats:?}");
    let f = probe_once(&config(&yaml("fault=error")))
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::AgentError);
    assert!(
        f.message.contains("LLM provider returned 429"),
        "{}",
        f.message
    );
    let f = probe_once(&config(&yaml("fault=drop:tool-output-available")))
        .await
        .failure
        .unwrap();
    assert_eq!(f.reason, Reason::EventMissing);
    assert!(
        f.message.contains("tool_end never arrived"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn api_keys_never_reach_the_output_even_when_the_provider_echoes_them() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    // Providers quote the key they refused ("Incorrect API key provided: sk-...").
    let echo = |headers: HeaderMap| async move {
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = serde_json::json!({"type":"error","error":{"type":"authentication_error","message":format!("invalid x-api-key: {key}")}});
        (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    };
    let addr =
        spawn_app(axum::Router::new().route("/v1/messages", axum::routing::post(echo))).await;
    let key = "sk-ant-api03-very-secret-key";
    let yaml = format!(
        "checks:\n  - name: claude\n    type: agent_pipeline\n    target: http://{addr}/v1/messages\n    profile: anthropic-messages\n    headers: {{x-api-key: \"${{ANTHROPIC_API_KEY}}\"}}\n"
    );
    let cfg = pathwatch::config::Config::from_str(&yaml, "t.yaml", &|name| {
        (name == "ANTHROPIC_API_KEY").then(|| key.to_string())
    })
    .unwrap();
    let r = probe_once(&cfg).await;
    let f = r.failure.unwrap();
    assert_eq!(f.reason, Reason::HttpStatus);
    assert!(!f.message.contains(key), "{}", f.message);
    assert!(
        f.message
            .contains("authentication_error: invalid x-api-key"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn the_check_page_shows_stages_and_the_output_rate_of_a_profile() {
    let addr = spawn_demo(DemoBackend::default()).await;
    let d = start(&format!(
        "defaults: {{interval: 1s, timeout: 900ms}}\nchecks:\n  - name: agui\n    type: agent_pipeline\n    target: http://{addr}/sse?profile=ag-ui\n    profile: ag-ui\n    expect: {{events: [started, first_token, tool_start, tool_end, completed], deadlines: {{first_token: 2s}}}}\n"
    ))
    .await;
    let mut html = String::new();
    for _ in 0..100 {
        let (_, page) = get_text(&format!("{}/checks/agui", d.base), &[]).await;
        if page.contains("first token") {
            html = page;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(html.contains("first token"), "no output line");
    assert!(html.contains("chars/s"), "{html}");
    assert!(html.contains(">first_token<"), "a stage row");
    assert!(
        html.contains(">TEXT_MESSAGE_CONTENT<"),
        "the profile's events"
    );
    assert!(!html.contains("never arrived"), "every stage resolved");
    let metrics = get_text(&format!("{}/metrics", d.base), &[]).await.1;
    assert!(
        metrics.contains(r#"pathwatch_agent_stage_latency_seconds_count{check="agui",location="#),
        "{metrics}"
    );
    assert!(metrics.contains("pathwatch_agent_first_token_seconds_bucket{"));
}

#[tokio::test]
async fn ag_ui_runs_over_a_websocket_too() {
    let demo = DemoBackend::default();
    let log = demo.sent.clone();
    let addr = spawn_demo(demo).await;
    let yaml = format!(
        "checks:\n  - name: ws\n    type: agent_pipeline\n    target: ws://{addr}/ws?profile=ag-ui\n    profile: ag-ui\n    timeout: 3s\n"
    );
    let r = probe_once(&config(&yaml)).await;
    assert!(r.success(), "{:?}", r.failure);
    let stats = r.agent.unwrap();
    let first = stats.stage(Stage::FirstToken).unwrap();
    let sent = log.last().unwrap();
    let truth = sent.iter().find(|(s, _)| s == "first_token").unwrap().1;
    assert!(first >= truth && first - truth < Duration::from_millis(50));
    // A protocol without a socket is refused at the upgrade, in words.
    let yaml = format!(
        "checks:\n  - name: ws\n    type: agent_pipeline\n    target: ws://{addr}/ws?profile=openai-chat\n    profile: openai-chat\n    timeout: 3s\n"
    );
    let f = probe_once(&config(&yaml)).await.failure.unwrap();
    assert_eq!(f.reason, Reason::WsUpgrade, "{}", f.message);
    assert!(f.message.contains("400"), "{}", f.message);
}

/// Long answers are healthy: deltas are counted and timed, never kept, so 100,000 of them
/// pass inside the default caps, and a stream past `max_stream_bytes` says what to raise.
#[tokio::test]
async fn a_hundred_thousand_delta_answer_passes_and_the_byte_cap_names_itself() {
    let addr = spawn_demo(DemoBackend::default()).await;
    let chat = &CASES[2];
    assert_eq!(chat.profile, "openai-chat");
    let yaml = format!(
        "checks:\n  - name: p\n    type: agent_pipeline\n    target: {}\n    profile: openai-chat\n    interval: 2m\n    timeout: 60s\n",
        target(addr, chat, "deltas=100000&gap_ms=0")
    );
    let r = probe_once(&config(&yaml)).await;
    assert!(r.success(), "{:?}", r.failure);
    let stats = r.agent.as_ref().unwrap();
    assert!(stats.deltas >= 100_000, "{} deltas", stats.deltas);
    assert!(r.events.len() < 30, "{} events kept", r.events.len());

    let r = run(
        addr,
        chat,
        "deltas=1000&gap_ms=0",
        "    expect: {max_stream_bytes: 20000}\n",
    )
    .await;
    let f = r.failure.expect("over the byte cap");
    assert_eq!(f.reason, Reason::Protocol);
    assert!(
        f.message
            .contains("without the run completing; stopped reading (raise expect.max_stream_bytes, now 20000, for longer answers;"),
        "{}",
        f.message
    );
}
