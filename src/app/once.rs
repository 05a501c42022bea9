//! `pathwatch check`: every selected check once, concurrently, with the demo started when
//! the config has one; the reports are formatted by [`crate::report`].

use std::sync::Arc;

use super::App;
use crate::config::Check;
use crate::report::CheckReport;
use crate::verdict::assess;

/// Runs the named checks (all when `names` is empty) once. Unknown names are an error.
pub async fn run_once(app: &App, names: &[String]) -> Result<Vec<CheckReport>, String> {
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
            let result = prober.run(&check.target, &check.spec, check.timeout).await;
            let assessment = assess(&result, &check.thresholds);
            (
                i,
                CheckReport {
                    check,
                    result,
                    assessment,
                },
            )
        });
    }
    let mut reports: Vec<(usize, CheckReport)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        reports.push(done.map_err(|e| format!("a probe task failed: {e}"))?);
    }
    reports.sort_by_key(|(i, _)| *i);
    Ok(reports.into_iter().map(|(_, r)| r).collect())
}
