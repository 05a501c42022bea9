//! Small value parsers the config shares: durations (typed, so errors carry the field's
//! path) and label-safe names.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Names and label values: bounded, printable, URL-safe.
pub(crate) fn label_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A duration as a map value (`deadlines: {agent_started: 2s}`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration(d).map(DurationValue)
    }
}

pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let v = Value::deserialize(d)?;
    parse_duration(&v).map_err(serde::de::Error::custom)
}

pub(crate) fn opt_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v => parse_duration(&v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn parse_duration(v: &Value) -> Result<Duration, String> {
    match v {
        Value::String(s) => crate::clock::parse_duration(s),
        other => Err(format!(
            "`{other}` is not a duration; write it with a unit, e.g. 500ms, 30s, 5m, 7d"
        )),
    }
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
pub(crate) fn prom_label_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.starts_with("__")
}
