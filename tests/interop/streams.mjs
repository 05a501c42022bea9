// Streams made by the protocols' own libraries, for the probe to read (tests/interop.rs).
// POST /ag-ui/<case>: events validated by @ag-ui/core's schemas, framed by @ag-ui/encoder.
// POST /ai-sdk/<case>: Vercel AI SDK streamText over its own mock model, as
// toUIMessageStreamResponse() answers it. Prints {"port": N} once listening on 127.0.0.1.
import http from "node:http";
import { EventType } from "@ag-ui/core";
import { EventSchemas } from "@ag-ui/core/schemas";
import { EventEncoder } from "@ag-ui/encoder";
import { simulateReadableStream, stepCountIs, streamText, tool, jsonSchema } from "ai";
import { MockLanguageModelV3 } from "ai/test";

const E = EventType;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const text = (id, words) => [
  { type: E.TEXT_MESSAGE_START, messageId: id, role: "assistant" },
  ...words.map((delta) => ({ type: E.TEXT_MESSAGE_CONTENT, messageId: id, delta })),
  { type: E.TEXT_MESSAGE_END, messageId: id },
];
const WORDS = ["Looking ", "up ", "the ", "docs."];

// Each AG-UI case: the events after RUN_STARTED, and how the stream ends.
const agui = {
  happy: () => [
    ...text("m1", WORDS),
    { type: E.TOOL_CALL_START, toolCallId: "c1", toolCallName: "search_docs", parentMessageId: "m1" },
    { type: E.TOOL_CALL_ARGS, toolCallId: "c1", delta: '{"query":"pathwatch"}' },
    { type: E.TOOL_CALL_END, toolCallId: "c1" },
    { type: E.TOOL_CALL_RESULT, messageId: "m2", toolCallId: "c1", content: "doc-1", role: "tool" },
    "success",
  ],
  rich: () => [
    { type: E.STEP_STARTED, stepName: "plan" },
    { type: E.REASONING_START, messageId: "r1" },
    { type: E.REASONING_MESSAGE_START, messageId: "r1", role: "reasoning" },
    { type: E.REASONING_MESSAGE_CONTENT, messageId: "r1", delta: "The user wants docs." },
    { type: E.REASONING_MESSAGE_END, messageId: "r1" },
    { type: E.REASONING_END, messageId: "r1" },
    { type: E.STATE_SNAPSHOT, snapshot: { stage: "searching" } },
    { type: E.STATE_DELTA, delta: [{ op: "replace", path: "/stage", value: "answering" }] },
    { type: E.TEXT_MESSAGE_CHUNK, messageId: "m1", role: "assistant", delta: "Here " },
    { type: E.TEXT_MESSAGE_CHUNK, messageId: "m1", delta: "it is." },
    { type: E.CUSTOM, name: "progress", value: { percent: 100 } },
    { type: E.RAW, event: { provider: "mock" } },
    { type: E.STEP_FINISHED, stepName: "plan" },
    "success",
  ],
  chunked: () => [
    { type: E.TEXT_MESSAGE_CHUNK, messageId: "m1", role: "assistant", delta: "Searching." },
    { type: E.TOOL_CALL_CHUNK, toolCallId: "c1", toolCallName: "search_docs", parentMessageId: "m1", delta: '{"query":' },
    { type: E.TOOL_CALL_CHUNK, toolCallId: "c1", delta: '"pathwatch"}' },
    { type: E.TOOL_CALL_RESULT, messageId: "m2", toolCallId: "c1", content: "doc-1", role: "tool" },
    "success",
  ],
  "run-error": () => [
    ...text("m1", WORDS.slice(0, 2)),
    { type: E.RUN_ERROR, message: "LLM provider returned 429 (quota exceeded)", code: "rate_limited" },
  ],
  interrupt: () => [
    ...text("m1", ["I will send it."]),
    { type: E.TOOL_CALL_START, toolCallId: "c9", toolCallName: "send_email" },
    { type: E.TOOL_CALL_ARGS, toolCallId: "c9", delta: '{"to":"ops@example.ai"}' },
    { type: E.TOOL_CALL_END, toolCallId: "c9" },
    {
      type: "interrupt",
      interrupts: [{ id: "i1", reason: "tool_approval", message: "Approve sending the email to ops@example.ai?", toolCallId: "c9" }],
    },
  ],
  cancelled: () => [...text("m1", WORDS.slice(0, 1)), { type: "cancelled" }],
  truncated: () => [...text("m1", WORDS).slice(0, 3), "cut"],
  hang: () => [{ type: E.TEXT_MESSAGE_START, messageId: "m1", role: "assistant" }, { type: E.TEXT_MESSAGE_CONTENT, messageId: "m1", delta: "Looking " }, "hang"],
};

