//! One page of a run in its own browser context, and the scripts the steps evaluate in it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::cdp::{Browser, CdpError, Event};
use crate::probe::result::PageTiming;

/// Largest screenshot kept with a failed run.
const MAX_SCREENSHOT: usize = 512 << 10;

/// Records the largest contentful paint for the report (installed before any page script).
const LCP: &str = "try{new PerformanceObserver(l=>{const e=l.getEntries();if(e.length)window.__pwLcp=e[e.length-1].startTime}).observe({type:'largest-contentful-paint',buffered:true})}catch(e){}";

/// One page in its own browser context; dropping it disposes the context (on every path
/// out of a run, also when the run is cut by its deadline).
pub(super) struct Page {
    pub browser: Arc<Browser>,
    context: String,
    pub session: String,
    pub events: tokio::sync::mpsc::UnboundedReceiver<Event>,
}

pub(super) const COMMAND: Duration = Duration::from_secs(10);

impl Page {
    pub async fn open(browser: &Arc<Browser>) -> Result<Page, CdpError> {
        let b = browser;
        let ctx = b
            .call(
                None,
                "Target.createBrowserContext",
                json!({"disposeOnDetach": true}),
                COMMAND,
            )
            .await?;
        let context = ctx["browserContextId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let made = b
            .call(
                None,
                "Target.createTarget",
                json!({"url": "about:blank", "browserContextId": context}),
                COMMAND,
            )
            .await;
        let target = match made {
            Ok(t) => t["targetId"].as_str().unwrap_or_default().to_string(),
            Err(e) => {
                dispose(b.clone(), context);
                return Err(e);
            }
        };
        let attached = b
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
                COMMAND,
            )
            .await;
        let session = match attached {
            Ok(a) => a["sessionId"].as_str().unwrap_or_default().to_string(),
            Err(e) => {
                dispose(b.clone(), context);
                return Err(e);
            }
        };
        let events = b.subscribe(&session);
        let page = Page {
            browser: b.clone(),
            context,
            session,
            events,
        };
        for method in [
            "Page.enable",
            "Network.enable",
            "Runtime.enable",
            "Log.enable",
        ] {
            page.command(method, json!({})).await?;
        }
        page.command(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": LCP}),
        )
        .await?;
        Ok(page)
    }

    pub async fn command(&self, method: &str, params: Value) -> Result<Value, CdpError> {
        self.browser
            .call(Some(&self.session), method, params, COMMAND)
            .await
    }
}

impl Page {
    /// Navigation timing and paints, if the page answers within `within`.
    pub async fn timing(&self, within: Duration) -> Option<PageTiming> {
        let expr = "JSON.stringify((()=>{const n=performance.getEntriesByType('navigation')[0]||{};const f=performance.getEntriesByName('first-contentful-paint')[0];const s=v=>v?v/1000:null;return{first_byte:s(n.responseStart),dom_content_loaded:s(n.domContentLoadedEventEnd),load:s(n.loadEventEnd),first_contentful_paint:f?f.startTime/1000:null,largest_contentful_paint:s(window.__pwLcp)}})())";
        let answer = self
            .browser
            .call(
                Some(&self.session),
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
                within,
            )
            .await
            .ok()?;
        serde_json::from_str(answer["result"]["value"].as_str()?).ok()
    }

    /// A PNG of the page, if it comes within `within` and is not too large.
    pub async fn screenshot(&self, within: Duration) -> Option<Vec<u8>> {
        let shot = self
            .browser
            .call(
                Some(&self.session),
                "Page.captureScreenshot",
                json!({"format": "png"}),
                within,
            )
            .await
            .inspect_err(|e| tracing::debug!(error = %e, "No screenshot of the failed page."))
            .ok()?;
        let png = data_encoding::BASE64
            .decode(shot["data"].as_str()?.as_bytes())
            .ok()?;
        (png.len() <= MAX_SCREENSHOT).then_some(png)
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.browser.unsubscribe(&self.session);
        dispose(self.browser.clone(), std::mem::take(&mut self.context));
    }
}

/// Disposes a browser context off the run's path; a browser that does not answer is
/// killed (it hangs) and the next run starts another.
fn dispose(browser: Arc<Browser>, context: String) {
    if context.is_empty() || browser.gone().is_some() {
        return;
    }
    tokio::spawn(async move {
        let asked = browser
            .call(
                None,
                "Target.disposeBrowserContext",
                json!({"browserContextId": context}),
                Duration::from_secs(5),
            )
            .await;
        if matches!(asked, Err(CdpError::Timeout(_))) {
            tracing::warn!("The browser did not dispose a page within 5s; it is ended.");
            browser.kill();
        }
    });
}

/// A JavaScript string literal of `s`.
pub(super) fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// An expression yielding the centre of the first visible element matching `selector`,
/// scrolled into view, or null.
pub(super) fn visible(selector: &str) -> String {
    format!(
        "(()=>{{const e=document.querySelector({});if(!e)return null;e.scrollIntoView({{block:'center'}});const r=e.getBoundingClientRect();if(!r.width&&!r.height)return null;return{{x:r.left+r.width/2,y:r.top+r.height/2}}}})()",
        js(selector)
    )
}

pub(super) fn has_text(text: &str) -> String {
    format!(
        "!!(document.body&&document.body.innerText.includes({}))",
        js(text)
    )
}

/// The virtual key code and the text a key types.
pub(super) fn key_code(key: &str) -> (u32, String) {
    match key {
        "Enter" => (13, "\r".into()),
        "Tab" => (9, String::new()),
        "Escape" => (27, String::new()),
        "Backspace" => (8, String::new()),
        "Delete" => (46, String::new()),
        "ArrowLeft" => (37, String::new()),
        "ArrowUp" => (38, String::new()),
        "ArrowRight" => (39, String::new()),
        "ArrowDown" => (40, String::new()),
        " " | "Space" => (32, " ".into()),
        other => {
            let c = other.chars().next().unwrap_or(' ');
            (c.to_ascii_uppercase() as u32, other.to_string())
        }
    }
}
