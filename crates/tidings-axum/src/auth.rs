//! The auth hook every tidings endpoint runs before it serves a connection: what it sees of the request, and how it refuses.

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tidings_runtime::BoxFuture;

/// What an auth hook sees of the request that opens a connection (a
/// WebSocket upgrade or an SSE stream).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UpgradeRequest {
    /// Request headers.
    pub headers: HeaderMap,
    /// Request URI (with query).
    pub uri: Uri,
}

impl UpgradeRequest {
    /// What the hook sees of a request with `headers` and `uri`.
    pub fn new(headers: HeaderMap, uri: Uri) -> Self {
        Self { headers, uri }
    }
}

/// An auth hook refused the upgrade.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No or invalid credentials: HTTP 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Valid credentials without permission: HTTP 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let status = match self {
            AuthError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AuthError::Forbidden(_) => StatusCode::FORBIDDEN,
        };
        (status, self.to_string()).into_response()
    }
}

/// Decides whether an upgrade may proceed.
pub trait AuthHook: Send + Sync + 'static {
    /// `Ok` to accept, an [`AuthError`] to refuse with 401/403.
    fn authorize(&self, request: UpgradeRequest) -> BoxFuture<'static, Result<(), AuthError>>;
}

impl<F, Fut> AuthHook for F
where
    F: Fn(UpgradeRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), AuthError>> + Send + 'static,
{
    fn authorize(&self, request: UpgradeRequest) -> BoxFuture<'static, Result<(), AuthError>> {
        Box::pin(self(request))
    }
}
