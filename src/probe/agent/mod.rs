//! `type: agent_pipeline`, the golden path: a token (from [`login`]) on the upgrade, the
//! server's first frame, the message, then frames normalised into agent events
//! ([`events`]) and fed to the rules of one run ([`rules`]) until the run completes, fails
//! or a deadline passes. Keepalives are answered. The socket is [`super::ws_client`]'s.
//! Over `http(s)://` the same run goes over Server-Sent Events ([`stream`]). The check's
//! `profile` says how the agent names its events ([`profiles`]).

pub mod events;
pub mod login;
pub mod profiles;
pub mod rules;
mod stream;

use std::time::Duration;

use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use crate::config::spec::{AgentSpec, Transport};
use crate::probe::Prober;
use crate::probe::result::{Failure, Phase, ProbeResult, Reason};
use crate::probe::timing::Timeline;
use crate::probe::ws_client::{Frame, Socket, closed_failure, next_frame, open};
use crate::protocol::profiles::Profile;
use crate::secrets::REDACTED;
use events::AgentEvent;
use profiles::{Read, Reader};
use rules::{RunState, Step};

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &AgentSpec,
    url: &Url,
) -> Result<(), Failure> {
    // Values obtained during the run (token, ticket) are secrets too.
    let mut secrets: Vec<String> = Vec::new();
    let outcome = golden_path(p, tl, result, spec, url, &mut secrets).await;
    outcome.map_err(|mut f| {
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            f.message = f.message.replace(s.as_str(), REDACTED);
        }
        f
    })
}

async fn golden_path(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &AgentSpec,
    url: &Url,
    secrets: &mut Vec<String>,
) -> Result<(), Failure> {
    let mut url = url.clone();
    let mut headers: Vec<(String, String)> = spec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(token) = login::token(p, tl, spec).await? {
        secrets.push(token.clone());
        let t = &spec.token;
        match spec.transport() {
            Transport::Header => headers.push((
                t.header.clone(),
                format!("{} {token}", t.scheme).trim().to_string(),
            )),
            Transport::Subprotocol => {
                let encoded = if t.subprotocol_base64url {
                    data_encoding::BASE64URL_NOPAD.encode(token.as_bytes())
                } else {
                    token.clone()
                };
                secrets.push(encoded.clone());
                let mut offer = t.subprotocol_offer.clone();
                offer.push(format!("{}{encoded}", t.subprotocol_prefix));
                headers.push(("Sec-WebSocket-Protocol".into(), offer.join(", ")));
            }
            Transport::Query => {
                url.query_pairs_mut().append_pair(&t.query_param, &token);
            }
            Transport::Ticket => {
                let ticket = login::ticket(p, tl, spec, &token).await?;
                secrets.push(ticket.clone());
                url.query_pairs_mut().append_pair("ticket", &ticket);
            }
            Transport::None => {}
        }
    }
    if matches!(url.scheme(), "http" | "https") {
        return stream::converse(p, tl, result, spec, &url, headers).await;
    }
    let mut ws = open(
        p,
        tl,
        result,
        &url,
        &headers,
        &spec.tls,
        spec.max_frame_bytes,
    )
    .await?;
    converse(tl, result, spec, &mut ws).await
}

async fn converse(
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &AgentSpec,
    ws: &mut Socket,
) -> Result<(), Failure> {
    let mut reader = Reader::new(spec);
    let mut pending: Vec<AgentEvent> = Vec::new();
    if spec.server_first() {
        pending = tl
            .step(Phase::FirstFrame, next_events(ws, &mut reader))
            .await?
            .1;
    }
    let mut message = spec.message.clone();
    if spec.handshake {
        let thread = loop {
            if let Some(f) = pending.iter().find_map(|e| auth_error(spec.profile, e)) {
                return Err(f);
            }
            if let Some(ev) = pending.iter().find(|e| e.name == "handshake_response") {
                break ev.text("thread_id");
            }
            pending = tl
                .step(Phase::FirstFrame, next_events(ws, &mut reader))
                .await?
                .1;
        };
        pending.clear();
        let ack = serde_json::json!({"type": "handshake_acknowledged", "thread_id": thread});
        tl.step(Phase::FirstFrame, async {
            ws.send(Message::Text(ack.to_string().into()))
                .await
                .map_err(|e| closed_failure(&e, "acknowledging the handshake"))
        })
        .await?;
        // Later messages use the handshake's thread.
        if let (Some(t), Some(payload)) = (
            thread,
            message.get_mut("payload").and_then(|p| p.as_object_mut()),
        ) {
            payload
                .entry("thread_id")
                .or_insert(serde_json::Value::String(t));
        }
    }
    let message = Message::Text(message.to_string().into());
    tl.step(Phase::Complete, async {
        ws.send(message)
            .await
            .map_err(|e| closed_failure(&e, "sending the message"))
    })
    .await?;
    let sent = Instant::now();
    let mut state = RunState::new(&spec.expect, spec.profile);
    let outcome = read_run(tl, ws, &mut reader, &mut state, sent, pending)
        .await
        .map_err(|f| {
            if f.phase.is_none() {
                f.in_phase(Phase::Complete)
            } else {
                f
            }
        });
    tl.add(Phase::Complete, sent.elapsed());
    result.events = state.observed().to_vec();
    result.agent = Some(state.stats());
    if outcome.is_ok() {
        // A polite close; its answer is not waited for.
        let _ = tokio::time::timeout(Duration::from_millis(50), ws.close(None)).await;
    }
    outcome
}

