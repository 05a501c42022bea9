//! Whether a failed run's target says it is starting: a 503 whose body matches one of the
//! check's `starting_patterns` (or that carries `Retry-After`), or a 1011/1013 close whose
//! reason matches. Such a run fails with reason `starting` instead of its outage reason;
//! the message stays the one that names the status or close code. `starting_patterns: []`
//! turns this off (a 503 is then an outage whatever it says).

use super::result::{Failure, Reason};
use crate::config::spec::Phrase;

/// Turns `f` into a `starting` failure when what the server said matches `patterns`.
pub(crate) fn classify(f: &mut Failure, patterns: &[Phrase]) {
    let Some(said) = f.said.take() else {
        return;
    };
    if patterns.is_empty() {
        return;
    }
    let matched = patterns
        .iter()
        .find_map(|p| p.0.find(&said.words).map(|m| m.as_str().to_string()));
    if matched.is_none() && said.retry_after.is_none() {
        return;
    }
    f.reason = Reason::Starting;
    if let Some(after) = said.retry_after
        && !f.message.contains("Retry-After")
    {
        f.message.push_str(&format!(" (Retry-After: {after})"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::spec::default_starting;

    fn run(words: &str, retry_after: Option<&str>) -> Failure {
        let mut f =
            Failure::new(Reason::HttpStatus, "got HTTP 503").saying(words.as_bytes(), retry_after);
        classify(&mut f, default_starting());
        f
    }

    #[test]
    fn a_target_that_says_it_is_starting_is_starting() {
        for words in [
            r#"{"message":"Startup in progress"}"#,
            "Service NOT READY",
            "warming up, try again",
            "Initializing...",
        ] {
            assert_eq!(run(words, None).reason, Reason::Starting, "{words}");
        }
        let f = run("Service Unavailable", Some("10"));
        assert_eq!(f.reason, Reason::Starting);
        assert_eq!(f.message, "got HTTP 503 (Retry-After: 10)");
    }

    #[test]
    fn an_outage_stays_an_outage() {
        let f = run(r#"{"message":"Database unreachable"}"#, None);
        assert_eq!(f.reason, Reason::HttpStatus);
        assert!(f.said.is_none());
        let mut plain = Failure::new(Reason::HttpStatus, "got HTTP 500");
        classify(&mut plain, default_starting());
        assert_eq!(plain.reason, Reason::HttpStatus);
        let mut off = Failure::new(Reason::HttpStatus, "x").saying(b"starting up", Some("5"));
        classify(&mut off, &[]);
        assert_eq!(
            off.reason,
            Reason::HttpStatus,
            "starting_patterns: [] turns it off"
        );
    }
}
