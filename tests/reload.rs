//! Config reload on the real binary: `POST /-/reload`, SIGHUP and the checksum watch; what
//! each kind of change does to a check's state, schedule and series; a bad file changes
//! nothing and says why; a storm of reloads leaks nothing.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use support::*;

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn http_check(name: &str, addr: std::net::SocketAddr, interval: &str) -> String {
    format!(
        "  - {{name: {name}, type: http, target: \"http://{addr}/up?c={name}\", interval: {interval}, timeout: 150ms}}\n"
    )
}

const HEAD: &str = "server: {listen: 127.0.0.1:0}\nlocation: here\nchecks:\n";

async fn target() -> std::net::SocketAddr {
    spawn_app(Router::new().route("/up", get(|| async { "ok" }))).await
}

#[tokio::test]
async fn a_reload_applies_changes_by_check_name_and_a_bad_file_changes_nothing() {
    let addr = target().await;
    let closed = closed_port().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let v1 = format!(
        "{HEAD}{}{}{}{}",
        http_check("keep", addr, "200ms"),
        http_check("slower", addr, "200ms"),
        http_check("retype", addr, "200ms"),
        http_check("gone", addr, "200ms"),
    );
    std::fs::write(&path, &v1).unwrap();
    let d = Binary::start(&path, &[]).await;
    let keep = d.wait("keep", "ok").await;
    let slower = d.wait("slower", "ok").await;
    d.wait("retype", "ok").await;
    d.wait("gone", "ok").await;
    assert!(d.metrics().await.contains("check=\"gone\""));
    let (_, before) = get_text(&format!("{}/metrics", d.base), &[]).await;
    let loaded_at = metric(
        &before,
        "pathwatch_config_last_reload_success_timestamp_seconds",
    )
    .expect("reload timestamp exported");
    assert_eq!(
        metric(&before, "pathwatch_config_last_reload_successful"),
        Some(1.0)
    );

    // keep: as it was; slower: a new interval; retype: now a tls check; gone: removed;
    // new: added.
    let v2 = format!(
        "{HEAD}{}{}  - {{name: retype, type: tls, target: \"{closed}\", interval: 200ms, timeout: 150ms}}\n{}",
        http_check("keep", addr, "200ms"),
        http_check("slower", addr, "300ms"),
        http_check("new", addr, "200ms"),
    );
    std::fs::write(&path, &v2).unwrap();
    let (status, body) = d.reload("POST").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body.trim(),
        "Config reloaded: 1 added, 2 changed, 1 removed, 1 unchanged."
    );
    let keep_after = d.check("keep").await.unwrap();
    assert_eq!(keep_after["state"], "ok");
    assert_eq!(
        keep_after["since_ms"], keep["since_ms"],
        "unchanged: state untouched"
    );
    let slower_after = d.check("slower").await.unwrap();
    assert_eq!(slower_after["interval_seconds"], 0.3);
    assert_eq!(
        slower_after["state"], "ok",
        "changed settings keep the state"
    );
    assert_eq!(slower_after["since_ms"], slower["since_ms"]);
    assert!(d.check("gone").await.is_none(), "removed");
    d.wait("new", "ok").await;
    let (_, t) = get_text(&format!("{}/api/v1/transitions?check=retype", d.base), &[]).await;
    let t: Value = serde_json::from_str(&t).unwrap();
    let reset = t["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == "unknown")
        .cloned()
        .expect("a transition to UNKNOWN");
    assert_eq!(reset["from"], "ok");
    assert_eq!(reset["cause"], "type changed from http to tls");
    d.wait("retype", "crit").await;
    let metrics = d.metrics().await;
    assert!(!metrics.contains("check=\"gone\""), "no stale series");
    assert!(metrics.contains("check=\"new\""));

    // A bad file: every error answered and logged, the old config runs on.
    std::fs::write(
        &path,
        format!("{v2}  - {{name: broken, type: http, target: \"http://{addr}/\", interval: soon, colour: red}}\n"),
    )
    .unwrap();
    let (status, body) = d.reload("PUT").await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("the previous config keeps running"), "{body}");
    assert!(body.contains("config.yaml:8:"), "positioned errors: {body}");
    assert!(body.contains("unknown key `colour`"), "{body}");
    assert!(body.contains("`soon` is not a duration"), "{body}");
    let metrics = d.metrics().await;
    assert_eq!(
        metric(&metrics, "pathwatch_config_last_reload_successful"),
        Some(0.0)
    );
    let success_at = metric(
        &metrics,
        "pathwatch_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    assert!(success_at > loaded_at, "the good reload moved it");
    assert!(d.check("broken").await.is_none());
    assert_eq!(d.checks().await.len(), 4);
    let (_, page) = get_text(&format!("{}/", d.base), &[]).await;
    assert!(
        page.contains("Config reload failed"),
        "the status page says so"
    );
    assert!(page.contains("unknown key `colour`"));
    assert_eq!(d.reload("GET").await.0, 405);

    // SIGHUP reloads (and never ends the process).
    std::fs::write(&path, format!("{v2}{}", http_check("hup", addr, "200ms"))).unwrap();
    d.signal("-HUP");
    d.wait("hup", "ok").await;
    let metrics = d.metrics().await;
    assert_eq!(
        metric(&metrics, "pathwatch_config_last_reload_successful"),
        Some(1.0)
    );
    let (_, page) = get_text(&format!("{}/", d.base), &[]).await;
    assert!(!page.contains("Config reload failed"), "the banner goes");
    let log = d.stop().await;
    assert!(log.contains("SIGHUP: reloading the config."), "{log}");
    assert!(log.contains("Check starts over (UNKNOWN)."), "{log}");
    assert!(log.contains("Config reload failed"), "{log}");
}

