//! The demo's agent in every streaming protocol of STREAMING_PROTOCOLS.md: `POST
//! /sse?profile=ag-ui` (and `openai-responses`, `openai-chat`, `anthropic-messages`,
//! `langgraph`, `ai-sdk`) streams one answer with a text reply and a tool call in that
//! protocol's events; `/ws?profile=openai-realtime` does the same over a WebSocket. The
//! same faults as the agent-events run, named by the protocol's own events
//! (`drop:TOOL_CALL_RESULT`, `delay:message_start:500`), plus `reject429`/`reject529`
//! with the provider's error body, `truncate` and `slow`.
//!
//! The event names are written here from the protocols' references, not taken from the
//! probe: the demo is the oracle.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::DemoBackend;
use super::agent::{Emit, Session};
use super::faults::Fault;
use crate::protocol::profiles::Profile;

mod realtime;
mod responses;

/// One event of a scripted answer.
pub(super) struct Step {
    /// What faults call it (the protocol's event name, or a word for Chat's untyped chunks).
    label: &'static str,
    /// The SSE `event:` line ("" for none).
    event: &'static str,
    body: Value,
    /// 0 start, 1 first token, 2 tool call, 3 tool result, 4 end: the demo's delays.
    phase: usize,
    /// The stage this event reaches, for the send log (the truth measured latencies meet).
    truth: Option<&'static str>,
}

fn step(label: &'static str, event: &'static str, phase: usize, body: Value) -> Step {
    Step {
        label,
        event,
        body,
        phase,
        truth: None,
    }
}

impl Step {
    fn reaches(mut self, stage: &'static str) -> Step {
        self.truth = Some(stage);
        self
    }
}

const WORDS: [&str; 6] = ["Looking ", "up ", "the ", "docs ", "for ", "you. "];

fn word(i: usize) -> &'static str {
    WORDS[i % WORDS.len()]
}

