//! The one result type every sink reads: outcome, closed failure reasons, timed phases,
//! and what was observed (certificate chain, HTTP facts, DNS answers).

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::protocol::profiles::Stage;

/// Why a probe failed: a closed set, used as a metric label and in alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Dns,
    Connect,
    TlsHandshake,
    TlsUntrusted,
    TlsHostname,
    TlsExpired,
    Timeout,
    HttpStatus,
    BodyMismatch,
    Login,
    WsUpgrade,
    WsAuth,
    WsClosed,
    EventTimeout,
    EventMissing,
    EventOrder,
    EventSchema,
    AgentError,
    Protocol,
    /// The target says it is starting up (a cold start, not an outage).
    Starting,
    /// Browser check: the page threw an uncaught exception, or its renderer crashed.
    PageError,
    /// Browser check: a step (a selector, a text, the reply) did not happen in time.
    StepTimeout,
    /// The run could not be made here (no Chromium installed, the browser died): says
    /// nothing about the target; the check's state is UNKNOWN.
    Unavailable,
    /// grpc check: the health service answered, and not SERVING (NOT_SERVING, UNKNOWN,
    /// or the service is unknown to it).
    NotServing,
}

impl Reason {
    pub const ALL: [Reason; 24] = [
        Reason::Dns,
        Reason::Connect,
        Reason::TlsHandshake,
        Reason::TlsUntrusted,
        Reason::TlsHostname,
        Reason::TlsExpired,
        Reason::Timeout,
        Reason::HttpStatus,
        Reason::BodyMismatch,
        Reason::Login,
        Reason::WsUpgrade,
        Reason::WsAuth,
        Reason::WsClosed,
        Reason::EventTimeout,
        Reason::EventMissing,
        Reason::EventOrder,
        Reason::EventSchema,
        Reason::AgentError,
        Reason::Protocol,
        Reason::Starting,
        Reason::PageError,
        Reason::StepTimeout,
        Reason::Unavailable,
        Reason::NotServing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::TlsHandshake => "tls_handshake",
            Reason::TlsUntrusted => "tls_untrusted",
            Reason::TlsHostname => "tls_hostname",
            Reason::TlsExpired => "tls_expired",
            Reason::Timeout => "timeout",
            Reason::HttpStatus => "http_status",
            Reason::BodyMismatch => "body_mismatch",
            Reason::Login => "login",
            Reason::WsUpgrade => "ws_upgrade",
            Reason::WsAuth => "ws_auth",
            Reason::WsClosed => "ws_closed",
            Reason::EventTimeout => "event_timeout",
            Reason::EventMissing => "event_missing",
            Reason::EventOrder => "event_order",
            Reason::EventSchema => "event_schema",
            Reason::AgentError => "agent_error",
            Reason::Protocol => "protocol",
            Reason::Starting => "starting",
            Reason::PageError => "page_error",
            Reason::StepTimeout => "step_timeout",
            Reason::Unavailable => "unavailable",
            Reason::NotServing => "not_serving",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A timed step of a probe. Labels of `probe_http_duration_seconds` and
/// `pathwatch_phase_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Resolve,
    Connect,
    Tls,
    Processing,
    Transfer,
    /// Agent pipeline: getting a token (login, and a ticket when used).
    Login,
    /// Agent pipeline: the WebSocket upgrade request to `101 Switching Protocols`.
    Upgrade,
    /// Agent pipeline: the upgrade to the server's first frame.
    FirstFrame,
    /// Agent pipeline: the message sent to the end of the run.
    Complete,
    /// `websocket` check: the upgrade (or the message sent) to the expected frame.
    Reply,
    /// Browser check: a page slot, the browser (started if needed) and a fresh context.
    Browser,
    /// Browser check: navigation to the page's load event.
    Load,
    /// Browser check: the steps, in order.
    Steps,
}

impl Phase {
    /// The phases of an HTTP exchange, as blackbox_exporter reports them.
    pub const HTTP: [Phase; 5] = [
        Phase::Resolve,
        Phase::Connect,
        Phase::Tls,
        Phase::Processing,
        Phase::Transfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Resolve => "resolve",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::Processing => "processing",
            Phase::Transfer => "transfer",
            Phase::Login => "login",
            Phase::Upgrade => "upgrade",
            Phase::FirstFrame => "first_frame",
            Phase::Complete => "complete",
            Phase::Reply => "reply",
            Phase::Browser => "browser",
            Phase::Load => "load",
            Phase::Steps => "steps",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe: the reason, the phase it failed in (if any) and a message that diagnoses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub reason: Reason,
    pub phase: Option<Phase>,
    pub message: String,
    /// What the server said when it answered 503 or closed with 1011/1013: whether it says
    /// it is starting is decided once the run ends, against the check's `starting_patterns`.
    #[serde(skip)]
    pub said: Option<Said>,
}

/// The words of a 503 answer (its body) or of a 1011/1013 close (its reason), and the
/// answer's `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub words: String,
    pub retry_after: Option<String>,
}

impl Failure {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure {
            reason,
            phase: None,
            message: message.into(),
            said: None,
        }
    }

