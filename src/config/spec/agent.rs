//! `type: agent_pipeline`: the socket, the message, login and token transport, and the
//! typed expectations of a run.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::expect::Phrase;
use super::tls::TlsVerify;
use super::{Problems, default_max_body, yes};
use crate::config::value::{DurationValue, opt_duration};
use crate::config::yaml;
use crate::protocol::profiles::{Carries, Profile};

/// `type: agent_pipeline`: the golden path. `target` is the ws:// or wss:// URL of the chat
/// socket, or the http:// or https:// URL the message is POSTed to for a stream of
/// Server-Sent Events; `profile` says which protocol the agent speaks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Headers of the upgrade request (e.g. `Authorization: Bearer ${TOKEN}`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Which protocol the agent speaks (default `agent-events`, AGENT_PROTOCOL.md).
    #[serde(default)]
    pub profile: Profile,
    /// The names and paths of `profile: custom`.
    #[serde(default)]
    pub custom: Option<CustomProfile>,
    /// The message that starts a run (request body or first frame), any JSON. Default: the
    /// profile's (the canonical `user_message` for `agent-events`).
    #[serde(default)]
    pub message: Value,
    /// Over a WebSocket, wait for the server's first frame (`connection_established`,
    /// `session.created`) before sending. Default: the profile's.
    #[serde(default)]
    pub server_first: Option<bool>,
    /// The handshake variant: wait for `handshake_response`, answer
    /// `handshake_acknowledged` with its thread_id, and send the message in that thread.
    #[serde(default)]
    pub handshake: bool,
    /// What the run must show, as written (merged with the profile's defaults into `expect`).
    #[serde(default, rename = "expect")]
    given: RawExpect,
    #[serde(skip)]
    pub expect: AgentExpect,
    /// Largest frame accepted, in bytes (default 1 MiB); a larger one fails the probe.
    #[serde(default = "default_max_body")]
    pub max_frame_bytes: usize,
    /// Certificate verification for wss targets.
    #[serde(default)]
    pub tls: TlsVerify,
    /// Regexes (any case) that, in a 503 body or a 1011/1013 close reason, say the target
    /// is starting: reason `starting`, not an outage. Default: `defaults.starting_patterns`,
    /// else startup in progress, starting up, warming up, not ready, initializing.
    #[serde(default)]
    pub starting_patterns: Option<Vec<Phrase>>,
    /// Get a token over HTTP first (password login or a test-bypass endpoint).
    #[serde(default)]
    pub login: Option<LoginSpec>,
    /// How the token travels on the upgrade.
    #[serde(default)]
    pub token: TokenSpec,
}

/// `login:` of an agent_pipeline check. The answer must be JSON with the token at
/// `token_path`; any other answer fails the check with reason `login` (never a made-up token).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSpec {
    /// e.g. `https://auth.example.ai/auth/login` or `/auth/e2e/test-auth`.
    pub url: String,
    #[serde(default = "default_post")]
    pub method: String,
    /// e.g. `X-E2E-Bypass-Key: ${BYPASS_KEY}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body, e.g. `{email: ..., password: "${PASSWORD}"}`.
    #[serde(default)]
    pub body: Value,
    /// Dotted path of the token in the answer (default `access_token`).
    #[serde(default = "default_token_path")]
    pub token_path: String,
    /// Dotted path of the lifetime in seconds (default `expires_in`); the token is reused
    /// until shortly before it expires.
    #[serde(default = "default_expires_path")]
    pub expires_path: String,
    #[serde(skip)]
    pub parsed_url: Option<Url>,
}

fn default_post() -> String {
    "POST".into()
}
fn default_token_path() -> String {
    "access_token".into()
}
fn default_expires_path() -> String {
    "expires_in".into()
}

/// How the token is passed on the WebSocket upgrade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `Authorization: Bearer <token>` (default).
    #[default]
    Header,
    /// `Sec-WebSocket-Protocol: jwt-auth, jwt.<token>`.
    Subprotocol,
    /// `?token=<token>`.
    Query,
    /// POST for a ticket with the token, then `?ticket=<id>`.
    Ticket,
    /// No token.
    None,
}

/// `token:` of an agent_pipeline check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Default: `header` when there is a token (login or value), else `none`.
    #[serde(default)]
    pub transport: Option<Transport>,
    /// A fixed token instead of a login (e.g. `${AGENT_TOKEN}`).
    #[serde(default)]
    pub value: Option<String>,
    /// Header name and scheme for `header` (default `Authorization`, `Bearer`).
    #[serde(default = "default_auth_header")]
    pub header: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// For `subprotocol`: the prefix of the token protocol (`jwt.`, `jwt-auth.`, `bearer.`),
    /// whether the token is sent `raw` or `base64url`, and the protocols offered before it.
    #[serde(default = "default_prefix")]
    pub subprotocol_prefix: String,
    #[serde(default)]
    pub subprotocol_base64url: bool,
    #[serde(default = "default_offer")]
    pub subprotocol_offer: Vec<String>,
    /// For `query`: the parameter name (`token` or `access_token`).
    #[serde(default = "default_query_param")]
    pub query_param: String,
    /// For `ticket`: where to get one, with which body, where its id is in the answer.
    #[serde(default)]
    pub ticket_url: Option<String>,
    #[serde(default = "default_ticket_body")]
    pub ticket_body: Value,
    #[serde(default = "default_ticket_path")]
    pub ticket_path: String,
    #[serde(skip)]
    pub parsed_ticket_url: Option<Url>,
}

