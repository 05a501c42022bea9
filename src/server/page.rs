//! The status page: server-rendered HTML with its CSS and a few lines of JS inline (works
//! air-gapped). `/` is the overview, `/checks/{name}` the detail with the waterfall of the
//! last agent run (the pictures are [`super::charts`]'). Every text from a target is
//! escaped.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::api::{CheckView, detail};
use super::charts::{sparkline, uptime_bars, waterfall};
use crate::clock::{now_ms, rfc3339_ms};
use crate::verdict::{CheckState, RunRecord, Status};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// HTML-escapes text (for element content and quoted attributes).
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Path segment for a check name (names are letters, digits, `-_.`).
fn href(name: &str) -> String {
    format!("/checks/{}", esc(name))
}

fn badge(state: &str) -> String {
    let symbol = match state {
        "ok" => "✓",
        "warn" => "!",
        "crit" => "✕",
        _ => "?",
    };
    format!(
        r#"<span class="badge {state}"><span aria-hidden="true">{symbol}</span> {}</span>"#,
        state.to_uppercase()
    )
}

fn ago(ms: i64, now: i64) -> String {
    if ms <= 0 {
        return "—".into();
    }
    let s = ((now - ms).max(0) / 1000) as u64;
    let text = match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h {}m ago", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h ago", s / 86_400, s % 86_400 / 3600),
    };
    format!(
        r#"<time datetime="{0}" title="{0}">{text}</time>"#,
        rfc3339_ms(ms)
    )
}

pub(super) fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

