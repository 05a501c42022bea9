//! `type: browser`: the page opened in Chromium as a user does ([`cdp`]), in a fresh
//! browser context per run, its steps driven with trusted input events, and what the page
//! did recorded from the browser's own events ([`record`]). A stream the browser refused is
//! diagnosed by connecting to its host ourselves, as `type: tls` does.

pub mod cdp;
mod page;
pub mod pool;
mod record;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use url::Url;

use crate::clock::fmt_duration;
use crate::config::spec::{BrowserSpec, MessageStep, Step};
use crate::probe::Prober;
use crate::probe::expect::excerpt;
use crate::probe::result::{Failure, Phase, ProbeResult, Reason, StepRun};
use crate::probe::timing::Timeline;
use cdp::CdpError;
use page::{COMMAND, Page, has_text, js, key_code, visible};
use record::{Recorder, net_reason};

/// How often the page is asked whether a step's condition holds.
const POLL: Duration = Duration::from_millis(40);

pub async fn probe(
    p: &Prober,
    tl: &mut Timeline,
    result: &mut ProbeResult,
    spec: &BrowserSpec,
    url: &Url,
) -> Result<(), Failure> {
    let pool = &p.browsers;
    let (_slot, browser, page) = tl
        .step(Phase::Browser, async {
            let slot = pool.page_slot().await;
            let browser = pool
                .browser(&spec.tls.ca_certs)
                .await
                .map_err(|e| Failure::new(Reason::Unavailable, e))?;
            let page = Page::open(&browser).await.map_err(unavailable)?;
            Ok((slot, browser, page))
        })
        .await?;
    // The run's own deadline leaves time to take a screenshot and read the timings.
    let margin = (tl.timeout() / 10).min(Duration::from_secs(1));
    let mut run = Run {
        p,
        spec,
        page,
        rec: Recorder::new(spec.events.as_ref()),
        until: tl.deadline() - margin,
    };
    let outcome = run.drive(tl, url).await;
    // What is left of the deadline (the margin kept above) bounds the timings and the
    // screenshot: a page that stopped answering costs no more than its check's timeout.
    let left = || {
        tl.deadline()
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(20))
    };
    run.rec.report.timing = run.page.timing(left() / 3).await.unwrap_or_default();
    if outcome.is_err() && run.page.browser.gone().is_none() {
        result.screenshot = run.page.screenshot(left()).await;
    }
    if let Some(judge) = &run.rec.judge {
        result.events = judge.state.observed().to_vec();
        result.agent = Some(judge.state.stats());
    }
    let secrets = &p.secrets;
    let report = &mut run.rec.report;
    for text in report
        .console_errors
        .iter_mut()
        .chain(&mut report.exceptions)
    {
        *text = secrets.redact(text);
    }
    result.page = Some(std::mem::take(report));
    if outcome
        .as_ref()
        .is_err_and(|f| f.reason == Reason::Unavailable)
    {
        pool.discard(&browser).await;
    }
    outcome
}

fn unavailable(e: CdpError) -> Failure {
    Failure::new(
        Reason::Unavailable,
        format!("{e}; it is started afresh for the next run"),
    )
}

/// A command to the page that failed: a page that stops answering is the page's fault
/// (a script that never yields); a browser that is gone is ours.
fn cdp_failure(e: CdpError) -> Failure {
    match e {
        CdpError::Timeout(method) => Failure::new(
            Reason::PageError,
            format!(
                "the page stopped answering ({method} got no answer): a script that never yields"
            ),
        ),
        e => unavailable(e),
    }
}

/// Why a wait ended early.
enum Cut {
    /// The browser itself failed.
    Cdp(CdpError),
    /// The page did something that decides the run.
    Page(Failure),
}

impl From<CdpError> for Cut {
    fn from(e: CdpError) -> Self {
        Cut::Cdp(e)
    }
}

