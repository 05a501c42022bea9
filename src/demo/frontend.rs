//! `/app`: a small chat frontend for browser checks. A login form (`#email`,
//! `#password`, `#sign-in`), then a message box (`#message`, `#send`) and a reply area
//! (`#reply`); a config block shows the WebSocket URL the page uses. It logs in with
//! `POST /auth/login`, opens `/ws?auth=required&token=…` (the page's own query, e.g.
//! `fault=drop:tool_completed`, is passed on) and shows `agent_completed`'s answer.
//!
//! Faults, by `?frontend=`: `wrong-host` (the socket goes to `api.staging.demo.test`, a
//! name the demo certificate's `*.demo.test` does not cover: the incident), `script-error`
//! (sending throws), `no-reply` (the answer arrives but is never shown), `slow-paint` (the
//! page paints nothing for 1.5 s).

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

pub(super) async fn page(Query(q): Query<HashMap<String, String>>) -> Response {
    let fault = q.get("frontend").map(String::as_str).unwrap_or("");
    let known = ["", "wrong-host", "script-error", "no-reply", "slow-paint"];
    if !known.contains(&fault) {
        let why = format!(
            "unknown frontend fault `{fault}` (wrong-host, script-error, no-reply, slow-paint)"
        );
        return (axum::http::StatusCode::BAD_REQUEST, why).into_response();
    }
    let hidden = if fault == "slow-paint" { " hidden" } else { "" };
    Html(PAGE.replace("{fault}", fault).replace("{hidden}", hidden)).into_response()
}

pub(super) async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT).into_response()
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo agent chat</title>
<style>body{font:16px system-ui,sans-serif;margin:2rem;max-width:40rem}input,button{font:inherit;padding:.3rem}#reply{min-height:2rem;margin-top:1rem;padding:.5rem;border:1px solid #ccc}pre{background:#f4f4f4;padding:.5rem}</style>
</head><body data-fault="{fault}"{hidden}>
<h1>Demo agent chat</h1>
<form id="login"><input id="email" type="email" placeholder="email" autocomplete="username">
<input id="password" type="password" placeholder="password" autocomplete="current-password">
<button id="sign-in" type="submit">Sign in</button></form>
<p id="status">Signed out.</p>
<form id="chat" hidden><input id="message" placeholder="Ask the agent" autocomplete="off">
<button id="send" type="submit">Send</button></form>
<div id="reply"></div>
<h2>Config</h2><pre id="config"></pre>
<script src="/app/app.js"></script>
</body></html>
"#;

const SCRIPT: &str = r#"// The demo chat frontend (pathwatch demo backend).
const fault = document.body.dataset.fault;
const secure = location.protocol === 'https:';
const host = fault === 'wrong-host' ? 'api.staging.demo.test' + (location.port ? ':' + location.port : '') : location.host;
const passOn = new URLSearchParams(location.search);
passOn.delete('frontend');
const config = {
  ws_url: (secure ? 'wss://' : 'ws://') + host + '/ws',
  sse_url: location.origin + '/sse',
  login_url: location.origin + '/auth/login',
};
document.getElementById('config').textContent = JSON.stringify(config, null, 2);
if (fault === 'slow-paint') setTimeout(() => { document.body.hidden = false; }, 1500);
const status = (t) => { document.getElementById('status').textContent = t; };
let socket = null;

function connect(token) {
  const q = new URLSearchParams(passOn);
  q.set('auth', 'required');
  q.set('token', token);
  socket = new WebSocket(config.ws_url + '?' + q.toString());
  socket.onopen = () => status('Connected.');
  socket.onerror = () => status('Cannot reach the agent.');
  socket.onclose = () => status('Disconnected.');
  socket.onmessage = (m) => {
    let frame;
    try { frame = JSON.parse(m.data); } catch (e) { return; }
    const events = frame.type === 'event_batch' ? frame.events : [frame];
    for (const ev of events) {
      const type = ev.type === 'system_message' ? ev.event : ev.type;
      const data = ev.data || ev.payload || ev;
      if (type === 'agent_thinking') status('The agent is thinking…');
      if (type === 'agent_completed' && fault !== 'no-reply') {
        document.getElementById('reply').textContent = data.final_response || 'Done.';
      }
    }
  };
}

document.getElementById('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const body = JSON.stringify({
    email: document.getElementById('email').value,
    password: document.getElementById('password').value,
  });
  const answer = await fetch(config.login_url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  if (!answer.ok) { status('Sign-in failed: ' + answer.status); return; }
  const { access_token } = await answer.json();
  document.getElementById('login').hidden = true;
  document.getElementById('chat').hidden = false;
  status('Signed in.');
  connect(access_token);
});

document.getElementById('chat').addEventListener('submit', (e) => {
  e.preventDefault();
  const box = document.getElementById('message');
  if (fault === 'script-error') { const reply = undefined; reply.render(box.value); }
  const message = JSON.stringify({ type: 'user_message', payload: { content: box.value } });
  if (socket.readyState === WebSocket.CONNECTING) socket.addEventListener('open', () => socket.send(message));
  else socket.send(message);
  box.value = '';
});
"#;
