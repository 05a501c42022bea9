//! LangGraph run streams: the SSE `event:` names the event (`updates|<ns>` in subgraphs);
//! the run has no end event and ends with the stream.

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{bulk, content, failed, stage, text};
use crate::protocol::profiles::Stage;

pub(super) fn read(value: Value, sse: Option<&str>) -> Result<AgentEvent, String> {
    // `updates|subgraph:1` is the `updates` of a subgraph.
    let name = sse
        .map(|e| e.split('|').next().unwrap_or(e).to_string())
        .ok_or("an event without an `event:` name (LangGraph names every event)")?;
    let mark = match name.as_str() {
        "metadata" => Mark {
            ids: text(&value, "run_id").into_iter().collect(),
            ..stage(Stage::Started)
        },
        "messages" | "messages/partial" | "messages/complete" => {
            // messages-tuple: [chunk, metadata]; messages: a list of messages so far.
            let chunk = match &value {
                Value::Array(a) => a.last().filter(|_| name != "messages").or(a.first()),
                other => Some(other),
            }
            .cloned()
            .unwrap_or(Value::Null);
            langgraph_message(&chunk)
        }
        "error" => failed(&value),
        "end" => stage(Stage::Completed),
        "updates" | "values" | "custom" | "debug" | "tasks" | "checkpoints" | "events" => bulk(),
        _ => Mark::default(),
    };
    Ok(AgentEvent::new(name, value).with(mark))
}

/// A LangGraph message chunk: content is a first token; `tool_call_chunks` with an id
/// open a tool call; a `tool` message closes it.
fn langgraph_message(chunk: &Value) -> Mark {
    if text(chunk, "type").as_deref() == Some("tool") {
        return Mark {
            tool: Some(ToolMark::Close {
                id: text(chunk, "tool_call_id").unwrap_or_default(),
            }),
            delta: Some(0),
            ..stage(Stage::ToolEnd)
        };
    }
    let opened = ["tool_call_chunks", "tool_calls"]
        .iter()
        .filter_map(|k| chunk.get(*k).and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("id").and_then(Value::as_str).is_some());
    if let Some(call) = opened {
        return Mark {
            tool: Some(ToolMark::Open {
                id: text(call, "id").unwrap_or_default(),
                tool: text(call, "name").unwrap_or_else(|| "?".into()),
            }),
            ..stage(Stage::ToolStart)
        };
    }
    let said = match chunk.get("content") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(parts)) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").or(p.get("thinking")).and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    };
    content(said)
}

#[cfg(test)]
mod tests {
    use super::super::tests::spec;
    use super::super::{Read, Reader};
    use crate::protocol::profiles::Stage;

    #[test]
    fn langgraph_names_come_from_the_sse_event_and_the_run_ends_with_the_stream() {
        let spec = spec("langgraph");
        let mut reader = Reader::new(&spec);
        let Ok(Read::Events(ev)) = reader.read(Some("updates|agent:1"), r#"{"agent":{}}"#) else {
            panic!()
        };
        assert_eq!(ev[0].name, "updates");
        assert!(
            reader
                .read(None, "{}")
                .unwrap_err()
                .contains("`event:` name")
        );
        let partial = r#"[{"type":"ai","content":"Hel"},{"type":"ai","content":"Hello"}]"#;
        let Ok(Read::Events(ev)) = reader.read(Some("messages/partial"), partial) else {
            panic!()
        };
        assert_eq!(ev[0].mark.stage, Some(Stage::FirstToken));
        let end = reader.at_close().unwrap();
        assert_eq!(end.mark.stage, Some(Stage::Completed));
    }
}
