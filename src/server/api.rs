//! The JSON API under `/api/v1`: current state of every check, one check in detail, its
//! run history, and state transitions. Field names are stable (documented in the README).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use crate::clock::{self, now_ms, rfc3339_ms};
use crate::config::{Check, Spec};
use crate::verdict::{Entry, RunRecord, Transition};

/// One check as every view shows it.
#[derive(Serialize)]
pub struct CheckView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub target: String,
    pub interval_seconds: f64,
    pub state: &'static str,
    /// RFC 3339; null while UNKNOWN since start.
    pub since: Option<String>,
    pub since_ms: i64,
    pub cause: String,
    pub last: Option<RunRecord>,
}

impl CheckView {
    pub fn new(s: &AppState, check: &Check, entry: &Entry) -> CheckView {
        let t = &entry.tracker;
        CheckView {
            name: check.name.clone(),
            kind: check.spec.kind(),
            target: s.live.config().secrets.redact(&check.target.display()),
            interval_seconds: check.interval.as_secs_f64(),
            state: t.state.as_str(),
            since: (t.since_ms > 0).then(|| rfc3339_ms(t.since_ms)),
            since_ms: t.since_ms,
            cause: t.cause.clone(),
            last: entry.last.clone(),
        }
    }
}

/// `?scope=cluster`: the checks of every member of the deployment (see [`super::peers`]).
pub async fn checks(
    State(s): State<AppState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let views: Vec<CheckView> = s
        .board
        .snapshot()
        .iter()
        .map(|(c, e)| CheckView::new(&s, c, e))
        .collect();
    let location = s.live.config().location.clone();
    match q.get("scope").map(String::as_str) {
        None | Some("instance") => {
            Json(json!({ "location": location, "checks": views })).into_response()
        }
        Some("cluster") => {
            if s.cluster.source.starts_with("--shard") {
                return bad_request(
                    "with --shard the members are not addresses: ask each instance".into(),
                );
            }
            let members = s.cluster.members();
            let own: Vec<Value> = views
                .iter()
                .map(|v| serde_json::to_value(v).unwrap_or_default())
                .collect();
            let mut doc = super::peers::gather(
                own,
                members.me(),
                members.list(),
                &super::peers::client(&s.live.config()),
            )
            .await;
            doc["location"] = json!(location);
            Json(doc).into_response()
        }
        Some(other) => bad_request(format!("scope is `instance` or `cluster`, not `{other}`")),
    }
}

fn not_found(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no check named `{name}`") })),
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn unavailable(e: String) -> Response {
    tracing::warn!(error = %e, "History read failed.");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": format!("history: {e}") })),
    )
        .into_response()
}

/// Runs the blocking history read off the async workers.
async fn read<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&crate::history::History) -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    let history = s.history.clone();
    match tokio::task::spawn_blocking(move || f(&history)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(e) => Err(unavailable(e.to_string())),
    }
}

/// Everything about one check (the detail page's data).
pub struct Detail {
    pub view: CheckView,
    pub recent: Vec<(i64, f64, bool)>,
    pub runs: Vec<RunRecord>,
    pub transitions: Vec<Transition>,
    pub deadlines: Vec<(String, f64)>,
    pub run_deadline: Option<f64>,
    pub expected_events: Vec<String>,
    pub start_ups: Option<crate::history::StartUps>,
}

pub async fn detail(s: &AppState, name: &str, runs: usize) -> Result<Detail, Response> {
    let Some((check, entry)) = s.board.get(name) else {
        return Err(not_found(name));
    };
    let key = name.to_string();
    let (runs, transitions, mut start_ups) = read(s, move |h| {
        Ok((
            h.runs(&key, 0, runs)?,
            h.transitions(Some(&key), 0, 20)?,
            h.start_ups(Some(&key))?,
        ))
    })
    .await?;
    let expect = match &check.spec {
        Spec::Agent(a) => Some(&a.expect),
        Spec::Browser(b) => b.events.as_ref().map(|e| &e.expect),
        _ => None,
    };
    let (deadlines, run_deadline, expected_events) = match expect {
        Some(e) => (
            e.deadlines
                .iter()
                .map(|(e, d)| (e.clone(), d.as_secs_f64()))
                .collect(),
            Some(e.run_deadline.as_secs_f64()),
            e.events.clone(),
        ),
        None => (Vec::new(), None, Vec::new()),
    };
    Ok(Detail {
        view: CheckView::new(s, &check, &entry),
        recent: entry.recent.iter().copied().collect(),
        runs,
        transitions,
        deadlines,
        run_deadline,
        expected_events,
        start_ups: start_ups.remove(name),
    })
}

pub async fn check(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match detail(&s, &name, 20).await {
        Ok(d) => Json(json!({
            "check": d.view,
            "recent_runs": d.runs,
            "transitions": d.transitions,
            "expect": {
                "events": d.expected_events,
                "deadlines_seconds": d.deadlines.into_iter().collect::<HashMap<_, _>>(),
                "run_deadline_seconds": d.run_deadline,
            },
            "start_ups": d.start_ups.map(|u| json!({
                "count": u.count,
                "last_seconds": u.last_seconds,
                "last_at": rfc3339_ms(u.last_at_ms),
                "p95_seconds": u.p95_seconds,
            })),
        }))
        .into_response(),
        Err(r) => r,
    }
}

/// `since`: RFC 3339, unix milliseconds, or an age like `1h`; `limit` 1..=10000.
fn since_and_limit(q: &HashMap<String, String>) -> Result<(i64, usize), String> {
    let since = match q.get("since") {
        None => 0,
        Some(v) => parse_since(v)?,
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| format!("limit must be 1..10000, not `{v}`"))?,
    };
    Ok((since, limit))
}

fn parse_since(v: &str) -> Result<i64, String> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    if let Some(ms) = clock::parse_rfc3339_ms(v) {
        return Ok(ms);
    }
    if let Ok(age) = clock::parse_duration(v) {
        return Ok(now_ms() - age.as_millis() as i64);
    }
    Err(format!(
        "since must be RFC 3339, unix milliseconds or an age like 1h, not `{v}`"
    ))
}

pub async fn history(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if s.board.get(&name).is_none() {
        return not_found(&name);
    }
    let (since, limit) = match since_and_limit(&q) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    match read(&s, move |h| h.runs(&name, since, limit)).await {
        Ok(runs) => Json(json!({ "runs": runs })).into_response(),
        Err(r) => r,
    }
}

pub async fn transitions(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (since, limit) = match since_and_limit(&q) {
        Ok(v) => v,
        Err(e) => return bad_request(e),
    };
    let check = q.get("check").cloned();
    match read(&s, move |h| h.transitions(check.as_deref(), since, limit)).await {
        Ok(t) => Json(json!({ "transitions": t })).into_response(),
        Err(r) => r,
    }
}

/// `/checks/{name}/screenshot/{at_ms}`: the PNG kept with a failed browser run.
pub async fn screenshot(
    State(s): State<AppState>,
    Path((name, at)): Path<(String, String)>,
) -> Response {
    let Ok(at_ms) = at.trim_end_matches(".png").parse::<i64>() else {
        return bad_request(format!("`{at}` is not a run time in unix milliseconds"));
    };
    match read(&s, move |h| h.screenshot(&name, at_ms)).await {
        Ok(Some(png)) => (
            [
                (axum::http::header::CONTENT_TYPE, "image/png"),
                (axum::http::header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            png,
        )
            .into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no screenshot kept for that run (only failed browser runs have one; the newest 10 per check are kept)").into_response(),
        Err(r) => r,
    }
}
