"""The demo's OpenAI streams read by the official `openai` SDK, strictly.

Usage: python3 openai_client.py http://127.0.0.1:PORT
Every event is validated against the SDK's typed models (the SDK itself builds them without
validation, so a missing field shows up only later, in a helper or in user code); then the
SDK's own accumulating helpers read the same stream. Exit 0 when all of it holds; otherwise
the first thing that did not, in words, and exit 1.
"""

import json

import openai
from openai.types.chat import ChatCompletionChunk
from openai.types.realtime import RealtimeServerEvent
from openai.types.responses import ResponseStreamEvent

from demo import BASE, by_type, check, login, strict

MESSAGE = "pathwatch synthetic check: say hello"


def responses(client: openai.OpenAI) -> None:
    models = by_type(ResponseStreamEvent)
    deltas, done_text, completed = [], None, None
    for event in client.responses.create(model="demo", input=MESSAGE, stream=True):
        strict(models, event)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.output_text.done":
            done_text = event.text
        elif event.type == "response.completed":
            completed = event.response
    check("responses.create: output_text.done", done_text == "".join(deltas), repr(done_text))
    check("responses.create: response.completed", completed is not None, "never arrived")
    check("responses.create: completed output", completed.output_text == done_text, repr(completed.output_text))
    with client.responses.stream(model="demo", input=MESSAGE) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    check("responses.stream: final text", final.output_text == done_text, repr(final.output_text))
    calls = [o for o in final.output if o.type == "function_call"]
    check("responses.stream: function call", len(calls) == 1 and calls[0].name == "search_docs", repr(final.output))
    check("responses.stream: arguments", json.loads(calls[0].arguments) == {"query": "pathwatch"}, calls[0].arguments)


def chat(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": MESSAGE}]
    text = ""
    stream = client.chat.completions.create(
        model="demo", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        ChatCompletionChunk.model_validate(chunk.to_dict())
        for choice in chunk.choices:
            text += choice.delta.content or ""
    check("chat.completions.create: text", text.startswith("Looking up"), repr(text))
    with client.chat.completions.stream(model="demo", messages=messages) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    message = final.choices[0].message
    check("chat.completions.stream: text", message.content == text, repr(message.content))
    calls = message.tool_calls or []
    check("chat.completions.stream: tool call", len(calls) == 1 and calls[0].function.name == "search_docs", repr(calls))
    check("chat.completions.stream: finish_reason", final.choices[0].finish_reason == "tool_calls", final.choices[0].finish_reason)


def realtime(client: openai.OpenAI) -> None:
    models = by_type(RealtimeServerEvent)
    seen, text = [], ""
    with client.realtime.connect(model="demo") as conn:
        conn.send({"type": "response.create"})
        for event in conn:
            strict(models, event)
            seen.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                check("realtime: response.done status", event.response.status == "completed", event.response.status)
                break
    check("realtime: session.created first", seen[:1] == ["session.created"], repr(seen[:3]))
    check("realtime: text", text.startswith("Looking up"), repr(text))
    check("realtime: function call", "response.function_call_arguments.done" in seen, repr(seen))


def main() -> None:
    token = login()
    client = openai.OpenAI(
        base_url=BASE + "/v1",
        websocket_base_url=BASE.replace("http", "ws", 1) + "/v1",
        api_key=token,
        max_retries=0,
        timeout=10,
    )
    for name, run in [("responses", responses), ("chat", chat), ("realtime", realtime)]:
        run(client)
        print(f"{name}: ok")
    print(f"openai {openai.__version__}: 3 passed, 0 failed")


if __name__ == "__main__":
    main()
