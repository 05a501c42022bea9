//! `alerting:` pathwatch pages through Alertmanager itself, without Prometheus: where its
//! Alertmanagers are, how often firing alerts are sent again, the links and labels alerts
//! carry, and how the connection is authenticated and secured.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::spec::{Context, Problems, TlsVerify, parse_http_url};
use super::value::duration;
use super::yaml;

/// Labels pathwatch sets on every alert; `alerting.labels` may not replace them.
pub const ALERT_LABELS: [&str; 5] = ["alertname", "check", "location", "severity", "reason"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Alertmanager base URLs (`http://alertmanager:9093`, with a path prefix if it has
    /// one); every one gets every alert, at `<url>/api/v2/alerts`.
    pub alertmanagers: Vec<String>,
    /// The same, parsed (set by validation).
    #[serde(skip)]
    pub urls: Vec<Url>,
    /// How often firing alerts are sent again (default 1m, as Prometheus does); an alert
    /// not sent again within 4 of these ends by itself in Alertmanager.
    #[serde(default = "default_resend", deserialize_with = "duration")]
    pub resend: Duration,
    /// Where people reach this pathwatch's status page: alerts link to the check there.
    #[serde(default)]
    pub external_url: Option<String>,
    /// Extra labels on every alert (e.g. `team: agents`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Deadline of one delivery to one Alertmanager (default 10s).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Sent as `Authorization: Bearer ...`; use `${ENV}` or `${file:...}`.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Verification of https Alertmanagers, and a client certificate (as for checks).
    #[serde(default)]
    pub tls: TlsVerify,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    /// Use `${ENV}` or `${file:...}`: it is then a secret, never printed.
    pub password: String,
}

fn default_resend() -> Duration {
    Duration::from_secs(60)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn label_name_ok(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl AlertingConfig {
    pub(crate) fn validate(&mut self, path: &str, ctx: &Context<'_>, out: &mut Problems) {
        if self.alertmanagers.is_empty() {
            out.value(
                yaml::child(path, "alertmanagers"),
                "name at least one Alertmanager URL (e.g. http://127.0.0.1:9093)",
            );
        }
        for (i, text) in self.alertmanagers.iter().enumerate() {
            match parse_http_url(text) {
                Ok(url) => self.urls.push(url),
                Err(e) => out.value(yaml::index(&yaml::child(path, "alertmanagers"), i), e),
            }
        }
        if let Some(external) = &self.external_url
            && let Err(e) = parse_http_url(external)
        {
            out.value(yaml::child(path, "external_url"), e);
        }
        for (name, value) in &self.labels {
            let at = yaml::child(&yaml::child(path, "labels"), name);
            if ALERT_LABELS.contains(&name.as_str()) {
                out.key(at, format!("`{name}` is set by pathwatch on every alert"));
            } else if !label_name_ok(name) {
                out.key(
                    at,
                    format!("`{name}` is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                );
            } else if value.is_empty() {
                out.value(at, "an empty label value removes the label; leave it out");
            }
        }
        if self.resend < Duration::from_secs(1) {
            out.value(yaml::child(path, "resend"), "resend must be at least 1s");
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(60) {
            out.value(
                yaml::child(path, "timeout"),
                "timeout must be more than 0 and at most 1m",
            );
        }
        if self.basic_auth.is_some() && self.bearer_token.is_some() {
            out.value(
                yaml::child(path, "bearer_token"),
                "use basic_auth or bearer_token, not both",
            );
        }
        self.tls.validate(&yaml::child(path, "tls"), ctx, out);
    }
}
