//! What the page did, from the browser's own events: its document, the WebSockets,
//! EventSources and streamed fetches it opened (and why the browser refused one), failed
//! requests, console errors, uncaught exceptions; and the agent events its streams
//! carried, judged by the rules of `agent_pipeline`.

use std::collections::HashMap;

use serde_json::Value;
use tokio::time::Instant;

use super::cdp::Event;
use crate::config::TlsVerify;
use crate::config::spec::PageEvents;
use crate::probe::agent::profiles::{Read, Reader};
use crate::probe::agent::rules::{RunState, Step};
use crate::probe::certs::Alpn;
use crate::probe::expect::excerpt;
use crate::probe::result::{FailedRequest, Failure, PageReport, Reason, StreamSeen};
use crate::probe::timing::Timeline;
use crate::probe::{Prober, net};
use crate::secrets::display_str;
use std::time::Duration;
use url::Url;

/// Most entries kept per list: a page that opens thousands of requests costs no more.
const KEEP: usize = 50;

/// The agent run the page's streams carry, judged from the message being sent.
pub(super) struct Judge<'a> {
    reader: Reader<'a>,
    pub state: RunState<'a>,
    /// When the message was sent (frames before it are not judged).
    pub sent: Option<Instant>,
    pub verdict: Option<Result<(), Failure>>,
}

impl<'a> Judge<'a> {
    pub fn new(events: &'a PageEvents) -> Self {
        Judge {
            reader: Reader::for_profile(events.profile, events.custom.as_ref()),
            state: RunState::new(&events.expect, events.profile),
            sent: None,
            verdict: None,
        }
    }

    /// When the next event deadline passes, while the run is undecided.
    pub fn deadline(&self) -> Option<Instant> {
        let sent = self.sent?;
        self.verdict
            .is_none()
            .then(|| sent + self.state.next_deadline().0)
    }

    fn feed(&mut self, sse: Option<&str>, data: &str) {
        let Some(sent) = self.sent else { return };
        if self.verdict.is_some() {
            return;
        }
        // A page may run other sockets beside the agent's: what is not JSON is not judged.
        let Ok(Read::Events(events)) = self.reader.read(sse, data) else {
            return;
        };
        for ev in events {
            match self.state.observe(&ev, sent.elapsed()) {
                Step::Continue => {}
                Step::Done => self.verdict = Some(Ok(())),
                Step::Fail(f) => self.verdict = Some(Err(f)),
            }
            if self.verdict.is_some() {
                return;
            }
        }
    }
}

pub(super) struct Recorder<'a> {
    started: Instant,
    pub report: PageReport,
    /// requestId -> index in `report.streams`.
    streams: HashMap<String, usize>,
    /// requestId -> (URL, type) of requests in flight, to name a failed one.
    requests: HashMap<String, (String, String)>,
    pub loaded: bool,
    pub crashed: bool,
    /// A JavaScript dialog waiting to be dismissed (its message).
    pub dialog: Option<String>,
    /// The first stream the browser refused to open (index in `report.streams`).
    pub refused: Option<usize>,
    pub judge: Option<Judge<'a>>,
}

impl<'a> Recorder<'a> {
    pub fn new(events: Option<&'a PageEvents>) -> Self {
        Recorder {
            started: Instant::now(),
            report: PageReport::default(),
            streams: HashMap::new(),
            requests: HashMap::new(),
            loaded: false,
            crashed: false,
            dialog: None,
            refused: None,
            judge: events.map(Judge::new),
        }
    }

    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn stream(&mut self, id: &str) -> Option<&mut StreamSeen> {
        let i = *self.streams.get(id)?;
        self.report.streams.get_mut(i)
    }

    fn open_stream(&mut self, id: &str, kind: &str, url: &str, initiator: Option<String>) {
        if self.report.streams.len() >= KEEP || self.streams.contains_key(id) {
            return;
        }
        self.streams
            .insert(id.to_string(), self.report.streams.len());
        self.report.streams.push(StreamSeen {
            kind: kind.into(),
            url: display_str(url),
            initiator,
            opened_at: self.now(),
            status: None,
            error: None,
            frames_in: 0,
            frames_out: 0,
            closed_at: None,
        });
    }

    /// A stream the browser would not open: the first one ends the run's wait at once.
    fn refuse(&mut self, id: &str, error: String) {
        let Some(&i) = self.streams.get(id) else {
            return;
        };
        self.report.streams[i].error = Some(error);
        self.report.streams[i].closed_at = Some(self.now());
        self.refused.get_or_insert(i);
    }

