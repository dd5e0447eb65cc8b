//! Errors of the adaptive client's builder and handle.

use tidings_runtime::{ClientError, TransportKind};

/// An error of the adaptive [`crate::Client`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No transport was given (or none of the order is configured).
    #[error("no transport configured: add at least one (websocket, sse, webtransport, connector)")]
    NoTransport,
    /// A switch to a transport the client does not have.
    #[error("transport {kind:?} is not configured on this client")]
    NotConfigured {
        /// The transport asked for.
        kind: TransportKind,
    },
    /// The discovery document cannot be used.
    #[error("discovery document: {reason}")]
    Discovery {
        /// What is wrong.
        reason: String,
    },
    /// A transport's builder or the session refused (bad URL, TLS, no runtime...).
    #[error(transparent)]
    Client(#[from] ClientError),
}
