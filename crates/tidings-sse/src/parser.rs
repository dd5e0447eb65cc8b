//! A sans-IO, incremental `text/event-stream` parser that follows the WHATWG "interpreting an event stream" algorithm exactly.
//!
//! Feed it the bytes of a response body in chunks of any size with
//! [`EventParser::feed`]; take dispatched events with
//! [`EventParser::next_event`]. The result never depends on where the chunks
//! are split (property-tested), and no input makes it panic: arbitrary bytes
//! give events or a typed [`ParseError`] once a configured size limit is
//! exceeded.
//!
//! What the specification asks, and where it is done here
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>):
//!
//! * the stream is UTF-8; one leading byte order mark is dropped, invalid
//!   sequences become U+FFFD (lines are split on the ASCII bytes CR and LF
//!   first and decoded one by one: since neither byte can be part of a
//!   multi-byte sequence, that is the same as decoding the whole stream);
//! * lines end with CRLF, LF or CR. A CR ends its line at once (an event is
//!   dispatched without waiting for the next chunk) and an LF right after it,
//!   even in the next chunk, is skipped;
//! * a blank line dispatches; a line starting with `:` is a comment; the
//!   field name is what precedes the first `:` (the whole line when there is
//!   none), and one space after the colon is dropped from the value;
//! * `data` appends the value and an LF to the data buffer; `event` sets the
//!   event type; `id` sets the last event ID buffer unless the value contains
//!   U+0000 NULL; `retry` sets the reconnection time only when the value is
//!   ASCII digits (`+5`, `5s`, ` 5` are ignored); other fields are ignored;
//! * dispatch sets the last event ID string (even for an event that is not
//!   dispatched), drops an event whose data buffer is empty, strips one final
//!   LF from the data, and defaults the type to `message`;
//! * at the end of the stream an unterminated event is discarded
//!   ([`EventParser::finish`]).
//!
//! Why not `eventsource-stream` (the parser of `reqwest-eventsource`), checked
//! at version 0.2.3: a byte sequence that is not UTF-8 stays in its buffer and
//! stalls the stream for good (every later chunk is appended behind it); an
//! event ending in CR is held until the next chunk arrives; `retry: +5` is
//! accepted (Rust's integer parsing allows a `+`); the last event ID is only
//! updated by events that carry data; lines and events are unbounded.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::time::Duration;

/// Default limit of [`EventParser::with_max_event_bytes`]: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 16 << 20;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// One dispatched event.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The event type: the last `event` field, or `message`.
    pub event: String,
    /// The data: `data` field values joined with LF.
    pub data: String,
    /// The last event ID string at dispatch (what a browser's `lastEventId` holds).
    pub last_event_id: String,
}

/// The stream broke a limit of the parser.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A line or an event's data grew beyond the limit.
    #[error("event stream line or event larger than {max} bytes (the limit of this parser)")]
    EventTooLarge {
        /// The limit.
        max: usize,
    },
}

impl ParseError {
    /// True for [`ParseError::EventTooLarge`].
    pub fn is_too_large(&self) -> bool {
        matches!(self, ParseError::EventTooLarge { .. })
    }
}

/// Incremental event stream parser (one per connection).
///
/// ```
/// use tidings_sse::parser::EventParser;
///
/// let mut p = EventParser::new();
/// p.feed(b"\xEF\xBB\xBFid: 7\r\nevent: tick\ndata: a\r").unwrap();
/// p.feed(b"\ndata: b\n\n: comment\nretry: 2500\n").unwrap();
/// let e = p.next_event().unwrap();
/// assert_eq!((e.event.as_str(), e.data.as_str(), e.last_event_id.as_str()), ("tick", "a\nb", "7"));
/// assert_eq!(p.reconnection_time(), Some(std::time::Duration::from_millis(2500)));
/// assert!(p.next_event().is_none());
/// ```
#[derive(Debug)]
pub struct EventParser {
    /// How many bytes of a leading BOM have matched; `None` once decided.
    bom: Option<usize>,
    /// The previous line ended with CR: an LF next is part of that line break.
    skip_lf: bool,
    line: Vec<u8>,
    data: String,
    event_type: String,
    id_buffer: String,
    last_event_id: String,
    retry: Option<u64>,
    events: VecDeque<SseEvent>,
    max: usize,
}

impl Default for EventParser {
    fn default() -> Self {
        Self::new()
    }
}

impl EventParser {
    /// A parser with the default size limit ([`DEFAULT_MAX_EVENT_BYTES`]).
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A parser that fails when a line, or the data of one event, exceeds `max` bytes.
    pub fn with_max_event_bytes(max: usize) -> Self {
        Self {
            bom: Some(0),
            skip_lf: false,
            line: Vec::new(),
            data: String::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            retry: None,
            events: VecDeque::new(),
            max,
        }
    }

