//! Codec negotiation: WebSocket subprotocol names (`tidings.v1.json`, `tidings.v1.bin`) to codecs.

use std::sync::Arc;

use tidings_core::{CodecKind, FrameCodec};

use crate::json::JsonCodec;

/// Subprotocol of the JSON codec, protocol version 1.
pub const SUBPROTOCOL_JSON: &str = "tidings.v1.json";
/// Subprotocol of the binary codec, protocol version 1.
pub const SUBPROTOCOL_BIN: &str = "tidings.v1.bin";

/// No offered subprotocol is supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported subprotocol(s) {offered:?}: this server speaks {supported:?}")]
#[non_exhaustive]
pub struct NegotiationError {
    /// What the client offered.
    pub offered: Vec<String>,
    /// What this build supports.
    pub supported: Vec<&'static str>,
}

/// Subprotocols this build can serve, in order of preference.
pub fn supported_subprotocols() -> Vec<&'static str> {
    vec![SUBPROTOCOL_JSON]
}

/// The subprotocol name of a codec kind.
pub fn subprotocol_of(kind: CodecKind) -> &'static str {
    match kind {
        CodecKind::Binary => SUBPROTOCOL_BIN,
        _ => SUBPROTOCOL_JSON,
    }
}

/// The codec of a kind, if this build has it.
pub fn codec_for(kind: CodecKind) -> Option<Arc<dyn FrameCodec>> {
    match kind {
        CodecKind::Json => Some(Arc::new(JsonCodec::new())),
        _ => None,
    }
}

/// Picks the codec for a connection from the client's offered subprotocols
/// (in the client's order of preference).
///
/// No offer at all means JSON (plain browser `new WebSocket(url)`); offers that
/// are all unknown are refused with the reason.
///
/// ```
/// use tidings_codec::{negotiate, SUBPROTOCOL_JSON};
/// assert_eq!(negotiate(&["x", SUBPROTOCOL_JSON]).unwrap().1, SUBPROTOCOL_JSON);
/// let err = negotiate(&["tidings.v9.bin"]).unwrap_err();
/// assert!(err.to_string().contains("tidings.v9.bin"));
/// ```
pub fn negotiate(
    offered: &[&str],
) -> Result<(Arc<dyn FrameCodec>, &'static str), NegotiationError> {
    if offered.is_empty() {
        return Ok((Arc::new(JsonCodec::new()), SUBPROTOCOL_JSON));
    }
    let supported = supported_subprotocols();
    for want in offered {
        if let Some(name) = supported
            .iter()
            .find(|s| s.eq_ignore_ascii_case(want.trim()))
        {
            let kind = if *name == SUBPROTOCOL_BIN {
                CodecKind::Binary
            } else {
                CodecKind::Json
            };
            if let Some(codec) = codec_for(kind) {
                return Ok((codec, name));
            }
        }
    }
    Err(NegotiationError {
        offered: offered.iter().map(|s| s.to_string()).collect(),
        supported,
    })
}
