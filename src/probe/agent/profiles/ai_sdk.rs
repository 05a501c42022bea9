//! The Vercel AI SDK UI message stream (v5+): `start` .. `finish`, then `[DONE]`.

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{bulk, content, failed, stage, text};
use crate::protocol::profiles::Stage;

pub(super) fn read(name: String, value: Value) -> AgentEvent {
    let id = || text(&value, "toolCallId").unwrap_or_default();
    let mark = match name.as_str() {
        "start" => stage(Stage::Started),
        "text-delta" | "reasoning-delta" => content(text(&value, "delta")),
        "tool-input-delta" => bulk(),
        "tool-input-start" => Mark {
            tool: Some(ToolMark::Open {
                id: id(),
                tool: text(&value, "toolName").unwrap_or_else(|| "?".into()),
            }),
            ..stage(Stage::ToolStart)
        },
        "tool-output-available"
        | "tool-output-error"
        | "tool-output-denied"
        | "tool-input-error" => Mark {
            tool: Some(ToolMark::Close { id: id() }),
            ..stage(Stage::ToolEnd)
        },
        "finish" => stage(Stage::Completed),
        "abort" => Mark {
            error: Some("the stream was aborted (abort)".into()),
            ..Mark::default()
        },
        "error" => failed(&value),
        _ => Mark::default(),
    };
    AgentEvent::new(name, value).with(mark)
}
