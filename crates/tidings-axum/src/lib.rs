//! Axum integration of tidings: every endpoint (WebSocket and Server-Sent Events) served by a `Hub`, mounted in one line, with an auth hook and typed rejections.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use axum::Router;
//! use tidings_axum::{AuthError, RouterExt, SseRouterExt, TidingsRoute};
//! use tidings_channels::{Hub, MemoryBroker};
//!
//! let hub = Hub::new(Arc::new(MemoryBroker::default()));
//! // One line each, no auth:
//! let app: Router = Router::new()
//!     .tidings("/ws", hub.clone())
//!     .tidings_sse("/sse", hub.clone());
//! // With an auth hook that runs before the upgrade:
//! let route = TidingsRoute::new(hub).auth(|req: tidings_axum::UpgradeRequest| async move {
//!     match req.headers.get("authorization") {
//!         Some(v) if v == "Bearer secret" => Ok(()),
//!         Some(_) => Err(AuthError::Forbidden("token not allowed here".into())),
//!         None => Err(AuthError::Unauthorized("missing bearer token".into())),
//!     }
//! });
//! let app: Router = Router::new().tidings_route("/ws", route);
//! # }
//! ```
//!
//! Every refusal is a [`Rejection`] answered with its status, an
//! `x-tidings-error` code and the reason. The WebSocket upgrade is done here
//! (hyper's upgrade + tokio-tungstenite) rather than with axum's `ws`
//! feature, so the whole workspace uses one tungstenite version and the same
//! `WsTransport` as the standalone server. The SSE endpoint itself is
//! framework-free (`tidings_sse::SseEndpoint`); this crate maps requests
//! onto it.
//!
//! Feature `metrics`: [`Metrics`] (`GET /metrics`) on `metrics` (the facade
//! the RPC layers already record through) and `metrics-exporter-prometheus`
//! without its HTTP listener or push gateway (no second server, no hyper
//! client, no aws-lc-rs): the route renders the recorder itself.

mod auth;
mod discovery;
#[cfg(feature = "yjs")]
mod docs_session;
mod health;
#[cfg(feature = "jwt")]
mod jwt;
#[cfg(feature = "metrics")]
mod metrics;
mod origin;
mod rejection;
mod server;
mod sse;
#[cfg(feature = "tls")]
mod tls;
mod ws;
#[cfg(feature = "yjs")]
mod yjs;

use axum::Router;
use axum::extract::{Path, Request};
use axum::routing::{any, get, post};
use tidings_channels::Hub;

pub use auth::{Access, AuthError, AuthHook, UpgradeRequest};
pub use discovery::DiscoveryRouterExt;
#[cfg(feature = "yjs")]
pub use docs_session::DocsExtension;
pub use health::{Health, HealthRouterExt};
#[cfg(feature = "jwt")]
pub use jwt::{
    JwtAuth, JwtKeyError, TOKEN_COOKIE, TOKEN_QUERY, TOKEN_SUBPROTOCOL_PREFIX, token_of,
};
#[cfg(feature = "metrics")]
pub use metrics::{Metrics, MetricsError, MetricsRouterExt, PUBLISH_LATENCY_METRIC};
pub use origin::Origins;
pub use rejection::Rejection;
pub use server::Server;
pub use sse::SseRoute;
pub use tidings_channels::{ChannelGrants, Identity};
pub use tidings_sse::SseConfig;
#[cfg(feature = "tls")]
pub use tls::{TLS_CERT_ENV, TLS_KEY_ENV, TlsConfig, TlsError};
pub use ws::TidingsRoute;
#[cfg(feature = "yjs")]
pub use yjs::YjsRoute;

/// Mounting a y-websocket endpoint ([`YjsRoute`]) on a [`Router`].
#[cfg(feature = "yjs")]
pub trait YjsRouterExt {
    /// Serves document `NAME` at `<prefix>/NAME` (e.g. prefix `/yjs`).
    fn tidings_yjs(self, prefix: &str, route: YjsRoute) -> Self;
}

#[cfg(feature = "yjs")]
impl<S: Clone + Send + Sync + 'static> YjsRouterExt for Router<S> {
    fn tidings_yjs(self, prefix: &str, route: YjsRoute) -> Self {
        let path = format!("{}/{{doc}}", prefix.trim_end_matches('/'));
        self.route(
            &path,
            get(move |Path(doc): Path<String>, req: Request| {
                let route = route.clone();
                async move { route.handle(doc, req).await }
            }),
        )
    }
}

/// Mounting the tidings WebSocket endpoint on a [`Router`].
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

/// Mounting the tidings SSE endpoint on a [`Router`].
pub trait SseRouterExt {
    /// Serves the tidings SSE endpoint at `path` with `hub` (no auth):
    /// `GET path` and `POST path/{session}`.
    fn tidings_sse(self, path: &str, hub: Hub) -> Self;
    /// Serves a configured [`SseRoute`] at `path`.
    fn tidings_sse_route(self, path: &str, route: SseRoute) -> Self;
}

impl<S: Clone + Send + Sync + 'static> SseRouterExt for Router<S> {
    fn tidings_sse(self, path: &str, hub: Hub) -> Self {
        self.tidings_sse_route(path, SseRoute::new(hub))
    }

    fn tidings_sse_route(self, path: &str, route: SseRoute) -> Self {
        let post_path = format!("{}/{{session}}", path.trim_end_matches('/'));
        let stream = route.clone();
        self.route(path, get(move |req: Request| stream.clone().stream(req)))
            .route(
                &post_path,
                post(move |Path(session): Path<String>, req: Request| {
                    route.clone().upstream(session, req)
                }),
            )
    }
}
