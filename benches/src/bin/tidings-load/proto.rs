//! The client side of the tidings JSON protocol (`tidings.v1.json`, docs/protocol.md), written and scanned by hand: the generator must cost less than the server it loads.
//!
//! Frames are built with `format!` and incoming ones are read by scanning for the few
//! fields the generator needs; the server's encoder (serde_json) writes no whitespace
//! and the channel names used here need no escaping.

use std::sync::OnceLock;
use std::time::Instant;

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

/// The 32-byte payload of every message: a JSON object (so tidings embeds it as JSON, as
/// it does `tidings_benches::SMALL_PAYLOAD`) carrying its send time in 13 digits.
pub(crate) fn payload(t_ns: u64) -> String {
    format!(r#"{{"t":"{:013}","p":"abcd"}}"#, t_ns % 10_000_000_000_000)
}

/// The send time carried by a payload (anywhere in `text`, so in a `message` frame too).
pub(crate) fn sent_ns(text: &str) -> Option<u64> {
    let at = text.find(r#""t":""#)? + 5;
    text.get(at..at + 13)?.parse().ok()
}

pub(crate) fn subscribe(channel: &str) -> String {
    format!(r#"{{"type":"subscribe","channel":"{channel}"}}"#)
}

pub(crate) fn publish(channel: &str, seq: u64, t_ns: u64) -> String {
    format!(
        r#"{{"type":"publish","channel":"{channel}","seq":{seq},"data":{}}}"#,
        payload(t_ns)
    )
}

pub(crate) fn ack(channel: &str, seq: u64) -> String {
    format!(r#"{{"type":"ack","channel":"{channel}","seq":{seq}}}"#)
}

pub(crate) fn pong(nonce: u64) -> String {
    format!(r#"{{"type":"pong","nonce":{nonce}}}"#)
}

/// The frame's `type`.
pub(crate) fn kind(text: &str) -> &str {
    str_field(text, "type").unwrap_or("")
}

/// A string field, e.g. `channel`.
pub(crate) fn str_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":\"");
    let at = text.find(&pattern)? + pattern.len();
    let len = text[at..].find('"')?;
    Some(&text[at..at + len])
}

/// An unsigned number field, e.g. `seq`.
pub(crate) fn num_field(text: &str, key: &str) -> Option<u64> {
    let pattern = format!("\"{key}\":");
    let at = text.find(&pattern)? + pattern.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_32_bytes_of_json_with_its_time() {
        let p = payload(123_456);
        assert_eq!(p.len(), 32, "{p}");
        assert_eq!(sent_ns(&p), Some(123_456));
        let msg =
            format!(r#"{{"type":"message","channel":"load:7","seq":42,"id":"9","data":{p}}}"#);
        assert_eq!(kind(&msg), "message");
        assert_eq!(str_field(&msg, "channel"), Some("load:7"));
        assert_eq!(num_field(&msg, "seq"), Some(42));
        assert_eq!(sent_ns(&msg), Some(123_456));
    }
}
