//! The incident's own protocol (AGENT_PROTOCOL.md): four envelope families normalised by
//! [`crate::probe::agent::events`], marked here by the golden event names.

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark, normalise_value};
use crate::protocol::profiles::Stage;
use crate::protocol::{
    AGENT_COMPLETED, AGENT_STARTED, AGENT_THINKING, ERROR_KEYS, FATAL, NOISE, RUN_ID_KEYS,
    TERMINAL, TOOL_COMPLETED, TOOL_EXECUTING, TOOL_ID_KEYS,
};

pub(crate) fn agent_events(mut value: Value, sse: Option<&str>) -> Result<Vec<AgentEvent>, String> {
    // Over SSE the `event:` name can stand in for `type`.
    if let (Value::Object(obj), Some(e)) = (&mut value, sse)
        && !obj.contains_key("type")
    {
        obj.insert("type".into(), Value::String(e.to_string()));
    }
    let mut events = normalise_value(&value)?;
    for ev in &mut events {
        ev.mark = agent_event_mark(ev);
    }
    Ok(events)
}

fn agent_event_mark(ev: &AgentEvent) -> Mark {
    let name = ev.name.as_str();
    let tool_id = || ev.first_text(&TOOL_ID_KEYS).unwrap_or_default();
    let mut mark = Mark {
        ids: RUN_ID_KEYS.iter().filter_map(|k| ev.text(k)).collect(),
        ..Mark::default()
    };
    match name {
        _ if NOISE.contains(&name) => mark.noise = true,
        _ if FATAL.contains(&name) => {
            mark.error = Some(ev.first_text(&ERROR_KEYS).unwrap_or_default())
        }
        AGENT_STARTED => mark.stage = Some(Stage::Started),
        AGENT_THINKING => mark.stage = Some(Stage::FirstToken),
        TOOL_EXECUTING => {
            mark.stage = Some(Stage::ToolStart);
            mark.tool = Some(ToolMark::Open {
                id: tool_id(),
                tool: ev.text("tool_name").unwrap_or_else(|| "?".into()),
            });
        }
        TOOL_COMPLETED => {
            mark.stage = Some(Stage::ToolEnd);
            mark.tool = Some(ToolMark::Close { id: tool_id() });
        }
        // Only the top-level agent's completion ends the run: the rules decide which.
        AGENT_COMPLETED => mark.stage = Some(Stage::Completed),
        _ if TERMINAL.contains(&name) => mark.stage = Some(Stage::Completed),
        _ => {}
    }
    mark
}
