//! Shards on loopback: three daemons on 127.0.0.11, .12 and .13 (one port), their members
//! from a DNS server of the test's own. Every check runs on exactly one of them; when one
//! leaves the DNS answer its checks run on the two others within `refresh` + one interval
//! (measured and printed); when it comes back they move back. `--shard` splits the same way
//! without DNS.

mod support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use support::*;
use tokio::net::TcpListener;

const CHECKS: usize = 12;
const PEERS: &str = "pathwatch-peers.test";

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn yaml(backend: SocketAddr, dns: SocketAddr, me: SocketAddr) -> String {
    let mut y = format!(
        "resolver: {{nameservers: [\"{dns}\"]}}\ncluster: {{peers: \"dns:{PEERS}:{}\", self: \"{me}\", refresh: 500ms}}\ndefaults: {{interval: 500ms, timeout: 400ms}}\nchecks:\n",
        me.port()
    );
    for i in 0..CHECKS {
        y.push_str(&format!(
            "  - {{name: c{i}, type: http, target: \"http://{backend}/c/{i}\"}}\n"
        ));
    }
    y
}

struct Instance {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_at(addr: SocketAddr, yaml: &str, shard: Option<(usize, usize)>) -> Instance {
    let listener = TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let options = pathwatch::app::RunOptions {
        shard,
        ..Default::default()
    };
    let task = tokio::spawn(pathwatch::app::run_with(
        config(yaml),
        options,
        listener,
        async {
            let _ = rx.await;
        },
    ));
    Instance {
        base: format!("http://{addr}"),
        stop: Some(tx),
        task,
    }
}

impl Instance {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.task.await;
    }