    pub fn in_phase(mut self, phase: Phase) -> Self {
        self.phase = Some(phase);
        self
    }

    /// Keeps what the server said (see [`Failure::said`]); `words` are cut at 4 KiB.
    pub fn saying(mut self, words: &[u8], retry_after: Option<&str>) -> Self {
        let words = &words[..words.len().min(4096)];
        self.said = Some(Said {
            words: String::from_utf8_lossy(words).into_owned(),
            retry_after: retry_after.map(str::to_string),
        });
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// An HTTP status as people read it: `503 Service Unavailable`, or `529` alone when it has
/// no standard name (never hyper's `<unknown status code>`).
pub fn status_words(status: hyper::StatusCode) -> String {
    match status.canonical_reason() {
        Some(name) => format!("{} {name}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// One certificate as presented by the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub serial: String,
    pub fingerprint_sha256: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    pub is_ca: bool,
}

/// What the TLS handshake showed, recorded even when verification failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsInfo {
    /// The name the certificate was checked against (SNI name or IP).
    pub server_name: String,
    /// e.g. "TLS 1.3", the blackbox_exporter spelling.
    pub version: String,
    pub cipher: String,
    /// Leaf first, in the order the server sent them.
    pub chain: Vec<CertInfo>,
    /// Whether the chain verified against the trust store and covers the name.
    pub verified: bool,
    /// The earliest notAfter of the chain that verified (not of every presented
    /// certificate), unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_chain_expiry: Option<i64>,
}

impl TlsInfo {
    /// The earliest notAfter of the presented certificates (unix seconds).
    pub fn earliest_expiry(&self) -> Option<i64> {
        self.chain.iter().map(|c| c.not_after).min()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpInfo {
    pub status: u16,
    pub version: String,
    /// From the Content-Length header; None when absent.
    pub content_length: Option<u64>,
    pub body_bytes: u64,
    pub redirects: u32,
    /// Whether the final response came over TLS.
    pub tls: bool,
    /// Set when a body regex rule decided the outcome.
    pub failed_due_to_regex: bool,
    /// The final response's Last-Modified, unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsInfo {
    pub addresses: Vec<std::net::IpAddr>,
}

/// Everything one probe run saw. Sinks read this and never re-probe.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    #[serde(with = "unix_seconds")]
    pub started_at: SystemTime,
    #[serde(rename = "duration_seconds", with = "seconds")]
    pub duration: Duration,
    pub failure: Option<Failure>,
    /// Each phase at most once; repeated phases (redirect hops) are summed.
    pub phases: Vec<(Phase, Duration)>,
    /// The address connected to, when a connection was attempted.
    pub ip: Option<std::net::IpAddr>,
    pub tls: Option<TlsInfo>,
    pub http: Option<HttpInfo>,
    pub dns: Option<DnsInfo>,
    /// Agent events of the run, with their time since the message was sent.
    pub events: Vec<EventAt>,
    /// The agent run's stages, deltas and output rate (agent_pipeline only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<RunStats>,
    /// What the browser saw (browser checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<PageReport>,
    /// A PNG of the page when a browser run failed (size-capped; kept in the history).
    #[serde(skip)]
    pub screenshot: Option<Vec<u8>>,
    /// The dialogue of a tcp check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialogue: Option<DialogueInfo>,
    /// The echo of an icmp check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpInfo>,
    /// The health answer of a grpc check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcInfo>,
    /// The answer of a dns_query check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_query: Option<DnsQueryInfo>,
}

/// What a dns_query check's answer held.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DnsQueryInfo {
    /// An answer came (whatever its response code).
    pub succeeded: bool,
    pub answer_rrs: usize,
    pub authority_rrs: usize,
    pub additional_rrs: usize,
    /// The zone's serial, for a SOA query (0 when the answer held no SOA).
    pub serial: Option<u32>,
}

/// What a grpc check's health call got.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GrpcInfo {
    /// The gRPC status code (0 OK; 12 UNIMPLEMENTED: no health service).
    pub status_code: u32,
    /// SERVING, NOT_SERVING, UNKNOWN or SERVICE_UNKNOWN, when an answer came.
    pub serving_status: Option<&'static str>,
    pub tls: bool,
}

/// What a tcp check's `query_response` saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DialogueInfo {
    /// Steps done, of `steps`.
    pub steps_done: usize,
    pub steps: usize,
    /// An `expect` regex found no line (`probe_failed_due_to_regex`).
    pub failed_due_to_regex: bool,
    /// `expect_bytes` got other bytes (`probe_failed_due_to_bytes`).
    pub failed_due_to_bytes: bool,
    /// The `labels` of matched steps (`probe_expect_info`).
    pub labels: Vec<(String, String)>,
}

/// What an icmp check's echo saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IcmpInfo {
    /// Seconds from the request sent to the reply.
    pub rtt_seconds: Option<f64>,
    /// Seconds spent opening the socket.
    pub setup_seconds: f64,
    /// The hop limit (TTL) the reply arrived with, when the socket reports it.
    pub reply_hop_limit: Option<u8>,
}