struct Run<'a> {
    p: &'a Prober,
    spec: &'a BrowserSpec,
    page: Page,
    rec: Recorder<'a>,
    until: Instant,
}

impl<'a> Run<'a> {
    async fn drive(&mut self, tl: &mut Timeline, url: &Url) -> Result<(), Failure> {
        if self.rec.judge.is_some()
            && !self
                .spec
                .steps
                .iter()
                .any(|s| matches!(s, Step::Message(_)))
        {
            // No message step: the page's own run is judged from the start.
            if let Some(j) = &mut self.rec.judge {
                j.sent = Some(Instant::now());
            }
        }
        let started = Instant::now();
        let loaded = self.navigate(url.as_str()).await;
        tl.add(Phase::Load, started.elapsed());
        loaded.map_err(|f| f.in_phase(Phase::Load))?;
        let started = Instant::now();
        let stepped = self.steps().await;
        tl.add(Phase::Steps, started.elapsed());
        stepped.map_err(|f| f.in_phase(Phase::Steps))?;
        if let Some(f) = self
            .rec
            .page_error()
            .filter(|_| !self.spec.allow_page_errors)
        {
            return Err(f);
        }
        // The page's agent run must end too (without a message step, it may still be going).
        if self.rec.judge.as_ref().is_some_and(|j| j.verdict.is_none()) {
            let waited = self.wait(self.until, judged).await;
            self.settle(waited, "the agent run to end")?;
        }
        match self.rec.judge.as_mut().and_then(|j| j.verdict.take()) {
            Some(Err(f)) => Err(f),
            _ => Ok(()),
        }
    }

    async fn steps(&mut self) -> Result<(), Failure> {
        for (i, step) in self.spec.steps.iter().enumerate() {
            let began = Instant::now();
            let until = (began + step.timeout(self.spec)).min(self.until);
            let outcome = self.step(step, until).await;
            self.rec.report.steps.push(StepRun {
                step: step.describe(),
                seconds: began.elapsed().as_secs_f64(),
                ok: outcome.is_ok(),
            });
            outcome.map_err(|mut f| {
                f.message = format!("step {} ({}): {}", i + 1, step.describe(), f.message);
                f
            })?;
        }
        Ok(())
    }

    async fn step(&mut self, step: &Step, until: Instant) -> Result<(), Failure> {
        let within = fmt_duration(until.saturating_duration_since(Instant::now()));
        match step {
            Step::Goto(url) => self.navigate(url).await,
            Step::Click(selector) => self.click(selector, until).await,
            Step::Fill {
                selector, value, ..
            } => self.fill(selector, value, until).await,
            Step::Press(key) => self.press(key).await,
            Step::WaitFor(w) => {
                let (expr, what) = match (&w.selector, &w.text) {
                    (Some(s), _) => (visible(s), format!("{s} did not appear within {within}")),
                    (None, t) => {
                        let t = t.clone().unwrap_or_default();
                        (
                            has_text(&t),
                            format!("the text '{t}' did not appear within {within}"),
                        )
                    }
                };
                match self.poll(&expr, until).await {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => Err(self.timed_out(what).await),
                    Err(c) => Err(self.cut_failure(c)),
                }
            }
            Step::ExpectText(text) => {
                let found = self.poll(&has_text(text), until).await;
                match self.settle(found.map(|v| v.is_some()), "") {
                    Err(f) if f.reason == Reason::StepTimeout => Err(Failure::new(
                        Reason::BodyMismatch,
                        format!(
                            "the text '{text}' is not on the page; it shows: {}",
                            self.shown().await
                        ),
                    )),
                    other => other.map(|_| ()),
                }
            }
            Step::Message(m) => self.message(m, until).await,
        }
    }

