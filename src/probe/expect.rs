//! Rules on what an answer must look like, applied to an HTTP body or a WebSocket frame:
//! regexes, rules on fields of a JSON body, and the short excerpt a failure shows.

use serde_json::Value;

use crate::config::spec::{JsonRule, Pattern};

const EXCERPT: usize = 200;

/// What is wrong with a body (an HTTP body or a WebSocket frame) under regex and JSON
/// rules, and whether a regex rule failed.
pub fn body_problems(
    matches: &[Pattern],
    not_matches: &[Pattern],
    json: &[JsonRule],
    body: &[u8],
) -> (Vec<String>, bool) {
    let mut problems = Vec::new();
    let text = String::from_utf8_lossy(body);
    let mut regex_failed = false;
    for pattern in matches {
        if !pattern.0.is_match(&text) {
            regex_failed = true;
            problems.push(format!("body does not match `{}`", pattern.0));
        }
    }
    for pattern in not_matches {
        if let Some(m) = pattern.0.find(&text) {
            regex_failed = true;
            problems.push(format!(
                "body matches forbidden `{}` at `{}`",
                pattern.0,
                one_line(m.as_str(), 60)
            ));
        }
    }
    if !json.is_empty() {
        match serde_json::from_slice::<Value>(body) {
            Ok(doc) => problems.extend(json.iter().filter_map(|rule| json_problem(rule, &doc))),
            Err(e) => problems.push(format!("body is not JSON ({e})")),
        }
    }
    (problems, regex_failed)
}

/// Looks up a dotted path (`a.b.0.c`) in a JSON document.
pub fn lookup<'v>(doc: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(doc, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// JSON equality that also lets `200` equal `"200"`, as configs are written by people.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || scalar_text(a).is_some_and(|x| Some(x) == scalar_text(b))
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_problem(rule: &JsonRule, doc: &Value) -> Option<String> {
    let path = &rule.path;
    let found = lookup(doc, path);
    if let Some(want) = rule.exists {
        return match (want, found.is_some()) {
            (true, false) => Some(format!("JSON field `{path}` is missing")),
            (false, true) => Some(format!("JSON field `{path}` is present, expected absent")),
            _ => None,
        };
    }
    let Some(found) = found else {
        return Some(format!("JSON field `{path}` is missing"));
    };
    let shown = one_line(&found.to_string(), 80);
    if let Some(want) = &rule.equals
        && !loosely_equal(found, want)
    {
        return Some(format!("JSON field `{path}` is {shown}, expected {want}"));
    }
    if let Some(options) = &rule.one_of
        && !options.iter().any(|o| loosely_equal(found, o))
    {
        let list: Vec<String> = options
            .iter()
            .map(|o| scalar_text(o).unwrap_or_else(|| o.to_string()))
            .collect();
        return Some(format!(
            "JSON field `{path}` is {shown}, expected one of {}",
            list.join(", ")
        ));
    }
    if let Some(pattern) = &rule.matches {
        let text = scalar_text(found).unwrap_or_else(|| found.to_string());
        if !pattern.0.is_match(&text) {
            return Some(format!(
                "JSON field `{path}` is {shown}, expected to match `{}`",
                pattern.0
            ));
        }
    }
    None
}

/// `%XX` escapes decoded (grpc-message, the credentials of a proxy URL); anything else
/// kept as it is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn excerpt(body: &[u8]) -> String {
    if let Some(what) = binary(body) {
        return format!("{} bytes of {what}, not text", body.len());
    }
    one_line(
        &String::from_utf8_lossy(&body[..body.len().min(EXCERPT * 4)]),
        EXCERPT,
    )
}

/// What a body that is not text is, when it is not: never dumped as bytes.
fn binary(body: &[u8]) -> Option<&'static str> {
    let head = &body[..body.len().min(512)];
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some("gzip-compressed data");
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some("zstd-compressed data");
    }
    // Text has few control characters; a cut multi-byte character at the end is fine.
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.valid_up_to() + 4 >= head.len() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Some("binary data"),
    };
    let control = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .count();
    (control * 10 > text.chars().count().max(1)).then_some("binary data")
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_reach_into_objects_and_arrays() {
        let doc: Value = serde_json::json!({"a": {"b": [{"c": 1}]}, "status": "ok"});
        assert_eq!(lookup(&doc, "a.b.0.c"), Some(&Value::from(1)));
        assert_eq!(lookup(&doc, "status"), Some(&Value::from("ok")));
        assert_eq!(lookup(&doc, "a.x"), None);
    }

    #[test]
    fn numbers_and_strings_compare_loosely() {
        assert!(loosely_equal(&Value::from(200), &Value::from("200")));
        assert!(!loosely_equal(&Value::from("ok"), &Value::from("healthy")));
    }
}
