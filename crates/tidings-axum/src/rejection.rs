//! `Rejection`: why an endpoint refused a request before serving a connection, answered with its status, an `x-tidings-error` code and the reason.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;

/// A request refused by a tidings endpoint (WebSocket upgrade or SSE).
/// Every variant answers with its own status, the `x-tidings-error` header
/// naming it and the reason as plain text.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// A WebSocket upgrade with another method than GET (405).
    #[error("WebSocket upgrade requires GET")]
    NotGet,
    /// A plain request to the WebSocket endpoint (426).
    #[error("this endpoint speaks WebSocket (tidings.v1.json)")]
    NotAnUpgrade,
    /// `Sec-WebSocket-Version` is not 13 (400).
    #[error("Sec-WebSocket-Version must be 13")]
    BadVersion,
    /// No `Sec-WebSocket-Key` (400).
    #[error("missing Sec-WebSocket-Key")]
    MissingKey,
    /// None of the offered subprotocols is spoken here (400).
    #[error("{0}")]
    UnsupportedSubprotocol(String),
    /// The endpoint's connection limit is reached (503).
    #[error("connection limit reached")]
    ConnectionLimit,
    /// The client's IP address has as many connections open as
    /// [`crate::Server::max_connections_per_ip`] allows (429).
    #[error("too many connections from this address: close one and retry")]
    TooManyConnections,
    /// The request's `Origin` is not on the endpoint's allow-list (403).
    #[error("origin {0} may not connect here")]
    ForbiddenOrigin(String),
    /// The auth hook refused (401 or 403).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The SSE endpoint refused (its own status).
    #[error(transparent)]
    Sse(#[from] tidings_sse::Refusal),
    /// The request body could not be read within the limit (413).
    #[error("POST body larger than {max} bytes: send fewer frames per request")]
    BodyTooLarge {
        /// The limit.
        max: usize,
    },
}

impl Rejection {
    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::NotAnUpgrade => StatusCode::UPGRADE_REQUIRED,
            Rejection::BadVersion
            | Rejection::MissingKey
            | Rejection::UnsupportedSubprotocol(_) => StatusCode::BAD_REQUEST,
            Rejection::ConnectionLimit => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            Rejection::ForbiddenOrigin(_) => StatusCode::FORBIDDEN,
            Rejection::Auth(AuthError::Unauthorized(_)) => StatusCode::UNAUTHORIZED,
            Rejection::Auth(_) => StatusCode::FORBIDDEN,
            Rejection::Sse(r) => r.status(),
            Rejection::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The machine-readable code of the `x-tidings-error` header.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::NotGet => "method-not-allowed",
            Rejection::NotAnUpgrade => "upgrade-required",
            Rejection::BadVersion => "bad-websocket-version",
            Rejection::MissingKey => "missing-websocket-key",
            Rejection::UnsupportedSubprotocol(_) => "unsupported-subprotocol",
            Rejection::ConnectionLimit => "connection-limit",
            Rejection::TooManyConnections => "too-many-connections",
            Rejection::ForbiddenOrigin(_) => "forbidden-origin",
            Rejection::Auth(AuthError::Unauthorized(_)) => "unauthorized",
            Rejection::Auth(_) => "forbidden",
            Rejection::Sse(r) => r.code(),
            Rejection::BodyTooLarge { .. } => "body-too-large",
        }
    }

    /// Counts the refusal as `tidings_rejections_total{code}` through the
    /// `metrics` facade (feature `metrics`; rendered at `/metrics` once
    /// [`crate::Metrics::install`] made that recorder the global one). A
    /// refusal is a cold path: the facade's lookup is fine here.
    pub(crate) fn count(&self) {
        #[cfg(feature = "metrics")]
        metrics::counter!("tidings_rejections_total", "code" => self.code()).increment(1);
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.count();
        (
            self.status(),
            [("x-tidings-error", self.code())],
            self.to_string(),
        )
            .into_response()
    }
}
