"""The demo's Anthropic Messages stream read by the official `anthropic` SDK, strictly.

Usage: python3 anthropic_client.py http://127.0.0.1:PORT
Every raw event is validated against the SDK's typed models, then `messages.stream()`
accumulates the same stream into a message. Exit 0 when all of it holds; otherwise the
first thing that did not, in words, and exit 1.
"""

import json

import anthropic
from anthropic.types import RawMessageStreamEvent

from demo import BASE, by_type, check, login, strict


def main() -> None:
    client = anthropic.Anthropic(base_url=BASE, api_key=login(), max_retries=0, timeout=10)
    models = by_type(RawMessageStreamEvent)
    request = dict(
        model="demo",
        max_tokens=256,
        messages=[{"role": "user", "content": "pathwatch synthetic check: say hello"}],
    )
    text = ""
    for event in client.messages.create(stream=True, **request):
        data = strict(models, event)
        if data["type"] == "content_block_delta" and data["delta"]["type"] == "text_delta":
            text += data["delta"]["text"]
    check("messages.create: text", text.startswith("Looking up"), repr(text))
    with client.messages.stream(**request) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    check("messages.stream: text_stream", streamed == text, repr(streamed))
    check("messages.stream: text block", final.content[0].type == "text" and final.content[0].text == text, repr(final.content))
    tools = [b for b in final.content if b.type == "tool_use"]
    check("messages.stream: tool_use block", len(tools) == 1 and tools[0].name == "search_docs", repr(final.content))
    check("messages.stream: tool input", tools[0].input == {"query": "pathwatch"}, json.dumps(tools[0].input))
    check("messages.stream: stop_reason", final.stop_reason == "tool_use", str(final.stop_reason))
    check("messages.stream: usage", final.usage.output_tokens > 0, repr(final.usage))
    print("messages: ok")
    print(f"anthropic {anthropic.__version__}: 1 passed, 0 failed")


if __name__ == "__main__":
    main()
