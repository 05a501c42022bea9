//! Rules on what an answer must look like, shared by http and websocket checks: accepted
//! statuses, regexes on a body, rules on fields of a JSON body.

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

/// An accepted HTTP status: `200`, `"2xx"` or `"200-204"`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub enum StatusRule {
    Code(u16),
    Range(u16, u16),
}

impl StatusRule {
    pub fn accepts(&self, status: u16) -> bool {
        match *self {
            StatusRule::Code(c) => c == status,
            StatusRule::Range(lo, hi) => (lo..=hi).contains(&status),
        }
    }
}

impl std::fmt::Display for StatusRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            StatusRule::Code(c) => write!(f, "{c}"),
            StatusRule::Range(lo, hi) if lo % 100 == 0 && hi == lo + 99 => {
                write!(f, "{}xx", lo / 100)
            }
            StatusRule::Range(lo, hi) => write!(f, "{lo}-{hi}"),
        }
    }
}

impl TryFrom<Value> for StatusRule {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        let bad = || format!("`{v}` is not a status code, class (2xx) or range (200-299)");
        let code = |n: u64| -> Result<u16, String> {
            if (100..=599).contains(&n) {
                Ok(n as u16)
            } else {
                Err(bad())
            }
        };
        match &v {
            Value::Number(n) => Ok(StatusRule::Code(code(n.as_u64().ok_or_else(bad)?)?)),
            Value::String(s) => {
                if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
                    let c: u64 = class.parse().map_err(|_| bad())?;
                    let lo = code(c * 100)?;
                    Ok(StatusRule::Range(lo, lo + 99))
                } else if let Some((lo, hi)) = s.split_once('-') {
                    let lo = code(lo.trim().parse().map_err(|_| bad())?)?;
                    let hi = code(hi.trim().parse().map_err(|_| bad())?)?;
                    if lo > hi {
                        return Err(bad());
                    }
                    Ok(StatusRule::Range(lo, hi))
                } else {
                    Ok(StatusRule::Code(code(s.parse().map_err(|_| bad())?)?))
                }
            }
            _ => Err(bad()),
        }
    }
}

/// A regular expression (Rust `regex` syntax), compiled when the config loads.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Pattern(pub Regex);

impl TryFrom<String> for Pattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        compile(&s, false).map(Pattern)
    }
}

/// A regular expression as Go's RE2 reads it (blackbox_exporter's files), matched on bytes:
/// a line from a TCP banner need not be UTF-8. See [`go_source`] for what is translated.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct GoPattern(pub regex::bytes::Regex);

impl TryFrom<String> for GoPattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        regex::bytes::RegexBuilder::new(&go_source(&s))
            .size_limit(1 << 20)
            .build()
            .map(GoPattern)
            .map_err(|e| regex_words(&s, &e.to_string()))
    }
}

impl GoPattern {
    /// A [`Pattern`] of the same Go regex, for rules matched on text.
    pub fn text(s: &str) -> Result<Pattern, String> {
        compile(&go_source(s), false)
            .map(Pattern)
            .map_err(|e| e.replace(&go_source(s), s))
    }
}

/// Go's RE2 syntax in the Rust regex crate's: the two agree but for what is rewritten here.
/// A repeated empty-width assertion (`^+OK`, which Debian's blackbox.yml ships: Go accepts
/// it, Rust refuses it) keeps its assertion once, or drops it when it may occur zero times
/// (`^*`, `^?`); `\Q...\E` becomes the escaped literal.
pub fn go_source(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                if n == 'Q' && !in_class {
                    let mut lit = String::new();
                    while let Some(c) = chars.next() {
                        if c == '\\' && chars.peek() == Some(&'E') {
                            chars.next();
                            break;
                        }
                        lit.push(c);
                    }
                    out.push_str(&regex::escape(&lit));
                    continue;
                }
                let assertion = format!("\\{n}");
                if !in_class && matches!(n, 'A' | 'z' | 'b' | 'B') {
                    push_assertion(&mut out, &assertion, &mut chars);
                } else {
                    out.push_str(&assertion);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal.
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    out.push(chars.next().unwrap_or(']'));
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '^' | '$' if !in_class => push_assertion(&mut out, &c.to_string(), &mut chars),
            _ => out.push(c),
        }
    }
    out
}

