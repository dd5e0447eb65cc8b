//! Wire codecs of tidings and their negotiation.
//!
//! * [`JsonCodec`] — `tidings.v1.json`, one JSON object per frame (see
//!   docs/protocol.md). Built on `serde_json` (the standard, fast, well-kept
//!   JSON crate); payloads are embedded as raw JSON (`data`) and decoded without
//!   copying (a `Bytes` slice of the received frame), or as base64 (`data_b64`)
//!   when they are not JSON, using the `base64` crate.
//! * [`negotiate`] — picks a codec from the subprotocols a client offers.
//!
//! ```
//! use bytes::Bytes;
//! use tidings_codec::JsonCodec;
//! use tidings_core::{Frame, FrameCodec, Ping};
//! let codec = JsonCodec::new();
//! let bytes = codec.encode_to_bytes(&Frame::Ping(Ping { nonce: 7 })).unwrap();
//! assert_eq!(&bytes[..], br#"{"type":"ping","nonce":7}"#);
//! assert_eq!(codec.decode(&bytes).unwrap(), Frame::Ping(Ping { nonce: 7 }));
//! ```

mod json;
mod negotiate;

pub use json::JsonCodec;
pub use negotiate::{
    NegotiationError, SUBPROTOCOL_BIN, SUBPROTOCOL_JSON, codec_for, negotiate, subprotocol_of,
    supported_subprotocols,
};
