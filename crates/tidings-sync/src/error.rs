//! `SyncError`: why a y-protocols message was refused.

/// A y-protocols message could not be applied; the document is unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The bytes are not a y-protocols message.
    #[error("malformed y-protocols message: {0}")]
    Malformed(String),
    /// The update does not decode as a Yjs update.
    #[error("malformed Yjs update: {0}")]
    MalformedUpdate(String),
    /// Applying the update would grow the document past its limit.
    #[error("document would grow to {size} bytes, over the limit of {limit}")]
    DocumentTooLarge {
        /// Encoded size with the update.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The message is larger than one message may be.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// Size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The server's update hook rejected the update.
    #[error("update rejected: {0}")]
    Rejected(String),
    /// The peer may read the document, not change it.
    #[error("this connection may not change the document")]
    ReadOnly,
    /// The peer sent awareness updates faster than allowed.
    #[error("awareness updates too frequent")]
    RateLimited,
    /// The awareness update could not be applied.
    #[error("malformed awareness update: {0}")]
    Awareness(String),
}
