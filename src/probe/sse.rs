//! Server-Sent Events as the WHATWG HTML standard (§9.2.6) parses them: lines end in CRLF,
//! LF or a lone CR (a CR that ends one chunk may pair with the LF that starts the next),
//! one leading U+FEFF is dropped, `:` lines are comments, `data` lines join with `\n`,
//! `event` names the type (default `message`), `id` persists until changed, a blank line
//! dispatches, an event with no data is dropped. Bytes may arrive split anywhere, even in the
//! middle of a UTF-8 character. What is left when the stream ends is a cut event.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when there was none.
    pub event: String,
    pub data: String,
    /// The last event id seen so far (it persists across events).
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    first_line: bool,
    data: String,
    event: String,
    has_data: bool,
    id: Option<String>,
    /// Comments (`: keep-alive`) seen.
    pub comments: u64,
    max: usize,
}

impl SseParser {
    /// A parser that refuses an event (or a line) over `max` bytes.
    pub fn new(max: usize) -> SseParser {
        SseParser {
            first_line: true,
            max,
            ..SseParser::default()
        }
    }

    /// Parses `chunk`, appending the events it completes to `out`. Errs when an event
    /// grows over the limit.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), String> {
        for &b in chunk {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
            if self.line.len() + self.data.len() > self.max {
                return Err(format!(
                    "an event of over {} bytes (max_frame_bytes)",
                    self.max
                ));
            }
        }
        Ok(())
    }

    /// Whether an event was cut by the end of the stream (fields or a line not yet
    /// dispatched by a blank line).
    pub fn cut(&self) -> bool {
        self.has_data || !self.line.is_empty()
    }

    fn line_done(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let decoded = String::from_utf8_lossy(bytes);
        let mut line: &str = &decoded;
        if std::mem::take(&mut self.first_line) {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event = value.to_string(),
            "id" if !value.contains('\0') => {
                self.id = (!value.is_empty()).then(|| value.to_string());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> (Vec<SseEvent>, bool) {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        (out, p.cut())
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(str::to_string),
        }
    }

    #[test]
    fn the_standard_s_examples() {
        let (out, cut) = parse(&[b"\xef\xbb\xbfdata: YHOO\ndata: +2\ndata: 10\n\n: comment\n\nevent: add\ndata:73857293\nid: 7\n\ndata\n\ndata:\n\nevent: lone\n\n"]);
        assert_eq!(
            out,
            [
                ev("message", "YHOO\n+2\n10", None),
                ev("add", "73857293", Some("7")),
                ev("message", "", Some("7")),
                ev("message", "", Some("7")),
            ]
        );
        assert!(!cut);
    }

    #[test]
    fn cr_lf_and_crlf_end_lines_even_split_across_chunks() {
        let (out, _) = parse(&[b"data: a\r", b"\ndata: b\r\r", b"data: c\n\n"]);
        assert_eq!(out, [ev("message", "a\nb", None), ev("message", "c", None)]);
        // A UTF-8 character split between chunks.
        let (out, _) = parse(&[b"data: caf\xc3", b"\xa9\n\n"]);
        assert_eq!(out, [ev("message", "café", None)]);
    }

    #[test]
    fn an_event_cut_by_the_end_of_the_stream_is_said() {
        let (out, cut) = parse(&[b"data: {\"type\":\"RUN_STARTED\"}\n\ndata: {\"type\":"]);
        assert_eq!(out.len(), 1);
        assert!(cut);
        let (_, cut) = parse(&[b"data: x\n"]);
        assert!(cut, "fields without the blank line that dispatches them");
    }

    /// A recorded stream (Anthropic-style names, a BOM, a comment, CRLF and CR line ends,
    /// multi-byte text) split in two at every byte gives the same events as whole.
    #[test]
    fn a_recorded_stream_split_at_every_byte() {
        let recorded = "\u{feff}event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\"}}\r\n\r\n: keep-alive\n\nevent: content_block_delta\rdata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"caf\u{e9} \u{1f600}\"}}\r\rid: 7\ndata: line one\ndata: line two\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\ndata: [DONE]\n\n";
        let bytes = recorded.as_bytes();
        let (whole, cut) = parse(&[bytes]);
        assert!(!cut);
        assert_eq!(whole.len(), 5);
        assert_eq!(
            whole[1].data,
            "{\"type\":\"content_block_delta\",\"delta\":{\"text\":\"caf\u{e9} \u{1f600}\"}}"
        );
        assert_eq!(whole[2], ev("message", "line one\nline two", Some("7")));
        for i in 0..=bytes.len() {
            let (split, cut) = parse(&[&bytes[..i], &bytes[i..]]);
            assert_eq!(split, whole, "split at byte {i}");
            assert!(!cut);
        }
        // And cut short at every byte: whole events only, the rest reported as cut.
        for i in 0..bytes.len() {
            let (part, cut) = parse(&[&bytes[..i]]);
            assert!(part.len() <= whole.len());
            assert_eq!(part[..], whole[..part.len()], "cut at byte {i}");
            let _ = cut;
        }
    }

    #[test]
    fn an_oversized_event_is_refused() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert!(
            p.feed(b"data: 0123456789\ndata: 0123456789\n", &mut out)
                .is_err()
        );
    }
}
