//! Config validation: every error at once, each with file:line:column and field path.

mod support;

use pathwatch::config::Config;

fn errors(yaml: &str) -> Vec<String> {
    match Config::from_str(yaml, "bad.yaml", &|n| {
        (n == "SECRET").then(|| "hunter2-secret".into())
    }) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn every_error_is_reported_with_its_position_and_path() {
    let yaml = r#"server:
  listen: 127.0.0.1:9115
  bogus: 1
checks:
  - name: api
    type: http
    target: http://127.0.0.1:8080/health
    interval: 10s
    timeout: 30s
    colour: blue
  - name: api
    type: http
    target: "not a url"
    interval: soon
  - name: cert
    type: tls
    target: api.example.test
    expect_days: 3
  - name: x
    type: carrier-pigeon
    target: a
  - name: re
    type: http
    target: http://127.0.0.1/
    expect:
      body_matches: ["(unclosed"]
"#;
    let errs = errors(yaml);
    let expected = [
        "bad.yaml:3:3: server.bogus: unknown key `bogus`",
        "bad.yaml:9:14: checks[0].timeout: timeout (30s) must be shorter than interval (10s): a check never overlaps itself",
        "bad.yaml:10:5: checks[0].colour: unknown key `colour`",
        "bad.yaml:11:11: checks[1].name: duplicate check name `api` (first defined at line 5)",
        "bad.yaml:13:13: checks[1].target: `not a url` is not a URL: relative URL without a base",
        "bad.yaml:14:15: checks[1].interval: `soon` is not a duration",
        "bad.yaml:17:13: checks[2].target: `api.example.test` is not host:port",
        "bad.yaml:18:5: checks[2].expect_days: unknown key `expect_days`",
        "bad.yaml:20:11: checks[3].type: unknown check type `carrier-pigeon` (expected one of http, tls, dns, agent_pipeline, websocket, browser, tcp, icmp, grpc, dns_query, unix)",
        "bad.yaml:26:22: checks[4].expect.body_matches[0]: invalid regex `(unclosed`: unclosed group",
    ];
    for want in expected {
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "missing {want:?} in:\n{}",
            errs.join("\n")
        );
    }
    assert_eq!(errs.len(), expected.len(), "{}", errs.join("\n"));
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let errs = errors("checks:\n  - name: a\n    type: [http\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("bad.yaml:4:1: YAML syntax error"),
        "{}",
        errs[0]
    );
}

#[test]
fn missing_environment_variables_and_secrets_in_errors() {
    let errs = errors("checks:\n  - name: a\n    type: http\n    target: http://h/${NOPE}\n");
    assert!(
        errs[0]
            .starts_with("bad.yaml:4:13: checks[0].target: environment variable `NOPE` is not set"),
        "{errs:?}"
    );
    // A secret that lands in a bad place is not echoed back.
    let errs = errors(
        "checks:\n  - name: a\n    type: http\n    target: http://h/\n    max_redirects: ${SECRET}\n",
    );
    assert!(errs[0].contains("<redacted>"), "{errs:?}");
    assert!(
        errs.iter().all(|e| !e.contains("hunter2-secret")),
        "{errs:?}"
    );
}

#[test]
fn file_interpolation_reads_secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "file-secret-value\n").unwrap();
    let yaml = format!(
        "checks:\n  - name: a\n    type: http\n    target: http://127.0.0.1/\n    headers:\n      Authorization: \"Bearer ${{file:{}}}\"\n",
        token.display()
    );
    let cfg = Config::from_str(&yaml, "ok.yaml", &|_| None).unwrap();
    let pathwatch::config::Spec::Http(h) = &cfg.checks[0].spec else {
        panic!()
    };
    assert_eq!(h.headers["Authorization"], "Bearer file-secret-value");
    assert_eq!(cfg.secrets.redact("x file-secret-value"), "x <redacted>");
}

