//! Hand-written fast path of the JSON decoder for the compact shapes of the hot frames (`publish`, `message`, `ack`, …); anything else falls back to serde.
//!
//! # Why
//!
//! `serde_json::from_slice` into the derived `WireIn` struct (about 25
//! optional fields, then a match on `type`) costs about 3,900 instructions per
//! ~110-byte `publish` / `ack` frame under callgrind: the largest single cost of
//! the server per message (a raw WebSocket echo costs about 7,800 in total).
//! Nearly every frame on the hot path has one compact shape, the one our
//! encoders and typical clients (`JSON.stringify`) write:
//!
//! ```text
//! {"type":"<kind>","key":value,...}
//! ```
//!
//! with no whitespace, `type` first, `data` (if any) last, plain unsigned
//! decimal numbers and strings without escapes. [`decode`] reads exactly that
//! shape in one forward pass, without building the intermediate struct.
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
//! * any whitespace, a `type` that is not the first key, a kind other than
//!   `publish`, `message`, `ack`, `publish_ack`, `subscribe`, `subscribed`,
//!   `unsubscribe`, `ping`, `pong`;
//! * any key the serde path does not use for that kind (even one serde would
//!   ignore: serde still type-checks it), a duplicate key, `data_b64`;
//! * a `\` or a control byte inside a string, invalid UTF-8, an invalid channel
//!   name;
//! * a number that is not a plain unsigned decimal fitting `u64` (sign, leading
//!   zero, fraction, exponent, overflow), `null` where a number is expected;
//! * `data` anywhere but last, or whose raw JSON does not span exactly the
//!   bytes between `"data":` and the final `}` (validated with serde_json's
//!   `RawValue`, the same validation the serde path runs);
//! * a missing required field, anything after the final `}`.
//!
//! Optional fields take the serde path's defaults: `subscribe` without `after`
//! has `after: None`, `ping` / `pong` without `nonce` have nonce 0.
//!
//! The equivalence is checked by proptests (tests/json_fast_decode.rs) and by
//! the `decode_json` fuzz target, which panics whenever the two paths differ.

use bytes::Bytes;
use serde_json::value::RawValue;
use tidings_core::{
    Ack, ChannelName, Frame, Message, MessageId, Ping, Publish, PublishAck, Subscribe, Subscribed,
    Unsubscribe,
};

use crate::json::JsonCodec;

impl JsonCodec {
    /// Test hook: the hand-written fast path of [`FrameCodec::decode`](tidings_core::FrameCodec::decode)
    /// alone. `Some` only for compact frames it fully understands (and then
    /// equal to what [`JsonCodec::decode_serde`] returns); `None` means "ask
    /// the serde path". Not part of the stable API.
    #[doc(hidden)]
    pub fn decode_fast(&self, input: &Bytes) -> Option<Frame> {
        decode(input)
    }
}

/// The frame kinds of the fast path.
#[derive(Clone, Copy)]
enum Kind {
    Publish,
    Message,
    Ack,
    PublishAck,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Ping,
    Pong,
}

// Field bits (for the allowed and the seen sets).
const CHANNEL: u8 = 1;
const SEQ: u8 = 1 << 1;
const ID: u8 = 1 << 2;
const DATA: u8 = 1 << 3;
const AFTER: u8 = 1 << 4;
const NONCE: u8 = 1 << 5;

impl Kind {
    fn parse(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"publish" => Self::Publish,
            b"message" => Self::Message,
            b"ack" => Self::Ack,
            b"publish_ack" => Self::PublishAck,
            b"subscribe" => Self::Subscribe,
            b"subscribed" => Self::Subscribed,
            b"unsubscribe" => Self::Unsubscribe,
            b"ping" => Self::Ping,
            b"pong" => Self::Pong,
            _ => return None,
        })
    }

    /// The keys the serde path reads for this kind: exactly these are allowed.
    fn allowed(self) -> u8 {
        match self {
            Self::Publish => CHANNEL | SEQ | DATA,
            Self::Message => CHANNEL | SEQ | ID | DATA,
            Self::Ack | Self::Subscribed => CHANNEL | SEQ,
            Self::PublishAck => SEQ,
            Self::Subscribe => CHANNEL | AFTER,
            Self::Unsubscribe => CHANNEL,
            Self::Ping | Self::Pong => NONCE,
        }
    }
}