impl Default for TokenSpec {
    fn default() -> Self {
        TokenSpec {
            transport: None,
            value: None,
            header: default_auth_header(),
            scheme: default_scheme(),
            subprotocol_prefix: default_prefix(),
            subprotocol_base64url: false,
            subprotocol_offer: default_offer(),
            query_param: default_query_param(),
            ticket_url: None,
            ticket_body: default_ticket_body(),
            ticket_path: default_ticket_path(),
            parsed_ticket_url: None,
        }
    }
}

fn default_auth_header() -> String {
    "Authorization".into()
}
fn default_scheme() -> String {
    "Bearer".into()
}
fn default_prefix() -> String {
    "jwt.".into()
}
fn default_offer() -> Vec<String> {
    vec!["jwt-auth".into()]
}
fn default_query_param() -> String {
    "token".into()
}
fn default_ticket_body() -> Value {
    serde_json::json!({"ttl_seconds": 300, "single_use": true})
}
fn default_ticket_path() -> String {
    "ticket_id".into()
}

impl AgentSpec {
    /// The transport in effect: as configured, else `header` when a token exists.
    /// Whether these settings fit `url`'s transport: a WebSocket subprotocol or the
    /// handshake variant need a ws:// or wss:// target.
    pub fn fits(&self, url: &Url) -> Result<(), String> {
        if matches!(url.scheme(), "ws" | "wss") {
            return Ok(());
        }
        if self.profile.info().carries == Carries::WebSocketOnly {
            return Err(format!(
                "profile `{}` runs over a WebSocket (use ws:// or wss://)",
                self.profile.name()
            ));
        }
        if self.handshake {
            return Err("`handshake` is a WebSocket exchange; an http(s) target streams Server-Sent Events (use ws:// or wss://)".into());
        }
        if self.token.transport == Some(Transport::Subprotocol) {
            return Err("token transport `subprotocol` is for WebSocket targets; over Server-Sent Events use `header` or `query`".into());
        }
        Ok(())
    }

    /// Over a WebSocket, whether the server speaks first.
    pub fn server_first(&self) -> bool {
        self.server_first
            .unwrap_or(self.profile.info().server_first)
    }

    pub fn transport(&self) -> Transport {
        let has_token = self.login.is_some() || self.token.value.is_some();
        match self.token.transport {
            Some(t) => t,
            None if has_token => Transport::Header,
            None => Transport::None,
        }
    }
}

/// `custom:` of a `profile: custom` check: how its events are named and what they mean.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomProfile {
    /// The JSON path of the event's name in each event (default `type`); without one, the
    /// SSE `event:` name.
    #[serde(default = "default_type_path")]
    pub type_path: String,
    /// Events that start the run.
    #[serde(default)]
    pub started: Vec<String>,
    /// Content or reasoning deltas (the first one is `first_token`; they are counted).
    #[serde(default)]
    pub deltas: Vec<String>,
    /// The JSON path of a delta's text (for output throughput).
    #[serde(default)]
    pub delta_path: Option<String>,
    #[serde(default)]
    pub tool_start: Vec<String>,
    #[serde(default)]
    pub tool_end: Vec<String>,
    /// The JSON path of the id that pairs a tool start with its end.
    #[serde(default)]
    pub tool_id_path: Option<String>,
    /// Events that end the run well.
    #[serde(default)]
    pub completed: Vec<String>,
    /// Events that end the run as a failure (reason `agent_error`).
    #[serde(default)]
    pub error: Vec<String>,
    /// The JSON path of an error event's text (default: `error.message`, `message`, `error`).
    #[serde(default)]
    pub error_path: Option<String>,
    /// Whether `data: [DONE]` ends the stream (default true).
    #[serde(default = "yes")]
    pub done_ends: bool,
}

fn default_type_path() -> String {
    "type".into()
}

/// How strictly the first arrivals of the expected events must follow their listed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Order {
    /// `strict`: each expected event first arrives after all the ones listed before it.
    #[serde(rename = "strict")]
    Strict,
    /// `first`: the first expected event to arrive is `agent_started` (what the service's
    /// tests assert).
    #[default]
    #[serde(rename = "first")]
    FirstIsStarted,
    /// `any`: any order.
    #[serde(rename = "any")]
    Any,
}

