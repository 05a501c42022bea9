//! The pictures of the status page, drawn as inline SVG: the latency sparkline, the uptime
//! bars, the waterfall of an agent run against its deadlines, and the state badge.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::api::Detail;
use super::page::{esc, secs};
use crate::history::Rollup;
use crate::verdict::RunRecord;

/// A latency line over the recent runs; failed runs are red dots on the floor.
pub(super) fn sparkline(recent: &[(i64, f64, bool)]) -> String {
    let (w, h) = (120.0, 28.0);
    if recent.is_empty() {
        return String::from(r#"<span class="muted">no runs yet</span>"#);
    }
    let max = recent.iter().map(|r| r.1).fold(0.0f64, f64::max).max(1e-6);
    let step = if recent.len() > 1 {
        w / (recent.len() - 1) as f64
    } else {
        0.0
    };
    let mut points = String::new();
    let mut fails = String::new();
    for (i, (_, d, ok)) in recent.iter().enumerate() {
        let x = i as f64 * step;
        let y = h - 2.0 - d / max * (h - 4.0);
        let _ = write!(points, "{x:.1},{y:.1} ");
        if !ok {
            let _ = write!(
                fails,
                r#"<circle class="fail" cx="{x:.1}" cy="{:.1}" r="2.5"/>"#,
                h - 2.5
            );
        }
    }
    let last = recent.last().map(|r| r.1).unwrap_or(0.0);
    let failed = recent.iter().filter(|r| !r.2).count();
    format!(
        r#"<svg class="spark" width="{w}" height="{h}" role="img" aria-label="latency of the last {n} runs, latest {latest}, max {maxs}, {failed} failed"><title>last {n} runs: latest {latest}, max {maxs}, {failed} failed</title><polyline points="{points}"/>{fails}</svg>"#,
        n = recent.len(),
        latest = secs(last),
        maxs = secs(max),
    )
}

/// Uptime bars: one per bucket (hour or day), oldest left; the share of successful runs.
pub(super) fn uptime_bars(
    rollups: &[Rollup],
    now: i64,
    bucket_ms: i64,
    buckets: i64,
    label: &str,
) -> String {
    let first = now - now.rem_euclid(bucket_ms) - (buckets - 1) * bucket_ms;
    let mut runs = vec![(0u64, 0u64); buckets as usize];
    for r in rollups {
        let i = (r.hour_ms - first).div_euclid(bucket_ms);
        if (0..buckets).contains(&i) {
            runs[i as usize].0 += r.runs;
            runs[i as usize].1 += r.failures;
        }
    }
    let total: u64 = runs.iter().map(|r| r.0).sum();
    let failed: u64 = runs.iter().map(|r| r.1).sum();
    let bw = if buckets > 30 { 2.0 } else { 5.0 };
    let mut rects = String::new();
    for (i, (n, f)) in runs.iter().enumerate() {
        let class = match (n, f) {
            (0, _) => "none",
            (_, 0) => "up",
            (n, f) if f == n => "down",
            _ => "part",
        };
        let _ = write!(
            rects,
            r#"<rect class="{class}" x="{:.1}" y="0" width="{:.1}" height="16"/>"#,
            i as f64 * (bw + 1.0),
            bw
        );
    }
    let pct = if total > 0 {
        format!("{:.2}%", 100.0 * (total - failed) as f64 / total as f64)
    } else {
        "no data".into()
    };
    let width = buckets as f64 * (bw + 1.0);
    format!(
        r#"<svg class="bars" width="{width}" height="16" role="img" aria-label="{label}: {pct} of {total} runs succeeded"><title>{label}: {pct} of {total} runs succeeded</title>{rects}</svg> <span class="muted">{pct}</span>"#
    )
}

/// The last agent run against its expectations: a bar per event from the message sent to
/// its arrival, the deadline as a dashed line, and the events that never came in red.
pub(super) fn waterfall(d: &Detail, run: &RunRecord) -> String {
    let mut rows: Vec<(String, Option<f64>, Option<f64>)> = Vec::new();
    for e in &d.expected_events {
        let at = run.arrival(e);
        let deadline = d.deadlines.iter().find(|(n, _)| n == e).map(|x| x.1);
        rows.push((e.clone(), at, deadline));
    }
    for o in &run.events {
        if !rows.iter().any(|r| r.0 == o.name) {
            rows.push((o.name.clone(), Some(o.at.as_secs_f64()), None));
        }
    }
    // The axis spans the run (its arrivals and its length), not the deadlines: a 367 ms run
    // with a 2 s deadline reads at its own scale, the far deadline marked at the edge.
    let end = rows
        .iter()
        .filter_map(|r| r.1)
        .chain([run.duration_seconds])
        .fold(0.001f64, f64::max)
        * 1.1;
    let (label_w, plot_w, row_h) = (150.0, 520.0, 24.0);
    let x = |t: f64| label_w + t / end * plot_w;
    let height = rows.len() as f64 * row_h + 24.0;
    let mut svg = String::new();
    for i in 0..=4 {
        let t = end * i as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<line class="grid" x1="{0:.1}" x2="{0:.1}" y1="0" y2="{1:.1}"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{3}</text>"#,
            x(t),
            height - 20.0,
            height - 6.0,
            secs(t)
        );
    }
    let mut table = String::new();
    for (i, (name, at, deadline)) in rows.iter().enumerate() {
        let y = i as f64 * row_h;
        let _ = write!(
            svg,
            r#"<text x="0" y="{:.1}">{}</text>"#,
            y + 16.0,
            esc(name)
        );
        let late = matches!((at, deadline), (Some(a), Some(d)) if a > d);
        match at {
            Some(a) => {
                let _ = write!(
                    svg,
                    r#"<rect class="{}" x="{:.1}" y="{:.1}" width="{:.1}" height="14"><title>{} at {}</title></rect>"#,
                    if late { "late" } else { "bar" },
                    label_w,
                    y + 5.0,
                    (x(*a) - label_w).max(2.0),
                    esc(name),
                    secs(*a)
                );
            }
            None => {
                let _ = write!(
                    svg,
                    r#"<text class="missing" x="{:.1}" y="{:.1}">✕ never arrived</text>"#,
                    label_w + 4.0,
                    y + 16.0
                );
            }
        }
        match deadline {
            Some(dl) if *dl <= end => {
                let _ = write!(
                    svg,
                    r#"<line class="deadline" x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}"><title>deadline {3}</title></line>"#,
                    x(*dl),
                    y + 2.0,
                    y + row_h - 2.0,
                    secs(*dl)
                );
            }
            Some(dl) => {
                let _ = write!(
                    svg,
                    r#"<text class="deadline-far" x="{:.1}" y="{:.1}" text-anchor="end">deadline {} →</text>"#,
                    label_w + plot_w + 18.0,
                    y + 16.0,
                    secs(*dl)
                );
            }
            None => {}
        }
        let status = match (at, late) {
            (None, _) => r#"<strong class="missing-text">missing</strong>"#.to_string(),
            (Some(a), true) => format!("{} (late)", secs(*a)),
            (Some(a), false) => secs(*a),
        };
        let _ = write!(
            table,
            "<tr data-event=\"{}\"><td>{}</td><td>{status}</td><td>{}</td></tr>",
            esc(name),
            esc(name),
            deadline.map(secs).unwrap_or_else(|| "—".into())
        );
    }
    format!(
        r#"<div class="scroll"><svg class="wf" width="{w:.0}" height="{height:.0}" role="img" aria-label="event waterfall of the last run"><title>Events of the last run, from the message sent</title>{svg}</svg></div><div class="scroll"><table class="events"><thead><tr><th scope="col">Event</th><th scope="col">Arrived</th><th scope="col">Deadline</th></tr></thead><tbody>{table}</tbody></table></div>"#,
        w = label_w + plot_w + 20.0
    )
}

/// `/badge/{name}.svg`: "name | STATE", for READMEs and wikis.
pub async fn badge_svg(State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let name = file.strip_suffix(".svg").unwrap_or(&file);
    let Some((check, entry)) = s.board.get(name) else {
        return (StatusCode::NOT_FOUND, "no such check\n").into_response();
    };
    let state = entry.tracker.state.as_str();
    let color = match state {
        "ok" => "#1a7f37",
        "warn" => "#9a6700",
        "crit" => "#cf222e",
        _ => "#57606a",
    };
    let label = esc(&check.name);
    let value = state.to_uppercase();
    let lw = 12 + 7 * check.name.chars().count();
    let vw = 14 + 8 * value.len();
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {value}"><title>{label}: {value}</title><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{vw}" height="20" fill="{color}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11"><text x="6" y="14">{label}</text><text x="{vx}" y="14" font-weight="bold">{value}</text></g></svg>"##,
        w = lw + vw,
        vx = lw + 7,
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-cache, max-age=0"),
        ],
        svg,
    )
        .into_response()
}