/// A good answer in `profile`'s events to `request`: a text reply of `deltas` deltas, then
/// a tool call.
pub(super) fn script(profile: Profile, deltas: usize, request: &Value) -> Vec<Step> {
    let mut s = Vec::new();
    let d = deltas.max(1);
    match profile {
        Profile::AgUi => {
            // The server echoes the run input's ids.
            let id = |k: &str, default: &'static str| {
                request
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or(default)
                    .to_string()
            };
            let (t, r) = (id("threadId", "thread-1"), id("runId", "run-1"));
            s.push(
                step(
                    "RUN_STARTED",
                    "",
                    0,
                    json!({"type":"RUN_STARTED","threadId":t,"runId":r}),
                )
                .reaches("started"),
            );
            s.push(step(
                "TEXT_MESSAGE_START",
                "",
                1,
                json!({"type":"TEXT_MESSAGE_START","messageId":"msg-1","role":"assistant"}),
            ));
            for i in 0..d {
                let e = step(
                    "TEXT_MESSAGE_CONTENT",
                    "",
                    1,
                    json!({"type":"TEXT_MESSAGE_CONTENT","messageId":"msg-1","delta":word(i)}),
                );
                s.push(if i == 0 { e.reaches("first_token") } else { e });
            }
            s.push(step(
                "TEXT_MESSAGE_END",
                "",
                1,
                json!({"type":"TEXT_MESSAGE_END","messageId":"msg-1"}),
            ));
            s.push(step("TOOL_CALL_START", "", 2, json!({"type":"TOOL_CALL_START","toolCallId":"call-1","toolCallName":"search_docs","parentMessageId":"msg-1"})).reaches("tool_start"));
            s.push(step("TOOL_CALL_ARGS", "", 2, json!({"type":"TOOL_CALL_ARGS","toolCallId":"call-1","delta":"{\"query\":\"pathwatch\"}"})));
            s.push(step(
                "TOOL_CALL_END",
                "",
                2,
                json!({"type":"TOOL_CALL_END","toolCallId":"call-1"}),
            ));
            s.push(step("TOOL_CALL_RESULT", "", 3, json!({"type":"TOOL_CALL_RESULT","messageId":"msg-2","toolCallId":"call-1","content":"doc-1"})).reaches("tool_end"));
            s.push(
                step(
                    "RUN_FINISHED",
                    "",
                    4,
                    json!({"type":"RUN_FINISHED","threadId":t,"runId":r,"outcome":{"type":"success"}}),
                )
                .reaches("completed"),
            );
        }
        Profile::OpenaiResponses => responses::script(&mut s, d),
        Profile::OpenaiChat => {
            let chunk = |delta: Value, finish: Value| json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"demo","choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
            s.push(
                step(
                    "role",
                    "",
                    0,
                    chunk(json!({"role":"assistant","content":""}), Value::Null),
                )
                .reaches("started"),
            );
            for i in 0..d {
                let e = step(
                    "content",
                    "",
                    1,
                    chunk(json!({"content":word(i)}), Value::Null),
                );
                s.push(if i == 0 { e.reaches("first_token") } else { e });
            }
            s.push(step("tool_calls", "", 2, chunk(json!({"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"search_docs","arguments":""}}]}), Value::Null)).reaches("tool_start"));
            s.push(step("arguments", "", 2, chunk(json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"query\":\"pathwatch\"}"}}]}), Value::Null)));
            s.push(
                step(
                    "finish_reason",
                    "",
                    3,
                    chunk(json!({}), json!("tool_calls")),
                )
                .reaches("tool_end"),
            );
            s.push(step("usage", "", 4, json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"demo","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":d + 8,"total_tokens":d + 20}})));
            s.push(step("[DONE]", "", 4, Value::String("[DONE]".into())).reaches("completed"));
        }
        Profile::AnthropicMessages => {
            s.push(step("message_start", "message_start", 0, json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"demo","usage":{"input_tokens":12,"output_tokens":1}}})).reaches("started"));
            s.push(step("content_block_start", "content_block_start", 1, json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})));
            s.push(step("ping", "ping", 1, json!({"type":"ping"})));
            for i in 0..d {
                let e = step(
                    "content_block_delta",
                    "content_block_delta",
                    1,
                    json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":word(i)}}),
                );
                s.push(if i == 0 { e.reaches("first_token") } else { e });
            }
            s.push(step(
                "content_block_stop",
                "content_block_stop",
                1,
                json!({"type":"content_block_stop","index":0}),
            ));
            s.push(step("content_block_start", "content_block_start", 2, json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"search_docs","input":{}}})).reaches("tool_start"));
            s.push(step("content_block_delta", "content_block_delta", 2, json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"pathwatch\"}"}})));
            s.push(step(
                "content_block_stop",
                "content_block_stop",
                3,
                json!({"type":"content_block_stop","index":1}),
            ));
            s.push(step("message_delta", "message_delta", 4, json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":d + 8}})));
            s.push(
                step(
                    "message_stop",
                    "message_stop",
                    4,
                    json!({"type":"message_stop"}),
                )
                .reaches("completed"),
            );
        }
        Profile::Langgraph => {
            let meta = json!({"langgraph_node":"agent","run_id":"run-1"});
            s.push(
                step(
                    "metadata",
                    "metadata",
                    0,
                    json!({"run_id":"run-1","attempt":1}),
                )
                .reaches("started"),
            );
            for i in 0..d {
                let e = step(
                    "messages",
                    "messages",
                    1,
                    json!([{"type":"AIMessageChunk","id":"msg-1","content":word(i)}, meta]),
                );
                s.push(if i == 0 { e.reaches("first_token") } else { e });
            }
            s.push(step("tool_call", "messages", 2, json!([{"type":"AIMessageChunk","id":"msg-1","content":"","tool_call_chunks":[{"id":"call-1","name":"search_docs","args":"{\"query\":\"pathwatch\"}","index":0}]}, meta])).reaches("tool_start"));
            s.push(step("updates", "updates", 2, json!({"agent":{"messages":[{"type":"ai","tool_calls":[{"id":"call-1","name":"search_docs"}]}]}})));
            s.push(step("tool_message", "messages", 3, json!([{"type":"tool","id":"msg-2","content":"doc-1","tool_call_id":"call-1","name":"search_docs"}, {"langgraph_node":"tools"}])).reaches("tool_end"));
            s.push(step(
                "updates",
                "updates",
                4,
                json!({"tools":{"messages":[{"type":"tool","tool_call_id":"call-1"}]}}),
            ));
        }
        Profile::AiSdk => {
            s.push(
                step("start", "", 0, json!({"type":"start","messageId":"msg-1"}))
                    .reaches("started"),
            );
            s.push(step("start-step", "", 1, json!({"type":"start-step"})));
            s.push(step(
                "text-start",
                "",
                1,
                json!({"type":"text-start","id":"text-1"}),
            ));
            for i in 0..d {
                let e = step(
                    "text-delta",
                    "",
                    1,
                    json!({"type":"text-delta","id":"text-1","delta":word(i)}),
                );
                s.push(if i == 0 { e.reaches("first_token") } else { e });
            }
            s.push(step(
                "text-end",
                "",
                1,
                json!({"type":"text-end","id":"text-1"}),
            ));
            s.push(step("tool-input-start", "", 2, json!({"type":"tool-input-start","toolCallId":"call-1","toolName":"search_docs"})).reaches("tool_start"));
            s.push(step("tool-input-delta", "", 2, json!({"type":"tool-input-delta","toolCallId":"call-1","inputTextDelta":"{\"query\":\"pathwatch\"}"})));
            s.push(step("tool-input-available", "", 2, json!({"type":"tool-input-available","toolCallId":"call-1","toolName":"search_docs","input":{"query":"pathwatch"}})));
            s.push(step("tool-output-available", "", 3, json!({"type":"tool-output-available","toolCallId":"call-1","output":["doc-1"]})).reaches("tool_end"));
            s.push(step("finish-step", "", 4, json!({"type":"finish-step"})));
            s.push(
                step(
                    "finish",
                    "",
                    4,
                    json!({"type":"finish","finishReason":"tool-calls"}),
                )
                .reaches("completed"),
            );
            s.push(step("[DONE]", "", 4, Value::String("[DONE]".into())));
        }
        Profile::OpenaiRealtime => realtime::script(&mut s, d),
        Profile::AgentEvents | Profile::Custom => {}
    }
    s
}

