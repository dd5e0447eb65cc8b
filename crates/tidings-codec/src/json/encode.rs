//! Hand-written JSON encoder of the hot frames (`message`, `publish`, `publish_ack`, `ack`, `subscribed`, `ping`, `pong`): the exact bytes of the serde encoder, written straight into the buffer.
//!
//! The serde path (`json::serde_frames`, `JsonCodec::encode_serde`) builds a
//! `WireOut` and runs it through `serde_json`; that is the definition of the
//! wire bytes. This module writes the same bytes without the serializer
//! machinery, for the frames on the per-message path. What makes the output
//! byte-identical:
//!
//! * **Field order** is the declaration order of `WireOut`, absent (`None`)
//!   fields skipped: `type`, `channel`, `seq`, `id`, `data` | `data_b64`,
//!   `nonce`. No whitespace anywhere (`serde_json`'s compact formatter).
//! * **Integers** are plain decimal via `itoa`, which is what `serde_json`'s
//!   formatter uses for `u64`.
//! * **Message ids** are serialized with `collect_str` of the `u64`'s
//!   `Display`: a JSON string of the decimal digits, which never need escaping.
//! * **Strings** (channel names): `serde_json` escapes only `"`, `\` and bytes
//!   below 0x20, and writes everything else as is (non-ASCII UTF-8 and DEL
//!   included). A channel name is written raw when it holds none of those; one
//!   that does (names may contain quotes and backslashes) makes the whole frame
//!   fall back to the serde path, which escapes it.
//! * **Payloads** follow the serde path's rule,
//!   [`inline_json`](super::inline_json), asked through
//!   [`is_inline_json`] (the same answer, without a second UTF-8 pass for the
//!   payload the validator last accepted): inline as `"data":<raw>` (the
//!   payload's bytes written verbatim) when the payload is valid JSON covering
//!   all of its bytes, otherwise `"data_b64":"<standard base64, padded>"`.
//!   Only one shortcut is added ([`could_be_inline`]): a payload whose first or
//!   last byte cannot start or end a JSON value goes straight to base64, since
//!   `inline_json` would refuse it anyway (spares most binary payloads the
//!   validator's scan).
//!
//! `tests/json_fast.rs` checks the equality with property tests for every
//! frame type handled here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{BufMut, BytesMut};
use tidings_protocol::{Frame, Message};

use super::validate::is_inline_json;

/// Room for the keys, punctuation and two `u64`s of a channel frame (at most
/// `","seq":` + 20 digits + `,"id":"` + 20 digits + `"` + `,"data_b64":"` +
/// `"}` = 72 bytes after the head and the channel name).
const FIXED_OVERHEAD: usize = 80;