    pub fn event(&mut self, ev: Event) {
        let p = &ev.params;
        let id = p["requestId"].as_str().unwrap_or_default();
        match ev.method.as_str() {
            "Page.loadEventFired" => self.loaded = true,
            "Inspector.targetCrashed" => self.crashed = true,
            "Page.javascriptDialogOpening" => {
                let kind = p["type"].as_str().unwrap_or("alert");
                let text = p["message"].as_str().unwrap_or_default();
                self.dialog = Some(format!("{kind}: {}", excerpt(text.as_bytes())));
            }
            "Network.requestWillBeSent" => {
                self.report.requests += 1;
                let url = p["request"]["url"].as_str().unwrap_or_default();
                let kind = p["type"].as_str().unwrap_or("Other");
                if kind == "EventSource" {
                    self.open_stream(id, "eventsource", url, initiator(&p["initiator"]));
                }
                if self.requests.len() < 1000 {
                    self.requests
                        .insert(id.to_string(), (url.to_string(), kind.to_string()));
                }
            }
            "Network.responseReceived" => {
                let status = p["response"]["status"].as_u64().map(|s| s as u16);
                let kind = p["type"].as_str().unwrap_or_default();
                if kind == "Document" {
                    self.report.status = status;
                    if let Some(url) = p["response"]["url"].as_str() {
                        self.report.url = display_str(url);
                    }
                }
                let streamed = p["response"]["mimeType"].as_str() == Some("text/event-stream");
                if kind == "Fetch" && streamed {
                    let url = p["response"]["url"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    self.open_stream(id, "fetch", &url, None);
                }
                if let Some(s) = self.stream(id) {
                    s.status = status;
                }
            }
            "Network.loadingFinished" => {
                self.requests.remove(id);
                let now = self.now();
                if let Some(s) = self.stream(id) {
                    s.closed_at = Some(now);
                }
            }
            "Network.loadingFailed" => {
                let (url, kind) = self.requests.remove(id).unwrap_or_default();
                let error = p["errorText"].as_str().unwrap_or("failed").to_string();
                if p["canceled"].as_bool() == Some(true) {
                    return;
                }
                if self.report.failed.len() < KEEP {
                    self.report.failed.push(FailedRequest {
                        url: display_str(&url),
                        kind,
                        error: error.clone(),
                        at: self.now(),
                    });
                }
                if self.stream(id).is_some_and(|s| s.status.is_none()) {
                    self.refuse(id, error);
                }
            }
            "Network.webSocketCreated" => {
                let url = p["url"].as_str().unwrap_or_default().to_string();
                self.open_stream(id, "websocket", &url, initiator(&p["initiator"]));
            }
            "Network.webSocketHandshakeResponseReceived" => {
                let status = p["response"]["status"].as_u64().map(|s| s as u16);
                if let Some(s) = self.stream(id) {
                    s.status = status;
                }
                if let Some(code) = status.filter(|s| *s != 101) {
                    let text = p["response"]["statusText"].as_str().unwrap_or_default();
                    self.refuse(
                        id,
                        format!("the upgrade was answered {code} {text}")
                            .trim_end()
                            .into(),
                    );
                }
            }
            "Network.webSocketFrameSent" => {
                if let Some(s) = self.stream(id) {
                    s.frames_out += 1;
                }
            }
            "Network.webSocketFrameReceived" => {
                if let Some(s) = self.stream(id) {
                    s.frames_in += 1;
                }
                let frame = &p["response"];
                if frame["opcode"].as_u64() == Some(1)
                    && let (Some(judge), Some(data)) =
                        (&mut self.judge, frame["payloadData"].as_str())
                {
                    judge.feed(None, data);
                }
            }
            "Network.eventSourceMessageReceived" => {
                if let Some(s) = self.stream(id) {
                    s.frames_in += 1;
                }
                if let (Some(judge), Some(data)) = (&mut self.judge, p["data"].as_str()) {
                    judge.feed(p["eventName"].as_str(), data);
                }
            }
            "Network.webSocketFrameError" => {
                let message = p["errorMessage"].as_str().unwrap_or("error");
                let opened = self.stream(id).is_some_and(|s| s.status.is_some());
                let error = message
                    .strip_prefix("Error in connection establishment: ")
                    .unwrap_or(message)
                    .to_string();
                if opened {
                    if let Some(s) = self.stream(id) {
                        s.error = Some(error);
                    }
                } else {
                    self.refuse(id, error);
                }
            }
            "Network.webSocketClosed" => {
                let now = self.now();
                if let Some(s) = self.stream(id) {
                    s.closed_at.get_or_insert(now);
                }
            }
            "Runtime.exceptionThrown" => {
                let d = &p["exceptionDetails"];
                let first = exception_line(d);
                let at = match (d["url"].as_str(), d["lineNumber"].as_u64()) {
                    (Some(u), Some(l)) if !u.is_empty() => {
                        format!(" (at {}:{})", display_str(u), l + 1)
                    }
                    _ => String::new(),
                };
                push(&mut self.report.exceptions, format!("{first}{at}"));
            }
            "Runtime.consoleAPICalled" if p["type"].as_str() == Some("error") => {
                let words: Vec<String> = p["args"]
                    .as_array()
                    .map(|args| {
                        args.iter()
                            .filter_map(|a| {
                                a["value"]
                                    .as_str()
                                    .map(str::to_string)
                                    .or_else(|| a["description"].as_str().map(str::to_string))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                push(
                    &mut self.report.console_errors,
                    excerpt(words.join(" ").as_bytes()),
                );
            }
            "Log.entryAdded" if p["entry"]["level"].as_str() == Some("error") => {
                let text = p["entry"]["text"].as_str().unwrap_or_default();
                push(&mut self.report.console_errors, excerpt(text.as_bytes()));
            }
            _ => {}
        }
    }

    /// A dismissed dialog, kept with the console errors.
    pub fn note_dialog(&mut self, message: &str) {
        push(
            &mut self.report.console_errors,
            format!("the page opened a dialog (dismissed): {message}"),
        );
    }

    /// A line about the streams the page opened, for a message that lacks a better cause.
    pub fn streams_line(&self) -> String {
        if self.report.streams.is_empty() {
            return "the page opened no WebSocket or event stream".into();
        }
        let each: Vec<String> = self
            .report
            .streams
            .iter()
            .take(3)
            .map(|s| {
                let state = match (&s.error, s.status) {
                    (Some(e), _) => format!("failed: {e}"),
                    (None, Some(st)) => format!("status {st}, {} frames in", s.frames_in),
                    (None, None) => "never opened".into(),
                };
                format!("{} {} ({state})", s.kind, s.url)
            })
            .collect();
        format!("the page opened {}", each.join("; "))
    }

    /// The failure an uncaught exception makes (reason `page_error`), if one was thrown.
    pub fn page_error(&self) -> Option<Failure> {
        let first = self.report.exceptions.first()?;
        let more = match self.report.exceptions.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        Some(Failure::new(
            Reason::PageError,
            format!("the page threw an uncaught exception: {first}{more}"),
        ))
    }
}

/// The first line of an exception's text (`TypeError: Cannot read properties of …`), as
/// CDP's `exceptionDetails` gives it.
pub(super) fn exception_line(d: &Value) -> String {
    let text = d["exception"]["description"]
        .as_str()
        .or(d["text"].as_str())
        .unwrap_or("an uncaught exception");
    excerpt(text.lines().next().unwrap_or_default().as_bytes())
}

fn push(list: &mut Vec<String>, text: String) {
    if list.len() < KEEP / 2 && !text.is_empty() {
        list.push(text);
    }
}

/// `https://app.example.ai/app.js:31`: the script that opened a stream.
fn initiator(i: &Value) -> Option<String> {
    let frame = i["stack"]["callFrames"].as_array().and_then(|f| f.first());
    let (url, line) = match frame {
        Some(f) => (f["url"].as_str(), f["lineNumber"].as_u64()),
        None => (i["url"].as_str(), i["lineNumber"].as_u64()),
    };
    let url = url.filter(|u| !u.is_empty())?;
    Some(match line {
        Some(l) => format!("{}:{}", display_str(url), l + 1),
        None => display_str(url),
    })
}

/// The reason a browser network error (`net::ERR_…`) means.
pub(super) fn net_reason(error: &str) -> Reason {
    let code = error.trim_start_matches("net::");
    match code {
        "ERR_NAME_NOT_RESOLVED" | "ERR_NAME_RESOLUTION_FAILED" => Reason::Dns,
        "ERR_CERT_COMMON_NAME_INVALID" => Reason::TlsHostname,
        "ERR_CERT_AUTHORITY_INVALID" => Reason::TlsUntrusted,
        "ERR_CERT_DATE_INVALID" => Reason::TlsExpired,
        "ERR_TIMED_OUT" | "ERR_CONNECTION_TIMED_OUT" => Reason::Timeout,
        c if c.starts_with("ERR_CERT_") || c.starts_with("ERR_SSL_") => Reason::TlsHandshake,
        c if c.starts_with("ERR_CONNECTION_") || c == "ERR_ADDRESS_UNREACHABLE" => Reason::Connect,
        c if c.starts_with("the upgrade was answered") => Reason::WsUpgrade,
        _ => Reason::Protocol,
    }
}

/// A TLS refusal: connect to the host ourselves (as the browser maps it) and add the
/// certificate's diagnosis, as `type: tls` words it.
pub(super) async fn diagnose(p: &Prober, trust: &TlsVerify, f: &mut Failure, url: &Url) {
    let tls = matches!(
        f.reason,
        Reason::TlsHostname | Reason::TlsUntrusted | Reason::TlsExpired | Reason::TlsHandshake
    );
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return;
    };
    if !tls {
        return;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut tl = Timeline::new(Duration::from_secs(3));
    let addrs = match p.browsers.settings.mapped(host) {
        Some(ip) => vec![ip],
        None => match net::resolve(p, &mut tl, host).await {
            Ok(a) => a,
            Err(_) => return,
        },
    };
    let Ok((tcp, _)) = net::connect(&mut tl, &addrs, port).await else {
        return;
    };
    match net::handshake(&mut tl, tcp, host, trust, Alpn::None).await {
        Ok(hs) => {
            if let Err(ours) = hs.verdict {
                f.message = format!("{}; {}", f.message, ours.message);
            }
        }
        Err(ours) => f.message = format!("{}; {}", f.message, ours.message),
    }
}
