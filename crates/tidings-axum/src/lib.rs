//! Axum integration of tidings: a WebSocket route served by a `Hub`, mounted in one line, with an auth hook.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use axum::Router;
//! use tidings_axum::{RouterExt, TidingsRoute, AuthError};
//! use tidings_channels::{Hub, MemoryBroker};
//!
//! let hub = Hub::new(Arc::new(MemoryBroker::default()));
//! // One line, no auth:
//! let app: Router = Router::new().tidings("/ws", hub.clone());
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
//! The upgrade is done here (hyper's upgrade + tokio-tungstenite) rather than
//! with axum's `ws` feature, so the whole workspace uses one tungstenite
//! version and the same `WsTransport` as the standalone server.

mod route;

pub use route::{AuthError, AuthHook, RouterExt, TidingsRoute, UpgradeRequest};