/// The fields read so far (borrowed from the input).
#[derive(Default)]
struct Fields<'a> {
    channel: Option<&'a str>,
    seq: Option<u64>,
    id: Option<u64>,
    data: Option<&'a [u8]>,
    after: Option<u64>,
    nonce: Option<u64>,
}

/// Decodes a compact frame of one of the hot kinds, or returns `None` (see the
/// module docs): never `Some` where the serde path would disagree.
pub(crate) fn decode(input: &Bytes) -> Option<Frame> {
    let bytes: &[u8] = input;
    let rest = bytes.strip_prefix(b"{\"type\":\"")?;
    let (name, mut rest) = string(rest)?;
    let kind = Kind::parse(name)?;
    let allowed = kind.allowed();
    let mut seen = 0u8;
    let mut f = Fields::default();

    loop {
        // Between pairs: `,` and the next pair, or the final `}` as the last byte.
        match rest.split_first()? {
            (b'}', []) => break,
            (b',', after) => rest = after,
            _ => return None,
        }
        let after_quote = rest.strip_prefix(b"\"")?;
        let (key, after_key) = string(after_quote)?;
        let value = after_key.strip_prefix(b":")?;
        let bit = match key {
            b"channel" => CHANNEL,
            b"seq" => SEQ,
            b"id" => ID,
            b"data" => DATA,
            b"after" => AFTER,
            b"nonce" => NONCE,
            _ => return None,
        };
        if allowed & bit == 0 || seen & bit != 0 {
            return None;
        }
        seen |= bit;
        match bit {
            CHANNEL => {
                let (s, r) = string(value.strip_prefix(b"\"")?)?;
                // Validated (`ChannelName::new`) once the frame is complete.
                f.channel = Some(std::str::from_utf8(s).ok()?);
                rest = r;
            }
            ID => {
                let (s, r) = string(value.strip_prefix(b"\"")?)?;
                // Exactly the serde path's parse of the (escape-free) string.
                f.id = Some(std::str::from_utf8(s).ok()?.parse().ok()?);
                rest = r;
            }
            DATA => {
                // Last key: the value is everything up to the final `}`.
                let (&last, raw) = value.split_last()?;
                if last != b'}' {
                    return None;
                }
                let parsed = serde_json::from_slice::<&RawValue>(raw).ok()?;
                if parsed.get().len() != raw.len() {
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
    Some(match kind {
        Kind::Publish => Frame::Publish(Publish {
            channel: channel(&f)?,
            seq: f.seq?,
            payload: input.slice_ref(f.data?),
        }),
        Kind::Message => Frame::Message(Message {
            channel: channel(&f)?,
            seq: f.seq?,
            id: MessageId(f.id?),
            payload: input.slice_ref(f.data?),
        }),
        Kind::Ack => Frame::Ack(Ack {
            channel: channel(&f)?,
            seq: f.seq?,
        }),
        Kind::PublishAck => Frame::PublishAck(PublishAck { seq: f.seq? }),
        Kind::Subscribe => Frame::Subscribe(Subscribe {
            channel: channel(&f)?,
            after: f.after,
        }),
        Kind::Subscribed => Frame::Subscribed(Subscribed {
            channel: channel(&f)?,
            seq: f.seq?,
        }),
        Kind::Unsubscribe => Frame::Unsubscribe(Unsubscribe {
            channel: channel(&f)?,
        }),
        Kind::Ping => Frame::Ping(Ping {
            nonce: f.nonce.unwrap_or(0),
        }),
        Kind::Pong => Frame::Pong(Ping {
            nonce: f.nonce.unwrap_or(0),
        }),
    })
}

/// The body of a string whose opening `"` is already consumed, and the bytes
/// after its closing `"`. `None` on an escape, a control byte (which serde_json
/// refuses inside strings) or a missing closing quote. UTF-8 is checked by the
/// caller where the string is used as text.
fn string(s: &[u8]) -> Option<(&[u8], &[u8])> {
    for (i, &b) in s.iter().enumerate() {
        match b {
            b'"' => return Some((s.get(..i)?, s.get(i + 1..)?)),
            b'\\' | 0..=0x1f => return None,
            _ => {}
        }
    }
    None
}

/// A plain unsigned decimal `u64` (no sign, no leading zero, no fraction or
/// exponent, no overflow) and the bytes after it. The caller checks what
/// follows (`,` or `}`), so `1.0`, `1e3` or `1x` are refused there.
fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let len = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, rest) = s.split_at_checked(len)?;
    match digits {
        [] => return None,
        [b'0', _, ..] => return None,
        _ => {}
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some((n, rest))
}
