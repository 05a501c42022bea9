//! Getting the token of an agent pipeline check: a fixed value, or a login over HTTP
//! (password or test-bypass endpoint) whose token is reused until shortly before
//! `expires_in`; and the WebSocket ticket for the `ticket` transport. A failed login fails
//! the check with reason `login`: a token is never made up.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::config::spec::{AgentSpec, LoginSpec};
use crate::probe::Prober;
use crate::probe::expect::{excerpt, lookup};
use crate::probe::request::{Call, call};
use crate::probe::result::{Failure, Phase, Reason};
use crate::probe::timing::Timeline;

/// Tokens by login (URL, headers, body), with the instant they stop being reused.
#[derive(Default)]
pub struct TokenCache(Mutex<HashMap<u64, (String, Instant)>>);

impl TokenCache {
    fn get(&self, key: u64) -> Option<String> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn put(&self, key: u64, token: String, until: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, (token, until));
    }
}

fn key(login: &LoginSpec) -> u64 {
    let mut h = DefaultHasher::new();
    login.url.hash(&mut h);
    login.headers.hash(&mut h);
    login.body.to_string().hash(&mut h);
    h.finish()
}

/// How long a token is reused: its lifetime less 10% (at least 30 s, at most 5 min) of margin.
fn reuse_for(expires_in: f64) -> Duration {
    let life = Duration::from_secs_f64(expires_in.clamp(0.0, 86_400.0 * 30.0));
    let margin = (life / 10).clamp(Duration::from_secs(30), Duration::from_secs(300));
    life.saturating_sub(margin)
}

/// The token for this run, if the check uses one.
pub async fn token(
    p: &Prober,
    tl: &mut Timeline,
    spec: &AgentSpec,
) -> Result<Option<String>, Failure> {
    if let Some(v) = &spec.token.value {
        return Ok(Some(v.clone()));
    }
    let Some(login) = &spec.login else {
        return Ok(None);
    };
    let cache_key = key(login);
    if let Some(t) = p.tokens.get(cache_key) {
        tl.add(Phase::Login, Duration::ZERO);
        return Ok(Some(t));
    }
    let Some(url) = &login.parsed_url else {
        return Err(Failure::new(Reason::Login, "login URL was not validated"));
    };
    let body = (!login.body.is_null()).then_some(&login.body);
    let req = Call {
        url,
        method: &login.method,
        headers: login.headers.clone(),
        json_body: body,
        form: None,
        tls: &spec.tls,
    };
    let (status, answer) = call(p, tl, Phase::Login, req)
        .await
        .map_err(|f| request_failure(f, "login"))?;
    let status_text = crate::probe::result::status_words(status);
    let at = crate::secrets::display_url(url);
    if !status.is_success() {
        let body = if answer.is_empty() {
            String::new()
        } else {
            format!("; body: {}", excerpt(&answer))
        };
        let failure = Failure::new(
            Reason::Login,
            format!("login at {at} answered HTTP {status_text}{body}"),
        )
        .in_phase(Phase::Login);
        if status.as_u16() == 503 {
            return Err(failure.saying(&answer, None));
        }
        return Err(failure);
    }
    let doc: Value = serde_json::from_slice(&answer).map_err(|e| {
        Failure::new(
            Reason::Login,
            format!("login at {at} answered {status} with a body that is not JSON ({e})"),
        )
        .in_phase(Phase::Login)
    })?;
    let Some(token) = lookup(&doc, &login.token_path)
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return Err(Failure::new(
            Reason::Login,
            format!(
                "login at {at} answered {status} without a token at `{}`",
                login.token_path
            ),
        )
        .in_phase(Phase::Login));
    };
    if let Some(expires) = lookup(&doc, &login.expires_path).and_then(Value::as_f64) {
        p.tokens.put(
            cache_key,
            token.to_string(),
            Instant::now() + reuse_for(expires),
        );
    }
    Ok(Some(token.to_string()))
}

/// A single-use WebSocket ticket bought with the token (`ticket` transport).
pub async fn ticket(
    p: &Prober,
    tl: &mut Timeline,
    spec: &AgentSpec,
    token: &str,
) -> Result<String, Failure> {
    let t = &spec.token;
    let Some(url) = &t.parsed_ticket_url else {
        return Err(Failure::new(
            Reason::Login,
            "transport `ticket` needs `token.ticket_url`",
        ));
    };
    let headers = [("Authorization".to_string(), format!("Bearer {token}"))]
        .into_iter()
        .collect();
    let req = Call {
        url,
        method: "POST",
        headers,
        json_body: Some(&t.ticket_body),
        form: None,
        tls: &spec.tls,
    };
    let (status, answer) = call(p, tl, Phase::Login, req)
        .await
        .map_err(|f| request_failure(f, "ticket"))?;
    let status_text = crate::probe::result::status_words(status);
    let at = crate::secrets::display_url(url);
    if !status.is_success() {
        return Err(Failure::new(
            Reason::Login,
            format!(
                "ticket endpoint {at} answered HTTP {status_text}; body: {}",
                excerpt(&answer)
            ),
        )
        .in_phase(Phase::Login));
    }
    let doc: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
    lookup(&doc, &t.ticket_path)
        .and_then(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        })
        .ok_or_else(|| {
            Failure::new(
                Reason::Login,
                format!(
                    "ticket endpoint {at} answered {status} without `{}`",
                    t.ticket_path
                ),
            )
            .in_phase(Phase::Login)
        })
}

/// A login or ticket request that got no usable answer: `timeout` when time ran out (the
/// README promises `timeout` names its phase), `login` for everything else.
fn request_failure(f: Failure, what: &str) -> Failure {
    let reason = if f.reason == Reason::Timeout {
        Reason::Timeout
    } else {
        Reason::Login
    };
    Failure::new(reason, format!("{what} request failed: {}", f.message)).in_phase(Phase::Login)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        assert_eq!(reuse_for(900.0), Duration::from_secs(810));
        assert_eq!(reuse_for(60.0), Duration::from_secs(30));
        assert_eq!(reuse_for(10.0), Duration::ZERO);
        assert_eq!(reuse_for(86_400.0), Duration::from_secs(86_100));
    }
}
