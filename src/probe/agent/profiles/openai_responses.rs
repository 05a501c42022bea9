//! OpenAI Responses: `response.created` .. `response.completed`, every event numbered by
//! `sequence_number` (checked for gaps by the run rules).

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{bulk, content, error_text, failed, stage, text};
use crate::probe::expect::lookup;
use crate::protocol::profiles::Stage;

pub(super) fn read(name: String, value: Value) -> AgentEvent {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{failure, feed};
    use crate::probe::result::Reason;

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
}
