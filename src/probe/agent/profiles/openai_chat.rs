//! OpenAI Chat Completions chunks: no type field, so each chunk is classified by its delta;
//! the first chunk starts the run, `finish_reason` and `[DONE]` end it.

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{bulk, error_text, stage, text};
use crate::probe::expect::lookup;
use crate::protocol::profiles::Stage;

/// Whether a chunk arrived (the first one starts the run).
#[derive(Default)]
pub(super) struct Chunks {
    started: bool,
}

impl Chunks {
    pub(super) fn read(&mut self, value: Value) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{failure, feed};
    use crate::probe::agent::rules::Step;
    use crate::probe::result::Reason;

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
}
