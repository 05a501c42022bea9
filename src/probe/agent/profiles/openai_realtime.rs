//! OpenAI Realtime over a WebSocket: `response.created` .. `response.done` with its status.

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{bulk, content, error_text, failed, noise, stage, text};
use crate::probe::expect::lookup;
use crate::protocol::profiles::Stage;

pub(super) fn read(name: String, value: Value) -> AgentEvent {
    let mark = match name.as_str() {
        "session.created" | "session.updated" | "rate_limits.updated" | "conversation.created" => {
            noise()
        }
        "response.created" => Mark {
            ids: text(&value, "response.id").into_iter().collect(),
            ..stage(Stage::Started)
        },
        "response.output_text.delta"
        | "response.text.delta"
        | "response.output_audio_transcript.delta"
        | "response.audio_transcript.delta" => content(text(&value, "delta")),
        n if n.ends_with(".delta") => bulk(),
        "response.output_item.added"
            if text(&value, "item.type").as_deref() == Some("function_call") =>
        {
            Mark {
                tool: Some(ToolMark::Open {
                    id: text(&value, "item.call_id").unwrap_or_default(),
                    tool: text(&value, "item.name").unwrap_or_else(|| "?".into()),
                }),
                ..stage(Stage::ToolStart)
            }
        }
        "response.function_call_arguments.done" => Mark {
            tool: Some(ToolMark::Close {
                id: text(&value, "call_id").unwrap_or_default(),
            }),
            ..stage(Stage::ToolEnd)
        },
        "response.done" => {
            let status = text(&value, "response.status").unwrap_or_else(|| "completed".into());
            if status == "completed" {
                Mark {
                    output_tokens: lookup(&value, "response.usage.output_tokens")
                        .and_then(Value::as_u64),
                    ..stage(Stage::Completed)
                }
            } else {
                let why =
                    error_text(lookup(&value, "response.status_details").unwrap_or(&Value::Null));
                let why = if why.is_empty() {
                    text(&value, "response.status_details.reason").unwrap_or_default()
                } else {
                    why
                };
                Mark {
                    error: Some(format!(
                        "response.done with status {status}{}",
                        if why.is_empty() {
                            String::new()
                        } else {
                            format!(": {why}")
                        }
                    )),
                    ..Mark::default()
                }
            }
        }
        "error" => failed(&value),
        _ => Mark::default(),
    };
    AgentEvent::new(name, value).with(mark)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{failure, feed};
    use crate::probe::result::Reason;

    #[test]
    fn realtime_response_done_with_a_failed_status_is_an_agent_error() {
        let (step, names) = feed(
            "openai-realtime",
            &[
                ("", r#"{"type":"session.created","session":{}}"#),
                ("", r#"{"type":"response.created","response":{"id":"r"}}"#),
                (
                    "",
                    r#"{"type":"response.done","response":{"id":"r","status":"failed","status_details":{"type":"failed","error":{"type":"server_error","message":"boom"}}}}"#,
                ),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::AgentError);
        assert!(
            f.message
                .contains("response.done with status failed: server_error: boom"),
            "{}",
            f.message
        );
        assert_eq!(names, ["response.created", "response.done"]);
    }
}
