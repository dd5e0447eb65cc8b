//! The client side of the tidings JSON protocol (`tidings.v1.json`, docs/protocol.md), written and scanned by hand: the generator must cost less than the server it loads.
//!
//! The generator is measurement apparatus sharing the machine with the server, so its
//! per-message work is kept to the bone:
//!
//! * incoming frames are read in **one pass** by [`Frame::parse`], which walks the top
//!   level object (and the payload in `data`) without allocating, and picks out the few
//!   fields the generator needs: `type`, `channel`, `seq`, `nonce` and the payload's
//!   send time `t`;
//! * outgoing hot frames (`publish`, `ack`, `pong`, the raw echo payload) are written by
//!   a [`FrameBuf`] into one buffer reused for the life of the connection, with
//!   integers formatted by `itoa`.
//!
//! The server's encoder writes no whitespace (the scanner tolerates it anyway) and the
//! channel names used here need no escaping, so string values are taken raw.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::BytesMut;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The subprotocol the generator offers.
pub(crate) const SUBPROTOCOL: &str = "tidings.v1.json";

/// The first frame of every connection.
pub(crate) const HELLO: &str = r#"{"type":"hello","version":1,"positions":[]}"#;

/// An orderly end of the session.
pub(crate) const CLOSE: &str = r#"{"type":"close","code":1000,"reason":"done"}"#;

/// Nanoseconds since the first call in this process (the clock of every timestamp).
pub(crate) fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------------------
// Outgoing frames.

/// The payload carries its send time modulo this (13 decimal digits).
const PAYLOAD_TIME_MOD: u64 = 10_000_000_000_000;

/// Zeros to pad the payload's time to 13 digits.
const ZEROS: &str = "0000000000000";

/// Where a frame is written: a `String` (set-up frames) or a [`FrameBuf`]'s buffer.
trait Out {
    fn put(&mut self, s: &str);

    fn put_u64(&mut self, n: u64) {
        self.put(itoa::Buffer::new().format(n));
    }
}

