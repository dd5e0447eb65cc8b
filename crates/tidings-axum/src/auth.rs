//! The auth hook every tidings endpoint runs before it serves a connection: what it sees of the request, and how it refuses.

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use tidings_channels::Identity;
use tidings_runtime::BoxFuture;

use crate::origin::Origins;
use crate::rejection::Rejection;

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

/// Who an accepted request is: anonymous, or an authenticated [`Identity`]
/// (its session then runs with the identity's channel grants and expiry,
/// and only the same subject can resume it). An auth hook returns
/// `Ok(())` for anonymous, or `Ok(identity)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// No identity: every channel, no binding.
    #[default]
    Anonymous,
    /// An authenticated identity.
    Identified(Identity),
}

impl Access {
    /// The identity, if any.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Access::Anonymous => None,
            Access::Identified(i) => Some(i),
        }
    }

    /// The identity, if any (owned).
    pub fn into_identity(self) -> Option<Identity> {
        match self {
            Access::Anonymous => None,
            Access::Identified(i) => Some(i),
        }
    }
}

impl From<()> for Access {
    fn from((): ()) -> Self {
        Access::Anonymous
    }
}

impl From<Identity> for Access {
    fn from(identity: Identity) -> Self {
        Access::Identified(identity)
    }
}

impl From<Option<Identity>> for Access {
    fn from(identity: Option<Identity>) -> Self {
        identity.map_or(Access::Anonymous, Access::Identified)
    }
}

/// Decides whether a request may open a connection, and as whom. Runs
/// before every WebSocket upgrade and SSE stream, and on every SSE POST (a
/// POST must come from the identity that opened the stream).
pub trait AuthHook: Send + Sync + 'static {
    /// `Ok` with the request's [`Access`] to accept, an [`AuthError`] to
    /// refuse with 401/403.
    fn authorize(&self, request: UpgradeRequest) -> BoxFuture<'static, Result<Access, AuthError>>;
}

impl<F, Fut, A> AuthHook for F
where
    F: Fn(UpgradeRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<A, AuthError>> + Send + 'static,
    A: Into<Access>,
{
    fn authorize(&self, request: UpgradeRequest) -> BoxFuture<'static, Result<Access, AuthError>> {
        let fut = self(request);
        Box::pin(async move { fut.await.map(Into::into) })
    }
}

/// Checks the origin, then runs the auth hook (if any): who `headers` and `uri` are.
pub(crate) async fn admit(
    auth: Option<&Arc<dyn AuthHook>>,
    origins: &Origins,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Access, Rejection> {
    if let Some(origin) = origins.refused(headers) {
        return Err(Rejection::ForbiddenOrigin(origin));
    }
    match auth {
        Some(auth) => Ok(auth
            .authorize(UpgradeRequest::new(headers.clone(), uri.clone()))
            .await?),
        None => Ok(Access::Anonymous),
    }
}