    /// Parses the next chunk of the stream. Events it completes are queued for
    /// [`EventParser::next_event`]. After an error the stream must be dropped.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ParseError> {
        let mut rest = chunk;
        if let Some(matched) = self.bom {
            let mut matched = matched;
            loop {
                let Some((&b, tail)) = rest.split_first() else {
                    // The chunk ended inside a possible BOM: decide with the next one.
                    self.bom = Some(matched);
                    return Ok(());
                };
                if b == BOM[matched] {
                    matched += 1;
                    rest = tail;
                    if matched == BOM.len() {
                        break; // dropped
                    }
                } else {
                    // Not a BOM: the bytes matched so far are ordinary line bytes
                    // (none of them is CR, LF or a colon).
                    self.line.extend_from_slice(&BOM[..matched]);
                    break;
                }
            }
            self.bom = None;
        }
        while !rest.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    let (head, tail) = rest.split_at(i);
                    self.skip_lf = tail[0] == b'\r';
                    rest = &tail[1..];
                    if self.line.is_empty() {
                        self.check(head.len())?;
                        self.process_line(head)?;
                    } else {
                        self.line.extend_from_slice(head);
                        self.check(0)?;
                        let line = std::mem::take(&mut self.line);
                        let result = self.process_line(&line);
                        self.line = line;
                        self.line.clear();
                        result?;
                    }
                }
                None => {
                    self.line.extend_from_slice(rest);
                    self.check(0)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// The stream ended: an event without its final blank line is discarded.
    pub fn finish(&mut self) {
        self.line.clear();
        self.data.clear();
        self.event_type.clear();
        self.skip_lf = false;
    }

    /// The next dispatched event, in stream order.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        self.events.pop_front()
    }

    /// Events dispatched and not taken yet.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    /// The last event ID string: what a reconnect sends as `Last-Event-ID`
    /// (set at every dispatch, also by events that carry no data).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time set by the last valid `retry` field, if any.
    pub fn reconnection_time(&self) -> Option<Duration> {
        self.retry.map(Duration::from_millis)
    }

    fn check(&self, extra: usize) -> Result<(), ParseError> {
        if self.line.len() + extra + self.data.len() > self.max {
            return Err(ParseError::EventTooLarge { max: self.max });
        }
        Ok(())
    }

    fn process_line(&mut self, line: &[u8]) -> Result<(), ParseError> {
        if line.is_empty() {
            self.dispatch();
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
                self.check(0)?;
            }
            b"event" => self.event_type = utf8(value).into_owned(),
            // An id containing NUL is ignored.
            b"id" if !value.contains(&0) => {
                let id = utf8(value);
                if self.id_buffer != id {
                    self.id_buffer = id.into_owned();
                }
            }
            // Only ASCII digits set the reconnection time (saturating, in ms).
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.retry = Some(ms);
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self) {
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        if self.data.ends_with('\n') {
            self.data.pop();
        }
        let event = if self.event_type.is_empty() {
            "message".to_string()
        } else {
            std::mem::take(&mut self.event_type)
        };
        self.events.push_back(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            last_event_id: self.last_event_id.clone(),
        });
    }
}

