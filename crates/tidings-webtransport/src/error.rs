//! Typed errors of the WebTransport transport: framing on the control and channel streams, datagrams, streams, certificates.

/// Application error codes this crate closes a WebTransport session with
/// (besides the session's own close codes, which pass through unchanged).
pub mod close_code {
    /// A stream carried bytes that are not a length-prefixed frame (or a
    /// channel stream's header or frames were wrong).
    pub const GARBAGE: u32 = 4100;
    /// A frame's length prefix exceeds [`crate::WtConfig::max_frame_bytes`].
    pub const FRAME_TOO_LARGE: u32 = 4101;
    /// The peer opened a stream this session does not accept, or more
    /// channel streams than the session allows.
    pub const UNEXPECTED_STREAM: u32 = 4102;
    /// Stream reset code for streams refused by [`UNEXPECTED_STREAM`].
    pub const STREAM_REFUSED: u32 = 0x10;
}

/// A violation of the control stream's framing (4-byte big-endian length, then the frame).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// The length prefix announces more than the limit.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A zero-length frame (never sent by tidings: garbage or a broken peer).
    #[error("empty frame on the control stream")]
    Empty,
    /// The stream ended inside a frame.
    #[error("stream ended {missing} bytes short of a frame")]
    Truncated {
        /// Bytes missing.
        missing: usize,
    },
    /// A channel stream's header is not `0x01`, a 2-byte length and a
    /// channel name of 1–256 bytes of UTF-8 (docs/protocol.md §10).
    #[error("bad channel stream header: {0}")]
    StreamHeader(String),
    /// A channel stream carried a frame that is not a `message`, `gap` or
    /// `subscribed` frame of its channel.
    #[error("a frame on the stream of channel `{stream}` is not one of its channel frames")]
    WrongChannel {
        /// The channel the stream's header names.
        stream: String,
    },
}

impl FramingError {
    /// True for [`FramingError::TooLarge`].
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }

    /// The application close code this error ends a session with.
    pub fn close_code(&self) -> u32 {
        match self {
            Self::TooLarge { .. } => close_code::FRAME_TOO_LARGE,
            _ => close_code::GARBAGE,
        }
    }
}

/// Errors of datagrams (lossy, unordered data beside the session).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    /// Larger than the path's current max datagram size: send it on the
    /// session (reliable) instead, or split it.
    #[error("datagram of {size} bytes exceeds the path's max datagram size of {max} bytes")]
    TooLarge {
        /// The datagram's size.
        size: usize,
        /// The path's max datagram size now.
        max: usize,
    },
    /// The peer does not accept datagrams.
    #[error("the peer does not accept datagrams")]
    Unsupported,
    /// The session is gone (for a client's datagrams: the client is closed).
    #[error("the session is closed")]
    Closed,
    /// The client has no session yet (or is reconnecting): nothing was sent.
    #[error("the client is not connected: no session to send the datagram on")]
    NotConnected,
}

impl DatagramError {
    /// True for [`DatagramError::TooLarge`].
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::TooLarge { .. })
    }
}

/// Errors of the server and of certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WtError {
    /// Binding the UDP socket failed.
    #[error("cannot bind the WebTransport server: {0}")]
    Bind(#[from] std::io::Error),
    /// A certificate could not be made or read.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A peer opened more streams than the session accepts.
    #[error("a peer opened a stream beyond the session's {limit} accepted streams")]
    TooManyStreams {
        /// Streams a session accepts from its peer.
        limit: usize,
    },
}

impl WtError {
    /// True for [`WtError::TooManyStreams`].
    pub fn is_too_many_streams(&self) -> bool {
        matches!(self, Self::TooManyStreams { .. })
    }
}
