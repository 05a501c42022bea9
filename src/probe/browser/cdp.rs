//! Chromium over the DevTools protocol, on its pipe transport (`--remote-debugging-pipe`:
//! JSON messages ending in a NUL byte, read from the browser's fd 3, written to its fd 4;
//! no TCP port). A small client of our own, not a CDP crate: the crates either hide
//! certificate errors by default, drop events their generated types cannot parse, or bring
//! a second WebSocket stack and threads (BROWSER.md); this one parses exactly the events
//! the check reads, leniently, and needs nothing beyond tokio and serde_json.
//!
//! One [`Browser`] is one Chromium process group with its own temporary profile. Commands
//! are multiplexed by id; events are routed by `sessionId` to the run that attached to the
//! page. Dropping the last handle kills the whole group and removes the profile, so no
//! Chromium outlives its run's browser, and when pathwatch itself dies the closed pipe
//! makes Chromium exit.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

use crate::config::BrowserConfig;

/// The largest message accepted from the browser (a full-page screenshot is a few MiB).
const MAX_MESSAGE: u64 = 64 << 20;
/// How long the browser has to answer its first command.
const READY: Duration = Duration::from_secs(15);

/// An event from the browser: `method`, `params`, and the page session it belongs to.
#[derive(Debug)]
pub struct Event {
    pub method: String,
    pub params: Value,
}

/// Why a command got no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CdpError {
    /// The browser exited or its pipe broke (the words say how).
    Gone(String),
    /// No answer within the deadline: the browser hangs.
    Timeout(String),
    /// The browser answered with an error (e.g. a bad selector, a closed target).
    Refused(String),
}

impl std::fmt::Display for CdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CdpError::Gone(why) => write!(f, "the browser {why}"),
            CdpError::Timeout(method) => write!(f, "the browser did not answer {method}"),
            CdpError::Refused(why) => write!(f, "the browser refused: {why}"),
        }
    }
}

type Reply = oneshot::Sender<Result<Value, String>>;

