//! The upgrade route: method/header checks, auth hook, subprotocol negotiation, 101 response, then the hub serves the socket.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper_util::rt::TokioIo;
use tidings_channels::Hub;
use tidings_codec::negotiate;
use tidings_core::BoxFuture;
use tidings_ws::{WsConfig, WsTransport};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::debug;

/// What an auth hook sees of the upgrade request.
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

/// A tidings WebSocket endpoint: hub, optional auth hook, limits.
#[derive(Clone)]
pub struct TidingsRoute {
    hub: Hub,
    auth: Option<Arc<dyn AuthHook>>,
    ws: WsConfig,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for TidingsRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TidingsRoute")
            .field("ws", &self.ws)
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

impl TidingsRoute {
    /// An endpoint served by `hub`, no auth, default limits.
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            auth: None,
            ws: WsConfig::default(),
            permits: Arc::new(Semaphore::new(100_000)),
        }
    }

    /// Runs `hook` before every upgrade; a refusal answers 401/403 with the reason.
    pub fn auth(mut self, hook: impl AuthHook) -> Self {
        self.auth = Some(Arc::new(hook));
        self
    }

    /// WebSocket limits (message size, buffers, idle timeout).
    pub fn ws_config(mut self, ws: WsConfig) -> Self {
        self.ws = ws;
        self
    }

    /// Most concurrent connections on this endpoint; further upgrades get 503.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.permits = Arc::new(Semaphore::new(n));
        self
    }

    async fn handle(self, req: Request) -> Response {
        if let Err(resp) = check_upgrade(&req) {
            return resp;
        }
        if let Some(auth) = &self.auth {
            let info = UpgradeRequest {
                headers: req.headers().clone(),
                uri: req.uri().clone(),
            };
            if let Err(e) = auth.authorize(info).await {
                debug!(error = %e, "upgrade refused by auth hook");
                return e.into_response();
            }
        }
        let offers = tidings_ws::offered_subprotocols(req.headers());
        let offered_any = !offers.is_empty();
        let (codec, protocol) = match negotiate(&offers) {
            Ok(x) => x,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    [("x-tidings-error", "unsupported-subprotocol")],
                    e.to_string(),
                )
                    .into_response();
            }
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return (StatusCode::SERVICE_UNAVAILABLE, "connection limit reached").into_response();
        };
        let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
            return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
        };
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = hyper::upgrade::on(req);
        let (hub, ws) = (self.hub.clone(), self.ws.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    debug!(error = %e, "upgrade failed");
                    return;
                }
            };
            let config = ws.tungstenite();
            let stream = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config),
            )
            .await;
            let transport = WsTransport::new(stream, codec.is_text(), ws.idle_timeout);
            hub.serve(transport, codec).await;
        });
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if offered_any {
            h.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(protocol),
            );
        }
        resp
    }
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[allow(clippy::result_large_err)]
fn check_upgrade(req: &Request) -> Result<(), Response> {
    let h = req.headers();
    if req.method() != Method::GET {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "WebSocket upgrade requires GET",
        )
            .into_response());
    }
    if !header_has(h, header::CONNECTION, "upgrade") || !header_has(h, header::UPGRADE, "websocket")
    {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "this endpoint speaks WebSocket (tidings.v1.json)",
        )
            .into_response());
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err((StatusCode::BAD_REQUEST, "Sec-WebSocket-Version must be 13").into_response());
    }
    Ok(())
}

/// Mounting tidings on a [`Router`].
pub trait RouterExt {
    /// Serves the tidings WebSocket endpoint at `path` with `hub` (no auth).
    fn tidings(self, path: &str, hub: Hub) -> Self;
    /// Serves a configured [`TidingsRoute`] at `path`.
    fn tidings_route(self, path: &str, route: TidingsRoute) -> Self;
}

impl<S: Clone + Send + Sync + 'static> RouterExt for Router<S> {
    fn tidings(self, path: &str, hub: Hub) -> Self {
        self.tidings_route(path, TidingsRoute::new(hub))
    }

    fn tidings_route(self, path: &str, route: TidingsRoute) -> Self {
        self.route(path, any(move |req: Request| route.clone().handle(req)))
    }
}
