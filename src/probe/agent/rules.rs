//! The rules of one agent run (AGENT_PROTOCOL.md §6), as a state machine fed with
//! normalised events and their time since the message was sent. It decides when the run is
//! complete or failed, which event a timeout is waiting for, and narrates the timeline.
//! It does no I/O: the WebSocket side feeds it and asks it for the next deadline.

use std::collections::HashMap;
use std::time::Duration;

use super::events::AgentEvent;
use crate::clock::fmt_duration;
use crate::config::spec::{AgentExpect, Order};
use crate::probe::EventAt;
use crate::probe::result::{Failure, Reason};
use crate::protocol::{ERROR_KEYS, FATAL, NOISE, RUN_ID_KEYS as ID_KEYS, TERMINAL, TOOL_ID_KEYS};

#[derive(Debug, PartialEq)]
pub enum Step {
    Continue,
    Done,
    Fail(Failure),
}

/// Events of one run kept for the report, history and page (beyond the expected ones).
pub const KEPT: usize = 200;

pub struct RunState<'r> {
    rules: &'r AgentExpect,
    observed: Vec<EventAt>,
    first: HashMap<String, Duration>,
    /// Tool executions waiting for their completion: (id, tool name, when).
    open_tools: Vec<(String, String, Duration)>,
    top_agent: Option<String>,
    ids: Vec<String>,
    other_runs: usize,
    count: usize,
}

impl<'r> RunState<'r> {
    pub fn new(rules: &'r AgentExpect) -> Self {
        RunState {
            rules,
            observed: Vec::new(),
            first: HashMap::new(),
            open_tools: Vec::new(),
            top_agent: None,
            ids: Vec::new(),
            other_runs: 0,
            count: 0,
        }
    }

    pub fn observed(&self) -> &[EventAt] {
        &self.observed
    }

    /// Events skipped because they belonged to another run or thread.
    pub fn other_runs(&self) -> usize {
        self.other_runs
    }

    pub fn observe(&mut self, ev: &AgentEvent, at: Duration) -> Step {
        self.count += 1;
        if self.count > self.rules.max_events {
            return Step::Fail(Failure::new(
                Reason::Protocol,
                format!(
                    "{} events in {} without the run completing; stopped reading (max_events {}; {})",
                    self.count,
                    fmt_duration(at),
                    self.rules.max_events,
                    self.timeline()
                ),
            ));
        }
        let name = ev.name.as_str();
        if NOISE.contains(&name) {
            return Step::Continue;
        }
        if !self.belongs(ev) {
            self.other_runs += 1;
            return Step::Continue;
        }
        // What a run keeps for its report is bounded: the first KEPT events, and the first
        // arrival of every expected one after that (a flood of deltas costs a counter).
        let first_expected =
            !self.first.contains_key(name) && self.rules.events.iter().any(|e| e == name);
        if self.observed.len() < KEPT || first_expected {
            self.observed.push(EventAt {
                name: name.to_string(),
                at,
            });
        }
        if FATAL.contains(&name) {
            let detail = ev
                .first_text(&ERROR_KEYS)
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            return Step::Fail(Failure::new(
                Reason::AgentError,
                format!(
                    "{name} at {}{detail} (after {})",
                    fmt_duration(at),
                    self.timeline_before(at)
                ),
            ));
        }
        if let Some(missing) = self.missing_field(ev) {
            return Step::Fail(Failure::new(
                Reason::EventSchema,
                format!("{name} at {} lacks `{missing}`", fmt_duration(at)),
            ));
        }
        if name == "agent_started" && self.top_agent.is_none() && !self.first.contains_key(name) {
            self.top_agent = ev.text("agent_name");
            self.ids = ID_KEYS.iter().filter_map(|k| ev.text(k)).collect();
        }
        let ends = TERMINAL.contains(&name) || (name == "agent_completed" && self.is_top_level(ev));
        if !ends && let Some(f) = self.order_problem(name, at) {
            return Step::Fail(f);
        }
        self.first.entry(name.to_string()).or_insert(at);
        self.track_tools(ev, at);
        if ends {
            return match self.missing_at_end(name, at) {
                Some(f) => Step::Fail(f),
                None => Step::Done,
            };
        }
        Step::Continue
    }

