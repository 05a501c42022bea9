//! Property tests on generated input: the config loader, the agent event normaliser and
//! run rules, certificate parsing and diagnosis, JSON path rules. Never a panic; failures
//! always carry a reason from the closed set and a message in words.
//! Cases per property: PROPTEST_CASES (default 256); the long mode in BENCHMARKS.md runs
//! `PROPTEST_CASES=100000 cargo test --release --test properties`.

use std::time::Duration;

use pathwatch::config::spec::{AgentSpec, Spec};
use pathwatch::config::{Config, TlsVerify};
use pathwatch::probe::Reason;
use pathwatch::probe::agent::profiles::{Read, Reader};
use pathwatch::probe::agent::rules::{RunState, Step};
use pathwatch::probe::certs::{check_chain, hostname_message, name_covered, parse_cert};
use pathwatch::probe::expect::{body_problems, lookup};
use pathwatch::protocol::profiles::Profile;
use proptest::prelude::*;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const SHIPPED: &str = include_str!("../config.yaml");

/// A message a person reads: no Debug dump of a library value.
fn in_words(message: &str) {
    assert!(!message.is_empty());
    for tell in [
        "Error(",
        "Some(",
        "OtherError",
        "expected struct",
        "expected u32",
    ] {
        assert!(!message.contains(tell), "raw text in: {message}");
    }
}

