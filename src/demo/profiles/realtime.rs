//! OpenAI Realtime events of the demo's answer (`/ws?profile=openai-realtime`).

use serde_json::{Value, json};

use super::{ARGS, Step, step, word};

/// The answer, as the `openai` SDK's typed models require its events.
pub(super) fn script(s: &mut Vec<Step>, d: usize) {
    // As the `openai` SDK's realtime models require them.
    let text: String = (0..d).map(word).collect();
    let resp = |status: &str, output: Value| json!({"id":"resp_1","object":"realtime.response","status":status,"conversation_id":"conv_1","output_modalities":["text"],"output":output});
    let message = |status: &str, content: Value| json!({"id":"item_1","object":"realtime.item","type":"message","status":status,"role":"assistant","content":content});
    let call = |status: &str, args: &str| json!({"id":"item_2","object":"realtime.item","type":"function_call","status":status,"call_id":"call_1","name":"search_docs","arguments":args});
    let ev = |kind: &str, more: Value| {
        let mut v = json!({"type": kind, "response_id": "resp_1"});
        for (k, x) in more.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        v
    };
    let text_at = json!({"item_id":"item_1","output_index":0,"content_index":0});
    let at = |more: Value| {
        let mut v = text_at.clone();
        for (k, x) in more.as_object().into_iter().flatten() {
            v[k] = x.clone();
        }
        v
    };
    s.push(
        step(
            "response.created",
            "",
            0,
            json!({"type":"response.created","response":resp("in_progress", json!([]))}),
        )
        .reaches("started"),
    );
    s.push(step(
        "response.output_item.added",
        "",
        1,
        ev(
            "response.output_item.added",
            json!({"output_index":0,"item":message("in_progress", json!([]))}),
        ),
    ));
    s.push(step(
        "response.content_part.added",
        "",
        1,
        ev(
            "response.content_part.added",
            at(json!({"part":{"type":"text","text":""}})),
        ),
    ));
    for i in 0..d {
        let e = step(
            "response.output_text.delta",
            "",
            1,
            ev("response.output_text.delta", at(json!({"delta": word(i)}))),
        );
        s.push(if i == 0 { e.reaches("first_token") } else { e });
    }
    s.push(step(
        "response.output_text.done",
        "",
        1,
        ev("response.output_text.done", at(json!({"text": text}))),
    ));
    s.push(step(
        "response.content_part.done",
        "",
        1,
        ev(
            "response.content_part.done",
            at(json!({"part":{"type":"text","text":text}})),
        ),
    ));
    let said = message("completed", json!([{"type":"output_text","text":text}]));
    s.push(step(
        "response.output_item.done",
        "",
        1,
        ev(
            "response.output_item.done",
            json!({"output_index":0,"item":said}),
        ),
    ));
    s.push(
        step(
            "response.output_item.added",
            "",
            2,
            ev(
                "response.output_item.added",
                json!({"output_index":1,"item":call("in_progress", "")}),
            ),
        )
        .reaches("tool_start"),
    );
    let call_at = json!({"item_id":"item_2","output_index":1,"call_id":"call_1"});
    let mut delta = call_at.clone();
    delta["delta"] = json!(ARGS);
    s.push(step(
        "response.function_call_arguments.delta",
        "",
        2,
        ev("response.function_call_arguments.delta", delta),
    ));
    let mut args = call_at;
    args["name"] = json!("search_docs");
    args["arguments"] = json!(ARGS);
    s.push(
        step(
            "response.function_call_arguments.done",
            "",
            3,
            ev("response.function_call_arguments.done", args),
        )
        .reaches("tool_end"),
    );
    let called = call("completed", ARGS);
    s.push(step(
        "response.output_item.done",
        "",
        3,
        ev(
            "response.output_item.done",
            json!({"output_index":1,"item":called}),
        ),
    ));
    let mut done = resp("completed", json!([said, called]));
    done["usage"] = json!({"total_tokens": d + 20, "input_tokens": 12, "output_tokens": d + 8});
    s.push(
        step(
            "response.done",
            "",
            4,
            json!({"type":"response.done","response":done}),
        )
        .reaches("completed"),
    );
    for (n, st) in s.iter_mut().enumerate() {
        st.body["event_id"] = json!(format!("event_{n}"));
    }
}
