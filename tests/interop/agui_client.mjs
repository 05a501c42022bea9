// The demo's AG-UI stream read by the official client: `HttpAgent.runAgent` with its event
// verification (the order and shape rules of @ag-ui/client 1.0), then what it assembled.
// Usage: node agui_client.mjs http://127.0.0.1:PORT
import { HttpAgent } from "@ag-ui/client";

const base = process.argv[2].replace(/\/$/, "");
const fail = (what) => {
  console.error(what);
  process.exit(1);
};

const agent = new HttpAgent({
  url: `${base}/sse?profile=ag-ui`,
  threadId: "interop-thread",
  initialMessages: [{ id: "u1", role: "user", content: "pathwatch synthetic check: say hello" }],
});
const seen = [];
let started;
let finished;
try {
  await agent.runAgent(
    { runId: "interop-run" },
    {
      onEvent: ({ event }) => seen.push(event.type),
      onRunStartedEvent: ({ event }) => (started = event),
      onRunFinishedEvent: ({ event }) => (finished = event),
    },
  );
} catch (e) {
  fail(`runAgent refused the stream: ${e.message}`);
}
if (started?.runId !== "interop-run" || started?.threadId !== "interop-thread") {
  fail(`RUN_STARTED does not echo the request's ids: ${JSON.stringify(started)}`);
}
if (finished?.outcome?.type !== "success") {
  fail(`RUN_FINISHED outcome: ${JSON.stringify(finished?.outcome)}`);
}
const reply = agent.messages.find((m) => m.role === "assistant");
if (!reply?.content?.startsWith("Looking up")) fail(`no assistant text: ${JSON.stringify(agent.messages)}`);
const call = reply.toolCalls?.[0];
if (call?.function?.name !== "search_docs") fail(`no tool call: ${JSON.stringify(reply)}`);
const result = agent.messages.find((m) => m.role === "tool" && m.toolCallId === call.id);
if (!result) fail(`no tool result message: ${JSON.stringify(agent.messages)}`);
console.log(`events: ${seen.join(" ")}`);
console.log("@ag-ui/client 1.0.0 runAgent: 1 passed, 0 failed");