/// The tool call's arguments in every profile.
const ARGS: &str = r#"{"query":"pathwatch"}"#;

/// An OpenAI Responses `response` object with every field the SDK's model requires.
fn responses_object(status: &str, output: Value) -> Value {
    json!({"id":"resp_1","object":"response","created_at":1_700_000_000,"status":status,"model":"demo","output":output,"parallel_tool_calls":true,"tool_choice":"auto","tools":[],"error":null,"incomplete_details":null,"instructions":null,"metadata":{},"temperature":1.0,"top_p":1.0,"usage":null})
}

/// The error event a failing run sends mid-stream, as the protocol sends it.
fn error_event(profile: Profile) -> (&'static str, Value) {
    let text = "LLM provider returned 429 (quota exceeded)";
    match profile {
        Profile::AgUi => (
            "",
            json!({"type":"RUN_ERROR","message":text,"code":"rate_limited"}),
        ),
        Profile::OpenaiResponses => {
            let mut failed = responses_object("failed", json!([]));
            failed["error"] = json!({"code":"server_error","message":text});
            (
                "response.failed",
                json!({"type":"response.failed","sequence_number":1,"response":failed}),
            )
        }
        Profile::OpenaiChat => (
            "",
            json!({"error":{"message":text,"type":"server_error","code":null}}),
        ),
        Profile::AnthropicMessages => (
            "error",
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ),
        Profile::Langgraph => ("error", json!({"error":"RateLimitError","message":text})),
        Profile::AiSdk => ("", json!({"type":"error","errorText":text})),
        _ => (
            "",
            json!({"type":"error","event_id":"event_e","error":{"type":"server_error","code":"rate_limited","message":text}}),
        ),
    }
}

/// A refusal before the stream (`reject401`, `reject429`, `reject529`) in the provider's
/// words: Anthropic's `{"type":"error","error":{...}}`, OpenAI's `{"error":{...}}`.
pub(super) fn refusal(profile: Profile, status: StatusCode) -> Response {
    let (kind, message) = match status.as_u16() {
        401 => ("authentication_error", "invalid x-api-key"),
        403 => ("permission_error", "your key has no access to this agent"),
        429 => (
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        ),
        529 => ("overloaded_error", "Overloaded"),
        _ => ("api_error", "Internal server error"),
    };
    let body = match profile {
        Profile::AnthropicMessages => {
            json!({"type":"error","error":{"type":kind,"message":message}})
        }
        Profile::OpenaiResponses | Profile::OpenaiChat | Profile::OpenaiRealtime => {
            json!({"error":{"message":message,"type":kind,"param":null,"code":kind}})
        }
        Profile::AgentEvents => json!({"detail": "Not authenticated"}),
        _ => json!({"error": message}),
    };
    (status, axum::Json(body)).into_response()
}

