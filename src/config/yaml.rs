//! YAML text to a `serde_json::Value` plus the line:column of every node, so config errors
//! found later (by serde or by validation) can point at the file position of a field path.
//! Also owns `${ENV}` / `${file:/path}` interpolation of string scalars, and remembers the
//! interpolated values so they can be redacted from every message.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based.
    pub line: usize,
    /// 1-based.
    pub col: usize,
}

impl Pos {
    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// A parsed document: the value tree and where each path sits in the file.
#[derive(Debug, Default)]
pub struct Doc {
    pub value: Value,
    /// Field path (`checks[2].timeout`) to the position of its value.
    values: HashMap<String, Pos>,
    /// Field path to the position of its key (mapping entries only).
    keys: HashMap<String, Pos>,
    /// Values that came from `${...}` interpolation: secrets until proven otherwise.
    pub secrets: Vec<String>,
}

impl Doc {
    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn position(&self, path: &str, prefer_key: bool) -> Option<Pos> {
        let mut p = path.to_string();
        loop {
            let hit = if prefer_key {
                self.keys.get(&p).or_else(|| self.values.get(&p))
            } else {
                self.values.get(&p).or_else(|| self.keys.get(&p))
            };
            if let Some(pos) = hit {
                return Some(*pos);
            }
            if p.is_empty() {
                return None;
            }
            p = parent(&p).to_string();
        }
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ``.
pub fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

pub fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// An error with a position (when known) and a field path (when known).
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub pos: Option<Pos>,
    pub path: String,
    pub message: String,
}

/// Deepest nesting accepted; real configs stay under ten.
const MAX_DEPTH: usize = 64;

/// Most values a config may hold, aliases expanded: 10,000 checks take about 70,000.
const MAX_NODES: usize = 250_000;

/// Most bytes of scalar text a config may hold, aliases expanded (an alias bomb of long
/// strings is small on disk and huge in memory).
const MAX_BYTES: usize = 32 << 20;

/// Looks up `${NAME}` variables; a seam so tests need not touch the process environment.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Parses YAML; `env` expands `${...}` (None: every scalar is read as written).
pub fn parse(text: &str, env: Option<EnvLookup<'_>>) -> Result<Doc, Vec<Located>> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
        depth: 0,
        doc: Doc::default(),
        errors: Vec::new(),
        env,
    };
    let value = b.document();
    match value {
        Ok(v) if b.errors.is_empty() => {
            b.doc.value = v;
            Ok(b.doc)
        }
        Ok(_) => Err(b.errors),
        Err(fatal) => {
            b.errors.push(fatal);
            Err(b.errors)
        }
    }
}

struct Builder<'a, 'e> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    /// Anchored values with their node counts and scalar bytes.
    anchors: HashMap<usize, (Value, usize, usize)>,
    /// Nodes built so far, aliases counted at their expanded size.
    nodes: usize,
    /// Scalar bytes so far, aliases counted at their expanded size.
    bytes: usize,
    /// Current nesting of sequences and mappings.
    depth: usize,
    doc: Doc,
    /// Errors that do not stop parsing (bad interpolation, duplicate keys).
    errors: Vec<Located>,
    env: Option<EnvLookup<'e>>,
}