/// Feeds frames into the run rules until the run ends or a deadline passes.
async fn read_run(
    tl: &Timeline,
    ws: &mut Socket,
    reader: &mut Reader<'_>,
    state: &mut RunState<'_>,
    sent: Instant,
    mut pending: Vec<AgentEvent>,
) -> Result<(), Failure> {
    loop {
        for ev in pending.drain(..) {
            answer_keepalive(ws, &ev).await;
            if let Some(f) = auth_error(state.profile(), &ev) {
                return Err(f);
            }
            match state.observe(&ev, sent.elapsed()) {
                Step::Continue => {}
                Step::Done => return Ok(()),
                Step::Fail(f) => return Err(f),
            }
        }
        let (event_deadline, _) = state.next_deadline();
        let deadline = (sent + event_deadline).min(tl.deadline());
        pending = match tokio::time::timeout_at(deadline, next_events(ws, reader)).await {
            Ok(Ok((size, events))) => {
                state.received(size, sent.elapsed())?;
                events
            }
            Ok(Err(f)) => return Err(with_timeline(f, state)),
            Err(_) => return Err(state.cut_at(sent.elapsed(), deadline - sent)),
        };
    }
}

/// Reads until a text frame arrives and returns its size and events; closes and errors are
/// failures.
async fn next_events(
    ws: &mut Socket,
    reader: &mut Reader<'_>,
) -> Result<(usize, Vec<AgentEvent>), Failure> {
    match next_frame(ws).await? {
        Frame::Text(text) => match reader.read(None, &text) {
            Ok(Read::Events(events)) => Ok((text.len(), events)),
            Ok(Read::End) => Err(Failure::new(
                Reason::Protocol,
                "the server said [DONE] before the run completed",
            )),
            Err(e) => Err(Failure::new(Reason::Protocol, format!("bad frame: {e}"))),
        },
        Frame::Binary(b) => Err(Failure::new(
            Reason::Protocol,
            format!(
                "binary frame of {} bytes where JSON text was expected",
                b.len()
            ),
        )),
    }
}

async fn answer_keepalive(ws: &mut Socket, ev: &AgentEvent) {
    let reply = match ev.name.as_str() {
        "heartbeat" => serde_json::json!({"type": "heartbeat_ack"}),
        "ping" => serde_json::json!({"type": "pong"}),
        "handshake_response" => {
            serde_json::json!({"type": "handshake_acknowledged", "thread_id": ev.fields.get("thread_id")})
        }
        _ => return,
    };
    let _ = ws.send(Message::Text(reply.to_string().into())).await;
}

/// `{"type":"error_message","error_code":"AUTH_FAILED"}`: a 101 does not mean auth passed
/// (the incident's service; other protocols' errors are the run's `agent_error`).
fn auth_error(profile: Profile, ev: &AgentEvent) -> Option<Failure> {
    if profile != Profile::AgentEvents || (ev.name != "error_message" && ev.name != "error") {
        return None;
    }
    let code = ev.first_text(&["error_code", "code"]).unwrap_or_default();
    let text = ev
        .first_text(&["message", "error", "detail"])
        .unwrap_or_default();
    let reason = if code.contains("AUTH") {
        Reason::WsAuth
    } else {
        Reason::Protocol
    };
    Some(Failure::new(
        reason,
        format!("server sent {}: {code} {text}", ev.name)
            .trim_end()
            .to_string(),
    ))
}

fn with_timeline(mut f: Failure, state: &RunState<'_>) -> Failure {
    if !state.observed().is_empty() {
        f.message = format!("{} after {}", f.message, state.timeline());
    }
    f
}
