//! Each protocol's events as [`AgentEvent`]s with a [`Mark`]: which stage they reach, which
//! are deltas (counted, not kept), which end the run badly and with what text, which open
//! and close tool calls. One [`Reader`] per run; it keeps the little state a protocol
//! needs (Anthropic's content blocks by index, Chat's first chunk). No I/O: the WebSocket
//! and SSE sides feed it messages. Wire formats: STREAMING_PROTOCOLS.md.

use std::collections::HashMap;

use serde_json::Value;

use super::events::{AgentEvent, Mark, ToolMark, normalise_value};
use crate::config::spec::{AgentSpec, CustomProfile};
use crate::probe::expect::{excerpt, lookup};
use crate::protocol::profiles::{Profile, Stage};
use crate::protocol::{
    AGENT_COMPLETED, AGENT_STARTED, AGENT_THINKING, ERROR_KEYS, FATAL, NOISE, RUN_ID_KEYS,
    TERMINAL, TOOL_COMPLETED, TOOL_EXECUTING, TOOL_ID_KEYS,
};

/// What one message off the wire said.
#[derive(Debug)]
pub enum Read {
    Events(Vec<AgentEvent>),
    /// The stream says it is over (`data: [DONE]` where it carries no meaning of its own).
    End,
}

pub struct Reader<'s> {
    profile: Profile,
    custom: Option<&'s CustomProfile>,
    /// OpenAI Chat: whether a chunk arrived (the first one starts the run).
    chunks: bool,
    /// Anthropic: tool calls by content block index, until their block stops.
    blocks: HashMap<u64, String>,
}

impl<'s> Reader<'s> {
    pub fn new(spec: &'s AgentSpec) -> Self {
        Reader {
            profile: spec.profile,
            custom: spec.custom.as_ref(),
            chunks: false,
            blocks: HashMap::new(),
        }
    }

    /// One message: an SSE event (`sse` is its `event:` name) or a WebSocket text frame.
    /// An error says what is wrong with it (reason `protocol`).
    pub fn read(&mut self, sse: Option<&str>, data: &str) -> Result<Read, String> {
        if data.trim() == "[DONE]" {
            return Ok(match self.profile {
                Profile::OpenaiChat => Read::Events(vec![
                    AgentEvent::new("[DONE]", Value::Null).with(stage(Stage::Completed)),
                ]),
                Profile::Custom if !self.custom.is_some_and(|c| c.done_ends) => {
                    return Err("`[DONE]` where JSON was expected".into());
                }
                _ => Read::End,
            });
        }
        let value: Value = serde_json::from_str(data)
            .map_err(|_| format!("not JSON: {}", excerpt(data.as_bytes())))?;
        let sse = sse.filter(|e| *e != "message");
        let events = match self.profile {
            Profile::AgentEvents => agent_events(value, sse)?,
            Profile::Langgraph => vec![self.langgraph(value, sse)?],
            Profile::OpenaiChat => self.openai_chat(value),
            Profile::Custom => vec![self.custom(value, sse)?],
            _ => {
                let name = type_of(&value, sse)?;
                vec![match self.profile {
                    Profile::AgUi => ag_ui(name, value),
                    Profile::OpenaiResponses => openai_responses(name, value),
                    Profile::AnthropicMessages => self.anthropic(name, value),
                    Profile::AiSdk => ai_sdk(name, value),
                    _ => openai_realtime(name, value),
                }]
            }
        };
        Ok(Read::Events(events))
    }

    /// What a clean end of the stream means: the end of a LangGraph run (it has no end
    /// event); for every other protocol, nothing (a truncated stream).
    pub fn at_close(&self) -> Option<AgentEvent> {
        (self.profile == Profile::Langgraph)
            .then(|| AgentEvent::new("end of stream", Value::Null).with(stage(Stage::Completed)))
    }

