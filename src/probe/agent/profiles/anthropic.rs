//! Anthropic Messages: `message_start` .. `message_stop`; tool calls are content blocks,
//! open until their block stops.

use std::collections::HashMap;

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{content, failed, noise, stage, text};
use crate::probe::expect::lookup;
use crate::protocol::profiles::Stage;

/// Tool calls by content block index, until their block stops.
#[derive(Default)]
pub(super) struct Blocks {
    open: HashMap<u64, String>,
}

impl Blocks {
    pub(super) fn read(&mut self, name: String, value: Value) -> AgentEvent {
        let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
        let mark = match name.as_str() {
            "message_start" => Mark {
                ids: text(&value, "message.id").into_iter().collect(),
                ..stage(Stage::Started)
            },
            "content_block_start" => {
                let kind = text(&value, "content_block.type").unwrap_or_default();
                match kind.as_str() {
                    "tool_use" | "server_tool_use" | "mcp_tool_use" => {
                        let id = text(&value, "content_block.id").unwrap_or_default();
                        let tool = text(&value, "content_block.name").unwrap_or_else(|| "?".into());
                        self.open.insert(index, id.clone());
                        Mark {
                            stage: Some(Stage::ToolStart),
                            tool: Some(ToolMark::Open { id, tool }),
                            ..Mark::default()
                        }
                    }
                    k if k.ends_with("_tool_result") => stage(Stage::ToolEnd),
                    _ => Mark::default(),
                }
            }
            "content_block_delta" => {
                content(text(&value, "delta.text").or_else(|| text(&value, "delta.thinking")))
            }
            "content_block_stop" => Mark {
                tool: self.open.remove(&index).map(|id| ToolMark::Close { id }),
                ..Mark::default()
            },
            "message_delta" => Mark {
                output_tokens: lookup(&value, "usage.output_tokens").and_then(Value::as_u64),
                ..Mark::default()
            },
            "message_stop" => stage(Stage::Completed),
            "ping" => noise(),
            "error" => failed(&value),
            _ => Mark::default(),
        };
        AgentEvent::new(name, value).with(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{failure, feed};
    use crate::probe::result::Reason;

    #[test]
    fn anthropic_thinking_is_a_first_token_and_errors_carry_their_type() {
        let (step, names) = feed(
            "anthropic-messages",
            &[
                (
                    "message_start",
                    r#"{"type":"message_start","message":{"id":"m"}}"#,
                ),
                ("ping", r#"{"type":"ping"}"#),
                (
                    "content_block_start",
                    r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
                ),
                (
                    "content_block_delta",
                    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hm"}}"#,
                ),
                (
                    "error",
                    r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#,
                ),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::AgentError);
        assert!(
            f.message
                .starts_with("error at 40.0ms: api_error: Internal server error (after message_start at 0µs, content_block_start at 20.0ms, content_block_delta at 30.0ms)"),
            "{}",
            f.message
        );
        assert!(!names.contains(&"ping".to_string()), "pings are noise");
    }
}
