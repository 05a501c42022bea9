//! OpenAI Responses events of the demo's answer (`/sse?profile=openai-responses`).

use serde_json::{Value, json};

use super::{ARGS, Step, responses_object, step, word};

/// The answer, as the `openai` SDK's typed models require its events.
pub(super) fn script(s: &mut Vec<Step>, d: usize) {
    // Every event and object as the `openai` SDK's typed models require them, and
    // each item and content part opened and closed, as its stream helper expects.
    let text: String = (0..d).map(word).collect();
    let message = |status: &str, content: Value| json!({"id":"msg_1","type":"message","status":status,"role":"assistant","content":content});
    let part = |t: &str| json!({"type":"output_text","text":t,"annotations":[]});
    let call = |status: &str, args: &str| json!({"id":"fc_1","type":"function_call","status":status,"call_id":"call_1","name":"search_docs","arguments":args});
    let text_at = json!({"item_id":"msg_1","output_index":0,"content_index":0});
    let with = |kind: &str, at: &Value, more: Value| {
        let mut v = at.clone();
        v["type"] = json!(kind);
        for (k, x) in more.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        v
    };
    let created = json!({"response": responses_object("in_progress", json!([]))});
    s.push(
        step(
            "response.created",
            "response.created",
            0,
            with("response.created", &created, json!({})),
        )
        .reaches("started"),
    );
    s.push(step(
        "response.in_progress",
        "response.in_progress",
        0,
        with("response.in_progress", &created, json!({})),
    ));
    s.push(step("response.output_item.added", "response.output_item.added", 1, json!({"type":"response.output_item.added","output_index":0,"item":message("in_progress", json!([]))})));
    s.push(step(
        "response.content_part.added",
        "response.content_part.added",
        1,
        with(
            "response.content_part.added",
            &text_at,
            json!({"part": part("")}),
        ),
    ));
    for i in 0..d {
        let e = step(
            "response.output_text.delta",
            "response.output_text.delta",
            1,
            with(
                "response.output_text.delta",
                &text_at,
                json!({"delta": word(i), "logprobs": []}),
            ),
        );
        s.push(if i == 0 { e.reaches("first_token") } else { e });
    }
    s.push(step(
        "response.output_text.done",
        "response.output_text.done",
        1,
        with(
            "response.output_text.done",
            &text_at,
            json!({"text": text, "logprobs": []}),
        ),
    ));
    s.push(step(
        "response.content_part.done",
        "response.content_part.done",
        1,
        with(
            "response.content_part.done",
            &text_at,
            json!({"part": part(&text)}),
        ),
    ));
    let said = message("completed", json!([part(&text)]));
    s.push(step(
        "response.output_item.done",
        "response.output_item.done",
        1,
        json!({"type":"response.output_item.done","output_index":0,"item":said}),
    ));
    s.push(step("response.output_item.added", "response.output_item.added", 2, json!({"type":"response.output_item.added","output_index":1,"item":call("in_progress", "")})).reaches("tool_start"));
    s.push(step("response.function_call_arguments.delta", "response.function_call_arguments.delta", 2, json!({"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":1,"delta":ARGS})));
    s.push(step("response.function_call_arguments.done", "response.function_call_arguments.done", 3, json!({"type":"response.function_call_arguments.done","item_id":"fc_1","output_index":1,"name":"search_docs","arguments":ARGS})).reaches("tool_end"));
    let called = call("completed", ARGS);
    s.push(step(
        "response.output_item.done",
        "response.output_item.done",
        3,
        json!({"type":"response.output_item.done","output_index":1,"item":called}),
    ));
    let mut done = responses_object("completed", json!([said, called]));
    done["usage"] = json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "output_tokens": d + 8, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": d + 20});
    s.push(
        step(
            "response.completed",
            "response.completed",
            4,
            json!({"type":"response.completed","response":done}),
        )
        .reaches("completed"),
    );
    for (n, st) in s.iter_mut().enumerate() {
        st.body["sequence_number"] = json!(n);
    }
}
