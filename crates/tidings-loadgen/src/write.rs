//! The frames the load generator sends, written by hand: the hot ones (`publish`, `ack`, `pong`, the raw echo payload) into one buffer reused for the life of a connection, integers formatted by `itoa`.
//!
//! The channel names used here need no escaping, so they are written raw.

use bytes::BytesMut;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The subprotocol the generator offers.
pub const SUBPROTOCOL: &str = "tidings.v1.json";

/// The first frame of every connection.
pub const HELLO: &str = r#"{"type":"hello","version":1,"positions":[]}"#;

/// An orderly end of the session.
pub const CLOSE: &str = r#"{"type":"close","code":1000,"reason":"done"}"#;

/// The payload carries its send time modulo this (13 decimal digits).
const PAYLOAD_TIME_MOD: u64 = 10_000_000_000_000;

/// Zeros to pad the payload's time to 13 digits.
pub(crate) const ZEROS: &str = "0000000000000";

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

/// The 32-byte payload of every message: a JSON object (so the JSON codec embeds it
/// inline, not as base64) carrying its send time in 13 digits.
pub fn payload(t_ns: u64) -> String {
    let mut s = String::with_capacity(32);
    write_payload(&mut s, t_ns);
    s
}

/// `{"type":"subscribe","channel":…}`.
pub fn subscribe(channel: &str) -> String {
    format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#)
}

/// `{"type":"publish","channel":…,"seq":…,"data":<payload>}` in a fresh `String` (a
/// [`FrameBuf`] writes it without allocating).
pub fn publish(channel: &str, seq: u64, t_ns: u64) -> String {
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
#[derive(Debug, Default)]
pub struct FrameBuf(BytesMut);

impl FrameBuf {
    /// `{"type":"publish","channel":…,"seq":…,"data":<payload>}`.
    #[inline]
    pub fn publish(&mut self, channel: &str, seq: u64, t_ns: u64) -> Message {
        self.frame(|out| write_publish(out, channel, seq, t_ns))
    }

    /// `{"type":"ack","channel":…,"seq":…}`.
    #[inline]
    pub fn ack(&mut self, channel: &str, seq: u64) -> Message {
        self.frame(|out| write_ack(out, channel, seq))
    }

    /// `{"type":"pong","nonce":…}`.
    #[inline]
    pub fn pong(&mut self, nonce: u64) -> Message {
        self.frame(|out| write_pong(out, nonce))
    }

    /// The bare payload (the raw echo baselines).
    #[inline]
    pub fn payload(&mut self, t_ns: u64) -> Message {
        self.frame(|out| write_payload(out, t_ns))
    }

    #[inline]
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
        assert_eq!(text(&first), publish("load:1", 1, 1));
        assert_eq!(text(&second), publish("load:2", 2, 2));
    }

    #[test]
    fn set_up_frames() {
        assert_eq!(
            subscribe("load:7"),
            r#"{"type":"subscribe","channel":"load:7"}"#
        );
        assert_eq!(payload(0), r#"{"t":"0000000000000","p":"abcd"}"#);
        // The time wraps at 13 digits instead of growing the payload.
        assert_eq!(payload(PAYLOAD_TIME_MOD + 5), payload(5));
        assert_eq!(payload(PAYLOAD_TIME_MOD - 1).len(), 32);
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
}
