//! The frames the load generator reads from the server, each scanned in one pass without allocating.
//!
//! [`Frame::parse`] walks the top level object (and the payload in `data`) and picks out
//! the few fields the generator needs: `type`, `channel`, `seq`, `nonce` and the
//! payload's send time `t`. A `message` as the server's compact encoder writes it is
//! read by its fixed prefixes first. The server's encoder writes no whitespace (the
//! scanner tolerates it anyway); string values are taken raw, escapes kept as written.

use crate::write::ZEROS;

/// What the generator reads of a frame from the server, found in one pass over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Frame<'a> {
    /// `type`.
    pub kind: &'a str,
    /// `channel` (`message`, `subscribed`, `gap`).
    pub channel: Option<&'a str>,
    /// `seq` (`message`, `subscribed`, `publish_ack`).
    pub seq: Option<u64>,
    /// `nonce` (`ping`).
    pub nonce: Option<u64>,
    /// The send time carried by the payload in `data`, when it is one of ours.
    pub sent_ns: Option<u64>,
}

impl<'a> Frame<'a> {
    /// Scans `text` once. `None` when it is not a JSON object with a string `type`, or
    /// when `channel` is not a string or `seq` / `nonce` not an unsigned integer.
    #[inline]
    pub fn parse(text: &'a str) -> Option<Self> {
        if let Some(frame) = Self::compact_message(text) {
            return Some(frame);
        }
        let mut kind = None;
        let mut frame = Frame {
            kind: "",
            channel: None,
            seq: None,
            nonce: None,
            sent_ns: None,
        };
        Scanner::new(text).object(|key, sc| {
            match key {
                "type" => kind = Some(sc.string()?),
                "channel" => frame.channel = Some(sc.string()?),
                "seq" => frame.seq = Some(sc.uint()?),
                "nonce" => frame.nonce = Some(sc.uint()?),
                "data" => frame.sent_ns = sc.payload_time()?,
                _ => sc.skip_value()?,
            }
            Some(())
        })?;
        frame.kind = kind?;
        Some(frame)
    }

