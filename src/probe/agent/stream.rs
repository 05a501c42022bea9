//! The golden path over Server-Sent Events (`http://` and `https://` targets): the message
//! is POSTed (with the token, headers and TLS verification of a WebSocket run), the answer
//! is read as `text/event-stream` ([`crate::probe::sse`]), and each event is read by the
//! profile's [`Reader`] into agent events fed to the same run rules as a WebSocket run. An answer
//! that is not a stream fails before the run: a 4xx/5xx with the provider's error type and
//! message (`http_status`), a 200 that is not an event stream (`protocol`). A stream that
//! ends (or says `[DONE]`) before the run completed is a truncated stream (`protocol`),
//! except where the protocol's run ends with its stream (LangGraph).

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, StatusCode, header};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::events::AgentEvent;
use super::profiles::{Read, Reader};
use super::rules::{RunState, Step};
use super::{auth_error, with_timeline};
use crate::config::spec::{AgentSpec, HttpSpec};
use crate::probe::Prober;
use crate::probe::expect::{excerpt, lookup};
use crate::probe::request::{exchange, next_chunk, read_body};
use crate::probe::result::{Failure, Phase, ProbeResult, Reason};
use crate::probe::sse::{SseEvent, SseParser};
use crate::probe::timing::Timeline;

/// Most of an error answer read to name the provider's error.
const ERROR_BODY: usize = 64 * 1024;

pub(super) async fn converse(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &AgentSpec,
    url: &Url,
    headers: Vec<(String, String)>,
) -> Result<(), Failure> {
    let mut all: BTreeMap<String, String> = BTreeMap::from([
        ("Accept".to_string(), "text/event-stream".to_string()),
        ("Content-Type".to_string(), "application/json".to_string()),
    ]);
    for (name, value) in headers {
        all.retain(|k, _| !k.eq_ignore_ascii_case(&name));
        all.insert(name, value);
    }
    let request = HttpSpec::side_request("POST", all, spec.tls.clone(), spec.max_frame_bytes);
    let body = Bytes::from(spec.message.to_string());
    let (response, _conn) = exchange(p, tl, result, &request, url, &Method::POST, body).await?;
    // The message left when the request did: the processing phase is the server's.
    let sent = Instant::now() - tl.spent(Phase::Processing);
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if !status.is_success() {
        let body = tl
            .step(Phase::Transfer, read_body(response.into_body(), ERROR_BODY))
            .await
            .unwrap_or_default();
        let failure = refused(status, &body).in_phase(Phase::Processing);
        return Err(if status == StatusCode::SERVICE_UNAVAILABLE {
            failure.saying(&body, retry_after.as_deref())
        } else {
            failure
        });
    }
    let status_text = crate::probe::result::status_words(status);
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
    {
        let body = tl
            .step(Phase::Transfer, read_body(response.into_body(), ERROR_BODY))
            .await
            .unwrap_or_default();
        let shown = if content_type.is_empty() {
            "no Content-Type".to_string()
        } else {
            format!("Content-Type {content_type}")
        };
        return Err(Failure::new(
            Reason::Protocol,
            format!(
                "answered HTTP {status_text} with {shown}, not an event stream (text/event-stream); body: {}",
                excerpt(&body)
            ),
        )
        .in_phase(Phase::Processing));
    }
    let mut state = RunState::new(&spec.expect, spec.profile);
    let mut stream = Stream {
        body: response.into_body(),
        parser: SseParser::new(spec.max_frame_bytes),
        reader: Reader::new(spec),
        ready: Default::default(),
        parsed: Vec::new(),
    };
    let outcome = read_run(tl, &mut stream, &mut state, sent)
        .await
        .map_err(|f| match f.phase {
            None => f.in_phase(Phase::Complete),
            Some(_) => f,
        });
    tl.add(Phase::Complete, sent.elapsed());
    result.events = state.observed().to_vec();
    result.agent = Some(state.stats());
    outcome
}