    /// An event is part of this run unless it names ids and none of them is this run's.
    fn belongs(&self, ev: &AgentEvent) -> bool {
        if self.ids.is_empty() {
            return true;
        }
        let theirs: Vec<String> = ID_KEYS.iter().filter_map(|k| ev.text(k)).collect();
        theirs.is_empty() || theirs.iter().any(|id| self.ids.contains(id))
    }

    fn is_top_level(&self, ev: &AgentEvent) -> bool {
        match (&self.top_agent, ev.text("agent_name")) {
            (Some(top), Some(this)) => *top == this,
            _ => true,
        }
    }

    fn missing_field(&self, ev: &AgentEvent) -> Option<String> {
        let required = self.rules.required_fields.get(&ev.name)?;
        required
            .iter()
            .find(|alts| {
                !alts
                    .split('|')
                    .any(|k| ev.fields.get(k).is_some_and(|v| !v.is_null()))
            })
            .cloned()
    }

    fn order_problem(&self, name: &str, at: Duration) -> Option<Failure> {
        let expected = &self.rules.events;
        let pos = expected.iter().position(|e| e == name)?;
        if self.first.contains_key(name) {
            return None;
        }
        let before = match self.rules.order {
            Order::Any => None,
            Order::FirstIsStarted => {
                let started_expected = expected.iter().any(|e| e == "agent_started");
                let nothing_yet = !expected.iter().any(|e| self.first.contains_key(e));
                (started_expected && nothing_yet && name != "agent_started")
                    .then(|| "agent_started".to_string())
            }
            Order::Strict => expected[..pos]
                .iter()
                .find(|e| !self.first.contains_key(*e))
                .cloned(),
        }?;
        Some(Failure::new(
            Reason::EventOrder,
            format!(
                "{name} arrived at {} before {before}{}",
                fmt_duration(at),
                self.so_far(at)
            ),
        ))
    }

    fn track_tools(&mut self, ev: &AgentEvent, at: Duration) {
        if !self.rules.pair_tools {
            return;
        }
        let id = ev.first_text(&TOOL_ID_KEYS).unwrap_or_default();
        let tool = ev.text("tool_name").unwrap_or_else(|| "?".into());
        match ev.name.as_str() {
            "tool_executing" => self.open_tools.push((id, tool, at)),
            "tool_completed" => {
                if let Some(i) = self.open_tools.iter().position(|(open, ..)| *open == id) {
                    self.open_tools.remove(i);
                }
            }
            _ => {}
        }
    }

