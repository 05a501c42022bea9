//! The agent event vocabulary of AGENT_PROTOCOL.md: the golden events, the events that end
//! a run (well or badly), the frames that carry no event of the run, and the fields each
//! golden event carries. A leaf: the probe's rules check against it and the demo backend
//! speaks it, so the oracle never imports its vocabulary from the code under test.

pub const AGENT_STARTED: &str = "agent_started";
pub const AGENT_THINKING: &str = "agent_thinking";
pub const TOOL_EXECUTING: &str = "tool_executing";
pub const TOOL_COMPLETED: &str = "tool_completed";
pub const AGENT_COMPLETED: &str = "agent_completed";

/// The five events of the golden path, in their natural order.
pub const GOLDEN: [&str; 5] = [
    AGENT_STARTED,
    AGENT_THINKING,
    TOOL_EXECUTING,
    TOOL_COMPLETED,
    AGENT_COMPLETED,
];

/// Events that end the run as a failure (reason `agent_error`).
pub const FATAL: [&str; 3] = ["agent_error", "agent_death", "agent_timeout_failure"];

/// Events that end the run successfully even without the top-level `agent_completed`.
pub const TERMINAL: [&str; 2] = ["final_report", "cleanup_complete"];

/// Frames that carry no event of the run and are skipped by the expectations.
pub const NOISE: [&str; 14] = [
    "heartbeat",
    "ping",
    "pong",
    "ack",
    "connection_established",
    "handshake_response",
    "handshake_complete",
    "progress_update",
    "partial_result",
    "agent_response_chunk",
    "agent_timeout_warning",
    "cleanup_started",
    "tool_error",
    "heartbeat_ack",
];

/// The `type`s a user's message goes by in the service's variants.
pub const MESSAGE_TYPES: [&str; 5] = [
    "user_message",
    "chat",
    "start_agent",
    "chat_message",
    "message",
];

/// Fields each golden event carries (`a|b`: either).
pub const REQUIRED_FIELDS: [(&str, &[&str]); 5] = [
    (AGENT_STARTED, &["user_id", "thread_id|run_id", "timestamp"]),
    (AGENT_THINKING, &["reasoning", "timestamp"]),
    (TOOL_EXECUTING, &["tool_name", "parameters", "timestamp"]),
    (
        TOOL_COMPLETED,
        &["tool_name", "results", "duration", "timestamp"],
    ),
    (AGENT_COMPLETED, &["status", "final_response", "timestamp"]),
];

/// Keys that name the run or thread an event belongs to.
pub const RUN_ID_KEYS: [&str; 2] = ["run_id", "thread_id"];

/// Keys that pair a tool execution with its completion, most specific first.
pub const TOOL_ID_KEYS: [&str; 4] = [
    "tool_execution_id",
    "execution_id",
    "tool_call_id",
    "tool_name",
];

/// Keys an error event hides its text under.
pub const ERROR_KEYS: [&str; 5] = ["error", "error_message", "message", "reason", "details"];

pub mod profiles;