/// Encodes `frame` into `out` (appending) when it is one of the hot frames and
/// its strings need no escaping. Returns `false`, with `out` as it was, when
/// the frame must go through the serde path instead.
pub(super) fn encode(frame: &Frame, out: &mut BytesMut) -> bool {
    match frame {
        Frame::Message(m) => message(m, out),
        Frame::Publish(p) => channel_frame(
            out,
            r#"{"type":"publish","channel":""#,
            p.channel.as_str(),
            p.seq,
            None,
            Some(&p.payload),
        ),
        Frame::Ack(a) => channel_frame(
            out,
            r#"{"type":"ack","channel":""#,
            a.channel.as_str(),
            a.seq,
            None,
            None,
        ),
        Frame::Subscribed(s) => channel_frame(
            out,
            r#"{"type":"subscribed","channel":""#,
            s.channel.as_str(),
            s.seq,
            None,
            None,
        ),
        Frame::PublishAck(a) => number_frame(out, r#"{"type":"publish_ack","seq":"#, a.seq),
        Frame::Ping(p) => number_frame(out, r#"{"type":"ping","nonce":"#, p.nonce),
        Frame::Pong(p) => number_frame(out, r#"{"type":"pong","nonce":"#, p.nonce),
        _ => false,
    }
}

/// [`encode`] for a `Message` frame, from a reference (fan-out's path).
pub(super) fn message(m: &Message, out: &mut BytesMut) -> bool {
    channel_frame(
        out,
        r#"{"type":"message","channel":""#,
        m.channel.as_str(),
        m.seq,
        Some(m.id.0),
        Some(&m.payload),
    )
}

/// Whether `serde_json` would escape something in `s` (it escapes exactly
/// `"`, `\` and the bytes below 0x20).
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// `false` when [`inline_json`](super::inline_json) certainly refuses `payload`: inline payloads
/// are a JSON value with nothing around it (serde_json skips surrounding
/// whitespace, which the length check then refuses), so their first byte
/// starts a value (`n`ull, `t`rue, `f`alse, a number, a string, an array, an
/// object) and their last byte ends one (nul`l`, tru`e`/fals`e`, a digit, `"`,
/// `]`, `}`). Empty payloads are refused too (not JSON).
fn could_be_inline(payload: &[u8]) -> bool {
    matches!(
        (payload.first(), payload.last()),
        (
            Some(b'n' | b't' | b'f' | b'-' | b'0'..=b'9' | b'"' | b'[' | b'{'),
            Some(b'l' | b'e' | b'0'..=b'9' | b'"' | b']' | b'}'),
        )
    )
}

fn put_u64(out: &mut BytesMut, n: u64) {
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `<head><n>}` — `publish_ack`, `ping`, `pong`.
fn number_frame(out: &mut BytesMut, head: &str, n: u64) -> bool {
    out.reserve(head.len() + 21);
    out.put_slice(head.as_bytes());
    put_u64(out, n);
    out.put_u8(b'}');
    true
}

/// How a payload travels.
enum Data<'a> {
    /// `"data":<raw>` (one JSON value, valid UTF-8).
    Inline(&'a [u8]),
    /// `"data_b64":"…"`, with the length of the encoding.
    Base64(&'a [u8], usize),
}

/// `<head><channel>","seq":<seq>[,"id":"<id>"][,"data":…|,"data_b64":"…"]}`,
/// where `head` ends with `"channel":"`.
fn channel_frame(
    out: &mut BytesMut,
    head: &str,
    channel: &str,
    seq: u64,
    id: Option<u64>,
    payload: Option<&[u8]>,
) -> bool {
    if needs_escape(channel) {
        return false;
    }
    let data = match payload {
        None => None,
        Some(p) if could_be_inline(p) && is_inline_json(p) => Some(Data::Inline(p)),
        Some(p) => match base64::encoded_len(p.len(), true) {
            Some(len) => Some(Data::Base64(p, len)),
            // Longer than memory: let the serde path report it.
            None => return false,
        },
    };
    let data_len = match &data {
        None => 0,
        Some(Data::Inline(raw)) => raw.len(),
        Some(Data::Base64(_, len)) => *len,
    };
    let start = out.len();
    out.reserve(
        head.len()
            .saturating_add(channel.len())
            .saturating_add(FIXED_OVERHEAD)
            .saturating_add(data_len),
    );
    out.put_slice(head.as_bytes());
    out.put_slice(channel.as_bytes());
    out.put_slice(br#"","seq":"#);
    put_u64(out, seq);
    if let Some(id) = id {
        out.put_slice(br#","id":""#);
        put_u64(out, id);
        out.put_u8(b'"');
    }
    match data {
        None => {}
        Some(Data::Inline(raw)) => {
            out.put_slice(br#","data":"#);
            out.put_slice(raw);
        }
        Some(Data::Base64(bytes, len)) => {
            out.put_slice(br#","data_b64":""#);
            let at = out.len();
            out.resize(at + len, 0);
            match BASE64.encode_slice(bytes, &mut out[at..]) {
                Ok(n) if n == len => {}
                // Cannot happen (the slice has exactly the encoded length);
                // leave `out` as it was and let the serde path encode the frame.
                _ => {
                    out.truncate(start);
                    return false;
                }
            }
            out.put_u8(b'"');
        }
    }
    out.put_u8(b'}');
    true
}
