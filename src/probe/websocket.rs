//! `type: websocket`: connect (see [`super::ws_client`]), optionally send one message, and
//! wait for a frame that meets the expectations.

use std::time::Duration;

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

use super::Prober;
use super::expect::{body_problems, excerpt};
use super::result::{Failure, Phase, ProbeResult, Reason};
use super::timing::Timeline;
use super::ws_client::{Frame, Socket, closed_failure, next_frame, open};
use crate::clock::fmt_duration;
use crate::config::spec::WebSocketSpec;

/// Frames read while waiting for one that matches, before giving up (a chatty server
/// cannot keep the probe busy until its timeout).
const MAX_FRAMES: usize = 1000;

/// The `websocket` check.
pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &WebSocketSpec,
    url: &Url,
) -> Result<(), Failure> {
    let mut headers: Vec<(String, String)> = spec
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !spec.subprotocols.is_empty() {
        headers.push((
            "Sec-WebSocket-Protocol".into(),
            spec.subprotocols.join(", "),
        ));
    }
    let mut ws = open(
        p,
        tl,
        result,
        url,
        &headers,
        &spec.tls,
        spec.max_frame_bytes,
    )
    .await?;
    if let Some(text) = &spec.send {
        let message = Message::Text(text.clone().into());
        tl.step(Phase::Reply, async {
            ws.send(message)
                .await
                .map_err(|e| closed_failure(&e, "sending the message"))
        })
        .await?;
    }
    if spec.send.is_some() || spec.expect.is_set() {
        let waited = tokio::time::Instant::now();
        let mut seen = Mismatch::default();
        let reply =
            tokio::time::timeout_at(tl.deadline(), expected_frame(&mut ws, spec, &mut seen));
        let outcome = match reply.await {
            Ok(outcome) => outcome,
            Err(_) => {
                let after = if spec.send.is_some() {
                    "sending the message"
                } else {
                    "the upgrade"
                };
                let within = fmt_duration(waited.elapsed());
                Err(match seen.last {
                    None => Failure::new(
                        Reason::Timeout,
                        format!("no frame within {within} of {after}"),
                    ),
                    Some(_) => Failure::new(
                        Reason::BodyMismatch,
                        format!("no frame matched within {within} of {after}"),
                    ),
                })
            }
        };
        tl.add(Phase::Reply, waited.elapsed());
        outcome.map_err(|f| seen.explain(f).in_phase(Phase::Reply))?;
    }
    let _ = tokio::time::timeout(Duration::from_millis(50), ws.close(None)).await;
    Ok(())
}

/// Frames that arrived but did not match: the evidence when no frame does.
#[derive(Default)]
struct Mismatch {
    frames: usize,
    last: Option<String>,
}

impl Mismatch {
    fn explain(&self, mut f: Failure) -> Failure {
        if let Some(last) = &self.last {
            f.message = format!(
                "{} ({} frame(s) did not match; last: {last})",
                f.message, self.frames
            );
        }
        f
    }
}

/// Reads frames until one meets the expectations (any frame, when there are none).
async fn expected_frame(
    ws: &mut Socket,
    spec: &WebSocketSpec,
    seen: &mut Mismatch,
) -> Result<(), Failure> {
    let e = &spec.expect;
    while seen.frames < MAX_FRAMES {
        let body = match next_frame(ws).await? {
            Frame::Text(t) => t.into_bytes(),
            Frame::Binary(b) => b,
        };
        let (problems, _) = body_problems(&e.body_matches, &e.body_not_matches, &e.json, &body);
        if problems.is_empty() {
            return Ok(());
        }
        seen.frames += 1;
        seen.last = Some(format!(
            "{}; frame: {}",
            problems.join("; "),
            excerpt(&body)
        ));
    }
    Err(Failure::new(
        Reason::BodyMismatch,
        format!("none of {MAX_FRAMES} frames matched"),
    ))
}
