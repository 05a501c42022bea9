//! Agent events off the wire, normalised. The service used four envelope families
//! (AGENT_PROTOCOL.md §6); this module turns any of them, and `event_batch` frames, into
//! [`AgentEvent`]s: a name and the union of the fields of the root, `payload` and `data`.
//! Other protocols' events become [`AgentEvent`]s in [`super::profiles`]; each carries a
//! [`Mark`]: what it means for the run (its stage, a delta, an error, a tool call).

use serde_json::{Map, Value};

use crate::protocol::profiles::Stage;

const ENVELOPE_KEYS: [&str; 4] = ["type", "event", "payload", "data"];
/// A batch inside a batch inside a batch is hostile or broken, not a protocol variant.
const MAX_BATCH_DEPTH: usize = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct AgentEvent {
    pub name: String,
    pub fields: Map<String, Value>,
    pub mark: Mark,
}

/// What an event means for the run, whatever the protocol called it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mark {
    pub stage: Option<Stage>,
    /// Not part of the run (keepalives, acks, session frames).
    pub noise: bool,
    /// One of many small events (content, reasoning or tool-argument deltas): counted and
    /// timed, not kept one by one. The characters of content it carries.
    pub delta: Option<usize>,
    /// The run failed: what the server said.
    pub error: Option<String>,
    /// The event breaks the protocol's schema in a way its clients reject: why.
    pub invalid: Option<String>,
    pub tool: Option<ToolMark>,
    /// The protocol's event counter (`sequence_number`), checked for gaps.
    pub seq: Option<u64>,
    /// Output tokens so far, where the stream reports usage.
    pub output_tokens: Option<u64>,
    /// Ids naming the run or thread the event belongs to.
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolMark {
    /// A tool call began: its id (which pairs it with its end) and the tool's name.
    Open {
        id: String,
        tool: String,
    },
    Close {
        id: String,
    },
    /// Every open call ended (OpenAI Chat's `finish_reason: tool_calls`).
    CloseAll,
    /// Calls the run leaves for the client to answer in its next request (AG-UI's
    /// `pendingToolCallIds`): not missing their end.
    Left {
        ids: Vec<String>,
    },
}

impl AgentEvent {
    pub fn new(name: impl Into<String>, value: Value) -> Self {
        let fields = match value {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        AgentEvent {
            name: name.into(),
            fields,
            mark: Mark::default(),
        }
    }

    pub fn with(mut self, mark: Mark) -> Self {
        self.mark = mark;
        self
    }

    /// The value at a dotted path (`response.id`, `choices.0.delta`).
    pub fn get(&self, path: &str) -> Option<&Value> {
        let (head, rest) = match path.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (path, None),
        };
        let v = self.fields.get(head)?;
        match rest {
            None => Some(v),
            Some(rest) => crate::probe::expect::lookup(v, rest),
        }
    }

