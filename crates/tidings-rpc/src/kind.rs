//! `MethodKind`: how a method is called (unary, server stream, bidirectional stream), for method lists and schemas.

use serde::Serialize;

/// The kind of a method, for method lists ([`crate::server::Router`]'s `methods`, a generated
/// `{Trait}Api::METHODS`) and schemas.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MethodKind {
    /// One request, one reply.
    Unary,
    /// One request, a stream of items from the server.
    ServerStream,
    /// One request, then items both ways, each way paced by credits.
    BidiStream,
}

impl MethodKind {
    /// The spelling in schemas (`unary`, `server_stream`, `bidi_stream`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }
}
