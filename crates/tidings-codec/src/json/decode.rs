//! Hand-written JSON decoder for the compact shapes of the hot frames (`publish`, `message`, `ack`, …); anything else falls back to the serde path.
//!
//! # Why
//!
//! `serde_json::from_slice` into the derived `WireIn` struct (about 25
//! optional fields, then a match on `type`) is the largest single per-frame
//! cost of the server. Nearly every frame on the hot path has one compact
//! shape, the one our encoders and typical clients (`JSON.stringify`) write:
//!
//! ```text
//! {"type":"<kind>","key":value,...}
//! ```
//!
//! with no whitespace, `type` first, `data` (if any) last, plain unsigned
//! decimal numbers and strings without escapes. [`decode`] reads exactly that
//! shape in one forward pass, without building the intermediate struct: one
//! UTF-8 check of the whole frame, the kind and the keys matched as fixed
//! prefixes (`,"seq":`), strings and numbers scanned in place, and the raw
//! `data` checked by `json::validate` (which accepts exactly what
//! serde_json's `RawValue` accepts, more cheaply; it is the bulk of what
//! remains for a frame with a payload). `benches/benches/codec.rs`
//! (`decode/*`) measures the decoder.
//!
//! # Contract
//!
//! [`decode`] returns `Some(frame)` only when the serde path
//! (`JsonCodec::decode_serde`) returns `Ok(frame)` for the same input, and
//! the same frame (payload bytes included). For anything it does not fully
//! understand it returns `None` and the caller runs the serde path, which then
//! accepts the input or reports its precise error. So it refuses (returns
//! `None` on):
//!
//! * whitespace between tokens (inside a string or inside the raw `data` it is
//!   content and kept), a `type` that is not the first key, a kind other than
//!   `publish`, `message`, `ack`, `publish_ack`, `subscribe`, `subscribed`,
//!   `unsubscribe`, `ping`, `pong`;
//! * any key the serde path does not use for that kind (even one serde would
//!   ignore: serde still type-checks it), a duplicate key, `data_b64`;
//! * a `\` or a control byte inside a string, invalid UTF-8 anywhere in the
//!   frame, an invalid channel name;
//! * a number that is not a plain unsigned decimal fitting `u64` (sign, leading
//!   zero, fraction, exponent, overflow), `null` where a number is expected;
//! * `data` anywhere but last, or whose raw JSON does not span exactly the
//!   bytes between `"data":` and the final `}` (validated by `json::validate`,
//!   which accepts exactly what the serde path's `RawValue` accepts);
//! * a missing required field, anything after the final `}`.
//!
//! Optional fields take the serde path's defaults: `subscribe` without `after`
//! has `after: None`, `ping` / `pong` without `nonce` have nonce 0.
//!
//! The equivalence is checked by proptests (tests/json_fast_decode.rs) and by
//! the `decode_json` fuzz target, which panics whenever the two paths differ.

use bytes::Bytes;
use tidings_protocol::{
    Ack, ChannelName, Frame, FrameType, Message, MessageId, Ping, Publish, PublishAck, Subscribe,
    Subscribed, Unsubscribe,
};

/// The kinds with their closing quote (so that `publish` is not a prefix of
/// `publish_ack`), the most frequent first.
const KINDS: [(&str, FrameType); 9] = [
    ("message\"", FrameType::Message),
    ("publish\"", FrameType::Publish),
    ("ack\"", FrameType::Ack),
    ("publish_ack\"", FrameType::PublishAck),
    ("ping\"", FrameType::Ping),
    ("pong\"", FrameType::Pong),
    ("subscribe\"", FrameType::Subscribe),
    ("subscribed\"", FrameType::Subscribed),
    ("unsubscribe\"", FrameType::Unsubscribe),
];

// Field bits (for the allowed and the seen sets).
const CHANNEL: u8 = 1;
const SEQ: u8 = 1 << 1;
const ID: u8 = 1 << 2;
const DATA: u8 = 1 << 3;
const AFTER: u8 = 1 << 4;
const NONCE: u8 = 1 << 5;

/// Every key of the fast path with the `,` before it and the `:` after it.
const KEYS: [(&str, u8); 6] = [
    (",\"channel\":", CHANNEL),
    (",\"seq\":", SEQ),
    (",\"id\":", ID),
    (",\"data\":", DATA),
    (",\"after\":", AFTER),
    (",\"nonce\":", NONCE),
];

/// The keys the serde path reads for a kind of [`KINDS`]: exactly these are
/// allowed (none for any other kind).
fn allowed(kind: FrameType) -> u8 {
    match kind {
        FrameType::Publish => CHANNEL | SEQ | DATA,
        FrameType::Message => CHANNEL | SEQ | ID | DATA,
        FrameType::Ack | FrameType::Subscribed => CHANNEL | SEQ,
        FrameType::PublishAck => SEQ,
        FrameType::Subscribe => CHANNEL | AFTER,
        FrameType::Unsubscribe => CHANNEL,
        FrameType::Ping | FrameType::Pong => NONCE,
        _ => 0,
    }
}

/// The fields read so far (borrowed from the input).
#[derive(Default)]
struct Fields<'a> {
    channel: Option<&'a str>,
    seq: Option<u64>,
    id: Option<u64>,
    data: Option<&'a str>,
    after: Option<u64>,
    nonce: Option<u64>,
}

