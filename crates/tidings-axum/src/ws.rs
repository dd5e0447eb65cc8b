//! The WebSocket route: method/header checks, auth hook, subprotocol negotiation, 101 response, then the hub serves the socket.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tidings_channels::Hub;
use tidings_codec::negotiate;
use tidings_ws::{WsConfig, WsTransport};
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::debug;

use crate::auth::{AuthHook, admit};
use crate::origin::Origins;
use crate::rejection::Rejection;

/// A tidings WebSocket endpoint: hub, optional auth hook, limits.
#[derive(Clone)]
pub struct TidingsRoute {
    hub: Hub,
    auth: Option<Arc<dyn AuthHook>>,
    origins: Origins,
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
            origins: Origins::any(),
            ws: WsConfig::default(),
            permits: Arc::new(Semaphore::new(100_000)),
        }
    }

    /// Runs `hook` before every upgrade; a refusal answers 401/403 with the reason.
    pub fn auth(mut self, hook: impl AuthHook) -> Self {
        self.auth = Some(Arc::new(hook));
        self
    }

    /// Only pages from these origins may connect (see [`Origins`]).
    pub fn origins(mut self, origins: Origins) -> Self {
        self.origins = origins;
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

    pub(crate) async fn handle(self, req: Request) -> Response {
        match self.upgrade(req).await {
            Ok(resp) => resp,
            Err(rejection) => {
                debug!(error = %rejection, "WebSocket upgrade refused");
                rejection.into_response()
            }
        }
    }

    async fn upgrade(self, req: Request) -> Result<Response, Rejection> {
        check_upgrade(&req)?;
        let access = admit(self.auth.as_ref(), &self.origins, req.headers(), req.uri()).await?;
        let offers = tidings_ws::offered_subprotocols(req.headers());
        let offered_any = !offers.is_empty();
        let (codec, protocol) =
            negotiate(&offers).map_err(|e| Rejection::UnsupportedSubprotocol(e.to_string()))?;
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Rejection::ConnectionLimit)?;
        let key = req
            .headers()
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(Rejection::MissingKey)?;
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
            hub.serve_as(transport, codec, access.into_identity()).await;
        });
        Ok(switching_protocols(
            &accept,
            offered_any.then_some(protocol),
        ))
    }
}

/// The `101 Switching Protocols` answer to a WebSocket upgrade.
pub(crate) fn switching_protocols(accept: &str, protocol: Option<&'static str>) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(protocol) = protocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
    }
    resp
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

pub(crate) fn check_upgrade(req: &Request) -> Result<(), Rejection> {
    let h = req.headers();
    if req.method() != Method::GET {
        return Err(Rejection::NotGet);
    }
    if !header_has(h, header::CONNECTION, "upgrade") || !header_has(h, header::UPGRADE, "websocket")
    {
        return Err(Rejection::NotAnUpgrade);
    }
    if h.get(header::SEC_WEBSOCKET_VERSION)
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        return Err(Rejection::BadVersion);
    }
    Ok(())
}
