//! Wire codecs of tidings and their negotiation.
//!
//! * [`JsonCodec`] — `tidings.v1.json`, one JSON object per frame (see
//!   docs/protocol.md). Built on `serde_json` (the standard, fast, well-kept
//!   JSON crate); payloads are embedded as raw JSON (`data`) and decoded without
//!   copying (a `Bytes` slice of the received frame), or as base64 (`data_b64`)
//!   when they are not JSON, using the `base64` crate. Decoding through serde's
//!   derived struct is the largest single per-message cost of the server, so
//!   `decode` first tries a hand-written fast path for the compact shape of the
//!   hot frames (`{"type":"ack","channel":"c","seq":1}`: no whitespace, no
//!   escapes, `data` last) and falls back to serde for everything else; the
//!   two give the same frame whenever the fast path answers (proptests and the
//!   `decode_json` fuzz target check it; `benches/benches/codec.rs` measures
//!   both).
//! * [`BinaryCodec`] (feature `binary`, on by default) — `tidings.v1.bin`, a
//!   2-byte header (format, frame type) followed by an
//!   [rkyv](https://docs.rs/rkyv) 0.8 archive of the frame. Received frames
//!   are validated with bytecheck and then read in place:
//!   [`BinaryCodec::view`] reads a `message` (channel, seq, id, payload)
//!   without a single heap allocation, and [`FrameCodec::decode`](tidings_protocol::FrameCodec::decode) hands out
//!   payloads as `Bytes` slices of the input.
//! * [`negotiate()`] — picks a codec from the subprotocols a client offers.
//!
//! # Why rkyv, and why these rkyv features
//!
//! rkyv archives are read where they lie: there is no parse step, only a
//! validation pass (bytecheck) that proves every relative pointer, length,
//! string and tag is sound before a field is touched. That is what makes the
//! receive path allocation-free and several times faster than JSON.
//!
//! The archive layout of rkyv depends on three crate features, so they are
//! pinned here and are part of the `tidings.v1.bin` format:
//!
//! * `little_endian` — the same bytes on every target (wasm32 and x86_64 are
//!   both little endian, so reads are plain loads);
//! * `pointer_width_32` — 32-bit relative pointers and lengths on every target:
//!   a wasm32 client and an x86_64 server write identical archives (frames are
//!   far below 4 GiB; the frame size limit is 1 MiB by default);
//! * `unaligned` — archived primitives have alignment 1, so an archive can be
//!   read at any offset: the 2-byte header in front of it, and a received
//!   WebSocket message is a `Bytes` at whatever address the transport's read
//!   buffer gave it. Without it every received frame would need copying into
//!   an aligned buffer (an allocation and a copy per frame), or fail to
//!   validate;
//! * `bytecheck` — validation of untrusted input (never skipped: nothing from
//!   the network is read with `access_unchecked`).
//!
//! rkyv's format features are global to a build: another crate enabling a
//! conflicting one (`big_endian`, `pointer_width_64`, `aligned`) fails the
//! build instead of silently changing the wire format.
//!
//! ```
//! use bytes::Bytes;
//! use tidings_codec::JsonCodec;
//! use tidings_protocol::{Frame, FrameCodec, Ping};
//! let codec = JsonCodec::new();
//! let bytes = codec.encode_to_bytes(&Frame::Ping(Ping { nonce: 7 })).unwrap();
//! assert_eq!(&bytes[..], br#"{"type":"ping","nonce":7}"#);
//! assert_eq!(codec.decode(&bytes).unwrap(), Frame::Ping(Ping { nonce: 7 }));
//! ```

// Without `binary`, the crate docs above still describe it (links dangle).
#![cfg_attr(not(feature = "binary"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "binary")]
mod binary;
mod json;
mod negotiate;

#[cfg(feature = "binary")]
pub use binary::{BinaryCodec, FrameView, MessageView, PublishView};
pub use json::JsonCodec;
pub use negotiate::{
    NegotiationError, SUBPROTOCOL_BIN, SUBPROTOCOL_JSON, codec_for, negotiate, subprotocol_of,
    supported_subprotocols,
};
