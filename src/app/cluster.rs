//! Where the members of a deployment come from: `--shard INDEX/COUNT` (fixed), `cluster:`
//! with a fixed list, or `cluster.peers: dns:NAME:PORT` read again every `refresh`. A
//! failed DNS read keeps the last known members (never "own everything" or "own nothing"
//! on a resolver blip); a changed answer is applied like a reload ([`super::reload`]).
//! Without any of these, the instance is the only member and owns every check.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::reload::Reload;
use crate::clock;
use crate::cluster::{Members, State};
use crate::config::{Config, PeerSource};
use crate::probe::Prober;

/// The member set this instance starts with.
pub(super) async fn start(
    config: &Config,
    shard: Option<(usize, usize)>,
    prober: &Prober,
) -> Arc<State> {
    let now = clock::now_ms();
    let state = match (shard, &config.cluster) {
        (Some((i, n)), _) => State::new(format!("--shard {i}/{n}"), Members::shard(i, n), now),
        (None, None) => State::new("standalone", Members::new(vec!["self".into()], "self"), now),
        (None, Some(c)) => match c.source() {
            Ok(PeerSource::Fixed(list)) => State::new("fixed", Members::new(list, c.me()), now),
            Ok(PeerSource::Dns { name, port }) => {
                let source = format!("dns:{name}:{port}");
                // Until the first answer names it, this instance owns nothing (a pod that
                // is not ready yet is not in a headless Service's answer either).
                let state = State::new(source, Members::new(Vec::new(), c.me()), now);
                match resolve(prober, &name, port).await {
                    Ok(list) => {
                        state.refreshed(list, clock::now_ms());
                    }
                    Err(e) => {
                        tracing::warn!(peers = %state.source, error = %e, "Cannot read the cluster members; owning no check until they can be read.");
                        state.refresh_failed(e);
                    }
                }
                state
            }
            // Refused by validation; alone rather than nothing.
            Err(_) => State::new("standalone", Members::new(vec!["self".into()], "self"), now),
        },
    };
    state.set_checks(&config.checks);
    let members = state.members();
    if members.list().len() > 1 || !members.includes_me() {
        tracing::info!(
            peers = %state.source,
            members = members.list().len(),
            me = members.me(),
            owned = members.owned(&config.checks).len(),
            checks = config.checks.len(),
            "Sharing checks with the cluster."
        );
    }
    Arc::new(state)
}

/// The addresses `name` resolves to, each with `port`, as member names.
async fn resolve(prober: &Prober, name: &str, port: u16) -> Result<Vec<String>, String> {
    let answer = prober
        .resolver()
        .lookup_ip(name)
        .await
        .map_err(|e| crate::probe::net::dns_failure(name, &e).message)?;
    Ok(answer
        .iter()
        .map(|ip| std::net::SocketAddr::new(ip, port).to_string())
        .collect())
}

/// Reads the DNS answer every `every` and applies a changed member set.
pub(super) async fn refresh(
    state: Arc<State>,
    reload: Arc<Reload>,
    name: String,
    port: u16,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let prober = reload.live.prober();
        match resolve(&prober, &name, port).await {
            Ok(list) => {
                if state.refreshed(list, clock::now_ms()) {
                    let members = state.members();
                    tracing::info!(peers = %state.source, members = ?members.list(), "Cluster members changed.");
                    reload.members_changed();
                }
            }
            Err(e) => {
                tracing::warn!(peers = %state.source, error = %e, "Cannot read the cluster members; keeping the last known ones.");
                reload.metrics.cluster_refresh_failed();
                state.refresh_failed(e);
            }
        }
    }
}