    fn missing_at_end(&self, name: &str, at: Duration) -> Option<Failure> {
        let missing: Vec<&str> = self
            .rules
            .events
            .iter()
            .filter(|e| !self.first.contains_key(*e))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Some(Failure::new(
                Reason::EventMissing,
                format!(
                    "{name} at {}, but {} never arrived ({})",
                    fmt_duration(at),
                    missing.join(", "),
                    self.timeline()
                ),
            ));
        }
        if let Some((_, tool, when)) = self.open_tools.first() {
            return Some(Failure::new(
                Reason::EventMissing,
                format!(
                    "{name} at {}, but tool_executing({tool}) at {} has no tool_completed ({})",
                    fmt_duration(at),
                    fmt_duration(*when),
                    self.timeline()
                ),
            ));
        }
        None
    }

    /// The earliest pending deadline (since send) and the event it waits for.
    pub fn next_deadline(&self) -> (Duration, String) {
        let pending = self
            .rules
            .deadlines
            .iter()
            .filter(|(e, _)| !self.first.contains_key(*e))
            .map(|(e, d)| (*d, e.clone()));
        let completion = (self.rules.run_deadline, self.awaited());
        pending
            .chain([completion])
            .min_by_key(|(d, _)| *d)
            .unwrap_or((self.rules.run_deadline, self.awaited()))
    }

    /// The next expected event not seen yet (the completion when all were seen).
    fn awaited(&self) -> String {
        self.rules
            .events
            .iter()
            .find(|e| !self.first.contains_key(*e))
            .cloned()
            .unwrap_or_else(|| "the top-level agent_completed".into())
    }

    /// The `event_timeout` failure when the next deadline passed at `now` (since send).
    pub fn timed_out(&self, now: Duration) -> Failure {
        self.cut_at(now, self.next_deadline().0)
    }

    /// The `event_timeout` failure when the run was cut at `deadline` (since send): the next
    /// event deadline, or the check's own timeout when that came first.
    pub fn cut_at(&self, now: Duration, deadline: Duration) -> Failure {
        let (next, awaited) = self.next_deadline();
        let awaited = if deadline < next {
            self.awaited()
        } else {
            awaited
        };
        let message = match self.observed.last() {
            None => format!(
                "no event within {} of sending the message: {awaited} never arrived",
                fmt_duration(deadline)
            ),
            Some(last) => {
                let limit = if deadline < next {
                    "the check timeout ran out"
                } else {
                    "deadline"
                };
                format!(
                    "{}, then nothing for {}: {awaited} never arrived ({limit} {} after the message)",
                    self.timeline(),
                    fmt_duration(now.saturating_sub(last.at)),
                    fmt_duration(deadline)
                )
            }
        };
        Failure::new(Reason::EventTimeout, message)
    }

    /// `agent_started at 0.8s, agent_thinking at 1.9s` (first arrival of each event).
    pub fn timeline(&self) -> String {
        self.timeline_before(Duration::MAX)
    }

    fn timeline_before(&self, at: Duration) -> String {
        let mut seen = Vec::new();
        let mut parts = Vec::new();
        for o in self
            .observed
            .iter()
            .filter(|o| o.at < at || at == Duration::MAX)
        {
            if !seen.contains(&o.name) {
                seen.push(o.name.clone());
                parts.push(format!("{} at {}", o.name, fmt_duration(o.at)));
            }
        }
        if parts.is_empty() {
            "no event".into()
        } else {
            parts.join(", ")
        }
    }

    fn so_far(&self, at: Duration) -> String {
        let t = self.timeline_before(at);
        if t == "no event" {
            String::new()
        } else {
            format!(" (after {t})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::spec::AgentExpect as RunRules;
    use crate::protocol::GOLDEN;
    use serde_json::json;

    fn ev(v: serde_json::Value) -> AgentEvent {
        let mut e = super::super::events::normalise(&v.to_string()).unwrap();
        e.remove(0)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn started() -> AgentEvent {
        ev(
            json!({"type":"agent_started","user_id":"u","run_id":"r1","agent_name":"supervisor","timestamp":1}),
        )
    }
    fn thinking() -> AgentEvent {
        ev(json!({"type":"agent_thinking","reasoning":"r","run_id":"r1","timestamp":1}))
    }
    fn executing(tool: &str) -> AgentEvent {
        ev(
            json!({"type":"tool_executing","tool_name":tool,"parameters":{},"run_id":"r1","timestamp":1}),
        )
    }
    fn completed_tool(tool: &str) -> AgentEvent {
        ev(
            json!({"type":"tool_completed","tool_name":tool,"results":[],"duration":0.1,"run_id":"r1","timestamp":1}),
        )
    }
    fn completed(agent: &str) -> AgentEvent {
        ev(
            json!({"type":"agent_completed","status":"ok","final_response":"done","agent_name":agent,"run_id":"r1","timestamp":1}),
        )
    }

    fn feed(rules: &RunRules, events: &[(AgentEvent, u64)]) -> (Step, Vec<String>) {
        let mut st = RunState::new(rules);
        let mut last = Step::Continue;
        for (e, at) in events {
            last = st.observe(e, ms(*at));
            if last != Step::Continue {
                break;
            }
        }
        let names = st.observed().iter().map(|o| o.name.clone()).collect();
        (last, names)
    }

    fn failure(step: Step) -> Failure {
        match step {
            Step::Fail(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn the_golden_path_completes() {
        let rules = RunRules::default();
        let (step, names) = feed(
            &rules,
            &[
                (started(), 800),
                (thinking(), 1900),
                (executing("search"), 2000),
                (completed_tool("search"), 2500),
                (completed("supervisor"), 3000),
            ],
        );
        assert_eq!(step, Step::Done);
        assert_eq!(names, GOLDEN);
    }

    #[test]
    fn sub_agent_completions_do_not_end_the_run() {
        let rules = RunRules::default();
        let mut st = RunState::new(&rules);
        for (e, at) in [
            (started(), 1),
            (thinking(), 2),
            (executing("s"), 3),
            (completed_tool("s"), 4),
        ] {
            assert_eq!(st.observe(&e, ms(at)), Step::Continue);
        }
        assert_eq!(
            st.observe(&completed("researcher"), ms(5)),
            Step::Continue,
            "a sub-agent finished"
        );
        assert_eq!(st.observe(&completed("supervisor"), ms(6)), Step::Done);
    }

    #[test]
    fn a_dropped_tool_completed_is_missing_at_the_end() {
        let rules = RunRules::default();
        let (step, _) = feed(
            &rules,
            &[
                (started(), 800),
                (thinking(), 1900),
                (executing("search"), 2000),
                (completed("supervisor"), 3000),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::EventMissing);
        assert_eq!(
            f.message,
            "agent_completed at 3.00s, but tool_completed never arrived (agent_started at 800.0ms, agent_thinking at 1.90s, tool_executing at 2.00s, agent_completed at 3.00s)"
        );
    }

    #[test]
    fn an_unpaired_tool_execution_is_named() {
        let rules = RunRules::default();
        let (step, _) = feed(
            &rules,
            &[
                (started(), 1),
                (thinking(), 2),
                (executing("search"), 3),
                (executing("fetch"), 4),
                (completed_tool("search"), 5),
                (completed("supervisor"), 6),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::EventMissing);
        assert!(
            f.message
                .contains("tool_executing(fetch) at 4.0ms has no tool_completed"),
            "{}",
            f.message
        );
    }

    #[test]
    fn order_modes() {
        let early_tool = [(executing("s"), 1), (started(), 2)];
        let f = failure(feed(&RunRules::default(), &early_tool).0);
        assert_eq!(f.reason, Reason::EventOrder);
        assert_eq!(
            f.message,
            "tool_executing arrived at 1.0ms before agent_started"
        );

        let strict = RunRules {
            order: Order::Strict,
            ..RunRules::default()
        };
        let f = failure(feed(&strict, &[(started(), 1), (executing("s"), 2)]).0);
        assert_eq!(
            f.message,
            "tool_executing arrived at 2.0ms before agent_thinking (after agent_started at 1.0ms)"
        );

        let any = RunRules {
            order: Order::Any,
            ..RunRules::default()
        };
        assert_eq!(feed(&any, &early_tool).0, Step::Continue);
    }

    #[test]
    fn agent_errors_end_the_run_with_their_text() {
        let (step, _) = feed(
            &RunRules::default(),
            &[
                (started(), 5),
                (
                    ev(
                        json!({"type":"agent_error","run_id":"r1","data":{"error":"LLM quota exceeded"}}),
                    ),
                    7,
                ),
            ],
        );
        let f = failure(step);
        assert_eq!(f.reason, Reason::AgentError);
        assert_eq!(
            f.message,
            "agent_error at 7.0ms: LLM quota exceeded (after agent_started at 5.0ms)"
        );
    }

    #[test]
    fn missing_fields_are_schema_failures() {
        let bad = ev(json!({"type":"agent_thinking","run_id":"r1","timestamp":1}));
        let f = failure(feed(&RunRules::default(), &[(started(), 1), (bad, 2)]).0);
        assert_eq!(f.reason, Reason::EventSchema);
        assert_eq!(f.message, "agent_thinking at 2.0ms lacks `reasoning`");
        // thread_id or run_id satisfies agent_started.
        let flat =
            ev(json!({"type":"agent_started","user_id":"u","thread_id":"t","timestamp":"x"}));
        assert_eq!(feed(&RunRules::default(), &[(flat, 1)]).0, Step::Continue);
    }

    #[test]
    fn events_of_other_runs_and_noise_are_skipped() {
        let rules = RunRules::default();
        let mut st = RunState::new(&rules);
        st.observe(&started(), ms(1));
        let foreign = ev(
            json!({"type":"agent_completed","status":"ok","final_response":"x","run_id":"other","timestamp":1}),
        );
        assert_eq!(st.observe(&foreign, ms(2)), Step::Continue);
        assert_eq!(
            st.observe(&ev(json!({"type":"heartbeat"})), ms(3)),
            Step::Continue
        );
        assert_eq!(st.other_runs(), 1);
        assert_eq!(st.observed().len(), 1);
    }

    #[test]
    fn deadlines_name_the_awaited_event_and_narrate() {
        let rules = RunRules {
            run_deadline: Duration::from_secs(30),
            ..RunRules::default()
        };
        let mut st = RunState::new(&rules);
        assert_eq!(
            st.next_deadline(),
            (Duration::from_secs(10), "agent_started".to_string())
        );
        let f = st.timed_out(Duration::from_secs(10));
        assert_eq!(f.reason, Reason::EventTimeout);
        assert_eq!(
            f.message,
            "no event within 10.00s of sending the message: agent_started never arrived"
        );

        st.observe(&started(), ms(800));
        st.observe(&thinking(), ms(1900));
        assert_eq!(
            st.next_deadline(),
            (Duration::from_secs(30), "tool_executing".to_string())
        );
        let f = st.timed_out(Duration::from_secs(30));
        assert_eq!(
            f.message,
            "agent_started at 800.0ms, agent_thinking at 1.90s, then nothing for 28.10s: tool_executing never arrived (deadline 30.00s after the message)"
        );
    }

    #[test]
    fn a_flood_of_events_is_cut() {
        let rules = RunRules {
            max_events: 3,
            ..RunRules::default()
        };
        let hb = ev(json!({"type":"heartbeat"}));
        let (step, _) = feed(
            &rules,
            &[(hb.clone(), 1), (hb.clone(), 2), (hb.clone(), 3), (hb, 4)],
        );
        assert_eq!(failure(step).reason, Reason::Protocol);
    }

    #[test]
    fn a_flood_keeps_a_bounded_report_with_every_first_arrival() {
        let rules = RunRules::default();
        let mut st = RunState::new(&rules);
        assert_eq!(st.observe(&started(), ms(1)), Step::Continue);
        let delta = ev(json!({"type":"agent_delta","run_id":"r1","text":"x"}));
        for i in 0..5_000 {
            assert_eq!(st.observe(&delta, ms(2 + i)), Step::Continue);
        }
        for (e, at) in [
            (thinking(), 6_000),
            (executing("s"), 6_001),
            (completed_tool("s"), 6_002),
        ] {
            assert_eq!(st.observe(&e, ms(at)), Step::Continue);
        }
        assert_eq!(st.observe(&completed("supervisor"), ms(6_003)), Step::Done);
        assert_eq!(
            st.observed().len(),
            KEPT + 4,
            "bounded, first arrivals kept"
        );
        assert_eq!(
            st.timeline(),
            "agent_started at 1.0ms, agent_delta at 2.0ms, agent_thinking at 6.00s, tool_executing at 6.00s, tool_completed at 6.00s, agent_completed at 6.00s"
        );

        let small = RunRules {
            max_events: 100,
            ..RunRules::default()
        };
        let mut st = RunState::new(&small);
        st.observe(&started(), ms(1));
        let mut last = Step::Continue;
        for i in 0..200 {
            last = st.observe(&delta, ms(2 + i));
            if last != Step::Continue {
                break;
            }
        }
        let f = failure(last);
        assert_eq!(f.reason, Reason::Protocol);
        assert_eq!(
            f.message,
            "101 events in 101.0ms without the run completing; stopped reading (max_events 100; agent_started at 1.0ms, agent_delta at 2.0ms)"
        );
    }
}