/// A 4xx/5xx before the stream, with the provider's error when its body has one
/// (`{"error":{"type","message"}}`, `{"error":"..."}`, `{"message":"..."}`).
fn refused(status: StatusCode, body: &[u8]) -> Failure {
    let status_text = crate::probe::result::status_words(status);
    let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |path: &str| {
        lookup(&doc, path)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let kind = text("error.type")
        .or_else(|| text("error.code"))
        .or_else(|| text("type"));
    let message = text("error.message")
        .or_else(|| text("error"))
        .or_else(|| text("message"))
        .or_else(|| text("detail"));
    let said = match (kind, message) {
        (Some(k), Some(m)) if k != "error" => format!(": {k}: {m}"),
        (_, Some(m)) => format!(": {m}"),
        (Some(k), None) => format!(": {k}"),
        (None, None) if body.is_empty() => String::new(),
        (None, None) => format!("; body: {}", excerpt(body)),
    };
    Failure::new(
        Reason::HttpStatus,
        format!("the agent refused the message with HTTP {status_text}{said}"),
    )
}

struct Stream<'s> {
    body: Incoming,
    parser: SseParser,
    reader: Reader<'s>,
    /// Events parsed and not yet judged (one chunk can hold thousands).
    ready: std::collections::VecDeque<SseEvent>,
    parsed: Vec<SseEvent>,
}

impl Stream<'_> {
    /// The next event's size and agent events; None when the stream ended cleanly or said
    /// `[DONE]`.
    async fn next(&mut self) -> Result<Option<(usize, Vec<AgentEvent>)>, Failure> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                let size = ev.event.len() + ev.data.len();
                return match self.reader.read(Some(&ev.event), &ev.data) {
                    Ok(Read::Events(events)) => Ok(Some((size, events))),
                    Ok(Read::End) => Ok(None),
                    Err(why) => Err(Failure::new(
                        Reason::Protocol,
                        format!("bad event `{}`: {why}", ev.event),
                    )),
                };
            }
            match next_chunk(&mut self.body).await {
                Ok(Some(chunk)) => {
                    self.parser.feed(&chunk, &mut self.parsed).map_err(|e| {
                        Failure::new(Reason::Protocol, format!("the server sent {e}"))
                    })?;
                    self.ready.extend(self.parsed.drain(..));
                }
                Ok(None) if self.parser.cut() => {
                    return Err(Failure::new(
                        Reason::Protocol,
                        "the stream ended in the middle of an event (truncated)",
                    ));
                }
                Ok(None) => return Ok(None),
                Err(f) => {
                    return Err(Failure::new(
                        Reason::Protocol,
                        format!("the stream broke off: {} (truncated)", f.message),
                    ));
                }
            }
        }
    }
}

/// Feeds events into the run rules until the run ends, fails, a deadline passes or the
/// stream ends.
async fn read_run(
    tl: &Timeline,
    stream: &mut Stream<'_>,
    state: &mut RunState<'_>,
    sent: Instant,
) -> Result<(), Failure> {
    loop {
        let (event_deadline, _) = state.next_deadline();
        let deadline = (sent + event_deadline).min(tl.deadline());
        let events = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Ok(Some((size, events)))) => {
                state.received(size, sent.elapsed())?;
                events
            }
            Ok(Ok(None)) => match stream.reader.at_close() {
                Some(end) => vec![end],
                None => {
                    return Err(with_timeline(
                        Failure::new(
                            Reason::Protocol,
                            "the server ended the stream before the run completed (truncated)",
                        ),
                        state,
                    ));
                }
            },
            Ok(Err(f)) => return Err(with_timeline(f, state)),
            Err(_) => return Err(state.cut_at(sent.elapsed(), deadline - sent)),
        };
        for ev in &events {
            if let Some(f) = auth_error(state.profile(), ev) {
                return Err(f);
            }
            match state.observe(ev, sent.elapsed()) {
                Step::Continue => {}
                Step::Done => return Ok(()),
                Step::Fail(f) => return Err(f),
            }
        }
    }
}
