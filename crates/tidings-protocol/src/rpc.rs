//! RPC frames of protocol version 1: calls, replies, stream items, stream ends, credits and cancellation (docs/protocol.md §9).
//!
//! Every RPC frame names its call by `call`, a number the client picks
//! (unique among the calls it has open on the connection). The sessions only
//! carry these frames; the call state machines live in `tidings-rpc`.

use bytes::Bytes;

/// One RPC frame: the call it belongs to and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcFrame {
    /// The call id, chosen by the client.
    pub call: u64,
    /// What the frame says.
    pub kind: RpcKind,
}

/// What an [`RpcFrame`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RpcKind {
    /// Client → server: start call `call` of `method` with `params`.
    Call {
        /// Method name (`service.method`).
        method: String,
        /// Encoded parameters (JSON text for the typed clients).
        params: Bytes,
        /// Milliseconds the client waits for the answer (`None`: the server's default).
        deadline_ms: Option<u64>,
        /// Stream items the server may send before it is granted more (0 for unary calls).
        credit: u32,
    },
    /// Server → client: the call's result; ends the call.
    Reply(Result<Bytes, RpcFault>),
    /// Either way: one item of a stream (`seq` = 1, 2, 3, … per direction).
    Item {
        /// Item number within the call and direction.
        seq: u64,
        /// Encoded item.
        payload: Bytes,
    },
    /// Either way: the sender's stream ended without error.
    End,
    /// Either way: the receiver may take `n` more stream items.
    Credit {
        /// Additional items granted.
        n: u32,
    },
    /// Either way: abandon the call (client: the caller went away; server: it ended the call).
    Cancel {
        /// Why (may be empty).
        reason: String,
    },
}

/// A typed RPC failure: a stable code, a message and optional details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcFault {
    /// Machine-readable code.
    pub code: RpcCode,
    /// Human-readable explanation.
    pub message: String,
    /// Encoded application error (for [`RpcCode::Application`]).
    pub data: Option<Bytes>,
}

/// Stable RPC error codes (wire spelling in [`RpcCode::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RpcCode {
    /// No method of that name.
    UnknownMethod,
    /// The parameters do not decode as the method's parameter type.
    InvalidParams,
    /// The deadline passed before the call finished.
    DeadlineExceeded,
    /// Too many calls: per connection or per method.
    RateLimited,
    /// The session's identity may not call this method.
    Unauthorized,
    /// The call was cancelled.
    Cancelled,
    /// The server failed.
    Internal,
    /// The method returned its own typed error (in `data`).
    Application,
    /// The connection went away before the call finished (retry when idempotent).
    Unavailable,
    /// A call id already in use, or frames that break the RPC rules.
    Protocol,
    /// A code this version does not know.
    Unknown,
}

impl RpcCode {
    /// Every code this version knows.
    pub const ALL: [RpcCode; 10] = [
        Self::UnknownMethod,
        Self::InvalidParams,
        Self::DeadlineExceeded,
        Self::RateLimited,
        Self::Unauthorized,
        Self::Cancelled,
        Self::Internal,
        Self::Application,
        Self::Unavailable,
        Self::Protocol,
    ];

    /// Wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownMethod => "unknown_method",
            Self::InvalidParams => "invalid_params",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::RateLimited => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
            Self::Application => "application",
            Self::Unavailable => "unavailable",
            Self::Protocol => "protocol",
            Self::Unknown => "unknown",
        }
    }

    /// Parses the wire spelling; unknown spellings are [`RpcCode::Unknown`].
    pub fn parse(s: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(Self::Unknown)
    }
}

impl std::fmt::Display for RpcCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in RpcCode::ALL {
            assert_eq!(RpcCode::parse(c.as_str()), c);
        }
        assert_eq!(RpcCode::parse("nope"), RpcCode::Unknown);
    }
}
