//! `type: websocket`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::expect::{JsonRule, Pattern, Phrase};
use super::tls::TlsVerify;
use super::{Problems, default_max_body};
use crate::config::yaml;

/// `type: websocket`: the upgrade succeeds and, when asked, a frame answers as expected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSocketSpec {
    /// Headers on the upgrade request. Values may use `${ENV}` / `${file:...}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Subprotocols offered (`Sec-WebSocket-Protocol`); the server must pick one of them.
    #[serde(default)]
    pub subprotocols: Vec<String>,
    /// A text message sent after the upgrade; then a reply is awaited.
    #[serde(default)]
    pub send: Option<String>,
    /// A frame that must arrive (frames before it that do not match are skipped).
    #[serde(default)]
    pub expect: FrameExpect,
    /// Largest frame accepted, in bytes (default 1 MiB).
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
}

/// `expect:` of a websocket check: rules one frame must meet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameExpect {
    #[serde(default)]
    pub body_matches: Vec<Pattern>,
    #[serde(default)]
    pub body_not_matches: Vec<Pattern>,
    #[serde(default)]
    pub json: Vec<JsonRule>,
}

impl FrameExpect {
    pub fn is_set(&self) -> bool {
        !(self.body_matches.is_empty() && self.body_not_matches.is_empty() && self.json.is_empty())
    }
}

impl WebSocketSpec {
    pub(crate) fn validate(&self, path: &str, out: &mut Problems) {
        out.headers(path, &self.headers);
        out.json_rules(&yaml::child(path, "expect.json"), &self.expect.json);
    }
}
