//! The JSON codec (`tidings.v1.json`): one flat JSON object per frame, payloads inline as raw JSON or as base64.
//!
//! The wire format is specified in docs/protocol.md (§3). Each direction has
//! a generic path and a hand-written one for the hot frames, which give the
//! same result wherever the hand-written one answers:
//!
//! * [`serde_frames`] — the generic path: a flat struct of optional fields
//!   (`WireIn` / `WireOut`) through `serde_json`. It handles every frame and
//!   every JSON shape, and defines the wire bytes and the errors.
//! * [`encode`] — writes the hot frames (`message`, `publish`, `publish_ack`,
//!   `ack`, `subscribed`, `ping`, `pong`) straight into the buffer, the exact
//!   bytes of the serde encoder.
//! * [`decode`] — reads the compact shape of the hot frames in one forward
//!   pass, since serde's generic decode into a struct of optional fields is
//!   the largest per-frame cost of the server; anything it does not fully
//!   understand goes to the serde path.
//! * [`validate`] — the payload check of both directions: whether a payload
//!   is exactly one JSON value, so travels inline as `"data"`, or goes as
//!   `"data_b64"`.
//!
//! The agreement of the two paths is checked by property tests
//! (`tests/json_fast.rs`, `tests/json_fast_decode.rs`,
//! `tests/json_validate.rs`) and by the `decode_json` and `validate_json` fuzz
//! targets; `benches/benches/codec.rs` measures both paths.

use bytes::{Bytes, BytesMut};
use tidings_protocol::{CodecError, CodecKind, Frame, FrameCodec, Message};

mod decode;
mod encode;
mod serde_frames;
mod validate;

/// JSON frames: `{"type":"message","channel":"room","seq":1,"id":"42","data":{...}}`.
///
/// Decoding never panics; every malformed input is a [`CodecError`]. Unknown
/// fields are ignored (forward compatibility), unknown `type`s are refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonCodec;

/// The payload rule of both encoders: `Some(text)` (the payload's own bytes)
/// when `payload` travels inline as `"data":<text>`, `None` when it travels as
/// `"data_b64"`.
///
/// Inline only when the payload is valid JSON *and* the raw value is the whole
/// payload: serde_json trims surrounding whitespace, which would change the
/// payload's bytes. That is `serde_json::from_slice::<&RawValue>` succeeding
/// with `raw.get().len() == payload.len()`; [`validate`] gives the same
/// answer for a fraction of the cost (tests/json_validate.rs, fuzz target
/// `validate_json`).
fn inline_json(payload: &[u8]) -> Option<&str> {
    validate::whole_json_value(payload)
}

impl JsonCodec {
    /// The codec.
    pub fn new() -> Self {
        Self
    }

    /// Encodes `frame` with the generic serde encoder (a `WireOut` through
    /// `serde_json`), appending to `out`.
    ///
    /// [`FrameCodec::encode`] writes the hot frames (`message`, `publish`,
    /// `publish_ack`, `ack`, `subscribed`, `ping`, `pong`) by hand instead
    /// (`json::encode`) and uses this for everything else. Both write the same
    /// bytes; this stays reachable so that tests and benches can compare them.
    #[doc(hidden)]
    pub fn encode_serde(&self, frame: &Frame, out: &mut BytesMut) -> Result<(), CodecError> {
        serde_frames::encode(frame, out)
    }

    /// Test hook: decodes `input` with the generic serde decoder (a `WireIn`
    /// through `serde_json`) alone, skipping the hand-written fast path.
    ///
    /// [`FrameCodec::decode`] tries [`JsonCodec::decode_fast`] first and falls
    /// back to this; whenever the fast path returns `Some(frame)`, this returns
    /// `Ok(frame)` (checked by tests and the `decode_json` fuzz target). Not
    /// part of the stable API.
    #[doc(hidden)]
    pub fn decode_serde(&self, input: &Bytes) -> Result<Frame, CodecError> {
        serde_frames::decode(input)
    }

    /// Test hook: the hand-written fast path of [`FrameCodec::decode`]
    /// alone. `Some` only for compact frames it fully understands (and then
    /// equal to what [`JsonCodec::decode_serde`] returns); `None` means "ask
    /// the serde path". Not part of the stable API.
    #[doc(hidden)]
    pub fn decode_fast(&self, input: &Bytes) -> Option<Frame> {
        decode::decode(input)
    }

    /// Test hook: the payload validator of the JSON codec, `Some(text)` iff
    /// `payload` travels inline as `"data":<payload>`, i.e. iff
    /// `serde_json::from_slice::<&RawValue>(payload)` succeeds with the raw
    /// value covering all of `payload`. Exposed for the differential tests,
    /// the `validate_json` fuzz target and the benches; not part of the
    /// stable API. The check itself, without the per-thread memo of the last
    /// valid payload (which would answer a bench's repeated calls).
    #[doc(hidden)]
    pub fn whole_json_value(payload: &[u8]) -> Option<&str> {
        validate::validate(payload)
    }
}

impl FrameCodec for JsonCodec {
    fn kind(&self) -> CodecKind {
        CodecKind::Json
    }

    fn encode(&self, frame: &Frame, out: &mut BytesMut) -> Result<(), CodecError> {
        if encode::encode(frame, out) {
            return Ok(());
        }
        self.encode_serde(frame, out)
    }

    fn encode_message(&self, message: &Message, out: &mut BytesMut) -> Result<(), CodecError> {
        if encode::message(message, out) {
            return Ok(());
        }
        self.encode_serde(&Frame::Message(message.clone()), out)
    }

    fn decode(&self, input: &Bytes) -> Result<Frame, CodecError> {
        // Compact hot frames by hand (`json::decode`), everything else by serde.
        match self.decode_fast(input) {
            Some(frame) => Ok(frame),
            None => self.decode_serde(input),
        }
    }
}