/// What a browser run saw, from the browser's own events. Times are seconds since the
/// run started; URLs are shown without query values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct PageReport {
    /// The page's URL after navigation.
    pub url: String,
    /// The main document's HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub timing: PageTiming,
    pub steps: Vec<StepRun>,
    /// From the message being sent to the reply showing in the DOM (a `message` step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_seconds: Option<f64>,
    /// Every WebSocket, EventSource and streamed fetch the page opened.
    pub streams: Vec<StreamSeen>,
    /// Requests the browser gave up on, with its error text (`net::ERR_…`).
    pub failed: Vec<FailedRequest>,
    pub requests: u32,
    pub console_errors: Vec<String>,
    pub exceptions: Vec<String>,
}

/// Navigation timing and paints, seconds since navigation started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct PageTiming {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dom_content_loaded: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contentful_paint: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub largest_contentful_paint: Option<f64>,
}

impl PageTiming {
    /// (name, seconds) of each timing that was measured.
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        [
            ("first_byte", self.first_byte),
            ("dom_content_loaded", self.dom_content_loaded),
            ("load", self.load),
            ("first_contentful_paint", self.first_contentful_paint),
            ("largest_contentful_paint", self.largest_contentful_paint),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StepRun {
    /// The step as written, without values (`fill #password`).
    pub step: String,
    pub seconds: f64,
    pub ok: bool,
}

/// A WebSocket (`websocket`), EventSource (`eventsource`) or streamed fetch (`fetch`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct StreamSeen {
    pub kind: String,
    pub url: String,
    /// The script that opened it (`url:line`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiator: Option<String>,
    pub opened_at: f64,
    /// The handshake or response status (101 for a WebSocket that opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the browser refused or broke it (`net::ERR_CERT_COMMON_NAME_INVALID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub frames_in: u32,
    pub frames_out: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FailedRequest {
    pub url: String,
    /// Document, Script, Fetch, EventSource, ...
    pub kind: String,
    pub error: String,
    pub at: f64,
}

impl ProbeResult {
    pub fn empty(started_at: SystemTime) -> Self {
        ProbeResult {
            started_at,
            duration: Duration::ZERO,
            failure: None,
            phases: Vec::new(),
            ip: None,
            tls: None,
            http: None,
            dns: None,
            events: Vec::new(),
            agent: None,
            page: None,
            screenshot: None,
            dialogue: None,
            icmp: None,
            grpc: None,
            dns_query: None,
        }
    }

    pub fn success(&self) -> bool {
        self.failure.is_none()
    }

    pub fn phase(&self, phase: Phase) -> Option<Duration> {
        self.phases
            .iter()
            .find(|(p, _)| *p == phase)
            .map(|(_, d)| *d)
    }
}

/// What an agent run measured beyond its events: when each stage first arrived (since
/// the message was sent), how many deltas streamed, and the output rate after the first
/// token (content characters per second; tokens per second where the stream reports usage,
/// not counting the first token).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStats {
    pub profile: &'static str,
    #[serde(serialize_with = "stage_seconds")]
    pub stages: Vec<(Stage, Duration)>,
    pub deltas: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chars_per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
}

impl RunStats {
    pub fn stage(&self, stage: Stage) -> Option<Duration> {
        self.stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, d)| *d)
    }
}

fn stage_seconds<S: serde::Serializer>(
    stages: &[(Stage, Duration)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(stages.len()))?;
    for (stage, d) in stages {
        m.serialize_entry(stage.name(), &d.as_secs_f64())?;
    }
    m.end()
}

/// One agent event of a run: its name and when it first arrived, since the message was
/// sent (serialized as seconds).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EventAt {
    pub name: String,
    #[serde(with = "seconds")]
    pub at: Duration,
}

mod unix_seconds {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(crate::clock::since_epoch(*t).as_secs_f64())
    }
}

mod seconds {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = <f64 as serde::Deserialize>::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