pub struct Browser {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<u64, Reply>>,
    sessions: Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>,
    next_id: AtomicU64,
    /// Set when the browser is gone, with how.
    gone: Mutex<Option<String>>,
    /// The process group (the browser's own pid: it was started as a group leader).
    pgid: Option<u32>,
    child: Mutex<Option<Child>>,
    profile: PathBuf,
    /// The last lines Chromium wrote to stderr (a failed start says why there).
    stderr: Arc<Mutex<VecDeque<String>>>,
    /// Runs started on this browser (it is recycled after `recycle_after`).
    pub runs: AtomicU64,
    /// e.g. `Chrome/156.0.8078.129`.
    pub product: std::sync::OnceLock<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The Chromium to run: `browser.path`, else the first of the usual names on PATH.
pub fn find_binary(settings: &BrowserConfig) -> Result<PathBuf, String> {
    if let Some(path) = &settings.path {
        return if path.is_file() {
            Ok(path.clone())
        } else {
            Err(format!(
                "browser.path {} does not exist: install Chromium (Debian: apt-get install chromium) or fix the path",
                path.display()
            ))
        };
    }
    const NAMES: [&str; 4] = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ];
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in NAMES {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err("no Chromium is installed (looked for chromium, chromium-browser, google-chrome on PATH): install one (Debian: apt-get install chromium; the image: --build-arg BROWSER=1) or set browser.path".into())
}

static PROFILES: AtomicU64 = AtomicU64::new(0);

impl Browser {
    /// Starts Chromium headless on a fresh profile that trusts `cas` (an NSS database in
    /// the profile's home), and waits until it answers.
    pub async fn launch(
        settings: &BrowserConfig,
        cas: &[CertificateDer<'static>],
    ) -> Result<Arc<Browser>, String> {
        let binary = find_binary(settings)?;
        let profile = std::env::temp_dir().join(format!(
            "pathwatch-browser-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        let home = profile.join("home");
        std::fs::create_dir_all(&home)
            .map_err(|e| format!("cannot make the browser profile {}: {e}", profile.display()))?;
        if !cas.is_empty()
            && let Err(e) = trust(&home, cas).await
        {
            let _ = std::fs::remove_dir_all(&profile);
            return Err(e);
        }
        let mut cmd = Command::new("sh");
        // fd 3 is what the browser reads commands from, fd 4 where it writes answers: our
        // stdin and stdout pipes, moved there by the shell before it becomes Chromium.
        cmd.arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(&binary)
            .args(flags(settings, &profile))
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            let _ = std::fs::remove_dir_all(&profile);
            format!("cannot start {}: {e}", binary.display())
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the browser's pipes did not open".into());
        };
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(keep_tail(stderr, tail.clone()));
        let browser = Arc::new(Browser {
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            gone: Mutex::new(None),
            pgid: child.id(),
            child: Mutex::new(Some(child)),
            profile,
            stderr: tail,
            runs: AtomicU64::new(0),
            product: std::sync::OnceLock::new(),
        });
        tokio::spawn(read_loop(Arc::downgrade(&browser), stdout));
        let version = browser
            .call(None, "Browser.getVersion", json!({}), READY)
            .await
            .map_err(|e| {
                format!(
                    "{} did not start: {e}{}",
                    binary.display(),
                    browser.last_words()
                )
            })?;
        let product = version["product"]
            .as_str()
            .unwrap_or("Chromium")
            .to_string();
        let _ = browser.product.set(product);
        Ok(browser)
    }

    /// What Chromium last said on stderr, for a failed start ("" when nothing useful).
    fn last_words(&self) -> String {
        let tail = lock(&self.stderr);
        if tail.iter().any(|l| l.contains("sandbox")) {
            return "; its sandbox cannot start here (no user namespaces, as in most containers): set browser.no_sandbox: true (the page then runs with pathwatch's rights: keep pathwatch non-root)".into();
        }
        let line = tail
            .iter()
            .rev()
            .find(|l| l.contains("ERROR") || l.contains("FATAL") || l.contains("rror"));
        match line {
            Some(l) => format!(
                "; it said: {}",
                crate::probe::expect::excerpt(l.trim().as_bytes())
            ),
            None => String::new(),
        }
    }

    /// Whether the browser is gone (exited, pipe broken, or killed).
    pub fn gone(&self) -> Option<String> {
        lock(&self.gone).clone()
    }

    /// Sends one command (to a page session, or to the browser) and waits for its answer.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        within: Duration,
    ) -> Result<Value, CdpError> {
        if let Some(why) = self.gone() {
            return Err(CdpError::Gone(why));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = Value::String(s.to_string());
        }
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        let written = {
            let mut stdin = self.stdin.lock().await;
            tokio::time::timeout(within, stdin.write_all(&bytes)).await
        };
        if !matches!(written, Ok(Ok(()))) {
            lock(&self.pending).remove(&id);
            self.mark_gone("stopped reading its pipe");
            return Err(CdpError::Gone("stopped reading its pipe".into()));
        }
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(message))) => Err(CdpError::Refused(message)),
            Ok(Err(_)) => Err(CdpError::Gone(
                self.gone().unwrap_or_else(|| "exited".into()),
            )),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(CdpError::Timeout(method.to_string()))
            }
        }
    }

    /// Events of the page session `session` from now on.
    pub fn subscribe(&self, session: &str) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.sessions).insert(session.to_string(), tx);
        rx
    }

    pub fn unsubscribe(&self, session: &str) {
        lock(&self.sessions).remove(session);
    }

    fn mark_gone(&self, why: &str) {
        lock(&self.gone).get_or_insert_with(|| why.to_string());
        // Every waiting command learns it at once; every run's events end.
        lock(&self.pending).clear();
        lock(&self.sessions).clear();
    }

    /// Ends the browser's whole process group now (idempotent).
    pub fn kill(&self) {
        self.mark_gone("was stopped");
        if let Some(pgid) = self
            .pgid
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::Kill);
        }
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.start_kill();
            // Reaped here when it already exited, else by tokio's orphan reaper.
            let _ = child.try_wait();
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }

    fn dispatch(&self, message: Value) {
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let Some(reply) = lock(&self.pending).remove(&id) else {
                return;
            };
            let answer = match message.get("error") {
                Some(e) => Err(e["message"].as_str().unwrap_or("error").to_string()),
                None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
            };
            let _ = reply.send(answer);
            return;
        }
        let Some(session) = message.get("sessionId").and_then(Value::as_str) else {
            return;
        };
        let sessions = lock(&self.sessions);
        if let Some(tx) = sessions.get(session) {
            let event = Event {
                method: message["method"].as_str().unwrap_or_default().to_string(),
                params: message.get("params").cloned().unwrap_or(Value::Null),
            };
            let _ = tx.send(event);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The flags of a headless Chromium that reaches nothing on its own (no updates, sync,
/// metrics or first-run pages) and never ignores certificate errors.
fn flags(settings: &BrowserConfig, profile: &Path) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--headless",
        "--remote-debugging-pipe",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--disable-breakpad",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
        "--no-pings",
        "--mute-audio",
        "--hide-scrollbars",
        "--password-store=basic",
        "--window-size=1280,800",
    ]
    .map(String::from)
    .to_vec();
    flags.push(format!(
        "--user-data-dir={}",
        profile.join("data").display()
    ));
    let as_root = rustix::process::geteuid().is_root();
    if settings.no_sandbox.unwrap_or(as_root) {
        flags.push("--no-sandbox".into());
    }
    if !settings.hosts.is_empty() {
        let rules: Vec<String> = settings
            .hosts
            .iter()
            .map(|(name, ip)| match ip {
                std::net::IpAddr::V6(v6) => format!("MAP {name} [{v6}]"),
                v4 => format!("MAP {name} {v4}"),
            })
            .collect();
        flags.push(format!("--host-resolver-rules={}", rules.join(",")));
    }
    flags.extend(settings.flags.iter().cloned());
    flags.push("about:blank".into());
    flags
}

