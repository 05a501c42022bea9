//! AG-UI 1.0 (`@ag-ui/core`): `RUN_STARTED` .. `RUN_FINISHED` with its outcome.

use serde_json::Value;

use super::super::events::{AgentEvent, Mark, ToolMark};
use super::{bulk, content, failed, stage, text};
use crate::protocol::profiles::Stage;

/// Tool calls sent as `TOOL_CALL_CHUNK`s: the first chunk of an id opens the call, chunks
/// without an id continue the open one, any other event ends it (as `@ag-ui/client`
/// expands them into START / ARGS / END).
#[derive(Default)]
pub(super) struct Calls {
    chunked: Option<String>,
}

impl Calls {
    pub(super) fn read(&mut self, name: String, value: Value) -> AgentEvent {
        let id = || text(&value, "toolCallId").unwrap_or_default();
        let chunked = self.chunked.take();
        let mark = match name.as_str() {
            "RUN_STARTED" => Mark {
                ids: run_ids(&value),
                ..stage(Stage::Started)
            },
            "TEXT_MESSAGE_CONTENT"
            | "TEXT_MESSAGE_CHUNK"
            | "REASONING_MESSAGE_CONTENT"
            | "REASONING_MESSAGE_CHUNK"
            | "THINKING_TEXT_MESSAGE_CONTENT" => content(text(&value, "delta")),
            "TOOL_CALL_CHUNK" => {
                let given = text(&value, "toolCallId");
                let opens = given.is_some() && given != chunked;
                self.chunked = given.or(chunked);
                if opens {
                    Mark {
                        tool: Some(ToolMark::Open {
                            id: id(),
                            tool: text(&value, "toolCallName").unwrap_or_else(|| "?".into()),
                        }),
                        ..stage(Stage::ToolStart)
                    }
                } else {
                    bulk()
                }
            }
            "TOOL_CALL_ARGS" | "STATE_DELTA" | "ACTIVITY_DELTA" => bulk(),
            "TOOL_CALL_START" => Mark {
                tool: Some(ToolMark::Open {
                    id: id(),
                    tool: text(&value, "toolCallName").unwrap_or_else(|| "?".into()),
                }),
                ..stage(Stage::ToolStart)
            },
            // TOOL_CALL_END only ends the arguments; a backend tool's result ends the call.
            "TOOL_CALL_RESULT" => Mark {
                tool: Some(ToolMark::Close { id: id() }),
                ..stage(Stage::ToolEnd)
            },
            "RUN_FINISHED" => finished(&value),
            "RUN_ERROR" => failed(&value),
            _ => Mark::default(),
        };
        AgentEvent::new(name, value).with(mark)
    }
}

fn run_ids(value: &Value) -> Vec<String> {
    ["runId", "threadId"]
        .iter()
        .filter_map(|k| text(value, k))
        .collect()
}

/// `RUN_FINISHED` by its `outcome` (AG-UI 1.0: an object; absent is a success): an
/// interrupt (the run waits for a human) and a cancelled run are not a completed run.
fn finished(value: &Value) -> Mark {
    let outcome = value.get("outcome").unwrap_or(&Value::Null);
    let kind = match outcome {
        Value::String(s) if s == "interrupt" => "interrupt",
        Value::String(s) => {
            return Mark {
                invalid: Some(format!(
                    "outcome is the string \"{s}\"; AG-UI 1.0 wants an object ({{\"type\":\"{s}\"}}) and @ag-ui/client 1.0 rejects the whole run"
                )),
                ..Mark::default()
            };
        }
        other => other
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("success"),
    };
    match kind {
        "interrupt" => Mark {
            error: Some(interrupted(outcome)),
            ..Mark::default()
        },
        "cancelled" => Mark {
            error: Some("the run was cancelled (outcome cancelled): it produced no result".into()),
            ..Mark::default()
        },
        // Frontend tools the run leaves to the application are answered in the next run.
        _ => Mark {
            ids: run_ids(value),
            tool: outcome
                .get("pendingToolCallIds")
                .and_then(Value::as_array)
                .map(|ids| ToolMark::Left {
                    ids: ids
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                }),
            ..stage(Stage::Completed)
        },
    }
}