/// Decodes a compact frame of one of the hot kinds, or returns `None` (see the
/// module docs): never `Some` where the serde path would disagree.
pub(super) fn decode(input: &Bytes) -> Option<Frame> {
    // One UTF-8 check of the whole frame; every string below is then a `&str`
    // slice of it (serde checks each string and the raw `data` separately;
    // refusing a frame with invalid UTF-8 anywhere is always allowed).
    let text = std::str::from_utf8(input).ok()?;
    let rest = text.strip_prefix("{\"type\":\"")?;
    let (kind, mut rest) = KINDS
        .iter()
        .find_map(|&(name, kind)| rest.strip_prefix(name).map(|r| (kind, r)))?;
    let allowed = allowed(kind);
    let mut seen = 0u8;
    let mut f = Fields::default();

    // `,"key":value` pairs up to the final `}`, the last byte.
    while rest != "}" {
        let (bit, value) = KEYS
            .iter()
            .find_map(|&(key, bit)| rest.strip_prefix(key).map(|v| (bit, v)))?;
        if allowed & bit == 0 || seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match bit {
            CHANNEL => {
                // Validated (`ChannelName::new`) once the frame is complete.
                let (s, r) = string(value)?;
                f.channel = Some(s);
                rest = r;
            }
            ID => {
                let (s, r) = string(value)?;
                f.id = Some(id(s)?);
                rest = r;
            }
            DATA => {
                // Last key: the value is everything up to the final `}`.
                let raw = value.strip_suffix('}')?;
                // Exactly what serde's `RawValue` accepts (`json::validate`);
                // UTF-8 was checked with the whole frame.
                if !super::validate::is_whole_json_value(raw) {
                    return None;
                }
                f.data = Some(raw);
                break;
            }
            _ => {
                let (n, r) = number(value)?;
                match bit {
                    SEQ => f.seq = Some(n),
                    AFTER => f.after = Some(n),
                    _ => f.nonce = Some(n),
                }
                rest = r;
            }
        }
    }

    let channel = |f: &Fields<'_>| f.channel.and_then(|c| ChannelName::new(c).ok());
    let payload = |f: &Fields<'_>| f.data.map(|raw| input.slice_ref(raw.as_bytes()));
    Some(match kind {
        FrameType::Publish => Frame::Publish(Publish {
            channel: channel(&f)?,
            seq: f.seq?,
            payload: payload(&f)?,
        }),
        FrameType::Message => Frame::Message(Message {
            channel: channel(&f)?,
            seq: f.seq?,
            id: MessageId(f.id?),
            payload: payload(&f)?,
        }),
        FrameType::Ack => Frame::Ack(Ack {
            channel: channel(&f)?,
            seq: f.seq?,
        }),
        FrameType::PublishAck => Frame::PublishAck(PublishAck { seq: f.seq? }),
        FrameType::Subscribe => Frame::Subscribe(Subscribe {
            channel: channel(&f)?,
            after: f.after,
        }),
        FrameType::Subscribed => Frame::Subscribed(Subscribed {
            channel: channel(&f)?,
            seq: f.seq?,
        }),
        FrameType::Unsubscribe => Frame::Unsubscribe(Unsubscribe {
            channel: channel(&f)?,
        }),
        FrameType::Ping => Frame::Ping(Ping {
            nonce: f.nonce.unwrap_or(0),
        }),
        FrameType::Pong => Frame::Pong(Ping {
            nonce: f.nonce.unwrap_or(0),
        }),
        // Not in `KINDS`: the serde path decodes it.
        _ => return None,
    })
}

/// A string value: its body and the text after its closing `"`. `None` when
/// `s` does not start with `"`, on an escape, a control byte (which serde_json
/// refuses inside strings) or a missing closing quote.
fn string(s: &str) -> Option<(&str, &str)> {
    let body = s.strip_prefix('"')?;
    let end = body
        .bytes()
        .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
    // Both ends are ASCII bytes, so char boundaries: `get` never refuses here.
    let rest = body.get(end..)?.strip_prefix('"')?;
    Some((body.get(..end)?, rest))
}

/// A message id: the serde path parses the id string with `str::parse::<u64>`,
/// which also takes a leading `+` and leading zeros. The plain digits our
/// encoders write take the quick loop; anything else gets that very parse.
fn id(s: &str) -> Option<u64> {
    match number(s) {
        Some((n, "")) => Some(n),
        _ => s.parse().ok(),
    }
}

/// A plain unsigned decimal `u64` (no sign, no leading zero, no fraction or
/// exponent, no overflow) and the text after it. The caller checks what
/// follows (`,` or `}`), so `1.0`, `1e3` or `1x` are refused there.
fn number(s: &str) -> Option<(u64, &str)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (digits, rest) = s.split_at_checked(len)?;
    let digits = digits.as_bytes();
    if digits.is_empty() || (digits.len() > 1 && digits.first() == Some(&b'0')) {
        return None;
    }
    // Up to 19 digits cannot overflow a u64 (10^19 - 1 < 2^64); a 20th can.
    let (head, tail) = digits.split_at(digits.len().min(19));
    let mut n: u64 = 0;
    for &d in head {
        n = n * 10 + u64::from(d - b'0');
    }
    for &d in tail {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some((n, rest))
}
