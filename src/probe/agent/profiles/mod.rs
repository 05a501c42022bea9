//! Each protocol's events as [`AgentEvent`]s with a [`Mark`]: which stage they reach, which
//! are deltas (counted, not kept), which end the run badly and with what text, which open
//! and close tool calls. One [`Reader`] per run; it keeps the little state a protocol
//! needs (Anthropic's content blocks by index, Chat's first chunk, AG-UI's chunked tool
//! calls). No I/O: the WebSocket and SSE sides feed it messages. One file per protocol;
//! wire formats: STREAMING_PROTOCOLS.md.

mod ag_ui;
mod agent_events;
mod ai_sdk;
mod anthropic;
mod custom;
mod langgraph;
mod openai_chat;
mod openai_realtime;
mod openai_responses;

use serde_json::Value;

use super::events::{AgentEvent, Mark};
use crate::config::spec::{AgentSpec, CustomProfile};
use crate::probe::expect::{excerpt, lookup};
use crate::protocol::profiles::{Profile, Stage};

pub(crate) use agent_events::agent_events;

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
    chat: openai_chat::Chunks,
    anthropic: anthropic::Blocks,
    ag_ui: ag_ui::Calls,
    ai_sdk: ai_sdk::Calls,
}

impl<'s> Reader<'s> {
    pub fn new(spec: &'s AgentSpec) -> Self {
        Reader::for_profile(spec.profile, spec.custom.as_ref())
    }

    /// A reader of `profile` (its names from `custom` for `profile: custom`).
    pub fn for_profile(profile: Profile, custom: Option<&'s CustomProfile>) -> Self {
        Reader {
            profile,
            custom,
            chat: Default::default(),
            anthropic: Default::default(),
            ag_ui: Default::default(),
            ai_sdk: Default::default(),
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
            Profile::Langgraph => vec![langgraph::read(value, sse)?],
            Profile::OpenaiChat => self.chat.read(value),
            Profile::Custom => vec![custom::read(self.custom, value, sse)?],
            _ => {
                let name = type_of(&value, sse)?;
                vec![match self.profile {
                    Profile::AgUi => self.ag_ui.read(name, value),
                    Profile::OpenaiResponses => openai_responses::read(name, value),
                    Profile::AnthropicMessages => self.anthropic.read(name, value),
                    Profile::AiSdk => self.ai_sdk.read(name, value),
                    _ => openai_realtime::read(name, value),
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
}

pub(super) fn stage(s: Stage) -> Mark {
    Mark {
        stage: Some(s),
        ..Mark::default()
    }
}

/// A content or reasoning delta: the first one with text is the first token.
pub(super) fn content(delta: Option<String>) -> Mark {
    let chars = delta.map_or(0, |t| t.chars().count());
    Mark {
        stage: (chars > 0).then_some(Stage::FirstToken),
        delta: Some(chars),
        ..Mark::default()
    }
}

/// One of many small events that are not content (tool arguments, state deltas).
pub(super) fn bulk() -> Mark {
    Mark {
        delta: Some(0),
        ..Mark::default()
    }
}

pub(super) fn noise() -> Mark {
    Mark {
        noise: true,
        ..Mark::default()
    }
}

pub(super) fn failed(value: &Value) -> Mark {
    Mark {
        error: Some(error_text(value)),
        ..Mark::default()
    }
}

pub(super) fn text(v: &Value, path: &str) -> Option<String> {
    match lookup(v, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An error's words: `type: message` from the shapes providers use
/// (`{"error":{"type","code","message"}}`, `{"message","code"}`, `{"errorText"}`).
pub(super) fn error_text(v: &Value) -> String {
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
pub(super) fn type_of(value: &Value, sse: Option<&str>) -> Result<String, String> {
    value
        .get("type")
        .and_then(Value::as_str)
        .or(sse)
        .map(str::to_string)
        .ok_or_else(|| "an event without a `type`".to_string())
}
#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::config::spec::Spec;
    use crate::probe::agent::rules::{RunState, Step};

    pub(super) fn spec(profile: &str) -> AgentSpec {
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
    pub(super) fn feed(profile: &str, stream: &[(&str, &str)]) -> (Step, Vec<String>) {
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

    pub(super) fn failure(step: Step) -> crate::probe::result::Failure {
        match step {
            Step::Fail(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