#[test]
fn defaults_apply_and_inherited_timeouts_fit_the_interval() {
    let yaml = "defaults:\n  interval: 1m\n  timeout: 20s\n  thresholds:\n    latency_warn: 300ms\nchecks:\n  - name: a\n    type: dns\n    target: example.test\n  - name: b\n    type: dns\n    target: example.test\n    interval: 5s\n    thresholds:\n      cert_days_warn: 30\n";
    let cfg = Config::from_str(yaml, "ok.yaml", &|_| None).unwrap();
    assert_eq!(cfg.checks[0].interval.as_secs(), 60);
    assert_eq!(cfg.checks[0].timeout.as_secs(), 20);
    assert_eq!(cfg.checks[1].timeout.as_secs(), 4);
    assert_eq!(
        cfg.checks[1].thresholds.latency_warn.unwrap().as_millis(),
        300
    );
    assert_eq!(cfg.checks[1].thresholds.cert_days_warn, 30);
    assert_eq!(cfg.checks[1].thresholds.cert_days_crit, 7);
}

#[test]
fn the_shipped_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.yaml");
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.checks.is_empty());
}

#[test]
fn ca_file_demo_trusts_the_demo_certificate_and_needs_its_tls_port() {
    let yaml = r#"demo:
  listen: 127.0.0.1:19116
  tls_listen: 127.0.0.1:19117
checks:
  - name: demo-cert
    type: tls
    target: localhost:19117
    ca_file: demo
  - name: demo-wss
    type: websocket
    target: wss://localhost:19117/ws
    tls: {ca_file: demo}
"#;
    let cfg = Config::from_str(yaml, "ok.yaml", &|_| None).unwrap();
    // The config only marks the trust; the app makes the CA when it is built.
    let trust = |spec: &pathwatch::config::Spec| match spec.tls_client().map(|t| &t.trust) {
        Some(pathwatch::config::Trust::Roots(r)) => Some(r.clone()),
        Some(pathwatch::config::Trust::Demo) => None,
        other => panic!("{other:?}"),
    };
    assert!(cfg.checks.iter().all(|c| trust(&c.spec).is_none()));
    let app = pathwatch::app::build(cfg).unwrap();
    let pki = app.demo_pki().unwrap();
    for check in &app.config.checks {
        let roots = trust(&check.spec);
        assert!(std::sync::Arc::ptr_eq(&roots.unwrap(), &pki.roots));
    }

    let errs = errors(
        "checks:\n  - name: c\n    type: websocket\n    target: wss://localhost:1/ws\n    tls:\n      ca_file: demo\n",
    );
    assert_eq!(
        errs,
        [
            "bad.yaml:6:16: checks[0].tls.ca_file: `ca_file: demo` trusts the demo backend's certificate; it needs `demo.tls_listen`"
        ]
    );
}

#[test]
fn websocket_checks_are_validated_like_http() {
    let errs = errors(
        "checks:\n  - name: c\n    type: websocket\n    target: http://localhost/ws\n    headers: {\"bad header\": x}\n    expect:\n      json:\n        - {path: type}\n",
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].contains("WebSocket URL scheme must be ws or wss, not `http`"),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("`bad header` is not a valid header name"))
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("checks[0].expect.json[0]: a JSON rule needs exactly one of"))
    );
}

#[test]
fn an_inherited_timeout_that_fits_is_kept_and_one_that_does_not_is_cut_and_said() {
    let yaml = "defaults: {interval: 2500ms, timeout: 2450ms}
checks:
  - {name: a, type: dns, target: example.test}
  - {name: b, type: dns, target: example.test, interval: 1s}
  - {name: c, type: dns, target: example.test, interval: 1s, timeout: 100ms}
";
    let cfg = Config::from_str(yaml, "t.yaml", &|_| None).unwrap();
    let ms = std::time::Duration::from_millis;
    let timeouts: Vec<_> = cfg.checks.iter().map(|c| c.timeout).collect();
    assert_eq!(timeouts, [ms(2450), ms(800), ms(100)]);
    assert_eq!(
        cfg.notes,
        ["checks[1] (b): the inherited timeout 2s 450ms does not fit its 1s interval; it is 800ms"]
    );
}