    /// Text at a dotted path (numbers too).
    pub fn text_at(&self, path: &str) -> Option<String> {
        match self.get(path)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// A field as text, for ids that some variants send as numbers.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.fields.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The first non-empty text among `keys`: errors hide under several names.
    pub fn first_text(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .filter_map(|k| self.text(k))
            .find(|s| !s.is_empty())
    }
}

/// Normalises one text frame. Errors say what is wrong with the frame (reason `protocol`).
pub fn normalise(frame: &str) -> Result<Vec<AgentEvent>, String> {
    let value: Value =
        serde_json::from_str(frame).map_err(|e| format!("frame is not JSON ({e})"))?;
    normalise_value(&value)
}

/// [`normalise`] of an already parsed frame.
pub fn normalise_value(value: &Value) -> Result<Vec<AgentEvent>, String> {
    let mut out = Vec::new();
    collect(value, 0, &mut out)?;
    Ok(out)
}

fn collect(value: &Value, depth: usize, out: &mut Vec<AgentEvent>) -> Result<(), String> {
    let Value::Object(obj) = value else {
        return Err(format!("frame is a JSON {}, not an object", kind(value)));
    };
    let Some(kind) = obj.get("type").and_then(Value::as_str) else {
        return Err("frame has no string `type`".into());
    };
    if kind == "event_batch" {
        if depth >= MAX_BATCH_DEPTH {
            return Err("event_batch nested too deep".into());
        }
        let events = ["events", "payload", "data"]
            .iter()
            .find_map(|k| match obj.get(*k) {
                Some(Value::Array(a)) => Some(a),
                Some(Value::Object(inner)) => inner.get("events").and_then(Value::as_array),
                _ => None,
            })
            .ok_or("event_batch without an `events` list")?;
        for e in events {
            collect(e, depth + 1, out)?;
        }
        return Ok(());
    }
    let name = if kind == "system_message" {
        obj.get("event")
            .and_then(Value::as_str)
            .ok_or("system_message without a string `event`")?
    } else {
        kind
    };
    let mut fields = Map::new();
    for (k, v) in obj {
        if !ENVELOPE_KEYS.contains(&k.as_str()) {
            fields.insert(k.clone(), v.clone());
        }
    }
    // Root wins, then payload, then data: the union, first one found per key.
    for inner in ["payload", "data"] {
        if let Some(Value::Object(m)) = obj.get(inner) {
            for (k, v) in m {
                fields.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    out.push(AgentEvent {
        name: name.to_string(),
        fields,
        mark: Mark::default(),
    });
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(frame: &str) -> AgentEvent {
        let mut v = normalise(frame).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn family_a_type_data_timestamp() {
        let e = one(
            r#"{"type":"connection_established","data":{"connection_id":"c1"},"timestamp":1700000000.5}"#,
        );
        assert_eq!(e.name, "connection_established");
        assert_eq!(e.str("connection_id"), Some("c1"));
        assert!(e.fields.contains_key("timestamp"));
    }

    #[test]
    fn family_b_flat() {
        let e = one(
            r#"{"type":"agent_started","timestamp":"2026-01-01T00:00:00Z","critical":true,"user_id":"u","thread_id":"t1"}"#,
        );
        assert_eq!(e.name, "agent_started");
        assert_eq!(e.str("thread_id"), Some("t1"));
        assert_eq!(e.str("user_id"), Some("u"));
    }

    #[test]
    fn family_c_bridge_with_root_tool_name() {
        let e = one(
            r#"{"type":"tool_executing","run_id":"r1","user_id":"u","agent_name":"supervisor","timestamp":"x","tool_name":"search","data":{"parameters":{"q":1},"tool_name":"ignored"}}"#,
        );
        assert_eq!(e.str("tool_name"), Some("search"), "root wins over data");
        assert_eq!(e.str("run_id"), Some("r1"));
        assert!(e.fields.contains_key("parameters"));
    }

    #[test]
    fn family_d_wrapped_system_message() {
        let e = one(
            r#"{"type":"system_message","event":"agent_thinking","payload":{"reasoning":"hm","timestamp":1}}"#,
        );
        assert_eq!(e.name, "agent_thinking");
        assert_eq!(e.str("reasoning"), Some("hm"));
    }

    #[test]
    fn batches_unpack_in_order() {
        let v = normalise(r#"{"type":"event_batch","events":[{"type":"agent_started","run_id":"r"},{"type":"system_message","event":"agent_thinking","payload":{"reasoning":"x"}}]}"#).unwrap();
        let names: Vec<&str> = v.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["agent_started", "agent_thinking"]);
        let v =
            normalise(r#"{"type":"event_batch","payload":{"events":[{"type":"ping"}]}}"#).unwrap();
        assert_eq!(v[0].name, "ping");
    }

    #[test]
    fn broken_frames_say_what_is_wrong() {
        assert!(
            normalise("not json")
                .unwrap_err()
                .starts_with("frame is not JSON")
        );
        assert_eq!(
            normalise("[1]").unwrap_err(),
            "frame is a JSON array, not an object"
        );
        assert_eq!(
            normalise(r#"{"data":{}}"#).unwrap_err(),
            "frame has no string `type`"
        );
        assert_eq!(
            normalise(r#"{"type":"system_message"}"#).unwrap_err(),
            "system_message without a string `event`"
        );
        let deep = r#"{"type":"event_batch","events":[{"type":"event_batch","events":[{"type":"event_batch","events":[{"type":"event_batch","events":[]}]}]}]}"#;
        assert_eq!(normalise(deep).unwrap_err(), "event_batch nested too deep");
    }
}
