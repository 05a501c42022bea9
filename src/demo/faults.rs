//! Faults the demo injects: parsed from `?fault=` or set at run time with
//! `PUT /demo/fault`, and drills that turn a fault on only at the end of each period.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::DemoBackend;

/// Which endpoints a fault applies to.
#[derive(Debug, Clone, Copy)]
pub(super) enum On {
    Ws,
    Health,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub(super) struct Forced {
    ws: Option<String>,
    health: Option<String>,
}

impl DemoBackend {
    /// Sets (or clears) the run-time fault of `on`.
    pub(super) fn force(&self, on: On, fault: Option<String>) {
        let mut forced = self.forced.lock().unwrap_or_else(|p| p.into_inner());
        match on {
            On::Ws => forced.ws = fault,
            On::Health => forced.health = fault,
        }
    }

    /// The `fault` asked for, if it is on now: always, or with `fault_every=10m` and
    /// `fault_for=2m`, only in the last 2 minutes of every 10 since the demo started (a
    /// drill that shows degradation and recovery in a long-running demo).
    pub(super) fn fault(
        &self,
        q: &HashMap<String, String>,
        on: On,
    ) -> Result<Option<String>, String> {
        let Some(fault) = q.get("fault") else {
            let forced = self.forced.lock().unwrap_or_else(|p| p.into_inner());
            return Ok(match on {
                On::Ws => forced.ws.clone(),
                On::Health => forced.health.clone(),
            });
        };
        let span = |key: &str| {
            q.get(key)
                .map(|v| {
                    crate::clock::parse_duration(v)
                        .ok()
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| format!("{key} must be a duration like 5m, not `{v}`"))
                })
                .transpose()
        };
        let Some(every) = span("fault_every")? else {
            return Ok(Some(fault.clone()));
        };
        let lasting = span("fault_for")?.unwrap_or(every / 5).min(every);
        let into_period = self.started.elapsed().as_millis() % every.as_millis().max(1);
        let now_on = into_period >= (every - lasting).as_millis();
        Ok(now_on.then(|| fault.clone()))
    }
}

/// `PUT /demo/fault?ws=drop:tool_completed&health=slow:800`: every later request that
/// names no fault gets these (a fault injected into a running demo, e.g. by a test).
/// `PUT /demo/fault?restart=20s` simulates a redeploy: a cold start of 20 s from now (the
/// faults set stay as they are).
pub(super) async fn set(
    State(demo): State<DemoBackend>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(Err(e)) = q.get("ws").map(|f| parse_fault(f)) {
        return (StatusCode::BAD_REQUEST, e).into_response();
    }
    if let Some(restart) = q.get("restart") {
        let Ok(d) = crate::clock::parse_duration(restart) else {
            return (
                StatusCode::BAD_REQUEST,
                format!("restart must be a duration like 20s, not `{restart}`"),
            )
                .into_response();
        };
        demo.restart(d);
        tracing::info!(cold_start = %humantime::format_duration(d), "Demo restarting.");
        if q.len() == 1 {
            return show(State(demo)).await;
        }
    }
    let mut forced = demo.forced.lock().unwrap_or_else(|p| p.into_inner());
    *forced = Forced {
        ws: q.get("ws").cloned(),
        health: q.get("health").cloned(),
    };
    tracing::info!(ws = ?forced.ws, health = ?forced.health, "Demo faults set.");
    axum::Json(forced.clone()).into_response()
}

pub(super) async fn clear(State(demo): State<DemoBackend>) -> Response {
    *demo.forced.lock().unwrap_or_else(|p| p.into_inner()) = Forced::default();
    tracing::info!("Demo faults cleared.");
    axum::Json(Forced::default()).into_response()
}

pub(super) async fn show(State(demo): State<DemoBackend>) -> Response {
    axum::Json(
        demo.forced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    )
    .into_response()
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Fault {
    Drop(String),
    Delay(String, Duration),
    Duplicate(String),
    Reorder,
    Error,
    Close1011,
    Never,
    Malformed,
    Binary,
    Oversize,
    Reject(StatusCode),
    AuthFail,
    /// The stream ends in the middle of an event (SSE) or the connection drops (WebSocket).
    Truncate,
    /// Every event trickles out in small pieces, slowly.
    Slow,
}

pub(super) fn parse_fault(text: &str) -> Result<Fault, String> {
    let parts: Vec<&str> = text.split(':').collect();
    Ok(match parts.as_slice() {
        ["drop", e] => Fault::Drop(e.to_string()),
        ["duplicate", e] => Fault::Duplicate(e.to_string()),
        ["delay", e, ms] => Fault::Delay(
            e.to_string(),
            Duration::from_millis(ms.parse().map_err(|_| "delay needs milliseconds")?),
        ),
        ["reorder"] => Fault::Reorder,
        ["error"] => Fault::Error,
        ["close1011"] => Fault::Close1011,
        ["never"] => Fault::Never,
        ["malformed"] => Fault::Malformed,
        ["binary"] => Fault::Binary,
        ["oversize"] => Fault::Oversize,
        ["reject401"] => Fault::Reject(StatusCode::UNAUTHORIZED),
        ["reject403"] => Fault::Reject(StatusCode::FORBIDDEN),
        ["reject429"] => Fault::Reject(StatusCode::TOO_MANY_REQUESTS),
        ["reject529"] => {
            Fault::Reject(StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE))
        }
        ["truncate"] => Fault::Truncate,
        ["slow"] => Fault::Slow,
        ["authfail"] => Fault::AuthFail,
        _ => return Err(format!("unknown fault `{text}`")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started_ago(secs: u64) -> DemoBackend {
        DemoBackend {
            started: tokio::time::Instant::now() - Duration::from_secs(secs),
            ..DemoBackend::default()
        }
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_drill_is_on_only_at_the_end_of_each_period() {
        let q = query(&[
            ("fault", "drop:tool_completed"),
            ("fault_every", "10m"),
            ("fault_for", "2m"),
        ]);
        let at = |secs| started_ago(secs).fault(&q, On::Ws).unwrap();
        let drop = Some("drop:tool_completed".to_string());
        assert_eq!(at(60), None, "green at first");
        assert_eq!(at(9 * 60), drop);
        assert_eq!(at(11 * 60), None, "recovered in the next period");
        assert_eq!(at(19 * 60 + 30), drop);

        let always = query(&[("fault", "error")]);
        assert_eq!(
            started_ago(5).fault(&always, On::Ws).unwrap().as_deref(),
            Some("error")
        );
        let bad = query(&[("fault", "error"), ("fault_every", "soon")]);
        assert_eq!(
            started_ago(5).fault(&bad, On::Ws).unwrap_err(),
            "fault_every must be a duration like 5m, not `soon`"
        );
    }
}
