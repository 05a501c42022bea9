//! The rules of one agent run, whatever protocol it speaks, as a state machine fed with
//! [`AgentEvent`]s (already marked by [`super::profiles`]) and their time since the
//! message was sent. It decides when the run is complete or failed, which event or stage
//! a timeout is waiting for, narrates the timeline and measures the stages, the first
//! token and the output rate. It does no I/O: the WebSocket and SSE sides feed it and ask
//! it for the next deadline.

use std::collections::HashMap;
use std::time::Duration;

use super::events::{AgentEvent, ToolMark};
use crate::clock::fmt_duration;
use crate::config::spec::{AgentExpect, Order};
use crate::probe::EventAt;
use crate::probe::result::{Failure, Reason, RunStats};
use crate::protocol::profiles::{Profile, Stage};

#[derive(Debug, PartialEq)]
pub enum Step {
    Continue,
    Done,
    Fail(Failure),
}

/// Events of one run kept for the report, history and page (beyond the first arrival of
/// each name): deltas are counted, never kept one by one.
pub const KEPT: usize = 200;

/// A tool call waiting for its end: id, tool, the event that opened it, when.
struct OpenTool {
    id: String,
    tool: String,
    event: String,
    at: Duration,
}

pub struct RunState<'r> {
    rules: &'r AgentExpect,
    profile: Profile,
    observed: Vec<EventAt>,
    /// First arrival of each event name and of each stage name.
    first: HashMap<String, Duration>,
    open_tools: Vec<OpenTool>,
    top_agent: Option<String>,
    ids: Vec<String>,
    other_runs: usize,
    count: usize,
    bytes: u64,
    seq: Option<u64>,
    deltas: u64,
    /// Content characters after the first token's, and when the last content arrived.
    chars_after_first: u64,
    last_content: Option<Duration>,
    output_tokens: Option<u64>,
}

impl<'r> RunState<'r> {
    pub fn new(rules: &'r AgentExpect, profile: Profile) -> Self {
        RunState {
            rules,
            profile,
            observed: Vec::new(),
            first: HashMap::new(),
            open_tools: Vec::new(),
            top_agent: None,
            ids: Vec::new(),
            other_runs: 0,
            count: 0,
            bytes: 0,
            seq: None,
            deltas: 0,
            chars_after_first: 0,
            last_content: None,
            output_tokens: None,
        }
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    pub fn observed(&self) -> &[EventAt] {
        &self.observed
    }

    /// Events skipped because they belonged to another run or thread.
    pub fn other_runs(&self) -> usize {
        self.other_runs
    }

    /// When each stage first arrived, the deltas and the output rate after the first token.
    pub fn stats(&self) -> RunStats {
        let stages = Stage::ALL
            .into_iter()
            .filter_map(|s| self.first.get(s.name()).map(|at| (s, *at)))
            .collect();
        let first = self.first.get(Stage::FirstToken.name()).copied();
        let span = match (first, self.last_content) {
            (Some(f), Some(l)) if l > f => Some((l - f).as_secs_f64()),
            _ => None,
        };
        RunStats {
            profile: self.profile.name(),
            stages,
            deltas: self.deltas,
            chars_per_second: span.map(|s| self.chars_after_first as f64 / s),
            tokens_per_second: span
                .zip(self.output_tokens)
                .map(|(s, t)| t.saturating_sub(1) as f64 / s),
            output_tokens: self.output_tokens,
        }
    }

    /// Bytes of the stream read so far: past `max_stream_bytes` the run stops.
    pub fn received(&mut self, bytes: usize, at: Duration) -> Result<(), Failure> {
        self.bytes = self.bytes.saturating_add(bytes as u64);
        if self.bytes <= self.rules.max_stream_bytes {
            return Ok(());
        }
        Err(Failure::new(
            Reason::Protocol,
            format!(
                "{} bytes of stream ({} deltas) in {} without the run completing; stopped reading (raise expect.max_stream_bytes, now {}, for longer answers; {})",
                self.bytes,
                self.deltas,
                fmt_duration(at),
                self.rules.max_stream_bytes,
                self.timeline()
            ),
        ))
    }

    pub fn observe(&mut self, ev: &AgentEvent, at: Duration) -> Step {
        let name = ev.name.as_str();
        let mark = &ev.mark;
        // Deltas are counted and timed, never kept: only the other events count here.
        if mark.delta.is_none() {
            self.count += 1;
        }
        if self.count > self.rules.max_events {
            let deltas = match self.deltas {
                0 => String::new(),
                n => format!(" (besides {n} deltas, which do not count)"),
            };
            return Step::Fail(Failure::new(
                Reason::Protocol,
                format!(
                    "{} events{deltas} in {} without the run completing; stopped reading (raise expect.max_events, now {}; {})",
                    self.count,
                    fmt_duration(at),
                    self.rules.max_events,
                    self.timeline()
                ),
            ));
        }
        if mark.noise {
            return Step::Continue;
        }
        if !self.belongs(ev) {
            self.other_runs += 1;
            return Step::Continue;
        }
        if let Some(f) = self.sequence_gap(ev, at) {
            return Step::Fail(f);
        }
        let first_of_name = !self.first.contains_key(name);
        if first_of_name || (mark.delta.is_none() && self.observed.len() < KEPT) {
            self.observed.push(EventAt {
                name: name.to_string(),
                at,
            });
        }
        self.count_output(ev, at);
        if let Some(text) = &mark.error {
            let detail = if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            };
            return Step::Fail(Failure::new(
                Reason::AgentError,
                format!(
                    "{name} at {}{detail} (after {})",
                    fmt_duration(at),
                    self.timeline_before(at)
                ),
            ));
        }
        if let Some(why) = &mark.invalid {
            return Step::Fail(Failure::new(
                Reason::EventSchema,
                format!("{name} at {}: {why}", fmt_duration(at)),
            ));
        }
        if let Some(missing) = self.missing_field(ev) {
            return Step::Fail(Failure::new(
                Reason::EventSchema,
                format!("{name} at {} lacks `{missing}`", fmt_duration(at)),
            ));
        }
        let stage = mark.stage;
        if stage == Some(Stage::Started)
            && self.top_agent.is_none()
            && !self.first.contains_key(Stage::Started.name())
        {
            self.top_agent = ev.text("agent_name");
            self.ids = mark.ids.clone();
        }
        let ends = stage == Some(Stage::Completed) && self.is_top_level(ev);
        if !ends && let Some(f) = self.order_problem(ev, at) {
            return Step::Fail(f);
        }
        // Keys are allocated once per name: a flood of deltas costs a lookup each.
        for key in [
            Some(name),
            stage
                .filter(|s| *s != Stage::Completed || ends)
                .map(Stage::name),
        ]
        .into_iter()
        .flatten()
        {
            if !self.first.contains_key(key) {
                self.first.insert(key.to_string(), at);
            }
        }
        self.track_tools(ev, at);
        if ends {
            return match self.missing_at_end(name, at) {
                Some(f) => Step::Fail(f),
                None => Step::Done,
            };
        }
        Step::Continue
    }

