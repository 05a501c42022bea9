//! The agent streaming protocols an `agent_pipeline` check can speak (its `profile:`), the
//! stages every one of them maps onto, and what each profile brings by default: the
//! message that starts a run, the events a good run shows, the fields they carry, which
//! event starts a run and which ends a tool call. Wire formats: STREAMING_PROTOCOLS.md.
//!
//! The event names of the streaming protocols are not repeated here as constants: the probe
//! maps them and the demo speaks them, each written from the protocol's reference, so a
//! misspelling on one side fails the tests instead of agreeing with itself.

use serde::Deserialize;

/// The stages shared by all profiles. `expect.deadlines` and `expect.events` accept their
/// names in every profile, beside the profile's own event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// The run exists (`agent_started`, `RUN_STARTED`, `response.created`, `message_start`).
    Started,
    /// The first content or reasoning delta.
    FirstToken,
    /// A tool call began.
    ToolStart,
    /// A tool call's result (or its end, where the protocol streams no result).
    ToolEnd,
    /// The run finished well.
    Completed,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Started,
        Stage::FirstToken,
        Stage::ToolStart,
        Stage::ToolEnd,
        Stage::Completed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Started => "started",
            Stage::FirstToken => "first_token",
            Stage::ToolStart => "tool_start",
            Stage::ToolEnd => "tool_end",
            Stage::Completed => "completed",
        }
    }

    pub fn named(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// `profile:` of an agent_pipeline check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The four envelope families of AGENT_PROTOCOL.md (the incident's service).
    #[default]
    AgentEvents,
    /// AG-UI (CopilotKit, LangGraph, CrewAI, Mastra): `RUN_STARTED` .. `RUN_FINISHED`.
    AgUi,
    /// OpenAI Responses: `response.created` .. `response.completed`, `sequence_number`.
    OpenaiResponses,
    /// OpenAI Chat Completions chunks, ended by `[DONE]`.
    OpenaiChat,
    /// Anthropic Messages: `message_start` .. `message_stop`.
    AnthropicMessages,
    /// LangGraph run stream (`metadata`, `messages`, `updates`, ... until the stream closes).
    Langgraph,
    /// Vercel AI SDK UI message stream (v5+): `start` .. `finish`, then `[DONE]`.
    AiSdk,
    /// OpenAI Realtime over WebSocket: `response.create` -> `response.done`.
    OpenaiRealtime,
    /// Names and paths given in `custom:`.
    Custom,
}

/// Which transports a profile can run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    Both,
    WebSocketOnly,
}

/// What a profile brings by default.
#[derive(Debug)]
pub struct ProfileInfo {
    pub name: &'static str,
    /// The request body (SSE) or first frame (WebSocket) that starts a run, as JSON.
    pub message: &'static str,
    /// The events (or stages) a good run shows.
    pub events: &'static [&'static str],
    /// Fields each event must carry (`a|b`: either; `a.b`: a path).
    pub required: &'static [(&'static str, &'static [&'static str])],
    /// Every tool call start needs its end.
    pub pair_tools: bool,
    /// Over a WebSocket, the server speaks first.
    pub server_first: bool,
    /// The event that starts a run (the `first` order rule names it).
    pub start: &'static str,
    /// What ends a tool call, for messages about one that did not end.
    pub tool_end: &'static str,
    /// What ends the run, for messages about a run that did not end.
    pub end: &'static str,
    pub carries: Carries,
}

const FIRST_THREE: &[&str] = &["started", "first_token", "completed"];

impl Profile {
    pub const ALL: [Profile; 9] = [
        Profile::AgentEvents,
        Profile::AgUi,
        Profile::OpenaiResponses,
        Profile::OpenaiChat,
        Profile::AnthropicMessages,
        Profile::Langgraph,
        Profile::AiSdk,
        Profile::OpenaiRealtime,
        Profile::Custom,
    ];

    pub fn info(self) -> &'static ProfileInfo {
        match self {
            Profile::AgentEvents => &AGENT_EVENTS,
            Profile::AgUi => &AG_UI,
            Profile::OpenaiResponses => &OPENAI_RESPONSES,
            Profile::OpenaiChat => &OPENAI_CHAT,
            Profile::AnthropicMessages => &ANTHROPIC_MESSAGES,
            Profile::Langgraph => &LANGGRAPH,
            Profile::AiSdk => &AI_SDK,
            Profile::OpenaiRealtime => &OPENAI_REALTIME,
            Profile::Custom => &CUSTOM,
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }
}

static AGENT_EVENTS: ProfileInfo = ProfileInfo {
    name: "agent-events",
    message: r#"{"type":"user_message","payload":{"content":"pathwatch synthetic check: say hello"}}"#,
    events: &super::GOLDEN,
    required: &super::REQUIRED_FIELDS,
    pair_tools: true,
    server_first: true,
    start: super::AGENT_STARTED,
    tool_end: super::TOOL_COMPLETED,
    end: "the top-level agent_completed",
    carries: Carries::Both,
};