#[test]
fn hostile_files_are_refused_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let shown = path.display().to_string();
    let load = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        match Config::load(&path) {
            Ok(_) => panic!("expected errors"),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }
    };
    // Latin-1 where UTF-8 belongs.
    let errs = load(b"checks:\n  - name: caf\xe9\n");
    assert_eq!(
        errs,
        [format!(
            "{shown}:2:14: the file is not UTF-8 here (byte 0xe9); save it as UTF-8"
        )]
    );
    // A megabyte value: the error names it by its ends, not by a megabyte of text.
    let mut long = b"location: here\nchecks:\n  - {name: a, type: dns, target: \"".to_vec();
    long.extend(std::iter::repeat_n(b'a', 1 << 20));
    long.extend(b"\"}\n");
    let errs = load(&long);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(&format!("{shown}:3:34: checks[0].target: `aaaa")),
        "{errs:?}"
    );
    assert!(
        errs[0].ends_with("aaaa` is not a valid host name"),
        "{errs:?}"
    );
    assert!(errs[0].len() < 600, "{}", errs[0].len());
    // Long strings multiplied by aliases: refused before the copies are made.
    let s = "x".repeat(200_000);
    let bomb = format!(
        "x-s: &s \"{s}\"\nx-a: &a [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\nx-b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nx-c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nx-d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    );
    let errs = load(bomb.as_bytes());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("the config expands to more than 32 MiB of text (through aliases?)"),
        "{errs:?}"
    );
}

/// A reload compares what a check's CA file holds, not only its name: a rotated CA makes
/// the check a changed one.
#[test]
fn a_rotated_ca_file_makes_a_check_changed_for_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let yaml = format!(
        "checks:\n  - {{name: c, type: tls, target: \"localhost:443\", ca_file: \"{}\"}}\n",
        ca.display()
    );
    let load = |pem: &str| {
        std::fs::write(&ca, pem).unwrap();
        Config::from_str(&yaml, "t.yaml", &|_| None).unwrap().checks[0].clone()
    };
    let first = support::Pki::builder(&["localhost"]).build().root_pem;
    let second = support::Pki::builder(&["localhost"]).build().root_pem;
    let a = load(&first);
    assert!(a.same_settings(&load(&first)));
    assert!(
        !a.same_settings(&load(&second)),
        "a rotated CA file is a change"
    );
}

#[test]
fn alerting_is_validated_and_its_secrets_stay_secret() {
    let errs = errors(
        "alerting:
  alertmanagers: [http://127.0.0.1:9093, 'ftp://am', '']
  resend: 100ms
  external_url: status-page
  labels: {check: x, 'bad-name': y, team: ''}
  basic_auth: {username: pw, password: '${SECRET}'}
  bearer_token: '${SECRET}'
",
    );
    let want = [
        "bad.yaml:2:42: alerting.alertmanagers[1]: URL scheme must be http or https, not `ftp`",
        "bad.yaml:3:11: alerting.resend: resend must be at least 1s",
        "bad.yaml:4:17: alerting.external_url: `status-page` is not a URL",
        "bad.yaml:5:12: alerting.labels.check: `check` is set by pathwatch on every alert",
        "alerting.labels.bad-name: `bad-name` is not a label name",
        "alerting.labels.team: an empty label value removes the label",
        "alerting.bearer_token: use basic_auth or bearer_token, not both",
    ];
    for w in want {
        assert!(errs.iter().any(|e| e.contains(w)), "{w}\n{errs:#?}");
    }
    assert!(
        errs.iter().any(|e| e.contains("alerting.alertmanagers[2]")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().all(|e| !e.contains("hunter2-secret")),
        "{errs:#?}"
    );
    let errs = errors("alerting: {alertmanagers: []}\n");
    assert!(
        errs[0].contains("name at least one Alertmanager URL"),
        "{errs:?}"
    );
}

/// Generated configs are often one line of JSON: 10,000 checks on one line load.
#[test]
fn ten_thousand_checks_on_one_json_line_load() {
    let checks: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"name":"c{i}","type":"http","target":"http://127.0.0.1:9/health/{i}","interval":"30s","timeout":"5s"}}"#
            )
        })
        .collect();
    let json = format!(r#"{{"checks":[{}]}}"#, checks.join(","));
    assert!(
        !json.contains('\n') && json.len() > 900_000,
        "{}",
        json.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generated.json");
    std::fs::write(&path, &json).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.checks.len(), 10_000);
    assert_eq!(config.checks[9_999].name, "c9999");
}