/// `expect:` of an agent_pipeline check: what a run must show. Unset keys take the
/// protocol's defaults (AGENT_PROTOCOL.md).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentExpect {
    /// Events that must appear (default the five golden events).
    pub events: Vec<String>,
    /// `strict`, `first` (the first is agent_started; default) or `any`.
    pub order: Order,
    /// Deadline per event from the message being sent (default agent_started: 10s; the
    /// ones given are added to or replace the defaults).
    pub deadlines: BTreeMap<String, Duration>,
    /// The whole run, from send to completion (default 120s; the check timeout also bounds it).
    pub run_deadline: Duration,
    /// Fields each event must carry (`a|b`: either); replaces the default table per event.
    pub required_fields: BTreeMap<String, Vec<String>>,
    /// Every tool_executing needs a tool_completed (default true).
    pub pair_tools: bool,
    /// Most events besides deltas in one run (default 10000). Content, reasoning and
    /// tool-argument deltas are counted and timed, never kept, so they do not count.
    pub max_events: usize,
    /// Most bytes of stream read in one run (default 256 MiB): a 100,000-delta answer
    /// stays far inside it.
    pub max_stream_bytes: u64,
    /// The events and stages the check gave a deadline: each must arrive before the run
    /// completes.
    pub given_deadlines: Vec<String>,
}

impl Default for AgentExpect {
    fn default() -> Self {
        AgentExpect::of(Profile::AgentEvents, RawExpect::default())
    }
}

impl AgentExpect {
    /// The profile's defaults with what the check wrote on top.
    pub(super) fn of(profile: Profile, raw: RawExpect) -> Self {
        let info = profile.info();
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut deadlines = BTreeMap::from([(info.start.to_string(), Duration::from_secs(10))]);
        if profile != Profile::AgentEvents {
            deadlines = BTreeMap::from([("started".to_string(), Duration::from_secs(10))]);
        }
        let given_deadlines = raw.deadlines.keys().cloned().collect();
        deadlines.extend(raw.deadlines.into_iter().map(|(k, v)| (k, v.0)));
        let mut required_fields: BTreeMap<String, Vec<String>> = info
            .required
            .iter()
            .map(|(event, fields)| (event.to_string(), strings(fields)))
            .collect();
        required_fields.extend(raw.required_fields);
        AgentExpect {
            events: raw.events.unwrap_or_else(|| strings(info.events)),
            order: raw.order.unwrap_or_default(),
            deadlines,
            run_deadline: raw.run_deadline.unwrap_or(Duration::from_secs(120)),
            required_fields,
            pair_tools: raw.pair_tools.unwrap_or(info.pair_tools),
            max_events: raw.max_events.unwrap_or(10_000),
            max_stream_bytes: raw.max_stream_bytes.unwrap_or(256 << 20),
            given_deadlines,
        }
    }
}

/// `expect:` as written: every key optional, so the profile's defaults can be merged in.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExpect {
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    order: Option<Order>,
    #[serde(default)]
    deadlines: BTreeMap<String, DurationValue>,
    #[serde(default, deserialize_with = "opt_duration")]
    run_deadline: Option<Duration>,
    #[serde(default)]
    required_fields: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pair_tools: Option<bool>,
    #[serde(default)]
    max_events: Option<usize>,
    #[serde(default)]
    max_stream_bytes: Option<u64>,
}

impl AgentSpec {
    pub(crate) fn validate(&mut self, path: &str, out: &mut Problems) {
        let info = self.profile.info();
        if self.message.is_null() {
            self.message = serde_json::from_str(info.message).unwrap_or_default();
        }
        self.expect = AgentExpect::of(self.profile, self.given.clone());
        match (&self.custom, self.profile) {
            (None, Profile::Custom) => out.value(
                yaml::child(path, "profile"),
                "profile `custom` needs a `custom:` section (the names of its start and end events)",
            ),
            (Some(_), p) if p != Profile::Custom => out.value(
                yaml::child(path, "custom"),
                format!("`custom:` is for `profile: custom`, not `{}`", p.name()),
            ),
            (Some(c), _) if c.completed.is_empty() => out.value(
                yaml::child(path, "custom.completed"),
                "name the event(s) that end a run well",
            ),
            _ => {}
        }
        if let Some(login) = &mut self.login {
            match super::parse_http_url(&login.url) {
                Ok(u) => login.parsed_url = Some(u),
                Err(e) => out.value(yaml::child(path, "login.url"), e),
            }
        }
        let t = &mut self.token;
        if let Some(url) = &t.ticket_url {
            match super::parse_http_url(url) {
                Ok(u) => t.parsed_ticket_url = Some(u),
                Err(e) => out.value(yaml::child(path, "token.ticket_url"), e),
            }
        }
        let has_token = self.login.is_some() || t.value.is_some();
        if t.transport.is_some_and(|tr| tr != Transport::None) && !has_token {
            out.value(
                yaml::child(path, "token.transport"),
                "a token transport needs `login:` or `token.value`",
            );
        }
        if t.transport == Some(Transport::Ticket) && t.ticket_url.is_none() {
            out.value(
                yaml::child(path, "token.transport"),
                "transport `ticket` needs `token.ticket_url`",
            );
        }
        out.headers(path, &self.headers);
    }
}