/// Whether a request body is one this profile's server takes; why not otherwise.
pub(super) fn accepts(profile: Profile, body: &Value) -> Result<(), &'static str> {
    let has = |k: &str| body.get(k).is_some();
    let ok = match profile {
        Profile::AgUi => has("messages") && has("threadId") && has("runId"),
        Profile::OpenaiResponses => has("input") && has("model"),
        Profile::OpenaiChat => has("messages") && has("model"),
        Profile::AnthropicMessages => has("messages") && has("max_tokens") && has("model"),
        Profile::Langgraph => has("input") && has("assistant_id"),
        Profile::AiSdk => has("messages"),
        Profile::OpenaiRealtime => return Err("OpenAI Realtime runs over a WebSocket: GET /ws"),
        Profile::AgentEvents | Profile::Custom => {
            return Err("the demo speaks no `custom` protocol; pick a profile");
        }
    };
    if ok {
        Ok(())
    } else {
        Err("the body lacks fields this protocol requires")
    }
}

/// Plays the profile's answer with the session's fault; returns when each stage was sent
/// (since the message arrived), or None when the fault ended the run early.
pub(super) async fn play(
    out: &mut impl Emit,
    demo: &DemoBackend,
    session: &Session,
    request: &Value,
) -> Result<Option<Vec<(String, Duration)>>, axum::Error> {
    let received = tokio::time::Instant::now();
    let fault = &session.fault;
    let mut steps = script(session.profile, session.deltas, request);
    if *fault == Some(Fault::Reorder)
        && let Some(tool) = steps.iter().position(|s| s.phase == 2)
    {
        steps.swap(0, tool);
    }
    let mut phase_begun = [false; 5];
    let mut delayed = false;
    let mut sent_at: Vec<(String, Duration)> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        if !phase_begun[step.phase] {
            phase_begun[step.phase] = true;
            tokio::time::sleep(demo.delays[step.phase]).await;
            match fault {
                Some(Fault::Never) if step.phase == 2 => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return Ok(None);
                }
                Some(Fault::Truncate) if step.phase == 2 => {
                    let text = step.body.to_string();
                    out.cut(&text[..text.len() / 2]).await?;
                    return Ok(None);
                }
                _ => {}
            }
        } else if step.phase == 1 && !session.gap.is_zero() {
            tokio::time::sleep(session.gap).await;
        }
        if let Some(Fault::Delay(label, d)) = fault
            && label == step.label
            && !delayed
        {
            delayed = true;
            tokio::time::sleep(*d).await;
        }
        if matches!(fault, Some(Fault::Drop(label)) if label == step.label) {
            continue;
        }
        if let Some(stage) = step.truth
            && !sent_at.iter().any(|(s, _)| s == stage)
        {
            sent_at.push((stage.to_string(), received.elapsed()));
        }
        emit(out, step, fault).await?;
        if matches!(fault, Some(Fault::Duplicate(label)) if label == step.label) {
            emit(out, step, fault).await?;
        }
        if i == 0 {
            match fault {
                Some(Fault::Error) => {
                    let (event, body) = error_event(session.profile);
                    out.named(event, body).await?;
                    return Ok(None);
                }
                Some(Fault::Malformed) => out.raw("{\"type\": ").await?,
                Some(Fault::Binary) => out.binary(vec![0u8, 159, 146, 150]).await?,
                Some(Fault::Oversize) => {
                    let big = json!({"type": "ping", "text": "x".repeat(4 << 20)});
                    out.named(steps[0].event, big).await?;
                }
                _ => {}
            }
        }
    }
    if session.profile == Profile::Langgraph {
        // Its run ends with the stream, which closes now.
        sent_at.push(("completed".to_string(), received.elapsed()));
    }
    Ok(Some(sent_at))
}

async fn emit(out: &mut impl Emit, step: &Step, fault: &Option<Fault>) -> Result<(), axum::Error> {
    if *fault == Some(Fault::Slow) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    match &step.body {
        Value::String(raw) => out.raw(raw).await,
        body => out.named(step.event, body.clone()).await,
    }
}