    async fn cluster(&self) -> Value {
        let (_, body) = get_text(&format!("{}/api/v1/cluster", self.base), &[]).await;
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    /// The checks this instance runs, and how many of them have run since `since_ms`.
    async fn owned(&self, since_ms: i64) -> (BTreeSet<String>, usize) {
        let (_, body) = get_text(&format!("{}/api/v1/checks", self.base), &[]).await;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let checks = v["checks"].as_array().cloned().unwrap_or_default();
        let names = checks
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let ran = checks
            .iter()
            .filter(|c| c["last"]["at_ms"].as_i64().is_some_and(|t| t >= since_ms))
            .count();
        (names, ran)
    }
}

/// Prometheus scraping the given pathwatch instances every second (None outside CI when the
/// program is missing: the rest of the test still runs).
struct Prometheus {
    base: Option<String>,
    _child: Option<tokio::process::Child>,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(targets: &[SocketAddr]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        if !have("prometheus") {
            let why = "prometheus is needed (apt-get install prometheus)";
            if std::env::var("CI").is_ok() {
                panic!("{why}");
            }
            eprintln!("skipping the Prometheus part outside CI: {why}");
            return Prometheus {
                base: None,
                _child: None,
                _dir: dir,
            };
        }
        let list: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let yml = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: pathwatch\n    static_configs:\n      - targets: [{}]\n",
            list.join(", ")
        );
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, yml).unwrap();
        let addr = format!("127.0.0.1:{}", closed_port().await.port());
        let child = run_program(
            "prometheus",
            &[
                format!("--config.file={}", file.display()),
                format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                format!("--web.listen-address={addr}"),
            ],
        );
        let base = format!("http://{addr}");
        wait_http(&format!("{base}/-/ready")).await;
        Prometheus {
            base: Some(base),
            _child: Some(child),
            _dir: dir,
        }
    }

    /// Waits until the scalar value of `q` is `want` (30 s at most).
    async fn wait_for(&self, q: &str, want: f64) {
        let Some(base) = &self.base else { return };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = query(base, q).await;
            let got = answer["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            if got == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{q}: wanted {want}, got {answer}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits until the instances together run every check exactly once (each one run since
/// `since_ms`); returns who owns what.
async fn wait_split(instances: &[&Instance], since_ms: i64) -> Vec<BTreeSet<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut sets = Vec::new();
        let mut ran = 0;
        for i in instances {
            let (names, r) = i.owned(since_ms).await;
            sets.push(names);
            ran += r;
        }
        let total: usize = sets.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<&String> = sets.iter().flatten().collect();
        if total == CHECKS && union.len() == CHECKS && ran == CHECKS {
            return sets;
        }
        assert!(
            Instant::now() < deadline,
            "never split: {sets:?}, {ran} ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn backend() -> SocketAddr {
    spawn_app(Router::new().route("/c/{n}", get(|| async { "ok" }))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_move_to_the_members_that_stay_and_back() {
    let backend = backend().await;
    // One port on three addresses: the member names DNS gives are ip:port. A port where
    // each member owns a check (with some, one of three owns none of 12: about 1 in 130).
    let addrs: Vec<SocketAddr> = loop {
        let first = TcpListener::bind((ip(11), 0)).await.unwrap();
        let port = first.local_addr().unwrap().port();
        drop(first);
        let addrs: Vec<SocketAddr> = [11, 12, 13]
            .iter()
            .map(|l| SocketAddr::new(ip(*l), port))
            .collect();
        let names: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let members = pathwatch::cluster::Members::new(names.clone(), names[0].clone());
        let owners: BTreeSet<&str> = (0..CHECKS)
            .filter_map(|i| members.owner(&format!("c{i}")))
            .collect();
        if owners.len() == 3 {
            break addrs;
        }
    };
    let port = addrs[0].port();
    let all: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    let (dns, records) = spawn_dns_live(&[(PEERS, &all)], &[], 1).await;
    let mut instances = Vec::new();
    for a in &addrs {
        instances.push(start_at(*a, &yaml(backend, dns, *a), None).await);
    }
    let refs: Vec<&Instance> = instances.iter().collect();
    let before = wait_split(&refs, 0).await;
    assert!(before.iter().all(|s| !s.is_empty()), "{before:?}");
    let view = instances[0].cluster().await;
    assert_eq!(view["members"].as_array().unwrap().len(), 3, "{view}");
    assert_eq!(view["source"], format!("dns:{PEERS}:{port}"));
    let listed: usize = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["checks"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(listed, CHECKS);
    let metrics = get_text(&format!("{}/metrics", instances[0].base), &[])
        .await
        .1;
    assert!(metrics.contains("pathwatch_cluster_members 3"), "{metrics}");
    // In steady state no check has series on two instances.
    let mut seen = BTreeSet::new();
    for i in &instances {
        let m = get_text(&format!("{}/metrics", i.base), &[]).await.1;
        for n in 0..CHECKS {
            if m.contains(&format!("pathwatch_probes_total{{check=\"c{n}\",")) {
                assert!(seen.insert(n), "c{n} runs on two instances");
            }
        }
    }
    assert_eq!(seen.len(), CHECKS);
    // One real Prometheus scraping the three: one series set per check, no duplicates.
    let prometheus = Prometheus::start(&addrs).await;
    let one_each = "count(count by (check) (pathwatch_probes_total{result=\"success\"}) == 1)";
    prometheus.wait_for(one_each, CHECKS as f64).await;
    prometheus
        .wait_for("sum(pathwatch_cluster_checks_owned)", CHECKS as f64)
        .await;
    prometheus
        .wait_for(
            "count(count by (check) (pathwatch_probes_total{result=\"success\"}) > 1) or vector(0)",
            0.0,
        )
        .await;

    // Any instance shows the whole deployment, each row with its owner.
    let (_, body) = get_text(
        &format!("{}/api/v1/checks?scope=cluster", instances[1].base),
        &[],
    )
    .await;
    let whole: Value = serde_json::from_str(&body).unwrap();
    let rows = whole["checks"].as_array().unwrap();
    assert_eq!(rows.len(), CHECKS, "{whole}");
    for (i, owned) in before.iter().enumerate() {
        for name in owned {
            let row = rows.iter().find(|r| r["name"] == name.as_str()).unwrap();
            assert_eq!(row["instance"], addrs[i].to_string(), "{row}");
        }
    }
    assert_eq!(whole["unreachable"], serde_json::json!([]));
    let (status, html) = get_text(&format!("{}/cluster", instances[2].base), &[]).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("{CHECKS} checks")), "{html}");
    assert!(
        html.contains(&format!(">{}</td>", addrs[0])),
        "the owner is shown"
    );
    let (_, overview) = get_text(&format!("{}/", instances[0].base), &[]).await;
    assert!(overview.contains(r#"<a href="/cluster">whole cluster</a>"#));

    // The third instance dies and leaves the answer: its checks run on the two others.
    let third = instances.pop().unwrap();
    let gone = before[2].clone();
    third.stop().await;
    set_dns(&records, PEERS, &all[..2]);
    let left_at = Instant::now();
    let since = now_ms();
    let refs: Vec<&Instance> = instances.iter().collect();
    let after = wait_split(&refs, since).await;
    let takeover = left_at.elapsed();
    println!(
        "takeover: {} checks of the departed member run elsewhere after {:.2} s (refresh 500 ms + interval 500 ms + DNS TTL 1 s)",
        gone.len(),
        takeover.as_secs_f64()
    );
    for (was, now) in before.iter().zip(&after) {
        assert!(was.is_subset(now), "a member that stayed lost a check");
    }
    // Prometheus: the departed instance's series went stale, the moved checks' came from
    // the others; still one series set per check.
    prometheus.wait_for(one_each, CHECKS as f64).await;
    prometheus
        .wait_for("sum(pathwatch_cluster_checks_owned)", CHECKS as f64)
        .await;

    // It comes back: the same checks move back to it.
    let back = start_at(addrs[2], &yaml(backend, dns, addrs[2]), None).await;
    set_dns(&records, PEERS, &all);
    instances.push(back);
    let refs: Vec<&Instance> = instances.iter().collect();
    let again = wait_split(&refs, now_ms()).await;
    assert_eq!(again, before, "ownership is a function of the members");
    for i in instances {
        i.stop().await;
    }
}

#[tokio::test]
async fn a_dns_failure_keeps_the_last_members() {
    let backend = backend().await;
    let me = SocketAddr::new(
        ip(1),
        TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
    );
    let other = SocketAddr::new(ip(2), me.port());
    let (dns, records) = spawn_dns_live(&[(PEERS, &[me.ip(), other.ip()])], &[], 1).await;
    let i = start_at(me, &yaml(backend, dns, me), None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while i.cluster().await["members"].as_array().map_or(0, Vec::len) != 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let owned = i.owned(0).await.0;
    // The name stops resolving (NXDOMAIN): the members and what this instance owns stay.
    records.lock().unwrap().clear();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = i.cluster().await;
        if view["refresh_errors"].as_u64().unwrap_or(0) >= 2 {
            assert_eq!(view["members"].as_array().unwrap().len(), 2, "{view}");
            assert!(
                view["last_error"].as_str().unwrap().contains(PEERS),
                "{view}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no refresh error counted: {view}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(i.owned(0).await.0, owned);
    let metrics = get_text(&format!("{}/metrics", i.base), &[]).await.1;
    assert!(
        metrics.contains("pathwatch_cluster_refresh_errors_total "),
        "{metrics}"
    );
    i.stop().await;
}

#[tokio::test]
async fn fixed_shards_split_the_checks_without_dns() {
    let backend = backend().await;
    let mut y = "defaults: {interval: 500ms, timeout: 400ms}\nchecks:\n".to_string();
    for n in 0..CHECKS {
        y.push_str(&format!(
            "  - {{name: c{n}, type: http, target: \"http://{backend}/c/{n}\"}}\n"
        ));
    }
    let mut instances = Vec::new();
    for s in 0..3 {
        instances.push(start_at("127.0.0.1:0".parse().unwrap(), &y, Some((s, 3))).await);
    }
    let refs: Vec<&Instance> = instances.iter().collect();
    let split = wait_split(&refs, 0).await;
    assert!(split.iter().all(|s| !s.is_empty()), "{split:?}");
    let view = instances[1].cluster().await;
    assert_eq!(view["source"], "--shard 1/3");
    assert_eq!(view["self"], "shard-1");
    assert_eq!(
        view["owned_here"].as_u64().unwrap() as usize,
        split[1].len()
    );
    for i in instances {
        i.stop().await;
    }
}

/// The cluster view with a peer that accepts connections and never answers: the answer
/// comes within the fan-out deadline and names the silent peer.
#[tokio::test]
async fn the_cluster_view_marks_a_silent_peer() {
    let backend = backend().await;
    let hole = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let me = SocketAddr::new(ip(1), port);
    let y = format!(
        "cluster: {{peers: [\"{me}\", \"{hole_addr}\"], self: \"{me}\"}}\ndefaults: {{interval: 500ms, timeout: 400ms}}\nchecks:\n  - {{name: c0, type: http, target: \"http://{backend}/c/0\"}}\n  - {{name: c1, type: http, target: \"http://{backend}/c/1\"}}\n  - {{name: c2, type: http, target: \"http://{backend}/c/2\"}}\n"
    );
    let i = start_at(me, &y, None).await;
    let started = Instant::now();
    let (status, body) = get_text(&format!("{}/api/v1/checks?scope=cluster", i.base), &[]).await;
    let took = started.elapsed();
    println!(
        "fan-out with one black-holed peer: answered in {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        doc["unreachable"][0]["instance"],
        hole_addr.to_string(),
        "{doc}"
    );
    assert_eq!(doc["unreachable"][0]["error"], "no answer within 2s");
    let (_, html) = get_text(&format!("{}/cluster", i.base), &[]).await;
    assert!(
        html.contains(&format!(
            "Not answering, their checks are missing here: {hole_addr} (no answer within 2s)"
        )),
        "{html}"
    );
    assert!(
        took < Duration::from_secs(10),
        "the deadline bounds it: {took:?}"
    );
    let (status, _) = get_text(&format!("{}/api/v1/checks?scope=world", i.base), &[]).await;
    assert_eq!(status, 400);
    i.stop().await;
}

/// An instance that stops lets its port go at once (it comes back on the same address).
#[tokio::test]
async fn a_stopped_instance_lets_its_port_go() {
    let backend = backend().await;
    let y = format!(
        "defaults: {{interval: 500ms, timeout: 400ms}}\nchecks:\n  - {{name: c0, type: http, target: \"http://{backend}/c/0\"}}\n"
    );
    let i = start_at("127.0.0.14:0".parse().unwrap(), &y, None).await;
    let addr: SocketAddr = i.base.trim_start_matches("http://").parse().unwrap();
    assert_eq!(i.cluster().await["source"], "standalone");
    i.stop().await;
    TcpListener::bind(addr)
        .await
        .expect("the port is free after the stop");
}

/// A secured StatefulSet: every member's listener has TLS and basic auth (web config), and
/// `cluster.client` gives the fan-out the peers' CA, the name their certificate covers and
/// the credentials: the cluster view holds every member's checks. A member without them
/// names why each peer refused, in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secured_cluster_sees_every_member_and_names_a_refusal() {
    const PASSWORD: &str = "peer-password-77";
    let backend = backend().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::builder(&["localhost"]).build();
    let (cert, key) = pki.write_pem(dir.path(), "server");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.root_pem).unwrap();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  pathwatch: \"{hash}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let mut listeners = Vec::new();
    for _ in 0..4 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    let peers = format!("[\"{}\", \"{}\", \"{}\"]", addrs[0], addrs[1], addrs[2]);
    let mut checks = String::from("defaults: {interval: 500ms, timeout: 400ms}\nchecks:\n");
    for i in 0..CHECKS {
        checks.push_str(&format!(
            "  - {{name: c{i}, type: http, target: \"http://{backend}/c/{i}\"}}\n"
        ));
    }
    let client = format!(
        "client: {{tls: {{ca_file: \"{}\", server_name: localhost}}, basic_auth: {{username: pathwatch, password: \"${{PEER_PASSWORD}}\"}}}}",
        ca.display()
    );
    let secrets = |n: &str| (n == "PEER_PASSWORD").then(|| PASSWORD.to_string());
    let start = |listener: TcpListener, yaml: String| {
        let cfg = pathwatch::config::Config::from_str(&yaml, "cluster.yaml", &secrets)
            .unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let options = pathwatch::app::RunOptions {
            web_config: Some(web.clone()),
            ..Default::default()
        };
        let task = tokio::spawn(pathwatch::app::run_with(cfg, options, listener, async {
            let _ = rx.await;
        }));
        (tx, task)
    };
    let mut listeners = listeners.into_iter();
    let mut members = Vec::new();
    for me in &addrs[..3] {
        let yaml = format!("cluster: {{peers: {peers}, self: \"{me}\", {client}}}\n{checks}");
        members.push(start(listeners.next().unwrap(), yaml));
    }
    let ask = |addr: SocketAddr| {
        let root = pki.root_pem.clone();
        async move {
            for _ in 0..100 {
                let (status, _, body, _) = https(
                    &addr.to_string(),
                    &root,
                    "/api/v1/checks?scope=cluster",
                    Some(("pathwatch", PASSWORD)),
                )
                .await;
                if status == 200 {
                    return serde_json::from_str::<Value>(&body).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{addr} never answered");
        }
    };
    let doc = ask(addrs[0]).await;
    assert_eq!(doc["unreachable"], serde_json::json!([]), "{doc}");
    let rows = doc["checks"].as_array().unwrap();
    let names: BTreeSet<&str> = rows.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names.len(), CHECKS, "every check once: {doc}");
    let instances: BTreeSet<&str> = rows.iter().filter_map(|c| c["instance"].as_str()).collect();
    assert_eq!(
        instances.len(),
        3,
        "checks of all three members: {instances:?}"
    );

    // A fourth member, asking the first with less and less of what it needs.
    let peer = addrs[0];
    let me = addrs[3];
    let cases = [
        (
            String::new(),
            "is the peer's listener https? set cluster.client.tls",
        ),
        (
            format!(", client: {{tls: {{ca_file: \"{}\"}}}}", ca.display()),
            "certificate is valid for localhost, which does not cover 127.0.0.1: set cluster.client.tls.server_name",
        ),
        (
            format!(
                ", client: {{tls: {{ca_file: \"{}\", server_name: localhost}}}}",
                ca.display()
            ),
            "answered HTTP 401: the peer asks for credentials; set cluster.client.basic_auth",
        ),
        (
            format!(
                ", client: {{tls: {{ca_file: \"{}\", server_name: localhost}}, basic_auth: {{username: pathwatch, password: wrong}}}}",
                ca.display()
            ),
            "answered HTTP 401: the peer refused the user and password of cluster.client.basic_auth",
        ),
    ];
    let mut fourth = listeners.next();
    for (client, want) in cases {
        let listener = match fourth.take() {
            Some(l) => l,
            None => TcpListener::bind(me).await.unwrap(),
        };
        let yaml =
            format!("cluster: {{peers: [\"{peer}\", \"{me}\"], self: \"{me}\"{client}}}\n{checks}");
        let (tx, task) = start(listener, yaml);
        let doc = ask(me).await;
        let refused = &doc["unreachable"][0];
        assert_eq!(refused["instance"], peer.to_string(), "{doc}");
        let error = refused["error"].as_str().unwrap();
        println!("peer refused: {error}");
        assert!(error.contains(want), "{want:?} in {error:?}");
        assert!(
            !error.contains(PASSWORD) && !error.contains("wrong"),
            "{error}"
        );
        let _ = tx.send(());
        let _ = task.await;
    }
    for (tx, task) in members {
        let _ = tx.send(());
        let _ = task.await;
    }
}
