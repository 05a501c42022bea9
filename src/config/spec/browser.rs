//! `type: browser`: the product opened in a real Chromium as a user does, declarative
//! steps, and the agent events the page received judged like `agent_pipeline`; and the
//! top-level `browser:` section (which Chromium, how many pages, host mapping).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Problems;
use super::agent::{AgentExpect, CustomProfile, RawExpect};
use super::tls::TlsVerify;
use crate::config::value::opt_duration;
use crate::config::yaml;
use crate::protocol::profiles::Profile;

/// `type: browser`: `target` is the page's http(s) URL; it is opened in a fresh browser
/// context (no cookies, no cache), then `steps` run in order, each within its deadline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserSpec {
    /// What a user does after the page loaded: `fill`, `click`, `press`, `wait_for`,
    /// `expect_text`, `goto`, and `message` (the chat path in one step).
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Deadline of a step that sets none (default 10s; the check's timeout bounds all).
    #[serde(default, deserialize_with = "opt_duration")]
    pub step_timeout: Option<Duration>,
    /// Judge the agent events the page received over its WebSockets and EventSources
    /// with the rules of `agent_pipeline` (`profile`, `expect`).
    #[serde(default)]
    pub events: Option<PageEvents>,
    /// An uncaught exception in the page does not fail the run (it is still recorded).
    #[serde(default)]
    pub allow_page_errors: bool,
    /// Certificate trust of the browser: `ca_file` goes into the browser's NSS database
    /// (Chromium reads no CA file); `insecure_skip_verify` is refused.
    #[serde(default)]
    pub tls: TlsVerify,
}

/// `events:` of a browser check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageEvents {
    #[serde(default)]
    pub profile: Profile,
    #[serde(default)]
    pub custom: Option<CustomProfile>,
    #[serde(default, rename = "expect")]
    given: RawExpect,
    #[serde(skip)]
    pub expect: AgentExpect,
}