#[tokio::test]
async fn settings_that_need_a_restart_are_named_and_kept() {
    let addr = target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, format!("{HEAD}{}", http_check("a", addr, "200ms"))).unwrap();
    let d = Binary::start(&path, &[]).await;
    std::fs::write(
        &path,
        format!(
            "server: {{listen: 127.0.0.1:1}}\nscheduler: {{max_concurrency: 7}}\nlocation: there\nchecks:\n{}",
            http_check("a", addr, "200ms")
        ),
    )
    .unwrap();
    let (status, body) = d.reload("POST").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Needs a restart (not applied): server.listen"),
        "{body}"
    );
    assert!(
        body.contains("scheduler.max_concurrency 1024 -> 7"),
        "{body}"
    );
    // The rest applies: the location label changes at once.
    let (_, v) = get_text(&format!("{}/api/v1/checks", d.base), &[]).await;
    assert!(v.contains("\"location\":\"there\""), "{v}");
    assert!(d.metrics().await.contains("location=\"there\""));
    d.stop().await;
}

#[tokio::test]
async fn a_changed_file_is_reloaded_by_checksum_and_a_storm_leaks_nothing() {
    let addr = target().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let v1 = format!("{HEAD}{}", http_check("a", addr, "200ms"));
    std::fs::write(&path, &v1).unwrap();
    let d = Binary::start(&path, &["--config.auto-reload-interval", "100ms"]).await;
    d.wait("a", "ok").await;
    std::fs::write(&path, format!("{v1}{}", http_check("b", addr, "200ms"))).unwrap();
    d.wait("b", "ok").await;
    // The same bytes again: no reload.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        d.log().matches("Config reloaded.").count(),
        1,
        "{}",
        d.log()
    );

    let fds = |m: &str| metric(m, "process_open_fds").unwrap();
    let before = fds(&d.metrics().await);
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let base = d.base.clone();
        storm.spawn(async move { http("POST", &format!("{base}/-/reload"), None).await.0 });
    }
    while let Some(status) = storm.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = fds(&d.metrics().await);
    assert!(after <= before + 4.0, "open fds {before} -> {after}");
    let c = d.check("a").await.unwrap();
    assert_eq!(c["state"], "ok", "unchanged through 100 reloads");
    d.stop().await;
}
