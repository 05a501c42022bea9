//! pathwatch's own per-check families, as a table: name, type, help, and how to write the
//! samples of one check.

use super::CheckSeries;
use super::text::Family;
use crate::protocol::profiles::Stage;
use crate::verdict::CheckState;

pub(super) const CHECK_FAMILIES: [Family<CheckSeries>; 23] = [
    (
        "pathwatch_probe_duration_seconds",
        "histogram",
        "Probe duration.",
        |t, n, l, c| {
            let live = c.live();
            if live.duration.count() > 0 {
                t.histogram(n, l, None, &live.duration);
            }
        },
    ),
    // A gauge (the last run's value), not a histogram: 15 series per phase and check
    // made /metrics of 1,000 checks 10 MB. Percentiles over time come from
    // quantile_over_time; the probe's total duration keeps its histogram.
    (
        "pathwatch_phase_duration_seconds",
        "gauge",
        "Duration of each phase of the last probe.",
        |t, n, l, c| {
            for (p, v) in &c.live().phases {
                t.sample(n, l, Some(("phase", p.as_str())), *v);
            }
        },
    ),
    (
        "pathwatch_probes_total",
        "counter",
        "Probes run, by result (success, failure).",
        |t, n, l, c| {
            let probes = c.live().probes;
            for (result, v) in ["success", "failure"].into_iter().zip(probes) {
                t.sample(n, l, Some(("result", result)), v);
            }
        },
    ),
    (
        "pathwatch_probe_failures_total",
        "counter",
        "Failed probes by reason.",
        |t, n, l, c| {
            for (reason, v) in &c.live().failures {
                t.sample(n, l, Some(("reason", reason.as_str())), *v);
            }
        },
    ),
    (
        "pathwatch_probe_last_run_timestamp_seconds",
        "gauge",
        "When the last probe of a check started, unix seconds.",
        |t, n, l, c| {
            let live = c.live();
            if live.last.is_some() {
                t.sample(n, l, None, live.last_run);
            }
        },
    ),
    (
        "pathwatch_cold_start_seconds",
        "histogram",
        "Start-ups: from the first failed run to the first success, when the target said it was starting.",
        |t, n, l, c| {
            if let Some(h) = &c.live().start_ups {
                t.histogram(n, l, None, h);
            }
        },
    ),
    (
        "pathwatch_check_state",
        "gauge",
        "1 for the current state of each check (unknown, ok, warn, crit).",
        |t, n, l, c| {
            let current = c.live().state;
            for s in CheckState::ALL {
                t.sample(n, l, Some(("state", s.as_str())), u64::from(s == current));
            }
        },
    ),
    (
        "pathwatch_state_transitions_total",
        "counter",
        "CheckState changes of each check, by the state entered.",
        |t, n, l, c| {
            let counts = c.live().transitions;
            // A check never returns to unknown: no series for it.
            for s in [CheckState::Ok, CheckState::Warn, CheckState::Crit] {
                t.sample(n, l, Some(("to", s.as_str())), counts[s as usize]);
            }
        },
    ),
    (
        "pathwatch_scheduler_skipped_runs_total",
        "counter",
        "Planned runs skipped because the previous run of the check was still going.",
        |t, n, l, c| {
            t.sample(n, l, None, c.live().skipped);
        },
    ),
    (
        "pathwatch_check_interval_seconds",
        "gauge",
        "Configured probe interval.",
        |t, n, l, c| {
            t.sample(n, l, None, c.interval);
        },
    ),
    (
        "pathwatch_check_timeout_seconds",
        "gauge",
        "Configured probe timeout.",
        |t, n, l, c| {
            t.sample(n, l, None, c.timeout);
        },
    ),
    (
        "pathwatch_threshold_latency_seconds",
        "gauge",
        "Latency thresholds by level (warn, crit).",
        |t, n, l, c| {
            for (level, v) in c.latency {
                if let Some(v) = v {
                    t.sample(n, l, Some(("level", level)), v);
                }
            }
        },
    ),
    (
        "pathwatch_threshold_cert_expiry_seconds",
        "gauge",
        "Certificate time-left thresholds by level (warn, crit); configured in days.",
        |t, n, l, c| {
            for (level, v) in c.cert.iter().flatten() {
                t.sample(n, l, Some(("level", level)), *v);
            }
        },
    ),
    (
        "pathwatch_threshold_event_deadline_seconds",
        "gauge",
        "Agent event deadlines, from the message being sent.",
        |t, n, l, c| {
            for (event, v) in &c.deadlines {
                t.sample(n, l, Some(("event", event)), *v);
            }
        },
    ),
    (
        "pathwatch_agent_event_latency_seconds",
        "histogram",
        "Time from the message being sent to each agent event (first arrival per run).",
        |t, n, l, c| {
            for (event, h) in &c.live().event_latency {
                t.histogram(n, l, Some(("event", event)), h);
            }
        },
    ),
    (
        "pathwatch_agent_stage_latency_seconds",
        "histogram",
        "Time from the message being sent to each stage of an agent run (first arrival per run; every profile).",
        |t, n, l, c| {
            for (stage, h) in &c.live().stage_latency {
                t.histogram(n, l, Some(("stage", stage.name())), h);
            }
        },
    ),
    (
        "pathwatch_browser_timing_seconds",
        "histogram",
        "Browser checks: navigation timing and paints since navigation started (first_byte, dom_content_loaded, load, first_contentful_paint, largest_contentful_paint), and the reply in the DOM after sending (reply).",
        |t, n, l, c| {
            for (timing, h) in &c.live().page_timing {
                t.histogram(n, l, Some(("timing", timing)), h);
            }
        },
    ),
    (
        "pathwatch_browser_step_duration_seconds",
        "histogram",
        "Browser checks: how long each step took (its number and what it does).",
        |t, n, l, c| {
            for (step, h) in &c.live().steps {
                t.histogram(n, l, Some(("step", step)), h);
            }
        },
    ),
    (
        "pathwatch_browser_failed_requests_total",
        "counter",
        "Browser checks: requests the browser gave up on (net::ERR_…), WebSockets and event streams included.",
        |t, n, l, c| {
            let live = c.live();
            if live.page_timing.is_empty() && live.failed_requests == 0 {
                return;
            }
            t.sample(n, l, None, live.failed_requests as f64);
        },
    ),
    (
        "pathwatch_agent_first_token_seconds",
        "histogram",
        "Time from the message being sent to the first content or reasoning token.",
        |t, n, l, c| {
            let live = c.live();
            if let Some((_, h)) = live
                .stage_latency
                .iter()
                .find(|(s, _)| *s == Stage::FirstToken)
            {
                t.histogram(n, l, None, h);
            }
        },
    ),
    (
        "pathwatch_agent_output_chars_per_second",
        "gauge",
        "Content characters per second after the first token (the last run that measured it).",
        |t, n, l, c| {
            if let Some(v) = c.live().chars_per_second {
                t.sample(n, l, None, v);
            }
        },
    ),
    (
        "pathwatch_agent_output_tokens_per_second",
        "gauge",
        "Output tokens per second after the first token, where the stream reports usage (the last run that measured it).",
        |t, n, l, c| {
            if let Some(v) = c.live().tokens_per_second {
                t.sample(n, l, None, v);
            }
        },
    ),
    (
        "pathwatch_agent_events_total",
        "counter",
        "Agent events received, by event.",
        |t, n, l, c| {
            for (event, v) in &c.live().events {
                t.sample(n, l, Some(("event", event)), *v);
            }
        },
    ),
];