/// Makes the NSS database Chromium reads trust from (`$HOME/.pki/nssdb`) and adds `cas`.
async fn trust(home: &Path, cas: &[CertificateDer<'static>]) -> Result<(), String> {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).map_err(|e| format!("cannot make {}: {e}", db.display()))?;
    let dir = format!("sql:{}", db.display());
    let certutil = |args: Vec<String>| async move {
        let out = Command::new("certutil")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    "the check trusts a CA (tls.ca_file), which Chromium reads only from an NSS database, and certutil is missing: install it (Debian: apt-get install libnss3-tools)".to_string()
                } else {
                    format!("cannot run certutil: {e}")
                }
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "certutil could not fill the browser's NSS database: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let s = |v: &str| v.to_string();
    certutil(vec![s("-N"), s("--empty-password"), s("-d"), dir.clone()]).await?;
    for (i, ca) in cas.iter().enumerate() {
        let file = home.join(format!("ca-{i}.der"));
        std::fs::write(&file, ca.as_ref())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        certutil(vec![
            s("-A"),
            s("-d"),
            dir.clone(),
            s("-n"),
            format!("pathwatch-ca-{i}"),
            s("-t"),
            s("C,,"),
            s("-i"),
            file.display().to_string(),
        ])
        .await?;
    }
    Ok(())
}

async fn read_loop(browser: Weak<Browser>, stdout: ChildStdout) {
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let mut buf = Vec::new();
    let why = loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_MESSAGE)
            .read_until(0, &mut buf)
            .await
        {
            Ok(0) => break "exited",
            Ok(_) if buf.last() != Some(&0) => {
                break if buf.len() as u64 >= MAX_MESSAGE {
                    "sent a message over 64 MiB"
                } else {
                    "exited"
                };
            }
            Ok(_) => {}
            Err(_) => break "closed its pipe",
        }
        let Some(me) = browser.upgrade() else { return };
        match serde_json::from_slice::<Value>(&buf[..buf.len() - 1]) {
            Ok(message) => me.dispatch(message),
            Err(_) => tracing::debug!("The browser sent a message that is not JSON; ignored."),
        }
    };
    if let Some(me) = browser.upgrade() {
        me.mark_gone(why);
    }
}

async fn keep_tail(stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut t = lock(&tail);
        if t.len() == 20 {
            t.pop_front();
        }
        t.push_back(line.chars().take(300).collect());
    }
}