impl<'a> Builder<'a, '_> {
    fn next(&mut self) -> Result<(Event<'a>, Span), Located> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(Located {
                pos: Some(Pos {
                    line: e.marker().line(),
                    col: e.marker().col() + 1,
                }),
                path: String::new(),
                message: format!("YAML syntax error: {}", e.info()),
            }),
            None => Err(Located {
                pos: None,
                path: String::new(),
                message: "unexpected end of YAML".into(),
            }),
        }
    }

    fn document(&mut self) -> Result<Value, Located> {
        let mut value = Value::Null;
        let mut docs = 0;
        loop {
            let (ev, span) = self.next()?;
            match ev {
                Event::StreamStart | Event::DocumentEnd => {}
                Event::StreamEnd => return Ok(value),
                Event::DocumentStart(_) => {
                    docs += 1;
                    if docs > 1 {
                        return Err(Located {
                            pos: Some(Pos::of(&span)),
                            path: String::new(),
                            message: "a config file holds one YAML document, found a second".into(),
                        });
                    }
                    let (ev, span) = self.next()?;
                    value = self.node(ev, span, "")?;
                }
                other => {
                    return Err(Located {
                        pos: Some(Pos::of(&span)),
                        path: String::new(),
                        message: format!("unexpected YAML event {other:?}"),
                    });
                }
            }
        }
    }

    fn node(&mut self, ev: Event<'a>, span: Span, path: &str) -> Result<Value, Located> {
        let pos = Pos::of(&span);
        self.doc.values.insert(path.to_string(), pos);
        let (before, bytes_before) = (self.nodes, self.bytes);
        self.nodes += 1;
        let opens = matches!(ev, Event::SequenceStart(..) | Event::MappingStart(..));
        if opens {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(Located {
                    pos: Some(pos),
                    path: String::new(),
                    message: format!("the config nests deeper than {MAX_DEPTH} levels"),
                });
            }
        }
        let (value, anchor) = match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                self.bytes += text.len();
                (self.scalar(&text, style, pos, path), anchor)
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some((v, size, bytes)) => {
                    // Checked before the copy is made: the copy is what costs memory.
                    self.nodes += size;
                    self.bytes += bytes;
                    self.too_big(pos, path)?;
                    (v.clone(), 0)
                }
                None => {
                    return Err(Located {
                        pos: Some(pos),
                        path: path.to_string(),
                        message: "alias to an unknown anchor".into(),
                    });
                }
            },
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let item_path = index(path, items.len());
                    items.push(self.node(ev, span, &item_path)?);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => (self.mapping(path)?, anchor),
            other => {
                return Err(Located {
                    pos: Some(pos),
                    path: path.to_string(),
                    message: format!("unexpected YAML event {other:?}"),
                });
            }
        };
        if opens {
            self.depth -= 1;
        }
        self.too_big(pos, path)?;
        if anchor != 0 {
            let size = (self.nodes - before, self.bytes - bytes_before);
            self.anchors.insert(anchor, (value.clone(), size.0, size.1));
        }
        Ok(value)
    }

    /// Aliases of aliases grow exponentially ("billion laughs"): the expansion is bounded
    /// in values and in bytes.
    fn too_big(&self, pos: Pos, path: &str) -> Result<(), Located> {
        let message = if self.nodes > MAX_NODES {
            format!("the config expands to more than {MAX_NODES} values (through aliases?)")
        } else if self.bytes > MAX_BYTES {
            format!(
                "the config expands to more than {} MiB of text (through aliases?)",
                MAX_BYTES >> 20
            )
        } else {
            return Ok(());
        };
        Err(Located {
            pos: Some(pos),
            path: path.to_string(),
            message,
        })
    }

    fn mapping(&mut self, path: &str) -> Result<Value, Located> {
        let mut map = Map::new();
        loop {
            let (ev, span) = self.next()?;
            let key_pos = Pos::of(&span);
            let key = match ev {
                Event::MappingEnd => break,
                Event::Scalar(text, ..) => text.into_owned(),
                _ => {
                    return Err(Located {
                        pos: Some(key_pos),
                        path: path.to_string(),
                        message: "mapping keys must be plain strings".into(),
                    });
                }
            };
            if key == "<<" {
                return Err(Located {
                    pos: Some(key_pos),
                    path: path.to_string(),
                    message:
                        "YAML merge keys (<<) are not supported; repeat the keys or use `defaults:`"
                            .into(),
                });
            }
            let entry_path = child(path, &key);
            let (ev, span) = self.next()?;
            let value = self.node(ev, span, &entry_path)?;
            if map.contains_key(&key) {
                self.errors.push(Located {
                    pos: Some(key_pos),
                    path: entry_path.clone(),
                    message: format!("duplicate key `{key}`"),
                });
                continue;
            }
            self.doc.keys.insert(entry_path, key_pos);
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }

    fn scalar(&mut self, text: &str, style: ScalarStyle, pos: Pos, path: &str) -> Value {
        let text = if let Some(env) = self.env.filter(|_| text.contains("${")) {
            match interpolate(text, env) {
                Ok((out, secrets)) => {
                    self.doc
                        .secrets
                        .extend(secrets.into_iter().filter(|s| !s.is_empty()));
                    out
                }
                Err(message) => {
                    self.errors.push(Located {
                        pos: Some(pos),
                        path: path.to_string(),
                        message,
                    });
                    return Value::Null;
                }
            }
        } else {
            text.to_string()
        };
        if style != ScalarStyle::Plain {
            return Value::String(text);
        }
        plain_scalar(text)
    }
}