async function serveAgui(name, input, res) {
  const encoder = new EventEncoder();
  const send = (event) => res.write(encoder.encode(EventSchemas.parse(event)));
  const { threadId, runId } = input;
  res.writeHead(200, { "Content-Type": encoder.getContentType() });
  send({ type: E.RUN_STARTED, threadId, runId });
  for (const step of agui[name]()) {
    await sleep(5);
    if (step === "cut") return res.destroy();
    if (step === "hang") return;
    if (step === "success") return res.end(encoder.encode(EventSchemas.parse({ type: E.RUN_FINISHED, threadId, runId, outcome: { type: "success" } })));
    if (step.type === "interrupt" || step.type === "cancelled") {
      return res.end(encoder.encode(EventSchemas.parse({ type: E.RUN_FINISHED, threadId, runId, outcome: step })));
    }
    send(step);
  }
  res.end();
}

const usage = { inputTokens: { total: 3, noCache: 3, cacheRead: 0, cacheWrite: 0 }, outputTokens: { total: 10, text: 10, reasoning: 0 } };
const finish = (unified) => ({ type: "finish", finishReason: { unified, raw: unified }, usage });
const words = (id) => [{ type: "text-start", id }, ...WORDS.map((delta) => ({ type: "text-delta", id, delta })), { type: "text-end", id }];
const call = { type: "tool-call", toolCallId: "c1", toolName: "search_docs", input: '{"query":"pathwatch"}' };
const reasoning = [{ type: "reasoning-start", id: "r1" }, { type: "reasoning-delta", id: "r1", delta: "The user wants docs." }, { type: "reasoning-end", id: "r1" }];

// Each AI SDK case: the model's stream for each step (or a function making the stream).
const aisdk = {
  "happy-tool": [[...words("t1"), call, finish("tool-calls")], [...words("t2"), finish("stop")]],
  "multi-step": [[...reasoning, call, finish("tool-calls")], [...words("t2"), finish("stop")]],
  "error-part": [[...words("t1").slice(0, 2), { type: "error", error: new Error("rate limited by the provider") }, finish("error")]],
  throws: [() => new ReadableStream({ start(c) { c.enqueue(words("t1")[0]); c.enqueue(words("t1")[1]); setTimeout(() => c.error(new Error("the model stream broke")), 10); } })],
  abort: [[...words("t1")]],
  truncated: [[...words("t1"), finish("stop")]],
  hang: [() => new ReadableStream({ start(c) { c.enqueue(words("t1")[0]); c.enqueue(words("t1")[1]); } })],
};

async function serveAiSdk(name, res) {
  let step = 0;
  const model = new MockLanguageModelV3({
    doStream: async () => {
      const s = aisdk[name][Math.min(step++, aisdk[name].length - 1)];
      const stream = typeof s === "function" ? s() : simulateReadableStream({ chunks: s, chunkDelayInMs: 5 });
      return { stream };
    },
  });
  const abort = new AbortController();
  const result = streamText({
    model,
    prompt: "pathwatch synthetic check: say hello",
    tools: {
      search_docs: tool({ inputSchema: jsonSchema({ type: "object", properties: { query: { type: "string" } } }), execute: async () => ["doc-1"] }),
    },
    stopWhen: stepCountIs(aisdk[name].length),
    abortSignal: abort.signal,
    onChunk: ({ chunk }) => name === "abort" && chunk.type === "text-delta" && abort.abort(),
  });
  const answer = result.toUIMessageStreamResponse({ onError: (e) => e.message ?? String(e) });
  res.writeHead(answer.status, Object.fromEntries(answer.headers));
  let sent = 0;
  for await (const chunk of answer.body) {
    if (name === "truncated" && ++sent > 4) return res.destroy();
    res.write(chunk);
  }
  res.end();
}

const server = http.createServer((req, res) => {
  let body = "";
  req.on("data", (d) => (body += d));
  req.on("end", async () => {
    const [, family, name] = req.url.split("?")[0].split("/");
    try {
      if (family === "ag-ui" && agui[name]) return await serveAgui(name, JSON.parse(body || "{}"), res);
      if (family === "ai-sdk" && aisdk[name]) return await serveAiSdk(name, res);
      res.writeHead(404).end(`no case ${req.url}`);
    } catch (e) {
      console.error(`${req.url}: ${e.stack}`);
      res.destroy();
    }
  });
});
server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));