impl Out for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl Out for BytesMut {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// `{"t":"<13 digits>","p":"abcd"}`.
fn write_payload(out: &mut impl Out, t_ns: u64) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(t_ns % PAYLOAD_TIME_MOD);
    out.put(r#"{"t":""#);
    out.put(&ZEROS[digits.len()..]);
    out.put(digits);
    out.put(r#"","p":"abcd"}"#);
}

fn write_publish(out: &mut impl Out, channel: &str, seq: u64, t_ns: u64) {
    out.put(r#"{"type":"publish","channel":""#);
    out.put(channel);
    out.put(r#"","seq":"#);
    out.put_u64(seq);
    out.put(r#","data":"#);
    write_payload(out, t_ns);
    out.put("}");
}

fn write_ack(out: &mut impl Out, channel: &str, seq: u64) {
    out.put(r#"{"type":"ack","channel":""#);
    out.put(channel);
    out.put(r#"","seq":"#);
    out.put_u64(seq);
    out.put("}");
}

fn write_pong(out: &mut impl Out, nonce: u64) {
    out.put(r#"{"type":"pong","nonce":"#);
    out.put_u64(nonce);
    out.put("}");
}

/// The 32-byte payload of every message: a JSON object (so tidings embeds it as JSON, as
/// it does `tidings_benches::SMALL_PAYLOAD`) carrying its send time in 13 digits.
pub(crate) fn payload(t_ns: u64) -> String {
    let mut s = String::with_capacity(32);
    write_payload(&mut s, t_ns);
    s
}

pub(crate) fn subscribe(channel: &str) -> String {
    format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#)
}

pub(crate) fn publish(channel: &str, seq: u64, t_ns: u64) -> String {
    let mut s = String::with_capacity(96 + channel.len());
    write_publish(&mut s, channel, seq, t_ns);
    s
}

/// Room reserved before each frame: more than any hot frame needs with the channel
/// names used here (a longer frame still works, it just grows the buffer).
const FRAME_ROOM: usize = 192;

/// Writes the hot outgoing frames of one connection into one reused buffer.
///
/// Each frame is split off the buffer as a text [`Message`] sharing its allocation.
/// tungstenite copies a message into its write buffer as soon as it is fed and drops
/// it, so by the next frame the buffer is again the only owner and `reserve` takes
/// the space back: once warm, a frame costs no allocation.
#[derive(Default)]
pub(crate) struct FrameBuf(BytesMut);

impl FrameBuf {
    /// `{"type":"publish","channel":…,"seq":…,"data":<payload>}`.
    pub(crate) fn publish(&mut self, channel: &str, seq: u64, t_ns: u64) -> Message {
        self.frame(|out| write_publish(out, channel, seq, t_ns))
    }

    /// `{"type":"ack","channel":…,"seq":…}`.
    pub(crate) fn ack(&mut self, channel: &str, seq: u64) -> Message {
        self.frame(|out| write_ack(out, channel, seq))
    }

    /// `{"type":"pong","nonce":…}`.
    pub(crate) fn pong(&mut self, nonce: u64) -> Message {
        self.frame(|out| write_pong(out, nonce))
    }

    /// The bare payload (the raw echo baselines).
    pub(crate) fn payload(&mut self, t_ns: u64) -> Message {
        self.frame(|out| write_payload(out, t_ns))
    }

    fn frame(&mut self, write: impl FnOnce(&mut BytesMut)) -> Message {
        self.0.reserve(FRAME_ROOM);
        write(&mut self.0);
        // Only `&str` pieces are ever written, so the frame is UTF-8: it goes out as a
        // text frame without `Message::Text`'s check (the same bytes on the wire; the
        // raw baselines' payloads are sent this way too, so every kind saves it).
        let text = self.0.split().freeze();
        debug_assert!(std::str::from_utf8(&text).is_ok());
        Message::Frame(WsFrame::message(text, OpCode::Data(Data::Text), true))
    }
}

// ---------------------------------------------------------------------------------------
// Incoming frames.

/// What the generator reads of a frame from the server, found in one pass over it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    /// `type`.
    pub(crate) kind: &'a str,
    /// `channel` (`message`, `subscribed`, `gap`).
    pub(crate) channel: Option<&'a str>,
    /// `seq` (`message`, `subscribed`, `publish_ack`).
    pub(crate) seq: Option<u64>,
    /// `nonce` (`ping`).
    pub(crate) nonce: Option<u64>,
    /// The send time carried by the payload in `data`, when it is one of ours.
    pub(crate) sent_ns: Option<u64>,
}

impl<'a> Frame<'a> {
    /// Scans `text` once. `None` when it is not a JSON object with a string `type`, or
    /// when `channel` is not a string or `seq` / `nonce` not an unsigned integer.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
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
    /// by its fixed prefixes (about a tenth of the general scan's instructions; the
    /// generator shares the machine with the server it measures). `None` for anything
    /// else, which the general scan then reads: never a different answer from it.
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

/// The send time of one of our payloads written as [`write_payload`] writes it,
/// `{"t":"<13 digits>","p":"abcd"}`, read by its fixed layout; `None` for anything else.
fn compact_payload_time(payload: &str) -> Option<u64> {
    let digits_then = payload.strip_prefix(r#"{"t":""#)?;
    let rest = digits_then.get(ZEROS.len()..)?;
    (rest == r#"","p":"abcd"}"#).then_some(())?;
    digits(digits_then.get(..ZEROS.len())?)
}

/// The send time carried by a payload: `text` is the payload itself (raw echo) or a frame
/// carrying it in `data`.
pub(crate) fn sent_ns(text: &str) -> Option<u64> {
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
pub(crate) fn num_field(text: &str, key: &str) -> Option<u64> {
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
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Consumes `byte`, after any whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    /// Walks an object: `member` gets each key with the scanner at its value, and must
    /// consume the value.
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

    /// The text of a frame written by a [`FrameBuf`] (a final text frame).
    fn text(m: &Message) -> &str {
        let Message::Frame(f) = m else {
            panic!("not a raw frame: {m:?}")
        };
        assert_eq!(f.header().opcode, OpCode::Data(Data::Text));
        assert!(f.header().is_final);
        std::str::from_utf8(f.payload()).unwrap()
    }

    /// Where a frame written by a [`FrameBuf`] lives.
    fn at(m: &Message) -> *const u8 {
        text(m).as_ptr()
    }

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
    fn frames_are_what_format_wrote() {
        let t = 12_345_678_901_234_567;
        let mut buf = FrameBuf::default();
        for round in 0..3 {
            let seq = 41 + round;
            assert_eq!(
                text(&buf.publish("load:7", seq, t)),
                format!(
                    r#"{{"type":"publish","channel":"load:7","seq":{seq},"data":{{"t":"{:013}","p":"abcd"}}}}"#,
                    t % PAYLOAD_TIME_MOD
                )
            );
            assert_eq!(
                text(&buf.ack("load:7", seq)),
                format!(r#"{{"type":"ack","channel":"load:7","seq":{seq}}}"#)
            );
            assert_eq!(
                text(&buf.pong(u64::MAX)),
                format!(r#"{{"type":"pong","nonce":{}}}"#, u64::MAX)
            );
            assert_eq!(text(&buf.payload(7)), r#"{"t":"0000000000007","p":"abcd"}"#);
        }
        assert_eq!(
            publish("load:fanout", 1, 0),
            r#"{"type":"publish","channel":"load:fanout","seq":1,"data":{"t":"0000000000000","p":"abcd"}}"#
        );
    }

    #[test]
    fn the_reused_buffer_is_not_shared_with_a_frame_still_held() {
        let mut buf = FrameBuf::default();
        let first = buf.publish("load:1", 1, 1);
        let second = buf.publish("load:2", 2, 2);
        assert_eq!(sent_ns(text(&first)), Some(1));
        assert_eq!(sent_ns(text(&second)), Some(2));
        assert!(text(&first).contains("load:1"));
    }

    #[test]
    fn a_warm_buffer_writes_each_frame_where_the_last_one_was() {
        let mut buf = FrameBuf::default();
        let first = buf.publish("load:7", 1, 1);
        let first_at = at(&first);
        drop(first); // as tungstenite does once it has copied the frame
        for seq in 1..100 {
            let ack = buf.ack("load:7", seq);
            assert_eq!(at(&ack), first_at, "ack {seq} was allocated elsewhere");
            drop(ack);
            let publish = buf.publish("load:7", seq + 1, seq);
            assert_eq!(
                at(&publish),
                first_at,
                "publish {seq} was allocated elsewhere"
            );
        }
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
