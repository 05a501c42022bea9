//! Time as pathwatch reads and writes it: the wall clock in unix units, RFC 3339 text,
//! durations for people (`12.3ms`) and from config text (`30s`), and the one formula for
//! how many days a certificate has left, so `check`, the API and the page show one number.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Since the unix epoch (zero for a clock before it).
pub fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

pub fn unix_ms(t: SystemTime) -> i64 {
    since_epoch(t).as_millis() as i64
}

pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}

pub fn now_unix() -> i64 {
    since_epoch(SystemTime::now()).as_secs() as i64
}

/// Seconds since the epoch with a fraction, as JSON timestamps carry them.
pub fn now_secs_f64() -> f64 {
    since_epoch(SystemTime::now()).as_secs_f64()
}

/// `2026-11-25T22:15:28Z` for unix seconds.
pub fn rfc3339_secs(unix: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
        .to_string()
}

/// `2026-11-25T22:15:28.123Z` for unix milliseconds.
pub fn rfc3339_ms(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

/// Now as `2026-11-25T22:15:28.123Z`.
pub fn rfc3339_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Unix milliseconds of an RFC 3339 time (`2026-11-25T22:15:28Z`, fraction and offset
/// optional).
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(text).ok().map(unix_ms)
}

/// A duration as config and URLs write it: `500ms`, `30s`, `5m`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 500ms, 30s, 5m, 7d"))
}

/// Human duration for messages: `850µs`, `12.3ms`, `1.25s`.
pub fn fmt_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros}µs")
    } else if micros < 1_000_000 {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

/// A span a person reads: `4.2s` under 10 s, else whole seconds as `2m10s` or `1h5m`.
pub fn fmt_span(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        return format!("{:.1}s", d.as_secs_f64());
    }
    humantime::format_duration(Duration::from_secs(d.as_secs()))
        .to_string()
        .replace(' ', "")
}

/// Whole days from `now` until `not_after` (unix seconds), rounded down: negative once
/// expired, 0 on its last day.
pub fn days_left(not_after: i64, now: i64) -> i64 {
    (not_after - now).div_euclid(86_400)
}

/// [`days_left`] from now.
pub fn days_left_now(not_after: i64) -> i64 {
    days_left(not_after, now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_rounds_down_and_goes_negative() {
        let day = 86_400;
        assert_eq!(days_left(90 * day, 0), 90);
        assert_eq!(days_left(90 * day - 1, 0), 89);
        assert_eq!(days_left(day / 2, 0), 0);
        assert_eq!(days_left(0, 1), -1);
    }

    #[test]
    fn durations_read_and_print() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
        assert_eq!(fmt_duration(Duration::from_micros(850)), "850µs");
        assert_eq!(fmt_duration(Duration::from_micros(12_340)), "12.3ms");
        assert_eq!(fmt_duration(Duration::from_millis(1_250)), "1.25s");
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1_500));
    }
}
