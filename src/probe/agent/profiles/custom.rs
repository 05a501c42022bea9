//! `profile: custom`: event names and paths from the check's `custom:` section.

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{error_text, stage, text};
use crate::config::spec::CustomProfile;
use crate::probe::expect::lookup;
use crate::protocol::profiles::Stage;

pub(super) fn read(
    custom: Option<&CustomProfile>,
    value: Value,
    sse: Option<&str>,
) -> Result<AgentEvent, String> {
    let Some(c) = custom else {
        return Err("profile `custom` without its `custom:` settings".into());
    };
    let name = lookup(&value, &c.type_path)
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| sse.map(str::to_string))
        .ok_or_else(|| format!("no event name at `{}` and no SSE event name", c.type_path))?;
    let is = |list: &[String]| list.contains(&name);
    let id = || {
        c.tool_id_path
            .as_deref()
            .and_then(|p| text(&value, p))
            .unwrap_or_default()
    };
    let mark = if is(&c.error) {
        let text = match &c.error_path {
            Some(p) => text(&value, p).unwrap_or_default(),
            None => error_text(&value),
        };
        Mark {
            error: Some(text),
            ..Mark::default()
        }
    } else if is(&c.completed) {
        stage(Stage::Completed)
    } else if is(&c.started) {
        stage(Stage::Started)
    } else if is(&c.deltas) {
        let chars = c
            .delta_path
            .as_deref()
            .and_then(|p| text(&value, p))
            .map_or(1, |t| t.chars().count());
        Mark {
            delta: Some(chars),
            ..stage(Stage::FirstToken)
        }
    } else if is(&c.tool_start) {
        Mark {
            tool: Some(ToolMark::Open {
                id: id(),
                tool: name.clone(),
            }),
            ..stage(Stage::ToolStart)
        }
    } else if is(&c.tool_end) {
        Mark {
            tool: Some(ToolMark::Close { id: id() }),
            ..stage(Stage::ToolEnd)
        }
    } else {
        Mark::default()
    };
    Ok(AgentEvent::new(name, value).with(mark))
}