/// `the run stopped for approval: "Approve sending the email?" (tool_approval)`.
fn interrupted(outcome: &Value) -> String {
    let interrupts = outcome
        .get("interrupts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let each: Vec<String> = interrupts
        .iter()
        .map(|i| {
            let reason = text(i, "reason").unwrap_or_else(|| "no reason given".into());
            match text(i, "message").filter(|m| !m.is_empty()) {
                Some(m) => format!("\"{m}\" ({reason})"),
                None => format!("({reason})"),
            }
        })
        .collect();
    let approval = interrupts
        .iter()
        .any(|i| text(i, "reason").is_some_and(|r| r.contains("approv")));
    let wait = if approval { "approval" } else { "input" };
    if each.is_empty() {
        format!("the run stopped for {wait} (outcome interrupt)")
    } else {
        format!("the run stopped for {wait}: {}", each.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{failure, feed};
    use crate::probe::agent::rules::Step;
    use crate::probe::result::Reason;

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
        assert!(
            f.message.starts_with(
                "RUN_FINISHED at 10.0ms: the run stopped for input (outcome interrupt)"
            ),
            "{}",
            f.message
        );
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

    const STARTED: (&str, &str) = ("", r#"{"type":"RUN_STARTED","threadId":"t","runId":"r"}"#);

    #[test]
    fn outcomes_are_objects_and_only_success_completes() {
        let interrupt = r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"interrupt","interrupts":[{"id":"i1","reason":"tool_approval","message":"Approve sending the email to ops@example.ai?","toolCallId":"c1"}]}}"#;
        let f = failure(feed("ag-ui", &[STARTED, ("", interrupt)]).0);
        assert_eq!(f.reason, Reason::AgentError);
        assert!(
            f.message.starts_with(
                "RUN_FINISHED at 10.0ms: the run stopped for approval: \"Approve sending the email to ops@example.ai?\" (tool_approval)"
            ),
            "{}",
            f.message
        );
        let cancelled =
            r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"cancelled"}}"#;
        let f = failure(feed("ag-ui", &[STARTED, ("", cancelled)]).0);
        assert_eq!(f.reason, Reason::AgentError);
        assert!(f.message.contains("the run was cancelled"), "{}", f.message);
        let text = (
            "",
            r#"{"type":"TEXT_MESSAGE_CHUNK","messageId":"m","delta":"hi"}"#,
        );
        for ok in [
            r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"success"}}"#,
            r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r"}"#,
        ] {
            assert_eq!(
                feed("ag-ui", &[STARTED, text, ("", ok)]).0,
                Step::Done,
                "{ok}"
            );
        }
        // What @ag-ui/client 1.0 rejects is a broken stream, not a healthy one.
        let string = r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":"success"}"#;
        let f = failure(feed("ag-ui", &[STARTED, text, ("", string)]).0);
        assert_eq!(f.reason, Reason::EventSchema);
        assert!(
            f.message.contains("@ag-ui/client 1.0 rejects"),
            "{}",
            f.message
        );
    }

    #[test]
    fn chunked_tool_calls_start_a_tool_and_results_end_it() {
        let chunk = |json: &'static str| ("", json);
        let (step, names) = feed(
            "ag-ui",
            &[
                STARTED,
                chunk(r#"{"type":"TEXT_MESSAGE_CHUNK","messageId":"m","delta":"hi"}"#),
                chunk(
                    r#"{"type":"TOOL_CALL_CHUNK","toolCallId":"c1","toolCallName":"search","delta":"{"}"#,
                ),
                chunk(r#"{"type":"TOOL_CALL_CHUNK","delta":"}"}"#),
                chunk(
                    r#"{"type":"TOOL_CALL_RESULT","messageId":"m2","toolCallId":"c1","content":"ok"}"#,
                ),
                chunk(
                    r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"success"}}"#,
                ),
            ],
        );
        assert_eq!(step, Step::Done);
        assert!(names.contains(&"TOOL_CALL_CHUNK".to_string()), "{names:?}");
        // A backend tool whose result never came: TOOL_CALL_END only ends its arguments.
        let (step, _) = feed(
            "ag-ui",
            &[
                STARTED,
                chunk(r#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"hi"}"#),
                chunk(r#"{"type":"TOOL_CALL_START","toolCallId":"c1","toolCallName":"search"}"#),
                chunk(r#"{"type":"TOOL_CALL_END","toolCallId":"c1"}"#),
                chunk(r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r"}"#),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::EventMissing);
        assert!(
            f.message
                .starts_with("RUN_FINISHED at 40.0ms, but TOOL_CALL_START(search) at 20.0ms has no TOOL_CALL_RESULT"),
            "{}",
            f.message
        );
        // A frontend tool the run names as left for the application is not missing.
        let (step, _) = feed(
            "ag-ui",
            &[
                STARTED,
                chunk(r#"{"type":"TEXT_MESSAGE_CONTENT","messageId":"m","delta":"hi"}"#),
                chunk(r#"{"type":"TOOL_CALL_START","toolCallId":"c1","toolCallName":"confirm"}"#),
                chunk(r#"{"type":"TOOL_CALL_END","toolCallId":"c1"}"#),
                chunk(
                    r#"{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"success","pendingToolCallIds":["c1"]}}"#,
                ),
            ],
        );
        assert_eq!(step, Step::Done);
    }
}