const STYLE: &str = r#"
:root{--bg:#fff;--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--card:#f6f8fa;--ok:#1a7f37;--warn:#9a6700;--crit:#cf222e;--unknown:#57606a;--bar:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#30363d;--card:#161b22;--ok:#3fb950;--warn:#d29922;--crit:#f85149;--unknown:#9198a1;--bar:#4493f8}.badge{color:#0d1117}}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header,main{max-width:1200px;margin:0 auto;padding:12px 16px}header{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:baseline;border-bottom:1px solid var(--line)}
h1{font-size:20px;margin:0}h2{font-size:17px;margin:24px 0 8px}a{color:var(--bar)}.muted{color:var(--muted)}
.summary span{margin-right:12px}.banner{border:2px solid #cf222e;border-radius:6px;padding:8px 12px;margin:8px 0}.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:8px;border-bottom:1px solid var(--line);vertical-align:top}th{font-size:13px;color:var(--muted);font-weight:600}
.badge{display:inline-block;min-width:64px;padding:2px 8px;border-radius:12px;font-weight:700;font-size:13px;color:#fff;text-align:center;white-space:nowrap}
.badge.ok{background:var(--ok)}.badge.warn{background:var(--warn)}.badge.crit{background:var(--crit)}.badge.unknown{background:var(--unknown)}
.why{max-width:460px;overflow-wrap:anywhere}.why .reason{font-family:ui-monospace,monospace;font-size:13px}
svg text{fill:var(--fg);font-size:11px}.spark polyline{fill:none;stroke:var(--bar);stroke-width:1.5}.spark .fail{fill:var(--crit)}
.bars rect.up{fill:var(--ok)}.bars rect.down{fill:var(--crit)}.bars rect.part{fill:var(--warn)}.bars rect.none{fill:var(--line)}
.wf .bar{fill:var(--bar)}.wf .late{fill:var(--warn)}.wf .deadline{stroke:var(--crit);stroke-dasharray:3 2}.wf .missing{fill:var(--crit);font-weight:700}.wf .grid{stroke:var(--line)}.phases .bar{fill:var(--bar)}.wf .deadline-far{fill:var(--crit);font-size:11px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.nowrap{white-space:nowrap}.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:12px 0}
@media (max-width:720px){.hide-narrow{display:none}td,th{padding:6px 4px}
table.checks thead{display:none}table.checks tr{display:grid;grid-template-columns:max-content 1fr max-content;border-bottom:1px solid var(--line)}
table.checks td{border:0}table.checks td.why{order:1;grid-column:1/-1;max-width:none;padding-top:0}}
"#;

/// Refreshes the header (the counts) and `main` from the same URL every 5 s without
/// reloading the page.
const REFRESH: &str = r#"
<script>
setInterval(async () => {
  try {
    const r = await fetch(location.href, {headers: {"X-Refresh": "1"}});
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    for (const part of ["header", "main"]) {
      document.querySelector(part).replaceWith(doc.querySelector(part));
    }
    document.title = doc.title;
  } catch (e) {}
}, 5000);
</script>"#;

/// A banner while the last reload failed: the old config runs on.
fn reload_banner(s: &AppState) -> String {
    let status = s.live.status();
    let Some(failed) = status.failed_ms else {
        return String::new();
    };
    let errors: String = status
        .errors
        .iter()
        .map(|e| format!("<li>{}</li>", esc(e)))
        .collect();
    format!(
        r#"<div class="banner" role="alert"><strong>Config reload failed {}</strong>; still running the config loaded {}.<ul>{errors}</ul></div>"#,
        ago(failed, now_ms()),
        ago(status.loaded_ms, now_ms()),
    )
}

fn page(s: &AppState, title: &str, header: &str, main: &str) -> Html<String> {
    let main = format!("{}{main}", reload_banner(s));
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"><title>{}</title><style>{STYLE}</style></head><body><header>{header}</header><main>{main}</main>{REFRESH}</body></html>"#,
        esc(title)
    ))
}

fn why(v: &CheckView) -> String {
    let mut out = String::new();
    if v.state != "ok"
        && let Some(last) = &v.last
        && last.status != Status::Ok
    {
        if let Some(reason) = &last.reason {
            let _ = write!(out, r#"<span class="reason">{}</span> "#, esc(reason));
        }
        let text = last
            .message
            .as_deref()
            .or(last.why.as_deref())
            .unwrap_or("");
        let _ = write!(out, "{}<br>", esc(text));
        // The cause ends with the same latest message: show only how the state came about.
        let how = v.cause.split("; latest: ").next().unwrap_or_default();
        let _ = write!(out, r#"<span class="muted">{}</span>"#, esc(how));
        return out;
    }
    // A steady check: what the last run saw, then how the state came about.
    if let Some(last) = &v.last {
        let _ = write!(out, "{}<br>", esc(&last_seen(last)));
    }
    let _ = write!(out, r#"<span class="muted">{}</span>"#, esc(&v.cause));
    out
}

/// `last run: OK in 367 ms, 5 events, 212 deltas, certificate 89 d left`.
fn last_seen(last: &RunRecord) -> String {
    let mut out = format!(
        "last run: {} in {}",
        last.status.as_str().to_uppercase(),
        secs(last.duration_seconds)
    );
    if !last.events.is_empty() {
        let _ = write!(out, ", {} events", last.events.len());
    }
    if let Some(a) = last.agent.as_ref().filter(|a| a.deltas > 0) {
        let _ = write!(out, ", {} deltas", a.deltas);
    }
    if let Some(d) = last.cert_days_left {
        let _ = write!(out, ", certificate {:.0} d left", d.floor());
    }
    if let Some(why) = last.why.as_deref().filter(|_| last.status != Status::Ok) {
        let _ = write!(out, " ({why})");
    }
    out
}

fn cert_days(last: Option<&RunRecord>) -> String {
    match last.and_then(|r| r.cert_days_left) {
        Some(d) => format!("{:.0} d", d.floor()),
        None => "—".into(),
    }
}

pub async fn overview(State(s): State<AppState>) -> Response {
    let now = now_ms();
    let snapshot = s.board.snapshot();
    let history = s.history.clone();
    let since = now - 90 * DAY_MS;
    let (rollups, start_ups) = tokio::task::spawn_blocking(move || {
        (
            history.hourly(None, since).unwrap_or_default(),
            history.start_ups(None).unwrap_or_default(),
        )
    })
    .await
    .unwrap_or_default();

    let mut counts = [0usize; 4];
    let mut rows = String::new();
    for (check, entry) in &snapshot {
        let v = CheckView::new(&s, check, entry);
        counts[entry.tracker.state as usize] += 1;
        let recent: Vec<_> = entry.recent.iter().copied().collect();
        let empty = Vec::new();
        let r = rollups.get(&check.name).unwrap_or(&empty);
        let _ = write!(
            rows,
            r#"<tr id="check-{name}" data-state="{state}"><td>{badge}</td><td><a href="{href}">{name}</a><br><span class="muted">{kind}</span>{start_up}</td><td class="why">{why}</td><td>{since}</td><td class="hide-narrow">{spark}</td><td class="hide-narrow">{day}<br>{quarter}</td><td class="nowrap hide-narrow">{cert}</td></tr>"#,
            name = esc(&v.name),
            state = v.state,
            badge = badge(v.state),
            href = href(&v.name),
            kind = v.kind,
            start_up = start_ups
                .get(&check.name)
                .map(|u| format!(
                    r#"<br><span class="muted" title="start-ups: last and 95th percentile">start-up {} (p95 {})</span>"#,
                    secs(u.last_seconds),
                    secs(u.p95_seconds)
                ))
                .unwrap_or_default(),
            why = why(&v),
            since = ago(v.since_ms, now),
            spark = sparkline(&recent),
            day = uptime_bars(r, now, HOUR_MS, 24, "last 24 hours"),
            quarter = uptime_bars(r, now, DAY_MS, 90, "last 90 days"),
            cert = cert_days(v.last.as_ref()),
        );
    }
    let worst = [CheckState::Crit, CheckState::Warn, CheckState::Ok]
        .into_iter()
        .find(|st| counts[*st as usize] > 0)
        .unwrap_or(CheckState::Unknown);
    let title = format!("{} · pathwatch", worst.as_str().to_uppercase());
    let header = format!(
        r#"<h1>pathwatch</h1><span class="muted">location {}</span><span class="summary" aria-live="polite"><span>{} OK</span><span>{} WARN</span><span>{} CRIT</span><span>{} UNKNOWN</span></span><span class="muted">{}<a href="/api/v1/checks">JSON</a> · <a href="/metrics">metrics</a></span>"#,
        esc(&s.live.config().location),
        counts[CheckState::Ok as usize],
        counts[CheckState::Warn as usize],
        counts[CheckState::Crit as usize],
        counts[CheckState::Unknown as usize],
        if s.cluster.members().list().len() > 1 && !s.cluster.source.starts_with("--shard") {
            r#"<a href="/cluster">whole cluster</a> · "#
        } else {
            ""
        },
    );
    let main = format!(
        r#"<div class="scroll"><table class="checks"><caption class="muted" style="text-align:left">{n} checks, updated {updated}</caption><thead><tr><th scope="col">State</th><th scope="col">Check</th><th scope="col">Why</th><th scope="col">Since</th><th scope="col" class="hide-narrow">Latency</th><th scope="col" class="hide-narrow">Uptime 24 h / 90 d</th><th scope="col" class="hide-narrow">Cert</th></tr></thead><tbody>{rows}</tbody></table></div>"#,
        n = snapshot.len(),
        updated = rfc3339_ms(now),
    );
    page(&s, &title, &header, &main).into_response()
}

/// The phases of a run in the order a request walks them (a token first, then the name,
/// the connection, TLS, the request or upgrade, the answer), as a waterfall: each bar starts
/// where the one before ended, on the run's own scale.
fn phases(run: &RunRecord) -> String {
    const PATH: [&str; 13] = [
        "browser",
        "load",
        "steps",
        "login",
        "resolve",
        "connect",
        "tls",
        "processing",
        "upgrade",
        "first_frame",
        "transfer",
        "complete",
        "reply",
    ];
    let rank = |p: &str| PATH.iter().position(|x| *x == p).unwrap_or(PATH.len());
    let mut ordered: Vec<(&String, f64)> = run.phases.iter().map(|(p, d)| (p, *d)).collect();
    ordered.sort_by_key(|(p, _)| rank(p));
    let total: f64 = ordered.iter().map(|(_, d)| d).sum::<f64>().max(1e-6);
    let mut out = String::from(
        r#"<table class="phases"><thead><tr><th scope="col">Phase</th><th scope="col">Time</th><th scope="col" class="hide-narrow">Waterfall</th></tr></thead><tbody>"#,
    );
    let mut start = 0.0;
    for (p, d) in ordered {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td class="hide-narrow"><svg width="300" height="12" role="img" aria-label="{} from {} to {}"><rect class="bar" x="{:.1}" y="1" width="{:.1}" height="10"/></svg></td></tr>"#,
            esc(p),
            secs(d),
            esc(p),
            secs(start),
            secs(start + d),
            start / total * 300.0,
            (d / total * 300.0).max(1.0),
        );
        start += d;
    }
    out.push_str("</tbody></table>");
    out
}

pub async fn check(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let d = match detail(&s, &name, 20).await {
        Ok(d) => d,
        Err(_) => {
            return (
                StatusCode::NOT_FOUND,
                page(
                    &s,
                    "not found · pathwatch",
                    r#"<h1><a href="/">pathwatch</a></h1>"#,
                    &format!("<p>No check named <code>{}</code>.</p>", esc(&name)),
                ),
            )
                .into_response();
        }
    };
    let now = now_ms();
    let v = &d.view;
    let mut main = format!(
        r#"<h2>{badge} {name}</h2><div class="card"><dl><dt>State</dt><dd>{state} since {since}</dd><dt>Why</dt><dd class="why">{why}</dd><dt>Type</dt><dd>{kind}</dd><dt>Target</dt><dd><code>{target}</code></dd><dt>Every</dt><dd>{every}</dd><dt>Latency</dt><dd>{spark}</dd></dl></div>"#,
        badge = badge(v.state),
        name = esc(&v.name),
        state = v.state.to_uppercase(),
        since = ago(v.since_ms, now),
        why = why(v),
        kind = v.kind,
        target = esc(&v.target),
        every = secs(v.interval_seconds),
        spark = sparkline(&d.recent),
    );
    if let Some(last) = &v.last {
        let _ = write!(
            main,
            r#"<h2>Last run</h2><p>{} · {} · {}</p>"#,
            ago(last.at_ms, now),
            badge(last.status.as_str()),
            secs(last.duration_seconds)
        );
        if let Some(m) = &last.message {
            let _ = write!(
                main,
                r#"<p class="why"><span class="reason">{}</span> {}</p>"#,
                esc(last.reason.as_deref().unwrap_or("")),
                esc(m)
            );
        }
        if !d.expected_events.is_empty() {
            main.push_str(r#"<h2>Agent events</h2>"#);
            main.push_str(&waterfall(&d, last));
            if let Some(a) = &last.agent {
                main.push_str(&output_line(a));
            }
        }
        main.push_str("<h2>Phases</h2>");
        main.push_str(&phases(last));
        if let Some(report) = &last.page {
            main.push_str(&page_report(report, last, &v.name));
        }
    }
    if let Some(u) = &d.start_ups {
        let _ = write!(
            main,
            r#"<h2>Start-ups</h2><p>The last start-up took {last} ({when}); the 95th percentile of the {n} kept is {p95}.</p><p class="muted">A load-balancer health check or readiness probe must allow a new instance at least {p95} before it gives up on it.</p>"#,
            last = secs(u.last_seconds),
            when = ago(u.last_at_ms, now),
            n = u.count,
            p95 = secs(u.p95_seconds),
        );
    }
    main.push_str(r#"<h2>Recent runs</h2><div class="scroll"><table><thead><tr><th scope="col">When</th><th scope="col">Verdict</th><th scope="col">Time</th><th scope="col">Why</th></tr></thead><tbody>"#);
    for r in &d.runs {
        let _ = write!(
            main,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="why">{}</td></tr>"#,
            ago(r.at_ms, now),
            badge(r.status.as_str()),
            secs(r.duration_seconds),
            esc(r.why.as_deref().unwrap_or(""))
        );
    }
    main.push_str("</tbody></table></div><h2>State changes</h2><div class=\"scroll\"><table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">From</th><th scope=\"col\">To</th><th scope=\"col\">Cause</th></tr></thead><tbody>");
    for t in &d.transitions {
        let _ = write!(
            main,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="why">{}</td></tr>"#,
            ago(t.at_ms, now),
            badge(t.from.as_str()),
            badge(t.to.as_str()),
            esc(&t.cause)
        );
    }
    main.push_str("</tbody></table></div>");
    let header = format!(
        r#"<h1><a href="/">pathwatch</a></h1><span class="muted">location {}</span><span class="muted"><a href="/api/v1/checks/{}">JSON</a></span>"#,
        esc(&s.live.config().location),
        esc(&v.name)
    );
    let title = format!("{} {} · pathwatch", v.state.to_uppercase(), v.name);
    page(&s, &title, &header, &main).into_response()
}

/// `first token 130ms · 120 deltas · 480 chars/s · 52 tokens/s` under the waterfall.
fn output_line(a: &crate::verdict::record::AgentRun) -> String {
    let mut parts = Vec::new();
    if let Some(t) = a.stages.get("first_token") {
        parts.push(format!("first token {}", secs(*t)));
    }
    parts.push(format!("{} deltas", a.deltas));
    if let Some(c) = a.chars_per_second {
        parts.push(format!("{c:.0} chars/s"));
    }
    if let Some(t) = a.tokens_per_second {
        parts.push(format!("{t:.0} tokens/s"));
    }
    format!(r#"<p class="muted">{}</p>"#, esc(&parts.join(" · ")))
}

/// `/cluster`: every member's checks on one page, each with the instance that runs it (what
/// `/api/v1/checks?scope=cluster` gathers), and the members that did not answer.
pub async fn cluster(State(s): State<AppState>) -> Response {
    if s.cluster.source.starts_with("--shard") {
        let why = "with --shard the members are not addresses: open each instance's page\n";
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let own: Vec<serde_json::Value> = s
        .board
        .snapshot()
        .iter()
        .map(|(c, e)| serde_json::to_value(CheckView::new(&s, c, e)).unwrap_or_default())
        .collect();
    let members = s.cluster.members();
    let doc = super::peers::gather(
        own,
        members.me(),
        members.list(),
        &super::peers::client(&s.live.config()),
    )
    .await;
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    let mut checks: Vec<&serde_json::Value> =
        doc["checks"].as_array().into_iter().flatten().collect();
    checks.sort_by_key(|c| text(c, "name"));
    let mut rows = String::new();
    for c in &checks {
        // Peers' answers are data: only known states, everything escaped.
        let state = c["state"]
            .as_str()
            .filter(|st| ["ok", "warn", "crit"].contains(st))
            .unwrap_or("unknown");
        let instance = text(c, "instance");
        let _ = write!(
            rows,
            r#"<tr data-state="{state}"><td>{badge}</td><td><a href="http://{inst}{href}">{name}</a></td><td class="why">{cause}</td><td>{inst}</td></tr>"#,
            badge = badge(state),
            inst = esc(&instance),
            href = href(&text(c, "name")),
            name = esc(&text(c, "name")),
            cause = esc(&text(c, "cause")),
        );
    }
    let silent: Vec<String> = doc["unreachable"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| format!("{} ({})", esc(&text(u, "instance")), esc(&text(u, "error"))))
        .collect();
    let warning = if silent.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p class="why">Not answering, their checks are missing here: {}</p>"#,
            silent.join(", ")
        )
    };
    let header = format!(
        r#"<h1>pathwatch</h1><span class="muted">cluster of {} members ({})</span><span class="muted"><a href="/">this instance</a> · <a href="/api/v1/checks?scope=cluster">JSON</a></span>"#,
        members.list().len(),
        esc(&s.cluster.source)
    );
    let main = format!(
        r#"{warning}<div class="scroll"><table class="checks"><caption class="muted" style="text-align:left">{n} checks</caption><thead><tr><th scope="col">State</th><th scope="col">Check</th><th scope="col">Why</th><th scope="col">Instance</th></tr></thead><tbody>{rows}</tbody></table></div>"#,
        n = checks.len(),
    );
    page(&s, "cluster · pathwatch", &header, &main).into_response()
}

/// What the browser saw: timings, steps, the streams the page opened, failed requests,
/// errors, and the screenshot of a failed run.
fn page_report(p: &crate::probe::PageReport, run: &RunRecord, check: &str) -> String {
    let mut out = String::from("<h2>Page</h2><div class=\"card\"><dl>");
    let status = p.status.map(|s| format!(" · {s}")).unwrap_or_default();
    let _ = write!(
        out,
        "<dt>URL</dt><dd><code>{}</code>{status} · {} requests</dd>",
        esc(&p.url),
        p.requests
    );
    for (name, at) in p.timing.named() {
        let _ = write!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            name.replace('_', " "),
            secs(at)
        );
    }
    if let Some(r) = p.reply_seconds {
        let _ = write!(
            out,
            "<dt>reply in the DOM</dt><dd>{} after sending</dd>",
            secs(r)
        );
    }
    out.push_str("</dl></div>");
    if !p.steps.is_empty() {
        out.push_str(r#"<h3>Steps</h3><table><thead><tr><th scope="col">Step</th><th scope="col">Time</th><th scope="col">Done</th></tr></thead><tbody>"#);
        for s in &p.steps {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(&s.step),
                secs(s.seconds),
                if s.ok { "yes" } else { "<strong>no</strong>" }
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str(r#"<h3>Network</h3><div class="scroll"><table><thead><tr><th scope="col">Kind</th><th scope="col">URL</th><th scope="col">Opened</th><th scope="col">Status</th><th scope="col">Frames in / out</th><th scope="col">From</th></tr></thead><tbody>"#);
    for s in &p.streams {
        let status = match (&s.error, s.status) {
            (Some(e), _) => format!("<strong>{}</strong>", esc(e)),
            (None, Some(st)) => st.to_string(),
            (None, None) => "—".into(),
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{status}</td><td>{} / {}</td><td class=\"muted\">{}</td></tr>",
            esc(&s.kind),
            esc(&s.url),
            secs(s.opened_at),
            s.frames_in,
            s.frames_out,
            esc(s.initiator.as_deref().unwrap_or(""))
        );
    }
    for f in &p.failed {
        let _ = write!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td><strong>{}</strong></td><td></td><td></td></tr>",
            esc(&f.kind),
            esc(&f.url),
            secs(f.at),
            esc(&f.error)
        );
    }
    out.push_str("</tbody></table></div>");
    for (title, list) in [
        ("Uncaught exceptions", &p.exceptions),
        ("Console errors", &p.console_errors),
    ] {
        if !list.is_empty() {
            let _ = write!(out, "<h3>{title}</h3><ul>");
            for e in list {
                let _ = write!(out, "<li><code>{}</code></li>", esc(e));
            }
            out.push_str("</ul>");
        }
    }
    if run.screenshot {
        let _ = write!(
            out,
            r#"<h3>Screenshot</h3><p><img src="{href}/screenshot/{at}" alt="the page when the run failed" style="max-width:100%;border:1px solid #888"></p>"#,
            href = href(check),
            at = run.at_ms
        );
    }
    out
}