/// YAML 1.2 core schema for plain scalars.
fn plain_scalar(text: String) -> Value {
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if looks_numeric
        && text.bytes().any(|b| b.is_ascii_digit())
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

/// Expands `${NAME}` (environment) and `${file:/path}` (file content, one trailing newline
/// trimmed). `$${` is a literal `${`. Returns the text and the substituted values.
pub fn interpolate(text: &str, env: EnvLookup<'_>) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut secrets = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest.as_bytes()[i - 1] == b'$' {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated `${` in value (write `$${` for a literal)".to_string())?;
        let name = &after[..end];
        let value = if let Some(path) = name.strip_prefix("file:") {
            let content = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `${{file:{path}}}`: {e}"))?;
            content
                .strip_suffix('\n')
                .map(|s| s.strip_suffix('\r').unwrap_or(s))
                .unwrap_or(&content)
                .to_string()
        } else {
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("`${{{name}}}` is not a valid variable name"));
            }
            env(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?
        };
        out.push_str(&value);
        secrets.push(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, secrets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn positions_follow_paths() {
        let doc = parse(
            "a: 1\nchecks:\n  - name: x\n    timeout: 5s\n",
            Some(&no_env),
        )
        .unwrap();
        assert_eq!(
            doc.position("checks[0].timeout", false),
            Some(Pos { line: 4, col: 14 })
        );
        assert_eq!(
            doc.position("checks[0].timeout", true),
            Some(Pos { line: 4, col: 5 })
        );
        assert_eq!(
            doc.position("checks[0].nothing", false),
            Some(Pos { line: 3, col: 5 })
        );
        assert_eq!(doc.value["checks"][0]["name"], "x");
        assert_eq!(doc.value["a"], 1);
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let doc = parse(
            "a: true\nb: '1'\nc: 1.5\nd: ~\ne: 30s\nf: 1e3\n",
            Some(&no_env),
        )
        .unwrap();
        assert_eq!(doc.value["a"], true);
        assert_eq!(doc.value["b"], "1");
        assert_eq!(doc.value["c"], 1.5);
        assert!(doc.value["d"].is_null());
        assert_eq!(doc.value["e"], "30s");
        assert_eq!(doc.value["f"], 1000.0);
    }

    #[test]
    fn interpolation_records_secrets_and_reports_missing() {
        let env = |n: &str| (n == "TOKEN").then(|| "s3cret".to_string());
        let doc = parse("h: Bearer ${TOKEN}\nlit: $${X}\n", Some(&env)).unwrap();
        assert_eq!(doc.value["h"], "Bearer s3cret");
        assert_eq!(doc.value["lit"], "${X}");
        assert_eq!(doc.secrets, vec!["s3cret"]);
        let errs = parse("a: ok\nb: ${MISSING}\n", Some(&env)).unwrap_err();
        assert_eq!(errs[0].pos, Some(Pos { line: 2, col: 4 }));
        assert!(errs[0].message.contains("MISSING"));
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_are_located() {
        let errs = parse("a: 1\nb: 2\na: 3\n", Some(&no_env)).unwrap_err();
        assert_eq!(errs[0].pos, Some(Pos { line: 3, col: 1 }));
        let errs = parse("a: [1, 2\nb: 3\n", Some(&no_env)).unwrap_err();
        assert!(errs[0].message.contains("YAML syntax error"), "{:?}", errs);
        assert!(errs[0].pos.is_some());
    }

    #[test]
    fn exponential_alias_expansion_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let errs = parse(&text, Some(&no_env)).unwrap_err();
        assert!(errs[0].message.contains("expands to more than"), "{errs:?}");
    }

    #[test]
    fn hostile_or_odd_input_never_panics() {
        let deep_block: String = (0..3000)
            .map(|i| format!("{}b:\n", "  ".repeat(i)))
            .collect();
        for text in [
            "",
            "[]",
            "- a",
            "checks: 5",
            "checks: [1, 2]",
            "a: *nope",
            "a: &x [*x]",
            "{a: 1",
            "\t- x",
            "a: !!binary aGk=",
            "? [a]\n: b",
            "---\na: 1\n---\nb: 2",
            "a: ${",
            "a: ${BAD NAME}",
            "a: \"\\uD800\"",
            &"[".repeat(200),
            "\u{feff}a: 1",
            &deep_block,
        ] {
            let _ = parse(text, Some(&no_env));
        }
    }

    #[test]
    fn anchors_and_aliases_are_expanded() {
        let doc = parse("x: &h {a: 1}\ny: *h\n", Some(&no_env)).unwrap();
        assert_eq!(doc.value["y"]["a"], 1);
    }
}