#[test]
fn unknown_keys_suggest_the_key_they_most_likely_meant() {
    let yaml = r#"checks:
  - name: api
    type: http
    target: http://127.0.0.1:8080/health
    interval: 30s
    tmeout: 5s
  - name: gatus-style
    type: http
    url: http://127.0.0.1:8080/health
  - name: kuma-style
    type: http
    target: http://127.0.0.1:8080/health
    one_off: true
  - name: nested
    type: http
    target: http://127.0.0.1:8080/health
    expect:
      statuses: [200]
  - name: nothing-close
    type: http
    target: http://127.0.0.1:8080/health
    colour: blue
sever:
  listen: 127.0.0.1:9115
"#;
    let errs = errors(yaml);
    let has = |want: &str| {
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "missing {want:?} in:\n{}",
            errs.join("\n")
        )
    };
    has("checks[0].tmeout: unknown key `tmeout` (did you mean `timeout`?");
    has("checks[1].url: unknown key `url` (did you mean `target`?");
    has("checks[2].one_off: unknown key `one_off`");
    has("to run checks once, use `pathwatch check`");
    has("checks[3].expect.statuses: unknown key `statuses` (did you mean `status`?");
    has("unknown key `sever` (did you mean `server`?");
    let colour = errs
        .iter()
        .find(|e| e.contains("`colour`"))
        .expect("colour");
    assert!(!colour.contains("did you mean"), "{colour}");
    // A nested key is not offered the check's own keys.
    let statuses = errs
        .iter()
        .find(|e| e.contains("`statuses`"))
        .expect("statuses");
    assert!(!statuses.contains("`interval`"), "{statuses}");
}

#[test]
fn browser_checks_are_validated_with_positions() {
    let yaml = r##"browser:
  max_pages: 0
  hosts: {"bad name!": 127.0.0.1}
checks:
  - name: page
    type: browser
    target: ws://127.0.0.1:8080/app
  - name: steps
    type: browser
    target: http://127.0.0.1:8080/app
    tls: {insecure_skip_verify: true}
    steps:
      - goto: not a url
      - wait_for: {selector: "#a", text: b}
    events: {profile: custom}
  - name: hover
    type: browser
    target: http://127.0.0.1:8080/app
    steps: [{hover: "#a"}]
"##;
    let errs = errors(yaml);
    let all = errs.join("\n");
    for needle in [
        "2:14: browser.max_pages: must be at least 1",
        "browser.hosts.bad name!",
        "7:13: checks[0].target: URL scheme must be http or https",
        "checks[1].tls.insecure_skip_verify: a browser check never ignores certificate errors",
        "checks[1].steps[0].goto",
        "checks[1].steps[1].wait_for: wait_for takes one of `selector` or `text`",
        "checks[1].events.custom",
        "checks[2].steps[0]: unknown variant `hover`, expected one of `goto`, `fill`, `click`",
    ] {
        assert!(all.contains(needle), "{needle} not in:\n{all}");
    }
}
