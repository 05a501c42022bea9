//! The Prometheus text exposition format (0.0.4), written straight from our own state:
//! one `# HELP`/`# TYPE` per family, then its samples. Label values are escaped here.

use std::fmt::Write as _;

/// A sample value: counters are integers, gauges and histogram sums floats.
pub trait Value: Copy {
    fn write_to(self, out: &mut String);
}

impl Value for u64 {
    fn write_to(self, out: &mut String) {
        out.push_str(itoa::Buffer::new().format(self));
    }
}

impl Value for f64 {
    fn write_to(self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if self > 0.0 { "+Inf" } else { "-Inf" });
        } else if self.fract() == 0.0 && self.abs() < 1e15 {
            // Whole numbers (flags, status codes, timestamps) as integers, like Go.
            out.push_str(itoa::Buffer::new().format(self as i64));
        } else {
            out.push_str(ryu::Buffer::new().format_finite(self));
        }
    }
}

/// Appends `value` escaped as a label value (backslash, double quote, newline).
pub fn escape_into(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `name="value",...` with the values escaped: the fixed labels of a check, built once.
pub fn label_set(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        escape_into(&mut out, value);
        out.push('"');
    }
    out
}

/// Text is handed to the sink in pieces of about this size, so that a large exposition is
/// never whole in memory.
const CHUNK: usize = 64 * 1024;

/// A text exposition being written, to a string or, piece by piece, to a sink.
#[derive(Default)]
pub struct Text<'a> {
    pub out: String,
    /// A family's `# HELP`/`# TYPE`, written before its first sample (none: no header).
    pending: Option<(&'static str, &'static str, &'static str)>,
    sink: Option<Box<dyn FnMut(String) + 'a>>,
}

impl<'a> Text<'a> {
    /// Writes to `sink` in pieces; call `finish` at the end.
    pub fn streaming(sink: impl FnMut(String) + 'a) -> Self {
        Text {
            out: String::with_capacity(CHUNK + 1024),
            pending: None,
            sink: Some(Box::new(sink)),
        }
    }

    /// Hands the rest to the sink.
    pub fn finish(mut self) {
        if let Some(sink) = &mut self.sink
            && !self.out.is_empty()
        {
            sink(std::mem::take(&mut self.out));
        }
    }

    /// Starts a family; its header is written with its first sample, so families without
    /// samples leave nothing.
    pub fn family(&mut self, name: &'static str, kind: &'static str, help: &'static str) {
        self.pending = Some((name, kind, help));
    }

    /// One sample: `labels` is a pre-escaped label set (may be empty), `extra` one more
    /// label (name, value).
    pub fn sample(&mut self, name: &str, labels: &str, extra: Option<(&str, &str)>, v: impl Value) {
        self.line(name, "", labels, extra, None, v);
    }

