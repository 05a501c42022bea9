//! The browsers of a daemon and the bound on pages open at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rustls::pki_types::CertificateDer;

use super::cdp::Browser;
use crate::config::BrowserConfig;

/// The browsers of one daemon: one per set of trusted CAs (an NSS database is per
/// browser), started on first use, restarted when gone, recycled after
/// `recycle_after` runs; and the bound on pages open at once.
pub struct Pool {
    pub settings: BrowserConfig,
    pages: Arc<tokio::sync::Semaphore>,
    browsers: tokio::sync::Mutex<HashMap<Vec<Vec<u8>>, Arc<Browser>>>,
}

impl Pool {
    pub fn new(settings: BrowserConfig) -> Pool {
        Pool {
            pages: Arc::new(tokio::sync::Semaphore::new(settings.max_pages.max(1))),
            settings,
            browsers: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A page slot (`browser.max_pages`), held for the run.
    pub async fn page_slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.pages
            .clone()
            .acquire_owned()
            .await
            .expect("the page semaphore is never closed")
    }

    /// A running browser that trusts `cas`, started if there is none (or it is gone, or
    /// it served its runs).
    pub async fn browser(&self, cas: &[CertificateDer<'static>]) -> Result<Arc<Browser>, String> {
        let key: Vec<Vec<u8>> = cas.iter().map(|c| c.as_ref().to_vec()).collect();
        let mut browsers = self.browsers.lock().await;
        if let Some(b) = browsers.get(&key) {
            let worn = b.runs.load(Ordering::Relaxed) >= self.settings.recycle_after;
            if b.gone().is_none() && !worn {
                b.runs.fetch_add(1, Ordering::Relaxed);
                return Ok(b.clone());
            }
            if let Some(why) = b.gone() {
                tracing::warn!(why = %why, "The browser is gone; starting a new one.");
            }
            // A worn browser ends when its last run does (its last handle drops).
            browsers.remove(&key);
        }
        let b = Browser::launch(&self.settings, cas).await?;
        tracing::info!(product = %b.product.get().map_or("?", |p| p.as_str()), "Browser started.");
        b.runs.fetch_add(1, Ordering::Relaxed);
        browsers.insert(key, b.clone());
        Ok(b)
    }

    /// Kills `browser` (it hangs) so the next run starts a new one.
    pub async fn discard(&self, browser: &Arc<Browser>) {
        browser.kill();
        self.browsers
            .lock()
            .await
            .retain(|_, b| !Arc::ptr_eq(b, browser));
    }

    /// Ends every browser now (shutdown, `pathwatch check` done).
    pub async fn close(&self) {
        for (_, b) in self.browsers.lock().await.drain() {
            b.kill();
        }
    }
}