    /// The fast path of [`Frame::parse`] for the frame the generator reads most: a
    /// `message` as the server's compact encoder writes it,
    /// `{"type":"message","channel":"<c>","seq":<n>[,"id":"<id>"],"data":<payload>}`, read
    /// by its fixed prefixes, far cheaper than the general scan (the generator shares the
    /// machine with the server it measures). `None` for anything else, which the general
    /// scan then reads: never a different answer from it.
    #[inline]
    fn compact_message(text: &'a str) -> Option<Self> {
        let rest = text.strip_prefix(r#"{"type":"message","channel":""#)?;
        let (channel, rest) = rest.split_once('"')?;
        if channel.contains('\\') {
            return None;
        }
        let rest = rest.strip_prefix(r#","seq":"#)?;
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let seq = digits(rest.get(..len)?)?;
        let mut rest = rest.get(len..)?;
        if let Some(id) = rest.strip_prefix(r#","id":""#) {
            let (id, after) = id.split_once('"')?;
            if id.contains('\\') {
                return None;
            }
            rest = after;
        }
        let payload = rest.strip_prefix(r#","data":"#)?.strip_suffix('}')?;
        Some(Frame {
            kind: "message",
            channel: Some(channel),
            seq: Some(seq),
            nonce: None,
            sent_ns: Some(compact_payload_time(payload)?),
        })
    }
}

/// The send time of one of our payloads written as [`payload`](crate::payload) writes it,
/// `{"t":"<13 digits>","p":"abcd"}`, read by its fixed layout; `None` for anything else.
#[inline]
fn compact_payload_time(payload: &str) -> Option<u64> {
    let digits_then = payload.strip_prefix(r#"{"t":""#)?;
    let rest = digits_then.get(ZEROS.len()..)?;
    (rest == r#"","p":"abcd"}"#).then_some(())?;
    digits(digits_then.get(..ZEROS.len())?)
}

/// The send time carried by a payload: `text` is the payload itself (raw echo) or a frame
/// carrying it in `data`.
#[inline]
pub fn sent_ns(text: &str) -> Option<u64> {
    if let Some(t) = compact_payload_time(text) {
        return Some(t);
    }
    let mut t = None;
    Scanner::new(text).object(|key, sc| {
        match key {
            "t" => t = digits(sc.string()?),
            "data" => t = t.or(sc.payload_time()?),
            _ => sc.skip_value()?,
        }
        Some(())
    })?;
    t
}

/// An unsigned number field, e.g. `sessions` of the server's stats line: the first
/// `"key":<digits>` anywhere in `text` (frames are read with [`Frame::parse`]).
pub fn num_field(text: &str, key: &str) -> Option<u64> {
    let rest = text.get(value_at(text, key)?..)?;
    let len = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits(&rest[..len])
}

/// Where the value of the first `"key":` in `text` starts (no allocation: each match
/// of `key` is checked for its surrounding `"` and `":`).
fn value_at(text: &str, key: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    text.match_indices(key).find_map(|(at, _)| {
        let end = at + key.len();
        let quoted = at > 0 && bytes[at - 1] == b'"' && bytes.get(end..end + 2) == Some(b"\":");
        quoted.then_some(end + 2)
    })
}

/// A non-empty run of ASCII digits as a `u64` (`None` on anything else or overflow).
#[inline]
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

/// A cursor over JSON text that walks objects member by member, building nothing.
/// Every method returns `None` on text it cannot read.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Consumes `byte`, after any whitespace.
    #[inline]
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    /// Walks an object: `member` gets each key with the scanner at its value, and must
    /// consume the value.
    #[inline]
    fn object(&mut self, mut member: impl FnMut(&'a str, &mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            self.skip_ws();
            member(key, self)?;
            self.skip_ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string, as its raw contents (escapes are kept as written).
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
        let s = self.text.get(start..self.at)?;
        self.at += 1;
        Some(s)
    }

    /// An unsigned integer.
    #[inline]
    fn uint(&mut self) -> Option<u64> {
        self.skip_ws();
        let rest = self.text.get(self.at..)?;
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n = digits(&rest[..len])?;
        self.at += len;
        Some(n)
    }

    /// Any value.
    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
            }
            // A number or a literal: up to the next delimiter.
            _ => {
                let start = self.at;
                while matches!(self.peek(), Some(b) if !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }

    /// A payload: its send time when it is one of ours (an object with `"t":"<digits>"`).
    fn payload_time(&mut self) -> Option<Option<u64>> {
        if self.peek() != Some(b'{') {
            self.skip_value()?;
            return Some(None);
        }
        let mut t = None;
        self.object(|key, sc| {
            if key == "t" {
                t = digits(sc.string()?);
                Some(())
            } else {
                sc.skip_value()
            }
        })?;
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload;

    #[test]
    fn payload_is_32_bytes_of_json_with_its_time() {
        let p = payload(123_456);
        assert_eq!(p.len(), 32, "{p}");
        assert_eq!(sent_ns(&p), Some(123_456));
        let msg =
            format!(r#"{{"type":"message","channel":"load:7","seq":42,"id":"9","data":{p}}}"#);
        let frame = Frame::parse(&msg).unwrap();
        assert_eq!(frame.kind, "message");
        assert_eq!(frame.channel, Some("load:7"));
        assert_eq!(num_field(&msg, "seq"), Some(42));
        assert_eq!(sent_ns(&msg), Some(123_456));
    }

    #[test]
    fn the_compact_fast_path_agrees_with_the_general_scan() {
        let p = payload(123_456);
        let frames = [
            format!(r#"{{"type":"message","channel":"load:7","seq":42,"id":"9","data":{p}}}"#),
            format!(r#"{{"type":"message","channel":"load:7","seq":42,"data":{p}}}"#),
            // Declined by the fast path (the general scan reads them).
            format!(r#"{{"type":"message","channel":"lo\"ad","seq":42,"data":{p}}}"#),
            r#"{"type":"message","channel":"load:7","seq":42,"data":{"t":"1"}}"#.to_owned(),
            format!(r#"{{"type":"message","channel":"load:7","seq":4x,"data":{p}}}"#),
            format!(r#"{{"type":"message","seq":42,"channel":"load:7","data":{p}}}"#),
            format!(r#"{{"type":"message","channel":"load:7","seq":42,"data":{p} }}"#),
            format!(
                r#"{{"type":"message","channel":"load:7","seq":99999999999999999999,"data":{p}}}"#
            ),
            r#"{"type":"publish_ack","seq":3}"#.to_owned(),
        ];
        let mut fast = 0;
        for f in &frames {
            let compact = Frame::compact_message(f);
            fast += usize::from(compact.is_some());
            // The general scan alone: `parse` minus its fast path.
            let padded = format!(" {f}");
            let general = Frame::parse(&padded);
            if let Some(c) = compact {
                assert_eq!(Some(c), general, "{f}");
            }
            assert_eq!(Frame::parse(f), general, "{f}");
        }
        assert_eq!(fast, 2, "the first two frames take the fast path");
        assert_eq!(compact_payload_time(&p), Some(123_456));
        assert_eq!(sent_ns(&format!(" {p}")), Some(123_456));
    }

    #[test]
    fn parses_a_message_frame() {
        let msg = format!(
            r#"{{"type":"message","channel":"load:7","seq":42,"id":"9","data":{}}}"#,
            payload(123_456)
        );
        assert_eq!(
            Frame::parse(&msg),
            Some(Frame {
                kind: "message",
                channel: Some("load:7"),
                seq: Some(42),
                nonce: None,
                sent_ns: Some(123_456),
            })
        );
    }

    #[test]
    fn parses_a_publish_ack_and_a_ping() {
        let ack = Frame::parse(r#"{"type":"publish_ack","seq":18446744073709551615}"#);
        assert_eq!(
            ack,
            Some(Frame {
                kind: "publish_ack",
                channel: None,
                seq: Some(u64::MAX),
                nonce: None,
                sent_ns: None,
            })
        );
        let ping = Frame::parse(r#"{"type":"ping","nonce":7}"#);
        assert_eq!(ping.map(|f| (f.kind, f.nonce)), Some(("ping", Some(7))));
    }

    #[test]
    fn fields_in_any_order_with_whitespace_and_nesting() {
        let text = r#" { "data" : { "p":"a\"}b", "x":[1,{"t":"9"}], "t" : "0000000000005" },
            "seq":3, "extra":[{"type":"nested"}], "ok":true, "n":null, "f":-1.5e3,
            "channel":"load:\"q\"", "type":"message" } "#;
        assert_eq!(
            Frame::parse(text),
            Some(Frame {
                kind: "message",
                channel: Some(r#"load:\"q\""#),
                seq: Some(3),
                nonce: None,
                sent_ns: Some(5),
            })
        );
        assert_eq!(sent_ns(text), Some(5));
    }

    #[test]
    fn a_missing_or_broken_field_reads_as_none() {
        // No `type`: not a frame.
        assert_eq!(Frame::parse(r#"{"channel":"load:7","seq":42}"#), None);
        // A message without `seq` or a payload of ours: the frame, without them.
        let frame = Frame::parse(r#"{"type":"message","channel":"load:7","data":"hi"}"#);
        assert_eq!(frame.map(|f| (f.seq, f.sent_ns)), Some((None, None)));
        assert_eq!(sent_ns(r#"{"p":"abcd"}"#), None);
        assert_eq!(num_field(r#"{"sessions":3}"#, "connections"), None);
        assert_eq!(Frame::parse(r#"{"type":"ping"}"#).unwrap().channel, None);
        // Wrong types, truncation, garbage.
        for text in [
            r#"{"type":7}"#,
            r#"{"type":"message","seq":"42"}"#,
            r#"{"type":"message","seq":-1}"#,
            r#"{"type":"ping","nonce":18446744073709551616}"#,
            r#"{"type":"message","channel":"load:7","seq":42,"data":{"t":"1""#,
            r#"{"type":"message""#,
            r#"{"type":"message",}"#,
            r#"["type","message"]"#,
            "",
            "\"",
        ] {
            assert_eq!(Frame::parse(text), None, "{text}");
        }
    }

    #[test]
    fn single_field_helpers_need_the_whole_key() {
        let text = r#"{"xseq":1,"seq_x":2,"seq":3}"#;
        assert_eq!(num_field(text, "seq"), Some(3));
        assert_eq!(
            Frame::parse(r#"{"subtype":"a","type":"b"}"#).unwrap().kind,
            "b"
        );
        assert_eq!(
            Frame::parse(r#"{"type":"welcome"}"#).unwrap().kind,
            "welcome"
        );
    }
}