/// An agent_pipeline check of `profile` as a config file gives it (max_events 50).
fn agent_spec(profile: Profile) -> AgentSpec {
    let custom = if profile == Profile::Custom {
        "\n    custom: {started: [start], deltas: [text-delta], delta_path: delta, tool_start: [tool-input-start], tool_end: [tool-output-available], tool_id_path: toolCallId, completed: [finish], error: [error]}"
    } else {
        ""
    };
    let target = if profile == Profile::OpenaiRealtime {
        "ws"
    } else {
        "http"
    };
    let text = format!(
        "checks:\n  - name: a\n    type: agent_pipeline\n    target: {target}://127.0.0.1:9/x\n    profile: {}\n    expect: {{max_events: 50}}{custom}\n",
        profile.name()
    );
    let config = Config::from_str(&text, "t.yaml", &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
    match &config.checks[0].spec {
        Spec::Agent(a) => a.clone(),
        _ => unreachable!(),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        "[a-z_]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "agent_started",
            "agent_thinking",
            "tool_executing",
            "tool_completed",
            "agent_completed",
            "agent_error",
            "event_batch",
            "system_message",
            "heartbeat",
            "final_report",
            "RUN_STARTED",
            "TEXT_MESSAGE_CONTENT",
            "TOOL_CALL_START",
            "RUN_FINISHED",
            "RUN_ERROR",
            "response.created",
            "response.output_text.delta",
            "response.output_item.added",
            "response.completed",
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_stop",
            "tool_use",
            "start",
            "text-delta",
            "tool-input-start",
            "finish",
            "response.done",
            "[DONE]",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "event",
                    "payload",
                    "data",
                    "events",
                    "run_id",
                    "thread_id",
                    "tool_name",
                    "agent_name",
                    "error",
                    "user_id",
                    "timestamp",
                    "status",
                    "sequence_number",
                    "delta",
                    "choices",
                    "finish_reason",
                    "tool_calls",
                    "id",
                    "index",
                    "content_block",
                    "item",
                    "response",
                    "usage",
                    "toolCallId",
                    "runId",
                    "outcome",
                    "message",
                ]),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn the_config_loader_never_panics_on_arbitrary_text(text in "\\PC{0,400}") {
        if let Err(errors) = Config::from_str(&text, "fuzz.yaml", &|_| None) {
            prop_assert!(!errors.0.is_empty());
            for e in &errors.0 {
                in_words(&e.message);
            }
        }
    }

    #[test]
    fn the_config_loader_never_panics_on_a_mutated_config(
        edits in prop::collection::vec((0usize..SHIPPED.len(), "\\PC{0,3}", 0usize..4), 1..6)
    ) {
        let mut text = SHIPPED.to_string();
        for (at, insert, delete) in edits {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + delete).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(at..end, &insert);
        }
        if let Err(errors) = Config::from_str(&text, "fuzz.yaml", &|_| None) {
            for e in &errors.0 {
                in_words(&e.message);
                // Errors of a file that parsed point into it.
                if !e.message.contains("YAML") && !e.path.is_empty() {
                    prop_assert!(e.line.is_some(), "no position: {e}");
                }
            }
        }
    }

    #[test]
    fn the_run_rules_take_any_frames_in_any_order_in_every_profile(
        profile in prop::sample::select(Profile::ALL.to_vec()),
        frames in prop::collection::vec(
            (prop::option::of(prop::sample::select(vec!["message", "metadata", "messages", "error", "updates|sub"])), json_value()),
            0..40,
        )
    ) {
        let spec = agent_spec(profile);
        let mut reader = Reader::new(&spec);
        let mut state = RunState::new(&spec.expect, spec.profile);
        let mut at = Duration::ZERO;
        for (sse, frame) in frames {
            at += Duration::from_millis(7);
            let text = match &frame {
                Value::String(s) if s == "[DONE]" => s.clone(),
                other => other.to_string(),
            };
            let events = match reader.read(sse, &text) {
                Ok(Read::Events(events)) => events,
                Ok(Read::End) => break,
                Err(why) => {
                    in_words(&why);
                    continue;
                }
            };
            let mut ended = false;
            for ev in events {
                match state.observe(&ev, at) {
                    Step::Continue => {}
                    Step::Done => ended = true,
                    Step::Fail(f) => {
                        prop_assert!(Reason::ALL.contains(&f.reason));
                        in_words(&f.message);
                        ended = true;
                    }
                }
                if ended {
                    break;
                }
            }
            if ended {
                break;
            }
        }
        let f = state.timed_out(at + Duration::from_secs(1));
        prop_assert_eq!(f.reason, Reason::EventTimeout);
        prop_assert!(state.observed().len() <= 250);
        let _ = state.stats();
    }

    #[test]
    fn garbage_certificates_are_diagnosed_in_words(
        chain in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..4),
        name in "[a-z*]{1,8}(\\.[a-z-]{1,8}){0,3}",
    ) {
        let presented: Vec<CertificateDer> =
            chain.into_iter().map(CertificateDer::from).collect();
        let parsed: Vec<_> = presented.iter().filter_map(parse_cert).collect();
        let Ok(server_name) = ServerName::try_from(name.clone()) else { return Ok(()) };
        let verdict = check_chain(&presented, &parsed, &name, &server_name, &TlsVerify::default());
        let f = verdict.expect_err("garbage never verifies");
        prop_assert!(matches!(
            f.reason,
            Reason::TlsUntrusted | Reason::TlsHostname | Reason::TlsExpired
        ));
        in_words(&f.message);
    }

    #[test]
    fn odd_names_and_sans_never_panic(
        name in "\\PC{0,30}",
        sans in prop::collection::vec("[a-z0-9*.-]{0,20}", 0..5),
    ) {
        let covered = name_covered(&name, &sans);
        let message = hostname_message(&name, &sans);
        in_words(&message);
        if sans.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
            prop_assert!(covered);
        }
    }

    #[test]
    fn json_rules_take_any_document_and_path(
        doc in json_value(),
        path in "[a-z0-9_.]{0,20}",
    ) {
        let _ = lookup(&doc, &path);
        let rule: pathwatch::config::spec::JsonRule =
            serde_json::from_value(json!({"path": path, "exists": true})).unwrap();
        let (problems, _) = body_problems(&[], &[], &[rule], doc.to_string().as_bytes());
        for p in problems {
            in_words(&p);
        }
    }

    #[test]
    fn an_event_stream_parses_the_same_however_it_is_cut(
        events in prop::collection::vec(("[a-z_]{0,8}", "\\PC{0,40}", 0usize..3), 0..8),
        ending in prop::sample::select(vec!["\n", "\r\n", "\r"]),
        cuts in prop::collection::vec(0usize..400, 0..12),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        use pathwatch::probe::sse::SseParser;
        // The stream: each event as `event:` and `data:` lines (multi-line data with the
        // chosen line end), comments in between.
        let mut text = String::new();
        for (name, data, comments) in &events {
            for _ in 0..*comments {
                text.push_str(": keep-alive");
                text.push_str(ending);
            }
            if !name.is_empty() {
                text.push_str(&format!("event: {name}{ending}"));
            }
            for line in data.split(['\n', '\r']) {
                text.push_str(&format!("data: {line}{ending}"));
            }
            text.push_str(ending);
        }
        let bytes = text.as_bytes();
        let whole = {
            let mut p = SseParser::new(1 << 20);
            let mut out = Vec::new();
            p.feed(bytes, &mut out).unwrap();
            out
        };
        prop_assert_eq!(whole.len(), events.len());
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        let mut from = 0;
        for cut in at {
            p.feed(&bytes[from..cut], &mut out).unwrap();
            from = cut;
        }
        p.feed(&bytes[from..], &mut out).unwrap();
        // A lone CR at the very end may still pair with an LF: the same events either way.
        prop_assert_eq!(&out, &whole);
        // Garbage never panics and never grows past the limit.
        let mut p = SseParser::new(256);
        let mut sink = Vec::new();
        for chunk in garbage.chunks(7) {
            if p.feed(chunk, &mut sink).is_err() {
                break;
            }
        }
    }
}
