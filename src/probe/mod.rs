//! Probing: one run of one check type against one target, bounded by a timeout, into one
//! [`ProbeResult`]. Owns DNS resolution and the shared TLS client settings; does not
//! schedule, store or export anything.

pub mod agent;
pub mod browser;
pub mod certs;
pub mod client_cert;
pub mod dns;
pub mod dns_query;
pub mod expect;
pub mod grpc;
pub mod http;
pub mod icmp;
pub mod net;
pub mod proxy;
pub mod request;
pub mod result;
pub mod sse;
pub mod starting;
pub mod tcp;
pub mod timing;
pub mod tls;
pub mod websocket;
pub mod ws_client;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig as HickoryConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::config::{ResolverConfig, Spec, Target};
use crate::secrets::Secrets;
pub use result::{
    CertInfo, DnsInfo, EventAt, Failure, HttpInfo, PageReport, Phase, ProbeResult, Reason,
    RunStats, TlsInfo,
};
use timing::Timeline;

/// Time a probe may overrun its own deadline before the outer guard cuts it: only code
/// between awaits (parsing, verification) runs outside the per-phase deadlines.
const GUARD: Duration = Duration::from_millis(50);

/// Decides whether a probe may connect to host:port (the `/probe` allowlist).
pub type HopFilter<'a> = &'a (dyn Fn(&str, u16) -> bool + Sync);

/// Runs probes. Cheap to share: one per process.
pub struct Prober {
    resolver: Arc<TokioResolver>,
    /// Resolvers for `dns` checks that name their own server.
    per_server: Mutex<HashMap<SocketAddr, Arc<TokioResolver>>>,
    secrets: Secrets,
    /// Agent login tokens reused until shortly before they expire.
    pub(crate) tokens: agent::login::TokenCache,
    /// The Chromium of browser checks (started on first use).
    pub(crate) browsers: browser::pool::Pool,
}

impl Prober {
    pub fn new(config: &ResolverConfig, secrets: Secrets) -> Result<Prober, String> {
        Ok(Prober {
            resolver: Arc::new(build_resolver(&config.nameservers)?),
            per_server: Mutex::new(HashMap::new()),
            secrets,
            tokens: agent::login::TokenCache::default(),
            browsers: browser::pool::Pool::new(Default::default()),
        })
    }

    /// The same prober, with browser checks driving the Chromium `browser` describes.
    pub fn with_browser(mut self, browser: crate::config::BrowserConfig) -> Prober {
        self.browsers = browser::pool::Pool::new(browser);
        self
    }

    /// Ends the browsers of browser checks now (shutdown; `pathwatch check` done).
    pub async fn close_browsers(&self) {
        self.browsers.close().await;
    }

    pub(crate) fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }

    pub(crate) fn resolver_for(
        &self,
        server: Option<SocketAddr>,
    ) -> Result<Arc<TokioResolver>, Failure> {
        let Some(server) = server else {
            return Ok(self.resolver.clone());
        };
        let mut map = self.per_server.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(&server) {
            return Ok(r.clone());
        }
        let r = Arc::new(build_resolver(&[server]).map_err(|e| Failure::new(Reason::Dns, e))?);
        map.insert(server, r.clone());
        Ok(r)
    }

    /// Runs one probe. Never takes longer than `timeout` (plus a few ms of guard).
    pub async fn run(&self, target: &Target, spec: &Spec, timeout: Duration) -> ProbeResult {
        self.run_restricted(target, spec, timeout, None).await
    }

    /// [`Prober::run`], where every host a redirect leads to must pass `allow` first.
    pub async fn run_restricted(
        &self,
        target: &Target,
        spec: &Spec,
        timeout: Duration,
        allow: Option<HopFilter<'_>>,
    ) -> ProbeResult {
        let mut result = ProbeResult::empty(SystemTime::now());
        let mut tl = Timeline::new(timeout);
        let deadline = tl.deadline() + GUARD;
        let outcome = {
            let work = self.dispatch(&mut tl, &mut result, target, spec, allow);
            tokio::time::timeout_at(deadline, work).await
        };
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(f)) => Some(f),
            Err(_) => Some(Failure::new(
                Reason::Timeout,
                format!(
                    "probe did not finish within its {} timeout",
                    crate::clock::fmt_duration(timeout)
                ),
            )),
        };
        result.failure = failure.map(|mut f| {
            starting::classify(&mut f, spec.starting_patterns());
            f.message = self.secrets.redact(&f.message);
            f
        });
        result.duration = tl.elapsed();
        result.phases = tl.into_phases();
        result
    }

    async fn dispatch(
        &self,
        tl: &mut Timeline,
        result: &mut ProbeResult,
        target: &Target,
        spec: &Spec,
        allow: Option<HopFilter<'_>>,
    ) -> Result<(), Failure> {
        match (spec, target) {
            (Spec::Http(s), Target::Url(u)) => http::probe(self, tl, result, s, u, allow).await,
            (Spec::Tls(s), Target::HostPort(hp)) => tls::probe(self, tl, result, s, hp).await,
            (Spec::Dns(s), Target::Name(n)) => dns::probe(self, tl, result, s, n).await,
            (Spec::Agent(s), Target::Url(u)) => agent::probe(self, tl, result, s, u).await,
            (Spec::WebSocket(s), Target::Url(u)) => websocket::probe(self, tl, result, s, u).await,
            (Spec::Browser(s), Target::Url(u)) => browser::probe(self, tl, result, s, u).await,
            (Spec::Tcp(s), Target::HostPort(hp)) => tcp::probe(self, tl, result, s, hp).await,
            (Spec::Icmp(s), Target::Name(h)) => icmp::probe(self, tl, result, s, h).await,
            (Spec::Grpc(s), Target::HostPort(hp)) => grpc::probe(self, tl, result, s, hp).await,
            (Spec::Unix(s), Target::Name(path)) => tcp::probe_unix(tl, result, s, path).await,
            (Spec::DnsQuery(s), Target::HostPort(hp)) => {
                dns_query::probe(self, tl, result, s, hp).await
            }
            _ => Err(Failure::new(
                Reason::Protocol,
                format!("target does not fit a {} check", spec.kind()),
            )),
        }
    }
}

/// A resolver that asks on every probe (no positive or negative caching), so the resolve
/// phase measures DNS and not a cache. `/etc/hosts` is consulted first.
fn build_resolver(nameservers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if nameservers.is_empty() {
        match TokioResolver::builder(provider.clone()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the system DNS config; only /etc/hosts and IP literals will resolve.");
                TokioResolver::builder_with_config(
                    HickoryConfig::from_name_servers(vec![]),
                    provider,
                )
            }
        }
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                ns
            })
            .collect();
        TokioResolver::builder_with_config(HickoryConfig::from_name_servers(servers), provider)
    };
    let opts = builder.options_mut();
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder
        .build()
        .map_err(|e| format!("cannot build the DNS resolver: {e}"))
}
