// The demo's AI SDK UI message stream read as `useChat` reads it: DefaultChatTransport (which
// validates every chunk with uiMessageChunkSchema) into readUIMessageStream.
// Usage: node aisdk_client.mjs http://127.0.0.1:PORT
import { DefaultChatTransport, readUIMessageStream } from "ai";

const base = process.argv[2].replace(/\/$/, "");
const fail = (what) => {
  console.error(what);
  process.exit(1);
};

const transport = new DefaultChatTransport({ api: `${base}/api/chat` });
const messages = [
  { id: "u1", role: "user", parts: [{ type: "text", text: "pathwatch synthetic check: say hello" }] },
];
let message;
try {
  const stream = await transport.sendMessages({
    chatId: "interop-chat",
    messages,
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: AbortSignal.timeout(10_000),
  });
  for await (const snapshot of readUIMessageStream({
    stream,
    onError: (e) => fail(`the stream failed: ${e.message ?? e}`),
  })) {
    message = snapshot;
  }
} catch (e) {
  fail(`the client refused the stream: ${e.message}`);
}
const text = message?.parts.find((p) => p.type === "text");
if (!text?.text.startsWith("Looking up") || text.state !== "done") fail(`text part: ${JSON.stringify(text)}`);
const tool = message.parts.find((p) => p.type === "tool-search_docs");
if (tool?.state !== "output-available" || tool.input?.query !== "pathwatch") fail(`tool part: ${JSON.stringify(tool)}`);
console.log(`parts: ${message.parts.map((p) => p.type).join(" ")}`);
console.log("ai 6.0.333 DefaultChatTransport + readUIMessageStream: 1 passed, 0 failed");
