//! The Vercel AI SDK UI message stream (v5+): `start` .. `finish`, then `[DONE]`.

use std::collections::HashSet;

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{bulk, content, failed, stage, text};
use crate::protocol::profiles::Stage;

/// Tool calls seen opening: `tool-input-start` opens a streamed input, and a tool whose
/// input was not streamed (what `streamText` sends for a model's whole `tool-call`) opens
/// with `tool-input-available`.
#[derive(Default)]
pub(super) struct Calls {
    opened: HashSet<String>,
}

impl Calls {
    pub(super) fn read(&mut self, name: String, value: Value) -> AgentEvent {
        let id = text(&value, "toolCallId").unwrap_or_default();
        let opens = matches!(name.as_str(), "tool-input-start" | "tool-input-available")
            && self.opened.insert(id.clone());
        let mark = if opens {
            Mark {
                tool: Some(ToolMark::Open {
                    id,
                    tool: text(&value, "toolName").unwrap_or_else(|| "?".into()),
                }),
                ..stage(Stage::ToolStart)
            }
        } else {
            mark(&name, &value, id)
        };
        AgentEvent::new(name, value).with(mark)
    }
}

fn mark(name: &str, value: &Value, id: String) -> Mark {
    match name {
        "start" => stage(Stage::Started),
        "text-delta" | "reasoning-delta" => content(text(value, "delta")),
        "tool-input-delta" => bulk(),
        "tool-output-available"
        | "tool-output-error"
        | "tool-output-denied"
        | "tool-input-error" => Mark {
            tool: Some(ToolMark::Close { id }),
            ..stage(Stage::ToolEnd)
        },
        "finish" => stage(Stage::Completed),
        "abort" => Mark {
            error: Some(match text(value, "reason") {
                Some(why) => format!("the stream was aborted: {why}"),
                None => "the stream was aborted".into(),
            }),
            ..Mark::default()
        },
        "error" => failed(value),
        _ => Mark::default(),
    }
}
