//! `type: http`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::expect::{JsonRule, Pattern, Phrase, StatusRule};
use super::tls::TlsVerify;
use super::{Problems, default_max_body, yes};
use crate::config::yaml;

/// `type: http`: a health endpoint answers as expected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// HTTP method (default GET).
    #[serde(default = "default_method")]
    pub method: String,
    /// Request headers. Values may use `${ENV}` / `${file:...}`; they are never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as-is.
    #[serde(default)]
    pub body: Option<String>,
    /// What the response must look like.
    #[serde(default)]
    pub expect: HttpExpect,
    /// Follow 3xx redirects (default true), at most `max_redirects` (default 10).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Largest body read, in bytes (default 1 MiB); a larger body fails the probe.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Certificate verification for https targets.
    #[serde(default)]
    pub tls: TlsVerify,
    /// Regexes (any case) that, in a 503 body or a 1011/1013 close reason, say the target
    /// is starting: reason `starting`, not an outage. Default: `defaults.starting_patterns`,
    /// else startup in progress, starting up, warming up, not ready, initializing.
    #[serde(default)]
    pub starting_patterns: Option<Vec<Phrase>>,
}

fn default_method() -> String {
    "GET".into()
}
fn default_max_redirects() -> u32 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// Accepted status codes: numbers (`200`), classes (`2xx`) or ranges (`200-299`).
    /// Default `[2xx]`.
    #[serde(default = "default_status")]
    pub status: Vec<StatusRule>,
    /// Response header name -> regex its value must match.
    #[serde(default)]
    pub headers: BTreeMap<String, Pattern>,
    /// Regexes the body must match.
    #[serde(default)]
    pub body_matches: Vec<Pattern>,
    /// Regexes the body must not match.
    #[serde(default)]
    pub body_not_matches: Vec<Pattern>,
    /// Rules on fields of a JSON body.
    #[serde(default)]
    pub json: Vec<JsonRule>,
}

impl Default for HttpExpect {
    fn default() -> Self {
        HttpExpect {
            status: default_status(),
            headers: BTreeMap::new(),
            body_matches: Vec::new(),
            body_not_matches: Vec::new(),
            json: Vec::new(),
        }
    }
}

fn default_status() -> Vec<StatusRule> {
    vec![StatusRule::Range(200, 299)]
}

impl HttpSpec {
    pub(crate) fn validate(&self, path: &str, out: &mut Problems) {
        if hyper::Method::from_bytes(self.method.as_bytes()).is_err() {
            out.value(
                yaml::child(path, "method"),
                format!("`{}` is not an HTTP method", self.method),
            );
        }
        out.headers(path, &self.headers);
        for name in self.expect.headers.keys() {
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                let hp = yaml::child(&yaml::child(path, "expect.headers"), name);
                out.key(hp, format!("`{name}` is not a valid header name"));
            }
        }
        out.json_rules(&yaml::child(path, "expect.json"), &self.expect.json);
        if self.max_redirects > 100 {
            out.value(yaml::child(path, "max_redirects"), "at most 100");
        }
    }
}
