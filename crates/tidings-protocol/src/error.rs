//! Typed errors of the sessions: the peer broke the protocol (`ProtocolError`), or an operation was refused (`SessionError`).

use crate::codec::CodecError;
use crate::codes::{CloseCode, ErrorCode};
use crate::frame::FrameType;
use crate::ids::InvalidChannelName;

/// The peer broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A frame could not be decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// A channel name is empty, too long or has control characters.
    #[error(
        "invalid channel name ({len} bytes): names are 1..=256 bytes without control characters"
    )]
    InvalidChannel {
        /// Length of the offending name.
        len: usize,
    },
    /// The peer speaks a protocol version we do not.
    #[error("unsupported protocol version {got}; this peer speaks version {supported}")]
    UnsupportedVersion {
        /// Version received.
        got: u32,
        /// Version supported.
        supported: u32,
    },
    /// The frame is not allowed in the current state.
    #[error("unexpected {frame:?} frame while {state}")]
    UnexpectedFrame {
        /// Type of the frame.
        frame: FrameType,
        /// State the session was in.
        state: &'static str,
    },
    /// A frame exceeds the maximum size.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Size received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A publish skipped sequence numbers.
    #[error("publish sequence {got} out of order: expected {expected}")]
    PublishOutOfOrder {
        /// The next sequence number expected.
        expected: u64,
        /// The sequence number received.
        got: u64,
    },
    /// Too many subscriptions.
    #[error("subscription limit of {max} reached")]
    TooManySubscriptions {
        /// The limit.
        max: usize,
    },
}

impl ProtocolError {
    /// The wire error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::Codec(c) => c.code(),
            ProtocolError::InvalidChannel { .. } => ErrorCode::InvalidChannel,
            ProtocolError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            ProtocolError::UnexpectedFrame { .. } | ProtocolError::PublishOutOfOrder { .. } => {
                ErrorCode::UnexpectedFrame
            }
            ProtocolError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            ProtocolError::TooManySubscriptions { .. } => ErrorCode::TooManySubscriptions,
        }
    }

    /// The close code a connection ends with after this error.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::FrameTooLarge { .. } => CloseCode::TOO_BIG,
            ProtocolError::Codec(CodecError::TooLarge { .. }) => CloseCode::TOO_BIG,
            ProtocolError::UnsupportedVersion { .. } => CloseCode::UNSUPPORTED_VERSION,
            ProtocolError::TooManySubscriptions { .. } => CloseCode::POLICY,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// An error of a session (client or server side).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The peer broke the protocol; the connection is closed.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The outgoing queue is full: retry after acks arrive, or slow down.
    #[error("send queue full: {queued} bytes queued, limit {limit} bytes")]
    QueueFull {
        /// Bytes queued now.
        queued: usize,
        /// The limit.
        limit: usize,
    },
    /// A publish would make a frame larger than the server accepts (the
    /// limit its `welcome` announced, or this client's own): it was not
    /// queued; send it smaller or split it.
    #[error("message of {size} bytes exceeds the server's frame limit of {limit} bytes: not sent")]
    MessageTooLarge {
        /// Size of the encoded publish frame (an estimate before the first connection).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The session was closed for good.
    #[error("session closed: {reason}")]
    Closed {
        /// Why.
        reason: String,
    },
    /// The peer sent an error frame.
    #[error("peer error {code}: {message}")]
    Remote {
        /// Code sent by the peer.
        code: ErrorCode,
        /// Message sent by the peer.
        message: String,
    },
}

impl SessionError {
    /// True when the error means "slow down and retry".
    pub fn is_queue_full(&self) -> bool {
        matches!(self, SessionError::QueueFull { .. })
    }

    /// True when a publish was refused for being too large.
    pub fn is_message_too_large(&self) -> bool {
        matches!(self, SessionError::MessageTooLarge { .. })
    }

    /// True when the session cannot be used any more.
    pub fn is_closed(&self) -> bool {
        matches!(self, SessionError::Closed { .. })
    }
}

impl From<InvalidChannelName> for ProtocolError {
    fn from(e: InvalidChannelName) -> Self {
        ProtocolError::InvalidChannel { len: e.len }
    }
}

impl From<InvalidChannelName> for SessionError {
    fn from(e: InvalidChannelName) -> Self {
        SessionError::Protocol(e.into())
    }
}
