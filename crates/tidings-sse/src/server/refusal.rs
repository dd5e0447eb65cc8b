//! `Refusal`: why the SSE endpoint did not open a stream or accept a POST, with the HTTP status and `x-tidings-error` code to answer.

use http::StatusCode;

use super::upstream::BodyError;

/// A request the SSE endpoint refused. [`Refusal::status`] and
/// [`Refusal::code`] say how to answer it (the code goes in the
/// `x-tidings-error` header, the message in the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The stream asked for a protocol SSE cannot carry (400).
    #[error(
        "protocol `{protocol}` is not supported over SSE (it carries text): use tidings.v1.json"
    )]
    UnsupportedProtocol {
        /// The protocol asked for.
        protocol: String,
    },
    /// The `hello` query parameter is not a hello frame (400).
    #[error("the `hello` query parameter is not a tidings hello frame: {0}")]
    BadHello(String),
    /// The endpoint's connection limit is reached (503).
    #[error("connection limit reached")]
    ConnectionLimit,
    /// Something failed on the server (500).
    #[error("{0}")]
    Internal(String),
    /// A POST without a session token (401).
    #[error(
        "missing session token: send the welcome's resume_token in x-tidings-token (or Authorization: Bearer)"
    )]
    MissingToken,
    /// A POST body over the limit (413).
    #[error("POST body larger than {max} bytes: send fewer frames per request")]
    BodyTooLarge {
        /// The limit.
        max: usize,
    },
    /// The session's stream ended but it can resume (409): reconnect first.
    #[error(
        "no event stream is open for session {session} (it ended: {code} {reason}); reconnect it with Last-Event-ID, then send again"
    )]
    NoStream {
        /// The session.
        session: String,
        /// How its stream ended.
        code: u16,
        /// Why.
        reason: String,
    },
    /// The session is closed for good (410).
    #[error("session {session} is closed ({code} {reason})")]
    SessionClosed {
        /// The session.
        session: String,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// No session has this token (404).
    #[error("unknown or expired session token")]
    UnknownSession,
    /// The token belongs to another session than the path names (404).
    #[error("session {session} does not belong to this token")]
    NotThisSession {
        /// The session of the path.
        session: String,
    },
    /// The stream of this session was opened by another identity (403).
    #[error("session {session} belongs to another identity")]
    NotYourSession {
        /// The session of the path.
        session: String,
    },
    /// The body is not a sequence of valid client frames (400, or 413 for an oversized frame).
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The stream ended while the POST waited (409).
    #[error(
        "the event stream of session {session} ended; reconnect it with Last-Event-ID, then send again"
    )]
    StreamEnded {
        /// The session.
        session: String,
    },
    /// The session does not read its frames fast enough (503).
    #[error("the session is not reading its frames fast enough; retry later")]
    UpstreamFull,
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::UnsupportedProtocol { .. } | Refusal::BadHello(_) => StatusCode::BAD_REQUEST,
            Refusal::ConnectionLimit | Refusal::UpstreamFull => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::MissingToken => StatusCode::UNAUTHORIZED,
            Refusal::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::NoStream { .. } | Refusal::StreamEnded { .. } => StatusCode::CONFLICT,
            Refusal::SessionClosed { .. } => StatusCode::GONE,
            Refusal::NotYourSession { .. } => StatusCode::FORBIDDEN,
            Refusal::UnknownSession | Refusal::NotThisSession { .. } => StatusCode::NOT_FOUND,
            Refusal::Body(e) if e.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Body(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The machine-readable code (the `x-tidings-error` header).
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnsupportedProtocol { .. } => "unsupported-protocol",
            Refusal::BadHello(_) => "bad-hello",
            Refusal::ConnectionLimit => "connection-limit",
            Refusal::Internal(_) => "internal",
            Refusal::MissingToken => "unauthorized",
            Refusal::BodyTooLarge { .. } => "body-too-large",
            Refusal::NoStream { .. } | Refusal::StreamEnded { .. } => "no-stream",
            Refusal::SessionClosed { .. } => "session-closed",
            Refusal::NotYourSession { .. } => "forbidden",
            Refusal::UnknownSession | Refusal::NotThisSession { .. } => "unknown-session",
            Refusal::Body(e) => e.code(),
            Refusal::UpstreamFull => "upstream-full",
        }
    }
}
