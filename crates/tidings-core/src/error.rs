//! Typed errors of the protocol, the codecs, the sessions and the transports, plus wire error and close codes.

use std::fmt;

use crate::frame::FrameType;

/// Machine-readable error code carried by an `Error` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame could not be decoded.
    MalformedFrame,
    /// The frame's type is not known.
    UnknownFrameType,
    /// The frame exceeds the negotiated maximum size.
    FrameTooLarge,
    /// The protocol version is not supported.
    UnsupportedVersion,
    /// The frame is not allowed in the session's current state.
    UnexpectedFrame,
    /// A channel name is invalid.
    InvalidChannel,
    /// Too much data is queued for this connection.
    QueueFull,
    /// The peer does not read fast enough.
    SlowConsumer,
    /// Too many subscriptions on one session.
    TooManySubscriptions,
    /// Authentication failed or is missing.
    Unauthorized,
    /// The authenticated peer may not do this.
    Forbidden,
    /// Something failed on the server.
    Internal,
    /// A code this version does not know (forward compatibility).
    Unknown,
}

impl ErrorCode {
    /// The wire spelling (snake case).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedFrame => "malformed_frame",
            ErrorCode::UnknownFrameType => "unknown_frame_type",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnexpectedFrame => "unexpected_frame",
            ErrorCode::InvalidChannel => "invalid_channel",
            ErrorCode::QueueFull => "queue_full",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Parses the wire spelling; unknown spellings give [`ErrorCode::Unknown`].
    pub fn parse(s: &str) -> Self {
        const ALL: [ErrorCode; 12] = [
            ErrorCode::MalformedFrame,
            ErrorCode::UnknownFrameType,
            ErrorCode::FrameTooLarge,
            ErrorCode::UnsupportedVersion,
            ErrorCode::UnexpectedFrame,
            ErrorCode::InvalidChannel,
            ErrorCode::QueueFull,
            ErrorCode::SlowConsumer,
            ErrorCode::TooManySubscriptions,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::Internal,
        ];
        ALL.into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or(ErrorCode::Unknown)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Close codes used by tidings (WebSocket numbering; 4000–4999 are ours).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseCode;

impl CloseCode {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error (malformed or unexpected frame).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Policy violation (auth, limits).
    pub const POLICY: u16 = 1008;
    /// Message too big.
    pub const TOO_BIG: u16 = 1009;
    /// Internal error.
    pub const INTERNAL: u16 = 1011;
    /// No traffic from the peer within the dead-peer timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4001;
    /// The peer did not read fast enough.
    pub const SLOW_CONSUMER: u16 = 4002;
    /// The handshake (`Hello`) did not arrive in time.
    pub const HANDSHAKE_TIMEOUT: u16 = 4003;
    /// Protocol version not supported.
    pub const UNSUPPORTED_VERSION: u16 = 4005;
    /// The session was resumed on another connection.
    pub const SUPERSEDED: u16 = 4006;
}

/// A codec could not encode or decode a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a well-formed frame.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The frame names a type this version does not know.
    #[error("unknown frame type `{name}`")]
    UnknownFrameType {
        /// The type name as received.
        name: String,
    },
    /// The frame is larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the frame.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The frame cannot be represented in this codec.
    #[error("cannot encode frame: {reason}")]
    Unencodable {
        /// Why.
        reason: String,
    },
}

impl CodecError {
    /// The wire error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            CodecError::UnknownFrameType { .. } => ErrorCode::UnknownFrameType,
            CodecError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            _ => ErrorCode::MalformedFrame,
        }
    }
}

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
    /// A payload is larger than the maximum frame size.
    #[error("payload of {size} bytes exceeds the maximum frame size of {max} bytes")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
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

    /// True when the session cannot be used any more.
    pub fn is_closed(&self) -> bool {
        matches!(self, SessionError::Closed { .. })
    }
}

/// An error of a transport (connection level).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// An I/O error on the underlying socket.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection.
    #[error("connection closed by peer (code {code}): {reason}")]
    Closed {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// A message exceeded the configured maximum size.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge {
        /// Size (or a lower bound).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The handshake was refused or failed.
    #[error("handshake failed: {reason}")]
    Handshake {
        /// HTTP status, when there was one.
        status: Option<u16>,
        /// Why.
        reason: String,
    },
    /// The transport protocol (WebSocket, HTTP) was violated.
    #[error("transport protocol error: {0}")]
    Protocol(String),
    /// A timeout elapsed.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

impl TransportError {
    /// True when the peer closed the connection in an orderly way.
    pub fn is_closed(&self) -> bool {
        matches!(self, TransportError::Closed { .. })
    }
}

/// An error of a transport crate's `Client` (WebSocket, SSE).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not valid for the transport (`ws://`, `http://`, ...).
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `Client::connect` was called outside a tokio runtime (native only).
    #[error("Client::connect must be called inside a tokio runtime")]
    NoRuntime,
    /// The session refused the operation (queue full, closed, invalid channel...).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The connection failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> Self {
        ClientError::Session(SessionError::Protocol(e))
    }
}

impl ClientError {
    /// True when the send queue is full (slow down, retry after acks).
    pub fn is_queue_full(&self) -> bool {
        matches!(self, ClientError::Session(e) if e.is_queue_full())
    }
}