    fn openai_chat(&mut self, value: Value) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        if !self.chunks {
            self.chunks = true;
            out.push(AgentEvent::new("first chunk", Value::Null).with(stage(Stage::Started)));
        }
        let error = value.get("error").is_some().then(|| error_text(&value));
        let choice = lookup(&value, "choices.0").cloned().unwrap_or(Value::Null);
        let delta = choice.get("delta").cloned().unwrap_or(Value::Null);
        let finish = choice.get("finish_reason").and_then(Value::as_str);
        let usage = lookup(&value, "usage.completion_tokens").and_then(Value::as_u64);
        let content = ["content", "reasoning_content", "reasoning", "refusal"]
            .iter()
            .filter_map(|k| delta.get(*k).and_then(Value::as_str))
            .map(|t| t.chars().count())
            .sum::<usize>();
        let calls = delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(text) = error {
            out.push(AgentEvent::new("error", value).with(Mark {
                error: Some(text),
                ..Mark::default()
            }));
            return out;
        }
        for call in calls.iter().filter(|c| c.get("id").is_some()) {
            let id = text(call, "id").unwrap_or_default();
            let tool = text(call, "function.name").unwrap_or_else(|| "?".into());
            out.push(AgentEvent::new("tool_calls", call.clone()).with(Mark {
                stage: Some(Stage::ToolStart),
                tool: Some(ToolMark::Open { id, tool }),
                ..Mark::default()
            }));
        }
        let mark = if let Some(reason) = finish {
            let name = "finish_reason";
            let mut mark = Mark {
                output_tokens: usage,
                ..Mark::default()
            };
            match reason {
                "tool_calls" | "function_call" => {
                    mark.stage = Some(Stage::ToolEnd);
                    mark.tool = Some(ToolMark::CloseAll);
                }
                "content_filter" => {
                    mark.error =
                        Some("finish_reason content_filter: the answer was filtered".into())
                }
                _ => {}
            }
            Some((name, mark))
        } else if content > 0 {
            let mark = Mark {
                stage: Some(Stage::FirstToken),
                delta: Some(content),
                ..Mark::default()
            };
            Some(("delta", mark))
        } else if usage.is_some() {
            let mark = Mark {
                output_tokens: usage,
                ..Mark::default()
            };
            Some(("usage", mark))
        } else if calls.is_empty() {
            Some(("chunk", bulk()))
        } else {
            None
        };
        if let Some((name, mark)) = mark {
            out.push(AgentEvent::new(name, value).with(mark));
        }
        out
    }

    fn anthropic(&mut self, name: String, value: Value) -> AgentEvent {
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
                        self.blocks.insert(index, id.clone());
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
                tool: self.blocks.remove(&index).map(|id| ToolMark::Close { id }),
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

    fn langgraph(&mut self, value: Value, sse: Option<&str>) -> Result<AgentEvent, String> {
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
            "updates" | "values" | "custom" | "debug" | "tasks" | "checkpoints" | "events" => {
                bulk()
            }
            _ => Mark::default(),
        };
        Ok(AgentEvent::new(name, value).with(mark))
    }

    fn custom(&mut self, value: Value, sse: Option<&str>) -> Result<AgentEvent, String> {
        let Some(c) = self.custom else {
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
}

fn stage(s: Stage) -> Mark {
    Mark {
        stage: Some(s),
        ..Mark::default()
    }
}

/// A content or reasoning delta: the first one with text is the first token.
fn content(delta: Option<String>) -> Mark {
    let chars = delta.map_or(0, |t| t.chars().count());
    Mark {
        stage: (chars > 0).then_some(Stage::FirstToken),
        delta: Some(chars),
        ..Mark::default()
    }
}

/// One of many small events that are not content (tool arguments, state deltas).
fn bulk() -> Mark {
    Mark {
        delta: Some(0),
        ..Mark::default()
    }
}

fn noise() -> Mark {
    Mark {
        noise: true,
        ..Mark::default()
    }
}

fn failed(value: &Value) -> Mark {
    Mark {
        error: Some(error_text(value)),
        ..Mark::default()
    }
}

fn text(v: &Value, path: &str) -> Option<String> {
    match lookup(v, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An error's words: `type: message` from the shapes providers use
/// (`{"error":{"type","code","message"}}`, `{"message","code"}`, `{"errorText"}`).
fn error_text(v: &Value) -> String {
    let first = |paths: &[&str]| {
        paths
            .iter()
            .find_map(|p| text(v, p))
            .filter(|t| !t.is_empty())
    };
    let kind = first(&["error.type", "error.code", "code", "error"]);
    let message = first(&["error.message", "message", "errorText", "error", "detail"]);
    match (kind, message) {
        (Some(k), Some(m)) if !m.contains(&k) => format!("{k}: {m}"),
        (_, Some(m)) => m,
        (Some(k), None) => k,
        (None, None) => String::new(),
    }
}

/// The event's name: its `type`, else the SSE `event:` name.
fn type_of(value: &Value, sse: Option<&str>) -> Result<String, String> {
    value
        .get("type")
        .and_then(Value::as_str)
        .or(sse)
        .map(str::to_string)
        .ok_or_else(|| "an event without a `type`".to_string())
}

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

fn ag_ui(name: String, value: Value) -> AgentEvent {
    let id = || text(&value, "toolCallId").unwrap_or_default();
    let mark = match name.as_str() {
        "RUN_STARTED" => Mark {
            ids: ["runId", "threadId"]
                .iter()
                .filter_map(|k| text(&value, k))
                .collect(),
            ..stage(Stage::Started)
        },
        "TEXT_MESSAGE_CONTENT"
        | "TEXT_MESSAGE_CHUNK"
        | "REASONING_MESSAGE_CONTENT"
        | "REASONING_MESSAGE_CHUNK"
        | "THINKING_TEXT_MESSAGE_CONTENT" => content(text(&value, "delta")),
        "TOOL_CALL_ARGS" | "TOOL_CALL_CHUNK" | "STATE_DELTA" | "ACTIVITY_DELTA" => bulk(),
        "TOOL_CALL_START" => Mark {
            tool: Some(ToolMark::Open {
                id: id(),
                tool: text(&value, "toolCallName").unwrap_or_else(|| "?".into()),
            }),
            ..stage(Stage::ToolStart)
        },
        "TOOL_CALL_END" => Mark {
            tool: Some(ToolMark::Close { id: id() }),
            ..Mark::default()
        },
        "TOOL_CALL_RESULT" => stage(Stage::ToolEnd),
        "RUN_FINISHED" if text(&value, "outcome").as_deref() == Some("interrupt") => Mark {
            error: Some("the run was interrupted (RUN_FINISHED outcome interrupt)".into()),
            ..Mark::default()
        },
        "RUN_FINISHED" => Mark {
            ids: ["runId", "threadId"]
                .iter()
                .filter_map(|k| text(&value, k))
                .collect(),
            ..stage(Stage::Completed)
        },
        "RUN_ERROR" => failed(&value),
        _ => Mark::default(),
    };
    AgentEvent::new(name, value).with(mark)
}

fn openai_responses(name: String, value: Value) -> AgentEvent {
    let seq = value.get("sequence_number").and_then(Value::as_u64);
    let item_kind = text(&value, "item.type").unwrap_or_default();
    let mut mark = match name.as_str() {
        "response.created" => stage(Stage::Started),
        "response.output_text.delta"
        | "response.reasoning_text.delta"
        | "response.reasoning_summary_text.delta"
        | "response.refusal.delta" => content(text(&value, "delta")),
        n if n.ends_with(".delta") => bulk(),
        "response.output_item.added" if item_kind.ends_with("_call") => Mark {
            tool: Some(ToolMark::Open {
                id: text(&value, "item.id").unwrap_or_default(),
                tool: text(&value, "item.name").unwrap_or(item_kind),
            }),
            ..stage(Stage::ToolStart)
        },
        "response.output_item.done" if item_kind.ends_with("_call") => Mark {
            tool: Some(ToolMark::Close {
                id: text(&value, "item.id").unwrap_or_default(),
            }),
            ..stage(Stage::ToolEnd)
        },
        n if n.ends_with("_call_arguments.done") || n.ends_with("_call.completed") => Mark {
            tool: Some(ToolMark::Close {
                id: text(&value, "item_id").unwrap_or_default(),
            }),
            ..stage(Stage::ToolEnd)
        },
        "response.completed" => Mark {
            output_tokens: lookup(&value, "response.usage.output_tokens").and_then(Value::as_u64),
            ..stage(Stage::Completed)
        },
        "response.failed" => Mark {
            error: Some(error_text(value.get("response").unwrap_or(&Value::Null))),
            ..Mark::default()
        },
        "response.incomplete" => Mark {
            error: Some(format!(
                "the response is incomplete: {}",
                text(&value, "response.incomplete_details.reason")
                    .unwrap_or_else(|| "no reason given".into())
            )),
            ..Mark::default()
        },
        "error" => failed(&value),
        _ => Mark::default(),
    };
    mark.seq = seq;
    AgentEvent::new(name, value).with(mark)
}

fn ai_sdk(name: String, value: Value) -> AgentEvent {
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

fn openai_realtime(name: String, value: Value) -> AgentEvent {
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
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::config::spec::Spec;
    use crate::probe::agent::rules::{RunState, Step};
    use crate::probe::result::Reason;

    fn spec(profile: &str) -> AgentSpec {
        let scheme = if profile == "openai-realtime" {
            "ws"
        } else {
            "http"
        };
        let yaml = format!(
            "checks:\n  - name: p\n    type: agent_pipeline\n    target: {scheme}://127.0.0.1:9/x\n    profile: {profile}\n"
        );
        let config = Config::from_str(&yaml, "t.yaml", &|_| None).unwrap();
        match &config.checks[0].spec {
            Spec::Agent(a) => a.clone(),
            _ => unreachable!(),
        }
    }

    /// Feeds (SSE event name, data) pairs; returns the last step and the run's state.
    fn feed(profile: &str, stream: &[(&str, &str)]) -> (Step, Vec<String>) {
        let spec = spec(profile);
        let mut reader = Reader::new(&spec);
        let mut state = RunState::new(&spec.expect, spec.profile);
        let mut last = Step::Continue;
        'outer: for (i, (event, data)) in stream.iter().enumerate() {
            let sse = (!event.is_empty()).then_some(*event);
            let Read::Events(events) = reader.read(sse, data).unwrap() else {
                break;
            };
            for ev in events {
                last = state.observe(&ev, Duration::from_millis(10 * i as u64));
                if last != Step::Continue {
                    break 'outer;
                }
            }
        }
        let names = state.observed().iter().map(|o| o.name.clone()).collect();
        (last, names)
    }

    fn failure(step: Step) -> crate::probe::result::Failure {
        match step {
            Step::Fail(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn openai_chat_tool_calls_usage_and_filters() {
        let chunk = |delta: &str, finish: &str| {
            format!(
                r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
            )
        };
        let two_calls = chunk(
            r#"{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":""}},{"index":1,"id":"b","function":{"name":"g","arguments":""}}]}"#,
            "null",
        );
        let (step, names) = feed(
            "openai-chat",
            &[
                ("", &chunk(r#"{"role":"assistant","content":""}"#, "null")),
                ("", &chunk(r#"{"content":"Hi"}"#, "null")),
                ("", &two_calls),
                ("", &chunk("{}", r#""tool_calls""#)),
                (
                    "",
                    r#"{"id":"c","choices":[],"usage":{"completion_tokens":9}}"#,
                ),
                ("", "[DONE]"),
            ],
        );
        assert_eq!(step, Step::Done);
        assert_eq!(
            names,
            [
                "first chunk",
                "chunk",
                "delta",
                "tool_calls",
                "tool_calls",
                "finish_reason",
                "usage",
                "[DONE]"
            ]
        );
        let (step, _) = feed(
            "openai-chat",
            &[
                ("", &chunk(r#"{"content":"Hi"}"#, "null")),
                ("", &chunk("{}", r#""content_filter""#)),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::AgentError);
        assert!(f.message.contains("content_filter"), "{}", f.message);
    }

    #[test]
    fn openai_responses_gaps_and_incomplete_answers() {
        let (step, _) = feed(
            "openai-responses",
            &[
                (
                    "response.created",
                    r#"{"type":"response.created","sequence_number":0,"response":{"id":"r"}}"#,
                ),
                (
                    "response.output_text.delta",
                    r#"{"type":"response.output_text.delta","sequence_number":1,"item_id":"m","delta":"a"}"#,
                ),
                (
                    "response.output_text.delta",
                    r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"m","delta":"b"}"#,
                ),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::Protocol);
        assert_eq!(
            f.message,
            "sequence_number went from 1 to 4 at response.output_text.delta (20.0ms): 2 events lost"
        );
        let (step, _) = feed(
            "openai-responses",
            &[
                (
                    "",
                    r#"{"type":"response.created","sequence_number":0,"response":{"id":"r"}}"#,
                ),
                (
                    "",
                    r#"{"type":"response.incomplete","sequence_number":1,"response":{"id":"r","incomplete_details":{"reason":"max_output_tokens"}}}"#,
                ),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::AgentError);
        assert!(
            f.message.contains("incomplete: max_output_tokens"),
            "{}",
            f.message
        );
    }

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

    #[test]
    fn ag_ui_interrupts_and_order() {
        let (step, _) = feed(
            "ag-ui",
            &[
                (
                    "",
                    r#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"x"}"#,
                ),
                ("", r#"{"type":"RUN_STARTED","threadId":"t","runId":"r"}"#),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::EventOrder);
        assert_eq!(
            f.message,
            "TEXT_MESSAGE_CONTENT arrived at 0µs before RUN_STARTED"
        );
        let (step, _) = feed(
            "ag-ui",
            &[
                ("", r#"{"type":"RUN_STARTED","threadId":"t","runId":"r"}"#),
                (
                    "",
                    r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":"interrupt"}"#,
                ),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::AgentError);
        assert!(f.message.contains("interrupted"), "{}", f.message);
        // Another run's events on the same stream are not this run's.
        let (step, _) = feed(
            "ag-ui",
            &[
                ("", r#"{"type":"RUN_STARTED","threadId":"t","runId":"r"}"#),
                (
                    "",
                    r#"{"type":"RUN_FINISHED","threadId":"t2","runId":"r2"}"#,
                ),
            ],
        );
        assert_eq!(step, Step::Continue);
    }

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