    /// `sequence_number` must count up by one: a gap is a lost event.
    fn sequence_gap(&mut self, ev: &AgentEvent, at: Duration) -> Option<Failure> {
        let seq = ev.mark.seq?;
        let last = self.seq.replace(seq);
        let last = last?;
        if last.checked_add(1) == Some(seq) {
            return None;
        }
        let what = if seq > last {
            let lost = seq - last - 1;
            format!("{lost} event{} lost", if lost == 1 { "" } else { "s" })
        } else {
            "out of order or repeated".to_string()
        };
        Some(Failure::new(
            Reason::Protocol,
            format!(
                "sequence_number went from {last} to {seq} at {} ({}): {what}",
                ev.name,
                fmt_duration(at)
            ),
        ))
    }

    fn count_output(&mut self, ev: &AgentEvent, at: Duration) {
        if let Some(t) = ev.mark.output_tokens {
            self.output_tokens = Some(self.output_tokens.unwrap_or(0).max(t));
        }
        let Some(chars) = ev.mark.delta else { return };
        self.deltas += 1;
        if chars == 0 {
            return;
        }
        if self.first.contains_key(Stage::FirstToken.name()) {
            self.chars_after_first += chars as u64;
        }
        self.last_content = Some(at);
    }

    /// An event is part of this run unless it names ids and none of them is this run's.
    fn belongs(&self, ev: &AgentEvent) -> bool {
        let theirs = &ev.mark.ids;
        self.ids.is_empty() || theirs.is_empty() || theirs.iter().any(|id| self.ids.contains(id))
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
                    .any(|k| ev.get(k).is_some_and(|v| !v.is_null()))
            })
            .cloned()
    }

    /// Whether `key` (an event or stage name) has arrived.
    fn seen(&self, key: &str) -> bool {
        self.first.contains_key(key)
    }

    fn order_problem(&self, ev: &AgentEvent, at: Duration) -> Option<Failure> {
        let expected = &self.rules.events;
        let stage = ev.mark.stage.map(Stage::name);
        let is_key = |e: &String| *e == ev.name || Some(e.as_str()) == stage;
        // The first expected key of this event not seen yet.
        let pos = expected.iter().position(|e| is_key(e) && !self.seen(e))?;
        let start = self.profile.info().start;
        let before = match self.rules.order {
            Order::Any => None,
            Order::FirstIsStarted => {
                let start_expected = expected.iter().any(|e| e == start || e == "started");
                let nothing_yet = !expected.iter().any(|e| self.seen(e));
                (start_expected && nothing_yet && ev.mark.stage != Some(Stage::Started))
                    .then(|| start.to_string())
            }
            Order::Strict => expected[..pos].iter().find(|e| !self.seen(e)).cloned(),
        }?;
        Some(Failure::new(
            Reason::EventOrder,
            format!(
                "{} arrived at {} before {before}{}",
                ev.name,
                fmt_duration(at),
                self.so_far(at)
            ),
        ))
    }

    fn track_tools(&mut self, ev: &AgentEvent, at: Duration) {
        if !self.rules.pair_tools {
            return;
        }
        match &ev.mark.tool {
            Some(ToolMark::Open { id, tool }) => self.open_tools.push(OpenTool {
                id: id.clone(),
                tool: tool.clone(),
                event: ev.name.clone(),
                at,
            }),
            Some(ToolMark::Close { id }) => {
                if let Some(i) = self.open_tools.iter().position(|t| t.id == *id) {
                    self.open_tools.remove(i);
                }
            }
            Some(ToolMark::CloseAll) => self.open_tools.clear(),
            Some(ToolMark::Left { ids }) => self.open_tools.retain(|t| !ids.contains(&t.id)),
            None => {}
        }
    }

    fn missing_at_end(&self, name: &str, at: Duration) -> Option<Failure> {
        let mut missing: Vec<String> = self
            .rules
            .events
            .iter()
            .filter(|e| !self.seen(e))
            .cloned()
            .collect();
        // A deadline the check gave is a promise that the event comes, not only when.
        for (event, d) in &self.rules.deadlines {
            if self.rules.given_deadlines.contains(event)
                && !self.seen(event)
                && !missing.contains(event)
            {
                missing.push(format!("{event} (deadline {})", fmt_duration(*d)));
            }
        }
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
        if let Some(t) = self.open_tools.first() {
            return Some(Failure::new(
                Reason::EventMissing,
                format!(
                    "{name} at {}, but {}({}) at {} has no {} ({})",
                    fmt_duration(at),
                    t.event,
                    t.tool,
                    fmt_duration(t.at),
                    self.profile.info().tool_end,
                    self.timeline()
                ),
            ));
        }
        None
    }

    /// The earliest pending deadline (since send) and the event or stage it waits for.
    pub fn next_deadline(&self) -> (Duration, String) {
        let pending = self
            .rules
            .deadlines
            .iter()
            .filter(|(e, _)| !self.seen(e))
            .map(|(e, d)| (*d, e.clone()));
        let completion = (self.rules.run_deadline, self.awaited());
        pending
            .chain([completion])
            .min_by_key(|(d, _)| *d)
            .unwrap_or((self.rules.run_deadline, self.awaited()))
    }

    /// The next expected event or stage not seen yet (the run's end when all were seen).
    fn awaited(&self) -> String {
        match self.rules.events.iter().find(|e| !self.seen(e)) {
            Some(e) => self.named(e),
            None => self.profile.info().end.to_string(),
        }
    }

    /// An event or stage for a message, a stage with the profile's word for it:
    /// `completed (RUN_FINISHED)`.
    fn named(&self, key: &str) -> String {
        let info = self.profile.info();
        let word = match Stage::named(key) {
            Some(Stage::Started) => info.start,
            Some(Stage::Completed) => info.end,
            _ => key,
        };
        if word == key {
            key.to_string()
        } else {
            format!("{key} ({word})")
        }
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
            self.named(&awaited)
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
        let mut e = super::super::profiles::agent_events(v, None).unwrap();
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
        let mut st = RunState::new(rules, Profile::AgentEvents);
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
        let mut st = RunState::new(&rules, Profile::AgentEvents);
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
        let mut st = RunState::new(&rules, Profile::AgentEvents);
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
        let mut st = RunState::new(&rules, Profile::AgentEvents);
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
        let mut st = RunState::new(&rules, Profile::AgentEvents);
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
        let mut st = RunState::new(&small, Profile::AgentEvents);
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
            "101 events in 101.0ms without the run completing; stopped reading (raise expect.max_events, now 100; agent_started at 1.0ms, agent_delta at 2.0ms)"
        );
    }

    #[test]
    fn a_given_deadline_is_a_promise_that_the_stage_arrives() {
        let rules = RunRules {
            events: vec!["agent_started".into(), "agent_completed".into()],
            deadlines: [("tool_start".to_string(), Duration::from_secs(3))].into(),
            given_deadlines: vec!["tool_start".into()],
            ..RunRules::default()
        };
        let (step, _) = feed(&rules, &[(started(), 1), (completed("supervisor"), 5)]);
        let f = failure(step);
        assert_eq!(f.reason, Reason::EventMissing);
        assert_eq!(
            f.message,
            "agent_completed at 5.0ms, but tool_start (deadline 3.00s) never arrived (agent_started at 1.0ms, agent_completed at 5.0ms)"
        );
    }

    #[test]
    fn the_byte_budget_names_what_to_raise() {
        let rules = RunRules {
            max_stream_bytes: 100,
            ..RunRules::default()
        };
        let mut st = RunState::new(&rules, Profile::AgentEvents);
        assert!(st.received(60, ms(1)).is_ok());
        let f = st.received(60, ms(2)).unwrap_err();
        assert_eq!(f.reason, Reason::Protocol);
        assert_eq!(
            f.message,
            "120 bytes of stream (0 deltas) in 2.0ms without the run completing; stopped reading (raise expect.max_stream_bytes, now 100, for longer answers; no event)"
        );
    }
}