static AG_UI: ProfileInfo = ProfileInfo {
    name: "ag-ui",
    message: r#"{"threadId":"pathwatch","runId":"pathwatch-run","state":{},"messages":[{"id":"pathwatch-1","role":"user","content":"pathwatch synthetic check: say hello"}],"tools":[],"context":[],"forwardedProps":{}}"#,
    events: FIRST_THREE,
    required: &[
        ("RUN_STARTED", &["threadId", "runId"]),
        ("TEXT_MESSAGE_START", &["messageId"]),
        ("TEXT_MESSAGE_CONTENT", &["messageId", "delta"]),
        ("TOOL_CALL_START", &["toolCallId", "toolCallName"]),
        ("TOOL_CALL_END", &["toolCallId"]),
        ("TOOL_CALL_RESULT", &["toolCallId", "content"]),
    ],
    pair_tools: true,
    server_first: false,
    start: "RUN_STARTED",
    tool_end: "TOOL_CALL_RESULT",
    end: "RUN_FINISHED",
    carries: Carries::Both,
};

static OPENAI_RESPONSES: ProfileInfo = ProfileInfo {
    name: "openai-responses",
    message: r#"{"model":"gpt-4.1-mini","input":"pathwatch synthetic check: say hello","stream":true}"#,
    events: FIRST_THREE,
    required: &[
        ("response.created", &["response.id", "sequence_number"]),
        ("response.output_text.delta", &["item_id", "delta"]),
        ("response.completed", &["response.id"]),
    ],
    pair_tools: true,
    server_first: false,
    start: "response.created",
    tool_end: "its `.done` or `.completed` event",
    end: "response.completed",
    carries: Carries::Both,
};

static OPENAI_CHAT: ProfileInfo = ProfileInfo {
    name: "openai-chat",
    message: r#"{"model":"gpt-4.1-mini","messages":[{"role":"user","content":"pathwatch synthetic check: say hello"}],"stream":true,"stream_options":{"include_usage":true}}"#,
    events: &["started", "first_token", "finish_reason", "completed"],
    required: &[],
    pair_tools: false,
    server_first: false,
    start: "first chunk",
    tool_end: "finish_reason tool_calls",
    end: "[DONE]",
    carries: Carries::Both,
};

static ANTHROPIC_MESSAGES: ProfileInfo = ProfileInfo {
    name: "anthropic-messages",
    message: r#"{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"pathwatch synthetic check: say hello"}],"stream":true}"#,
    events: FIRST_THREE,
    required: &[
        ("message_start", &["message.id"]),
        ("content_block_start", &["index", "content_block.type"]),
        ("content_block_delta", &["index", "delta.type"]),
    ],
    pair_tools: true,
    server_first: false,
    start: "message_start",
    tool_end: "content_block_stop",
    end: "message_stop",
    carries: Carries::Both,
};

static LANGGRAPH: ProfileInfo = ProfileInfo {
    name: "langgraph",
    message: r#"{"assistant_id":"agent","input":{"messages":[{"role":"user","content":"pathwatch synthetic check: say hello"}]},"stream_mode":["messages-tuple","updates"]}"#,
    events: FIRST_THREE,
    required: &[("metadata", &["run_id"])],
    pair_tools: true,
    server_first: false,
    start: "metadata",
    tool_end: "a tool message with its tool_call_id",
    end: "the end of the stream",
    carries: Carries::Both,
};

static AI_SDK: ProfileInfo = ProfileInfo {
    name: "ai-sdk",
    message: r#"{"id":"pathwatch","messages":[{"id":"pathwatch-1","role":"user","parts":[{"type":"text","text":"pathwatch synthetic check: say hello"}]}],"trigger":"submit-message"}"#,
    events: FIRST_THREE,
    required: &[
        ("text-delta", &["id", "delta"]),
        ("tool-input-start", &["toolCallId", "toolName"]),
        ("tool-output-available", &["toolCallId"]),
    ],
    pair_tools: true,
    server_first: false,
    start: "start",
    tool_end: "tool-output-available",
    end: "finish",
    carries: Carries::Both,
};

static OPENAI_REALTIME: ProfileInfo = ProfileInfo {
    name: "openai-realtime",
    message: r#"{"type":"response.create","response":{"output_modalities":["text"],"instructions":"pathwatch synthetic check: say hello"}}"#,
    events: FIRST_THREE,
    required: &[("response.created", &["response.id"])],
    pair_tools: true,
    server_first: true,
    start: "response.created",
    tool_end: "response.function_call_arguments.done",
    end: "response.done",
    carries: Carries::WebSocketOnly,
};

static CUSTOM: ProfileInfo = ProfileInfo {
    name: "custom",
    message: r#"{"message":"pathwatch synthetic check: say hello"}"#,
    events: &["started", "completed"],
    required: &[],
    pair_tools: true,
    server_first: false,
    start: "started",
    tool_end: "tool_end",
    end: "completed",
    carries: Carries::Both,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_message_is_json_and_names_round_trip() {
        for p in Profile::ALL {
            let info = p.info();
            assert!(
                serde_json::from_str::<serde_json::Value>(info.message).is_ok(),
                "{}",
                info.name
            );
            let parsed: Profile = serde_json::from_value(info.name.into()).unwrap();
            assert_eq!(parsed, p);
        }
        for s in Stage::ALL {
            assert_eq!(Stage::named(s.name()), Some(s));
        }
    }
}