/// One step. Selectors are CSS selectors.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Open another URL in the same page.
    Goto(String),
    /// Type `value` into the field (secrets by `${…}`; never shown in reports).
    Fill {
        selector: String,
        value: String,
        #[serde(default, deserialize_with = "opt_duration")]
        timeout: Option<Duration>,
    },
    /// Click the element (waiting for it to appear).
    Click(String),
    /// Press a key (`Enter`, `Tab`, `Escape`, ...) in the focused element.
    Press(String),
    /// Wait until the selector matches a visible element, or the text is on the page.
    WaitFor(WaitFor),
    /// The text must be on the page now (or within the step's deadline).
    ExpectText(String),
    /// The chat path: type `text` into `input`, send it (click `send`, or press Enter),
    /// wait for the reply to appear in `reply`.
    Message(MessageStep),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitFor {
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageStep {
    pub text: String,
    pub input: String,
    #[serde(default)]
    pub send: Option<String>,
    /// Where the reply appears: the step ends when it holds text it did not hold before.
    pub reply: String,
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
}

const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(10);

impl Step {
    /// The step as reports name it (`fill #password`, `message → #reply`); never a value.
    pub fn describe(&self) -> String {
        match self {
            Step::Goto(url) => format!("goto {}", crate::secrets::display_str(url)),
            Step::Fill { selector, .. } => format!("fill {selector}"),
            Step::Click(s) => format!("click {s}"),
            Step::Press(k) => format!("press {k}"),
            Step::WaitFor(w) => match (&w.selector, &w.text) {
                (Some(s), _) => format!("wait_for {s}"),
                (None, Some(t)) => format!("wait_for text '{t}'"),
                (None, None) => "wait_for".into(),
            },
            Step::ExpectText(t) => format!("expect_text '{t}'"),
            Step::Message(m) => format!("message → {}", m.reply),
        }
    }

    /// The step's own deadline, else the check's `step_timeout`.
    pub fn timeout(&self, spec: &BrowserSpec) -> Duration {
        let own = match self {
            Step::Fill { timeout, .. } => *timeout,
            Step::WaitFor(w) => w.timeout,
            Step::Message(m) => m.timeout,
            _ => None,
        };
        own.or(spec.step_timeout).unwrap_or(DEFAULT_STEP_TIMEOUT)
    }
}

impl BrowserSpec {
    pub(crate) fn validate(&mut self, path: &str, out: &mut Problems) {
        if self.tls.insecure_skip_verify {
            out.value(
                yaml::child(path, "tls.insecure_skip_verify"),
                "a browser check never ignores certificate errors (they are what it looks for); trust the CA with `tls.ca_file`",
            );
        }
        if self.tls.server_name.is_some() || self.tls.cert_file.is_some() {
            out.value(
                yaml::child(path, "tls"),
                "a browser check takes only `tls.ca_file` (the browser picks names from the page's URLs; map them with `browser.hosts`)",
            );
        }
        for (i, step) in self.steps.iter().enumerate() {
            let at = yaml::index(&yaml::child(path, "steps"), i);
            match step {
                Step::Goto(url) => {
                    if let Err(e) = super::parse_http_url(url) {
                        out.value(yaml::child(&at, "goto"), e);
                    }
                }
                Step::WaitFor(w) if w.selector.is_some() == w.text.is_some() => out.value(
                    yaml::child(&at, "wait_for"),
                    "wait_for takes one of `selector` or `text`",
                ),
                _ => {}
            }
        }
        if let Some(events) = &mut self.events {
            events.expect = AgentExpect::of(events.profile, events.given.clone());
            if (events.profile == Profile::Custom) != events.custom.is_some() {
                out.value(
                    yaml::child(path, "events.custom"),
                    "`custom:` goes with `profile: custom` and only with it",
                );
            }
        }
    }
}

/// `browser:`: the Chromium that `type: browser` checks drive.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserConfig {
    /// The Chromium binary (default: `chromium`, `chromium-browser`, `google-chrome` on
    /// PATH). Never downloaded.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Pages open at once across all browser checks (default 2); runs beyond it wait.
    #[serde(default = "default_pages")]
    pub max_pages: usize,
    /// Names the browser resolves to fixed addresses (`"*.staging.example.ai": 10.0.0.5`),
    /// as Chromium's `--host-resolver-rules`; pathwatch's own follow-up TLS check of a
    /// refused host uses the same mapping.
    #[serde(default)]
    pub hosts: BTreeMap<String, IpAddr>,
    /// Run Chromium without its sandbox (needed as root, and in containers without user
    /// namespaces). Default: only when pathwatch runs as root.
    #[serde(default)]
    pub no_sandbox: Option<bool>,
    /// More Chromium flags, e.g. `--lang=de`.
    #[serde(default)]
    pub flags: Vec<String>,
    /// The browser is started afresh after this many runs (default 200): Chromium's
    /// memory only grows.
    #[serde(default = "default_recycle")]
    pub recycle_after: u64,
}

fn default_pages() -> usize {
    2
}
fn default_recycle() -> u64 {
    200
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            path: None,
            max_pages: default_pages(),
            hosts: BTreeMap::new(),
            no_sandbox: None,
            flags: Vec::new(),
            recycle_after: default_recycle(),
        }
    }
}

impl BrowserConfig {
    /// The address `host` maps to, if a `hosts` entry covers it (`*.x` covers one label or
    /// more, as in Chromium's rules).
    pub fn mapped(&self, host: &str) -> Option<IpAddr> {
        let host = host.to_ascii_lowercase();
        self.hosts.iter().find_map(|(pattern, ip)| {
            let p = pattern.to_ascii_lowercase();
            let hit = match p.strip_prefix("*.") {
                Some(base) => host.ends_with(&format!(".{base}")),
                None => host == p,
            };
            hit.then_some(*ip)
        })
    }

    pub(crate) fn validate(&self, out: &mut Problems) {
        if self.max_pages == 0 {
            out.value("browser.max_pages".into(), "must be at least 1");
        }
        for pattern in self.hosts.keys() {
            let name = pattern.strip_prefix("*.").unwrap_or(pattern);
            if super::parse_dns_name(name).is_err() || name.contains('*') {
                out.key(
                    yaml::child("browser.hosts", pattern),
                    format!("`{pattern}` is not a host name or `*.name`"),
                );
            }
        }
    }
}
