//! Errors of the WebSocket client API.

use tidings_core::{ProtocolError, SessionError, TransportError};

/// An error of [`crate::Client`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL is not a valid `ws://` / `wss://` URL.
    #[error("invalid WebSocket URL `{url}`: {reason}")]
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

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Session(SessionError::Protocol(e))
    }
}

impl Error {
    /// True when the send queue is full (slow down, retry after acks).
    pub fn is_queue_full(&self) -> bool {
        matches!(self, Error::Session(e) if e.is_queue_full())
    }
}