    /// The `_bucket`, `_sum` and `_count` samples of a histogram; `extra` as in `sample`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &str,
        extra: Option<(&str, &str)>,
        h: &Histogram,
    ) {
        let mut cumulative = 0;
        for (count, le) in h.counts.iter().zip(h.buckets.labels) {
            cumulative += count;
            self.line(name, "_bucket", labels, extra, Some(le), cumulative);
        }
        self.line(name, "_bucket", labels, extra, Some("+Inf"), h.count);
        self.line(name, "_sum", labels, extra, None, h.sum);
        self.line(name, "_count", labels, extra, None, h.count);
    }

    /// `{name}{suffix}{labels,extra="..",le=".."} value`.
    fn line(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &str,
        extra: Option<(&str, &str)>,
        le: Option<&str>,
        v: impl Value,
    ) {
        if let Some((family, kind, help)) = self.pending.take() {
            let _ = writeln!(self.out, "# HELP {family} {help}\n# TYPE {family} {kind}");
        }
        let out = &mut self.out;
        out.push_str(name);
        out.push_str(suffix);
        if !labels.is_empty() || extra.is_some() || le.is_some() {
            out.push('{');
            out.push_str(labels);
            let mut sep = !labels.is_empty();
            for (k, val) in extra.into_iter().chain(le.map(|le| ("le", le))) {
                if sep {
                    out.push(',');
                }
                sep = true;
                out.push_str(k);
                out.push_str("=\"");
                escape_into(out, val);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        v.write_to(out);
        out.push('\n');
        if out.len() >= CHUNK
            && let Some(sink) = &mut self.sink
        {
            sink(std::mem::replace(out, String::with_capacity(CHUNK + 1024)));
        }
    }
}

/// A metric family: name, type, help, and what one row (a check, a probe) writes to it:
/// `(text, name, escaped labels of the row, row)`.
pub type Family<T> = (
    &'static str,
    &'static str,
    &'static str,
    fn(&mut Text, &'static str, &str, &T),
);

/// Calls its argument once per row, with the row's escaped label set.
pub type Rows<'a, T> = &'a dyn Fn(&mut dyn FnMut(&str, &T));

/// Writes the families one after the other, each over all rows.
pub fn write_families<T>(text: &mut Text, families: &[Family<T>], rows: Rows<T>) {
    for (name, kind, help, samples) in families {
        text.family(name, kind, help);
        rows(&mut |labels, row| samples(text, name, labels, row));
    }
}

/// The 14 upper bounds of a histogram's buckets, seconds, and how they are written.
#[derive(Debug)]
pub struct Buckets {
    pub le: [f64; 14],
    labels: [&'static str; 14],
}

/// Buckets of the probe and agent-event duration histograms.
pub const BUCKETS: Buckets = Buckets {
    le: [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ],
    labels: [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
        "10", "30",
    ],
};

/// Buckets of start-up durations (`pathwatch_cold_start_seconds`): seconds to minutes.
pub const START_UP_BUCKETS: Buckets = Buckets {
    le: [
        0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0,
    ],
    labels: [
        "0.5", "1", "2", "3", "5", "7.5", "10", "15", "20", "30", "45", "60", "120", "300",
    ],
};

/// A histogram over 14 buckets: per-bucket (not cumulative) counts, sum, count.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: &'static Buckets,
    counts: [u64; 14],
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    /// Over [`BUCKETS`].
    fn default() -> Self {
        Histogram::over(&BUCKETS)
    }
}

impl Histogram {
    pub fn over(buckets: &'static Buckets) -> Histogram {
        Histogram {
            buckets,
            counts: [0; 14],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        if let Some(i) = self.buckets.le.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values_and_writes_special_floats() {
        let labels = label_set(&[("check", "a\"b\\c\nd"), ("location", "x")]);
        assert_eq!(labels, r#"check="a\"b\\c\nd",location="x""#);
        let mut t = Text::default();
        t.sample("m", &labels, Some(("phase", "tls")), f64::INFINITY);
        t.sample("m", "", None, f64::NAN);
        t.sample("m", "", Some(("a", "b")), 3u64);
        t.sample("m", "", None, 0.25);
        t.sample("m", "", None, -1.0);
        t.sample("m", "", None, 1.7e9);
        assert_eq!(
            t.out,
            "m{check=\"a\\\"b\\\\c\\nd\",location=\"x\",phase=\"tls\"} +Inf\nm NaN\nm{a=\"b\"} 3\nm 0.25\nm -1\nm 1700000000\n"
        );
    }

    #[test]
    fn families_without_samples_leave_nothing_and_pieces_add_up() {
        let mut pieces = Vec::new();
        let mut t = Text::streaming(|p| pieces.push(p));
        t.family("empty", "gauge", "Nothing.");
        t.family("full", "counter", "Something.");
        for i in 0..10_000u64 {
            t.sample("full", "check=\"c\"", None, i);
        }
        t.finish();
        assert!(pieces.len() > 2, "{}", pieces.len());
        assert!(pieces.iter().all(|p| p.len() < CHUNK + 100));
        let all = pieces.concat();
        assert!(
            all.starts_with("# HELP full Something.\n# TYPE full counter\nfull{check=\"c\"} 0\n")
        );
        assert!(all.ends_with("full{check=\"c\"} 9999\n"));
        assert_eq!(all.lines().count(), 10_002);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let mut h = Histogram::default();
        for v in [0.0005, 0.003, 0.003, 42.0] {
            h.observe(v);
        }
        let mut t = Text::default();
        t.histogram("d", "check=\"c\"", None, &h);
        let lines: Vec<&str> = t.out.lines().collect();
        assert_eq!(lines[0], "d_bucket{check=\"c\",le=\"0.001\"} 1");
        assert_eq!(lines[2], "d_bucket{check=\"c\",le=\"0.005\"} 3");
        assert_eq!(lines[13], "d_bucket{check=\"c\",le=\"30\"} 3");
        assert_eq!(lines[14], "d_bucket{check=\"c\",le=\"+Inf\"} 4");
        assert_eq!(lines[15], "d_sum{check=\"c\"} 42.0065");
        assert_eq!(lines[16], "d_count{check=\"c\"} 4");
    }
}
