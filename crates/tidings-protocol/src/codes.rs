//! Wire codes: the `ErrorCode` of an `error` frame and the close codes of a connection.

use std::fmt;

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
    /// Too many requests: a rate limit refused this one.
    RateLimited,
    /// A backend the server needs (its broker or store) is unreachable right
    /// now: retry later (a publish refused with it was not stored).
    Unavailable,
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
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Parses the wire spelling; unknown spellings give [`ErrorCode::Unknown`].
    pub fn parse(s: &str) -> Self {
        const ALL: [ErrorCode; 14] = [
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
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
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
    /// The credentials the session was opened with expired: reconnect with fresh ones.
    pub const CREDENTIALS_EXPIRED: u16 = 4007;
}
