//! Keeping secrets out of everything pathwatch prints: values that came from `${...}`
//! interpolation are replaced in messages, and URLs are shown without credentials or
//! query values.

use std::sync::Arc;

use url::Url;

pub const REDACTED: &str = "<redacted>";

/// The interpolated values of the config, longest first so overlapping secrets redact fully.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets(Arc<Vec<String>>);

impl Secrets {
    pub fn new(mut values: Vec<String>) -> Self {
        // Very short values (a port, "1") would shred every message; they are not secrets.
        values.retain(|v| v.len() >= 4);
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets(Arc::new(values))
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in self.0.iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

/// A URL safe to print: no user info, query values replaced.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    let mut text = shown.to_string();
    if url.query().is_some() {
        // Assembled by hand: `set_query` would percent-encode the marker.
        let keys: Vec<String> = url
            .query_pairs()
            .map(|(k, _)| format!("{k}={REDACTED}"))
            .collect();
        text.push('?');
        text.push_str(&keys.join("&"));
    }
    text
}

/// A URL or a relative reference (a `Location` header) safe to print, like [`display_url`].
pub fn display_str(text: &str) -> String {
    if let Ok(url) = Url::parse(text) {
        return display_url(&url);
    }
    match text.split_once('?') {
        Some((path, _)) => format!("{path}?{REDACTED}"),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_longest_first_and_skips_trivial_values() {
        let s = Secrets::new(vec!["abc".into(), "token123".into(), "token123456".into()]);
        assert_eq!(
            s.redact("x token123456 y token123 abc"),
            "x <redacted> y <redacted> abc"
        );
    }

    #[test]
    fn urls_lose_credentials_and_query_values() {
        let u = Url::parse("https://user:pw@h.example/ws?token=abc&x=1").unwrap();
        assert_eq!(
            display_url(&u),
            "https://h.example/ws?token=<redacted>&x=<redacted>"
        );
    }
}