    /// Turns the end of a wait into the run's outcome: Ok(true) when it happened; a cut
    /// into its failure (a refused stream diagnosed); a deadline into `step_timeout` saying
    /// `what` did not happen and what the page showed, unless a better cause is known.
    fn settle(&self, waited: Result<bool, Cut>, what: &str) -> Result<bool, Failure> {
        match waited {
            Ok(true) => Ok(true),
            Ok(false) => Err(Failure::new(Reason::StepTimeout, what.to_string())),
            Err(Cut::Cdp(e)) => Err(cdp_failure(e)),
            Err(Cut::Page(f)) => Err(f),
        }
    }

    /// `wait`'s deadline case, with the page's words and the best known cause.
    async fn timed_out(&mut self, what: String) -> Failure {
        if let Some(f) = self.rec.page_error() {
            return f;
        }
        if let Some(Err(f)) = self.rec.judge.as_ref().and_then(|j| j.verdict.clone()) {
            return f;
        }
        let shown = self.shown().await;
        Failure::new(
            Reason::StepTimeout,
            format!(
                "{what}; the page shows: {shown}; {}",
                self.rec.streams_line()
            ),
        )
    }

    async fn navigate(&mut self, url: &str) -> Result<(), Failure> {
        self.rec.loaded = false;
        let until = (Instant::now() + self.spec.step_timeout.unwrap_or(Duration::from_secs(10)))
            .min(self.until);
        let shown = crate::secrets::display_str(url);
        let answer = self
            .call("Page.navigate", json!({"url": url}))
            .await
            .map_err(|c| self.cut_failure(c))?;
        if let Some(error) = answer["errorText"].as_str().filter(|e| !e.is_empty()) {
            let mut f = Failure::new(
                net_reason(error),
                format!("the browser could not open {shown}: {error}"),
            );
            if let Ok(u) = Url::parse(url) {
                record::diagnose(self.p, &self.spec.tls, &mut f, &u).await;
            }
            return Err(f);
        }
        let waited = self.wait(until, |r| r.loaded).await;
        let within = fmt_duration(until.saturating_duration_since(Instant::now()));
        match waited {
            Ok(true) => {}
            Ok(false) => {
                let f = self
                    .timed_out(format!("{shown} did not finish loading within {within}"))
                    .await;
                return Err(f);
            }
            Err(c) => return Err(self.cut_failure(c)),
        }
        match self.rec.report.status {
            Some(status) if status >= 400 => Err(Failure::new(
                Reason::HttpStatus,
                format!(
                    "{shown} answered {}",
                    crate::probe::result::status_words(
                        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK)
                    )
                ),
            )),
            _ => Ok(()),
        }
    }

    async fn click(&mut self, selector: &str, until: Instant) -> Result<(), Failure> {
        let at = self.find(selector, until).await?;
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": at.0, "y": at.1, "button": "left", "clickCount": 1}),
            )
            .await
            .map_err(|c| self.cut_failure(c))?;
        }
        Ok(())
    }

    async fn fill(&mut self, selector: &str, value: &str, until: Instant) -> Result<(), Failure> {
        self.find(selector, until).await?;
        let focus = format!(
            "(()=>{{const e=document.querySelector({});if(!e)return false;e.focus();if('value' in e)e.value='';return true}})()",
            js(selector)
        );
        self.evaluate(&focus)
            .await
            .map_err(|c| self.cut_failure(c))?;
        // Typed as text input (input events fire as for a user); the value never enters
        // a script the page could log.
        self.call("Input.insertText", json!({"text": value}))
            .await
            .map_err(|c| self.cut_failure(c))?;
        Ok(())
    }

    async fn press(&mut self, key: &str) -> Result<(), Failure> {
        let (code, text) = key_code(key);
        for kind in ["keyDown", "keyUp"] {
            let mut params = json!({"type": kind, "key": key, "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code});
            if kind == "keyDown" && !text.is_empty() {
                params["text"] = Value::String(text.clone());
            }
            self.call("Input.dispatchKeyEvent", params)
                .await
                .map_err(|c| self.cut_failure(c))?;
        }
        Ok(())
    }

    /// The chat path: type, send, and wait for the reply in the DOM (and, with `events:`,
    /// for the agent run the page's streams carry to end well).
    async fn message(&mut self, m: &MessageStep, until: Instant) -> Result<(), Failure> {
        self.find(&m.reply, until).await?;
        let watch = format!(
            "(()=>{{const e=document.querySelector({});const base=e.innerText;window.__pw={{sent:0,reply:0}};new MutationObserver(()=>{{const t=e.innerText;if(!window.__pw.reply&&window.__pw.sent&&t.trim()&&t!==base)window.__pw.reply=performance.now()}}).observe(e,{{childList:true,subtree:true,characterData:true}});return true}})()",
            js(&m.reply)
        );
        self.evaluate(&watch)
            .await
            .map_err(|c| self.cut_failure(c))?;
        self.fill(&m.input, &m.text, until).await?;
        self.evaluate("window.__pw.sent=performance.now()")
            .await
            .map_err(|c| self.cut_failure(c))?;
        if let Some(j) = &mut self.rec.judge {
            j.sent = Some(Instant::now());
        }
        match &m.send {
            Some(send) => self.click(send, until).await?,
            None => self.press("Enter").await?,
        }
        let within = fmt_duration(until.saturating_duration_since(Instant::now()));
        let reply = "window.__pw.reply?(window.__pw.reply-window.__pw.sent)/1000:null";
        let waited = self.poll(reply, until).await;
        let took = match waited {
            Ok(Some(v)) => v.as_f64(),
            Ok(None) => {
                let what = format!(
                    "the reply never appeared in {} ({within} after sending)",
                    m.reply
                );
                return Err(self.timed_out(what).await);
            }
            Err(c) => return Err(self.cut_failure(c)),
        };
        self.rec.report.reply_seconds = took;
        if self.rec.judge.is_some() {
            let waited = self.wait(until, judged).await;
            if let Ok(false) = waited {
                let now = Instant::now();
                if let Some(j) = &self.rec.judge {
                    let sent = j.sent.unwrap_or(now);
                    return Err(j.state.cut_at(now - sent, until - sent));
                }
            }
            self.settle(waited, "")?;
        }
        Ok(())
    }

    /// Waits for `selector` to match a visible element; its centre in CSS pixels.
    async fn find(&mut self, selector: &str, until: Instant) -> Result<(f64, f64), Failure> {
        let within = fmt_duration(until.saturating_duration_since(Instant::now()));
        match self.poll(&visible(selector), until).await {
            Ok(Some(v)) => Ok((
                v["x"].as_f64().unwrap_or(0.0),
                v["y"].as_f64().unwrap_or(0.0),
            )),
            Ok(None) => Err(self
                .timed_out(format!("{selector} did not appear within {within}"))
                .await),
            Err(c) => Err(self.cut_failure(c)),
        }
    }

    /// What the page shows, in one short line.
    async fn shown(&mut self) -> String {
        let text = self
            .evaluate("document.body?document.body.innerText:''")
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            "nothing (an empty page)".into()
        } else {
            format!("'{}'", excerpt(text.as_bytes()))
        }
    }

    fn cut_failure(&self, cut: Cut) -> Failure {
        match cut {
            Cut::Cdp(e) => cdp_failure(e),
            Cut::Page(f) => f,
        }
    }

    /// Evaluates `expr` every [`POLL`] until it yields something other than null/false.
    async fn poll(&mut self, expr: &str, until: Instant) -> Result<Option<Value>, Cut> {
        loop {
            let v = self.evaluate(expr).await?;
            if !(v.is_null() || v == Value::Bool(false)) {
                return Ok(Some(v));
            }
            let next = Instant::now() + POLL;
            if next >= until {
                return Ok(None);
            }
            self.wait(next, |_| false).await?;
        }
    }

    async fn evaluate(&mut self, expr: &str) -> Result<Value, Cut> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await?;
        if let Some(d) = answer.get("exceptionDetails") {
            return Err(Cut::Page(Failure::new(
                Reason::StepTimeout,
                format!(
                    "the step could not run in the page: {}",
                    record::exception_line(d)
                ),
            )));
        }
        Ok(answer["result"]["value"].clone())
    }

    /// One command to the page, handling the page's events while it runs.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, Cut> {
        let browser = self.page.browser.clone();
        let session = self.page.session.clone();
        // Within the run's deadline, so a page that hangs is reported, not cut off.
        let within = COMMAND
            .min(self.until.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(100));
        let call = browser.call(Some(&session), method, params, within);
        tokio::pin!(call);
        loop {
            tokio::select! {
                biased;
                ev = self.page.events.recv() => match ev {
                    Some(ev) => {
                        self.rec.event(ev);
                        self.check().await?;
                    }
                    None => return Err(Cut::Cdp(CdpError::Gone(browser.gone().unwrap_or_else(|| "closed the page".into())))),
                },
                answer = &mut call => return answer.map_err(Cut::Cdp),
            }
        }
    }

    /// Handles events until `done` holds (true) or `until` passes (false).
    async fn wait(
        &mut self,
        until: Instant,
        done: impl Fn(&Recorder<'_>) -> bool,
    ) -> Result<bool, Cut> {
        loop {
            self.check().await?;
            if done(&self.rec) {
                return Ok(true);
            }
            let deadline = match self.rec.judge.as_ref().and_then(|j| j.deadline()) {
                Some(d) => d.min(until),
                None => until,
            };
            tokio::select! {
                ev = self.page.events.recv() => match ev {
                    Some(ev) => self.rec.event(ev),
                    None => {
                        let why = self.page.browser.gone().unwrap_or_else(|| "closed the page".into());
                        return Err(Cut::Cdp(CdpError::Gone(why)));
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    if deadline >= until {
                        return Ok(done(&self.rec));
                    }
                    // An event deadline passed: the agent run failed.
                    if let Some(j) = &mut self.rec.judge {
                        let sent = j.sent.unwrap_or(deadline);
                        j.verdict = Some(Err(j.state.timed_out(Instant::now() - sent)));
                    }
                }
            }
        }
    }

    /// What in the page's events ends the run now: a crashed renderer, a refused stream,
    /// a failed agent run.
    async fn check(&mut self) -> Result<(), Cut> {
        if self.rec.crashed {
            return Err(Cut::Page(Failure::new(
                Reason::PageError,
                "the page's renderer crashed (out of memory, or a browser bug)",
            )));
        }
        if !self.spec.allow_page_errors
            && let Some(f) = self.rec.page_error()
        {
            return Err(Cut::Page(f));
        }
        if let Some(message) = self.rec.dialog.take() {
            // alert(), confirm(), prompt() block the page: dismissed, and recorded.
            let _ = self
                .page
                .command("Page.handleJavaScriptDialog", json!({"accept": false}))
                .await;
            self.rec.note_dialog(&message);
        }
        if let Some(i) = self.rec.refused.take() {
            let s = self.rec.report.streams[i].clone();
            let error = s.error.clone().unwrap_or_default();
            let from = s
                .initiator
                .as_ref()
                .map(|i| format!(" (from {i})"))
                .unwrap_or_default();
            let mut f = Failure::new(
                net_reason(&error),
                format!(
                    "the page opened {}{from}; the browser refused it: {error}",
                    s.url
                ),
            );
            // The real URL, with its query, to connect to its host.
            if let Ok(u) = Url::parse(&s.url) {
                record::diagnose(self.p, &self.spec.tls, &mut f, &u).await;
            }
            return Err(Cut::Page(f));
        }
        if let Some(Err(f)) = self.rec.judge.as_ref().and_then(|j| j.verdict.clone()) {
            return Err(Cut::Page(f));
        }
        Ok(())
    }
}

fn judged(r: &Recorder<'_>) -> bool {
    r.judge.as_ref().is_none_or(|j| j.verdict.is_some())
}
