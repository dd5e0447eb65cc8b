//! The y-websocket route: standard Yjs clients (`y-websocket`'s `WebsocketProvider`, or y-protocols over binary WebSocket messages) sync documents of a `tidings_sync::Docs`, with the same auth hook, Origin check and limits as the tidings endpoint.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tidings_sync::Docs;
use tidings_ws::WsConfig;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::debug;

use crate::auth::{AuthError, AuthHook, admit};
use crate::origin::Origins;
use crate::rejection::Rejection;
use crate::ws::{check_upgrade, switching_protocols};

/// A y-websocket endpoint: document `NAME` is served at `<path>/NAME` (the
/// URL `y-websocket` builds from its server URL and room name).
///
/// Authorization uses the identity's channel grants on `doc:NAME`: subscribe
/// to read the document, publish to change it (a reader's updates close its
/// connection with 1008). Anonymous access (no auth hook) reads and writes.
#[derive(Clone)]
pub struct YjsRoute {
    docs: Docs,
    auth: Option<Arc<dyn AuthHook>>,
    origins: Origins,
    ws: WsConfig,
}

impl std::fmt::Debug for YjsRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("YjsRoute")
            .field("docs", &self.docs)
            .field("auth", &self.auth.is_some())
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}

impl YjsRoute {
    /// Serves the documents of `docs`, anyone may read and write.
    pub fn new(docs: Docs) -> Self {
        Self {
            docs,
            auth: None,
            origins: Origins::any(),
            ws: WsConfig::default(),
        }
    }

    /// Runs `hook` before every upgrade; a refusal answers 401/403.
    pub fn auth(mut self, hook: impl AuthHook) -> Self {
        self.auth = Some(Arc::new(hook));
        self
    }

    /// Only browsers on these origins may connect (403 otherwise).
    pub fn origins(mut self, origins: Origins) -> Self {
        self.origins = origins;
        self
    }

    /// WebSocket limits (message and frame size).
    pub fn ws_config(mut self, ws: WsConfig) -> Self {
        self.ws = ws;
        self
    }

    pub(crate) async fn handle(self, name: String, req: Request) -> Response {
        match self.upgrade(name, req).await {
            Ok(resp) => resp,
            Err(rejection) => {
                debug!(error = %rejection, "y-websocket upgrade refused");
                rejection.into_response()
            }
        }
    }

    async fn upgrade(self, name: String, req: Request) -> Result<Response, Rejection> {
        check_upgrade(&req)?;
        let access = admit(self.auth.as_ref(), &self.origins, req.headers(), req.uri()).await?;
        let channel = format!("doc:{name}");
        let (may_read, may_write) = match access.identity() {
            None => (true, true),
            Some(identity) => (
                identity.grants().may_subscribe(&channel),
                identity.grants().may_publish(&channel),
            ),
        };
        if !may_read {
            return Err(AuthError::Forbidden(format!("may not read {channel}")).into());
        }
        let key = req
            .headers()
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(Rejection::MissingKey)?;
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = hyper::upgrade::on(req);
        let (docs, ws) = (self.docs.clone(), self.ws.clone());
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    debug!(error = %e, "upgrade failed");
                    return;
                }
            };
            let stream = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(ws.tungstenite()),
            )
            .await;
            docs.serve_connection_as(&name, stream, may_write).await;
        });
        Ok(switching_protocols(&accept, None))
    }
}