/// Writes an empty-width assertion, folding the quantifiers Go allows after it.
fn push_assertion(
    out: &mut String,
    assertion: &str,
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
) {
    let mut optional = false;
    loop {
        match chars.peek() {
            Some('+') => {
                chars.next();
            }
            Some('*' | '?') => {
                chars.next();
                optional = true;
            }
            Some('{') => {
                let rest: String = chars.clone().take_while(|c| *c != '}').collect();
                let closed = chars.clone().nth(rest.chars().count()) == Some('}');
                let ok = closed
                    && rest[1..]
                        .split(',')
                        .all(|n| n.trim().chars().all(|d| d.is_ascii_digit()));
                if !ok {
                    break;
                }
                let min_zero = rest[1..].split(',').next().is_some_and(|n| n.trim() == "0");
                for _ in 0..=rest.chars().count() {
                    chars.next();
                }
                optional |= min_zero;
            }
            _ => break,
        }
        // A lazy or possessive marker after the quantifier changes nothing here.
        if chars.peek() == Some(&'?') {
            chars.next();
        }
    }
    if !optional {
        out.push_str(assertion);
    }
}

fn compile(s: &str, any_case: bool) -> Result<Regex, String> {
    regex::RegexBuilder::new(s)
        .case_insensitive(any_case)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| regex_words(s, &e.to_string()))
}

/// A regex syntax error in one line: the crate draws a multi-line picture whose last line
/// says what is wrong.
fn regex_words(s: &str, text: &str) -> String {
    let why = text
        .lines()
        .last()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    format!("invalid regex `{s}`: {why}")
}

/// One of `starting_patterns`: a regex matched, in any case, against the body of a 503 or
/// the reason of a 1011/1013 close; a match says the target is starting, not down.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Phrase(pub Regex);

impl TryFrom<String> for Phrase {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        compile(&s, true).map(Phrase)
    }
}

impl PartialEq for Phrase {
    fn eq(&self, other: &Phrase) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// What `starting_patterns` is when neither the check nor `defaults` sets it.
pub const STARTING_PHRASES: [&str; 5] = [
    "startup in progress",
    "starting up",
    "warming up",
    "not ready",
    "initializing",
];

/// [`STARTING_PHRASES`], compiled once.
pub fn default_starting() -> &'static [Phrase] {
    static PHRASES: std::sync::LazyLock<Vec<Phrase>> = std::sync::LazyLock::new(|| {
        STARTING_PHRASES
            .iter()
            .filter_map(|p| Phrase::try_from(p.to_string()).ok())
            .collect()
    });
    &PHRASES
}

/// A rule on one field of a JSON body. `path` is dotted (`checks.db.status`, `items.0.id`);
/// exactly one of `equals`, `one_of`, `matches`, `exists` is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRule {
    pub path: String,
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    #[serde(default)]
    pub matches: Option<Pattern>,
    #[serde(default)]
    pub exists: Option<bool>,
}

impl JsonRule {
    pub fn condition_count(&self) -> usize {
        [
            self.equals.is_some(),
            self.one_of.is_some(),
            self.matches.is_some(),
            self.exists.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count()
    }
}

#[cfg(test)]
mod go_tests {
    use super::*;

    #[test]
    fn go_regexes_read_as_go_reads_them() {
        assert_eq!(go_source("^+OK"), "^OK");
        assert_eq!(go_source("^*OK$?"), "OK");
        assert_eq!(go_source("a{2}^{1,3}b"), "a{2}^b");
        assert_eq!(go_source("[$^+]x"), "[$^+]x");
        assert_eq!(go_source(r"\Qa.b\E+"), r"a\.b+");
        assert_eq!(go_source(r"\b+x\+"), r"\bx\+");
        assert_eq!(go_source("PING :([^ ]+)"), "PING :([^ ]+)");
        let p = GoPattern::try_from("^+OK".to_string()).unwrap();
        assert!(!p.0.is_match(b"+OK POP3 ready") && p.0.is_match(b"OK go"));
        assert!(
            GoPattern::try_from("a(".to_string())
                .unwrap_err()
                .contains("`a(`")
        );
    }
}