fn utf8(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> (Vec<SseEvent>, EventParser) {
        let mut p = EventParser::new();
        for c in chunks {
            p.feed(c).unwrap();
        }
        let events = std::iter::from_fn(|| p.next_event()).collect();
        (events, p)
    }

    fn datas(chunks: &[&[u8]]) -> Vec<String> {
        parse(chunks).0.into_iter().map(|e| e.data).collect()
    }

    #[test]
    fn multi_line_data_joins_with_lf() {
        assert_eq!(
            datas(&[b"data: YHOO\ndata: +2\ndata: 10\n\n"]),
            ["YHOO\n+2\n10"]
        );
    }

    #[test]
    fn all_three_line_endings() {
        assert_eq!(datas(&[b"data: a\r\ndata: b\rdata: c\n\r\n"]), ["a\nb\nc"]);
        assert_eq!(datas(&[b"data: x\r\r"]), ["x"]);
        assert_eq!(datas(&[b"data: x\n\r"]), ["x"]);
    }

    #[test]
    fn cr_at_chunk_end_then_lf_is_one_line_break() {
        // The CR dispatches at once; the LF in the next chunk is not a blank line.
        let mut p = EventParser::new();
        p.feed(b"data: a\r\n\r").unwrap();
        assert_eq!(p.next_event().map(|e| e.data), Some("a".into()));
        p.feed(b"\ndata: b\r").unwrap();
        assert!(p.next_event().is_none());
        p.feed(b"\n\n").unwrap();
        assert_eq!(p.next_event().map(|e| e.data), Some("b".into()));
        assert!(p.next_event().is_none(), "no spurious empty event");
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        assert_eq!(datas(&[b": hello\n:\nfoo: bar\ndata: x\n: mid\n\n"]), ["x"]);
    }

    #[test]
    fn leading_bom_is_dropped_once() {
        assert_eq!(datas(&[b"\xEF\xBB\xBFdata: x\n\n"]), ["x"]);
        // Split across chunks.
        assert_eq!(datas(&[b"\xEF", b"\xBB", b"\xBFdata: y\n\n"]), ["y"]);
        // A second BOM is part of the field name: `\u{feff}data` is not `data`.
        assert!(datas(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: z\n\n"]).is_empty());
        // A BOM later in the stream is ordinary text.
        assert_eq!(datas(&[b"data: \xEF\xBB\xBFw\n\n"]), ["\u{feff}w"]);
        // A partial BOM is not one.
        assert_eq!(datas(&[b"\xEF\xBBdata: v\n\n"]), Vec::<String>::new());
    }

    #[test]
    fn id_with_nul_is_ignored() {
        let (events, p) = parse(&[b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n"]);
        assert_eq!(events[0].last_event_id, "1");
        assert_eq!(events[1].last_event_id, "1");
        assert_eq!(p.last_event_id(), "1");
    }

    #[test]
    fn id_persists_and_empty_id_resets() {
        let (events, p) = parse(&[b"id: 5\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"]);
        let ids: Vec<&str> = events.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, ["5", "5", ""]);
        assert_eq!(p.last_event_id(), "");
    }

    #[test]
    fn id_without_data_still_sets_the_last_event_id() {
        let (events, p) = parse(&[b"id: 9\n\n"]);
        assert!(events.is_empty());
        assert_eq!(p.last_event_id(), "9");
    }

    #[test]
    fn retry_needs_ascii_digits() {
        for bad in [
            "retry: +5\n",
            "retry: 5s\n",
            "retry:  5\n",
            "retry: -1\n",
            "retry:\n",
            "retry: ５\n",
        ] {
            let (_, p) = parse(&[bad.as_bytes()]);
            assert_eq!(p.reconnection_time(), None, "{bad:?}");
        }
        let (_, p) = parse(&[b"retry: 3000\nretry: x\n"]);
        assert_eq!(p.reconnection_time(), Some(Duration::from_millis(3000)));
        let (_, p) = parse(&[b"retry:99999999999999999999999\n"]);
        assert_eq!(p.reconnection_time(), Some(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn event_names_and_default_type() {
        let (events, _) = parse(&[b"event: add\ndata: 1\n\ndata: 2\n\nevent: remove\ndata: 3\n\n"]);
        let types: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(types, ["add", "message", "remove"]);
    }

    #[test]
    fn empty_data_dispatch_rules() {
        // The spec's own example: `data` alone dispatches "", two `data` lines "\n",
        // and a trailing `data:` without a blank line is never dispatched.
        assert_eq!(datas(&[b"data\n\ndata\ndata\n\ndata:"]), ["", "\n"]);
        // A blank line with no data dispatches nothing and resets the type.
        let (events, _) = parse(&[b"event: x\n\ndata: y\n\n"]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, "message");
    }

    #[test]
    fn space_after_colon_is_dropped_once() {
        assert_eq!(
            datas(&[b"data:test\n\ndata: test\n\ndata:  test\n\n"]),
            ["test", "test", " test"]
        );
    }

    #[test]
    fn unterminated_event_is_discarded_at_the_end() {
        let mut p = EventParser::new();
        p.feed(b"data: done\n\ndata: half").unwrap();
        p.finish();
        p.feed(b"\n\n").unwrap();
        let datas: Vec<String> = std::iter::from_fn(|| p.next_event())
            .map(|e| e.data)
            .collect();
        assert_eq!(datas, ["done"]);
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters_and_the_stream_goes_on() {
        assert_eq!(
            datas(&[b"data: a\xFFb\n\n", b"data: c\xE2\x82\n\ndata: ok\n\n"]),
            ["a\u{fffd}b", "c\u{fffd}", "ok"]
        );
    }

    #[test]
    fn multibyte_characters_split_across_chunks() {
        assert_eq!(datas(&[b"data: \xE2", b"\x82", b"\xAC\n\n"]), ["\u{20ac}"]);
    }

    #[test]
    fn size_limit_is_a_typed_error() {
        let mut p = EventParser::with_max_event_bytes(16);
        assert!(p.feed(b"data: 0123456789\n").is_ok());
        let e = p.feed(b"data: 0123456789\n").unwrap_err();
        assert!(e.is_too_large());
        let mut p = EventParser::with_max_event_bytes(16);
        assert!(p.feed(&[b'x'; 17]).unwrap_err().is_too_large());
    }

    #[test]
    fn whatwg_examples() {
        let (events, _) = parse(&[b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"]);
        let got: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.data.as_str(), e.last_event_id.as_str()))
            .collect();
        assert_eq!(got, [("first event", "1"), ("second event", "")]);
    }
}
