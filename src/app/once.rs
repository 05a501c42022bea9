//! `pathwatch check`: every selected check once, concurrently, with the demo started when
//! the config has one; the reports are formatted by [`crate::report`].

use std::sync::Arc;

use std::time::{Duration, Instant};

use super::App;
use crate::clock::fmt_span;
use crate::config::Check;
use crate::probe::{ProbeResult, Reason};
use crate::report::{CheckReport, Waited};
use crate::verdict::assess;

/// Pause between the tries of `--wait-ready`.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs the named checks (all when `names` is empty) once. Unknown names are an error.
/// With `wait_ready`, a check whose target says it is starting, or refuses connections (a
/// deploy in progress), is tried again every second until it passes, fails otherwise, or
/// the budget ends; its report says how long it waited.
pub async fn run_once(
    app: &App,
    names: &[String],
    wait_ready: Option<Duration>,
) -> Result<Vec<CheckReport>, String> {
    let config = &app.config;
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| config.check(n).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
        return Err(format!(
            "no check named {} (configured: {})",
            unknown.join(", "),
            known.join(", ")
        ));
    }
    let selected: Vec<Arc<Check>> = config
        .checks
        .iter()
        .filter(|c| names.is_empty() || names.contains(&c.name))
        .cloned()
        .collect();
    // The demo backend lives as long as this run.
    let demo_stop = tokio_util::sync::CancellationToken::new();
    let _stop_on_return = demo_stop.clone().drop_guard();
    app.start_demo(&demo_stop, None)
        .await
        .map_err(|e| e.to_string())?;
    let prober = app.prober.clone();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, check) in selected.into_iter().enumerate() {
        let prober = prober.clone();
        tasks.spawn(async move {
            let first = Instant::now();
            let mut tries = 1;
            let mut result = prober.run(&check.target, &check.spec, check.timeout).await;
            while let Some(budget) = wait_ready
                && not_ready_yet(&result)
                && first.elapsed() + RETRY_PAUSE < budget
            {
                tokio::time::sleep(RETRY_PAUSE).await;
                tries += 1;
                result = prober.run(&check.target, &check.spec, check.timeout).await;
            }
            let waited = (tries > 1).then(|| Waited {
                waited: first.elapsed().saturating_sub(result.duration),
                tries,
            });
            let mut assessment = assess(&result, &check.thresholds);
            if let (Some(why), Some(budget)) = (assessment.why.as_mut(), wait_ready)
                && not_ready_yet(&result)
            {
                why.push_str(&format!(
                    "; not ready within --wait-ready {} ({})",
                    fmt_span(budget),
                    waited.map_or("1 try".to_string(), |w| w.to_string())
                ));
            } else if let Some(why) = assessment.why.as_mut()
                && starting(&result)
            {
                why.push_str("; `pathwatch check --wait-ready 5m` waits for a start-up");
            }
            (
                i,
                CheckReport {
                    check,
                    result,
                    assessment,
                    waited,
                },
            )
        });
    }
    let mut reports: Vec<(usize, CheckReport)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        reports.push(done.map_err(|e| format!("a probe task failed: {e}"))?);
    }
    prober.close_browsers().await;
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}

fn starting(r: &ProbeResult) -> bool {
    r.failure
        .as_ref()
        .is_some_and(|f| f.reason == Reason::Starting)
}

/// Worth another try while waiting for a deploy: starting, or refusing connections.
fn not_ready_yet(r: &ProbeResult) -> bool {
    starting(r)
        || r.failure
            .as_ref()
            .is_some_and(|f| f.reason == Reason::Connect)
}
