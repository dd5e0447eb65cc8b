//! Typed errors of the runtime: a connection failed (`TransportError`), or a `Client` call did (`ClientError`).

use tidings_protocol::{InvalidChannelName, ProtocolError, SessionError};

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
    /// The client ended this connection on purpose to move its session to
    /// another transport (`tidings-adaptive`): the driver reconnects at once,
    /// without backoff.
    #[error("switching transport: {0}")]
    Switch(String),
}

impl TransportError {
    /// True when the peer closed the connection in an orderly way.
    pub fn is_closed(&self) -> bool {
        matches!(self, TransportError::Closed { .. })
    }

    /// True for [`TransportError::Switch`]: the connection was ended to
    /// move the session to another transport.
    pub fn is_switch(&self) -> bool {
        matches!(self, TransportError::Switch(_))
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
    /// The TLS settings are unusable (a root certificate that is not PEM, ...).
    #[error("TLS configuration: {reason}")]
    Tls {
        /// What is wrong.
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

impl From<InvalidChannelName> for ClientError {
    fn from(e: InvalidChannelName) -> Self {
        ClientError::Session(e.into())
    }
}
