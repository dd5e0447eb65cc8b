//! Codec negotiation: WebSocket subprotocol names (`tidings.v1.json`, `tidings.v1.bin`) to codecs.

use std::sync::Arc;

use tidings_protocol::{CodecKind, FrameCodec};

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

/// Subprotocols this build can serve: `tidings.v1.json`, then `tidings.v1.bin`
/// (feature `binary`, on by default).
///
/// The server follows the client's order of preference (see [`negotiate`]);
/// this order only matters for listing them.
///
/// ```
/// let supported = tidings_codec::supported_subprotocols();
/// # #[cfg(feature = "binary")]
/// assert_eq!(supported, ["tidings.v1.json", "tidings.v1.bin"]);
/// ```
pub fn supported_subprotocols() -> Vec<&'static str> {
    let mut v = vec![SUBPROTOCOL_JSON];
    if cfg!(feature = "binary") {
        v.push(SUBPROTOCOL_BIN);
    }
    v
}

/// The subprotocol name of a codec kind.
pub fn subprotocol_of(kind: CodecKind) -> &'static str {
    match kind {
        CodecKind::Binary => SUBPROTOCOL_BIN,
        _ => SUBPROTOCOL_JSON,
    }
}

/// The codec of a kind, if this build has it.
///
/// ```
/// use tidings_protocol::CodecKind;
/// assert!(tidings_codec::codec_for(CodecKind::Json).unwrap().is_text());
/// # #[cfg(feature = "binary")] {
/// let codec = tidings_codec::codec_for(CodecKind::Binary).expect("feature `binary` is on by default");
/// assert!(!codec.is_text());
/// # }
/// ```
pub fn codec_for(kind: CodecKind) -> Option<Arc<dyn FrameCodec>> {
    match kind {
        CodecKind::Json => Some(Arc::new(JsonCodec::new())),
        #[cfg(feature = "binary")]
        CodecKind::Binary => Some(Arc::new(crate::binary::BinaryCodec::new())),
        _ => None,
    }
}

/// Picks the codec for a connection from the client's offered subprotocols
/// (in the client's order of preference).
///
/// No offer at all means JSON (plain browser `new WebSocket(url)`); offers that
/// are all unknown are refused with the reason, which names what was offered
/// and everything this build supports.
///
/// ```
/// use tidings_codec::{negotiate, SUBPROTOCOL_BIN, SUBPROTOCOL_JSON};
/// assert_eq!(negotiate(&["x", SUBPROTOCOL_JSON]).unwrap().1, SUBPROTOCOL_JSON);
/// assert_eq!(negotiate(&[]).unwrap().1, SUBPROTOCOL_JSON);
/// let err = negotiate(&["tidings.v9.bin"]).unwrap_err();
/// assert!(err.to_string().contains("tidings.v9.bin"));
/// # #[cfg(feature = "binary")] {
/// assert_eq!(negotiate(&[SUBPROTOCOL_BIN, SUBPROTOCOL_JSON]).unwrap().1, SUBPROTOCOL_BIN);
/// assert_eq!(
///     err.to_string(),
///     r#"unsupported subprotocol(s) ["tidings.v9.bin"]: this server speaks ["tidings.v1.json", "tidings.v1.bin"]"#
/// );
/// # }
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
