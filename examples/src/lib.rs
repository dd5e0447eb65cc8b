//! Shared pieces of the tidings examples: the chat app's `Router`, the environment helpers and the
//! shutdown signal used by the binaries in `src/bin/`.
//!
//! ```no_run
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use tidings::prelude::*;
//!
//! let hub = Hub::new(Arc::new(MemoryBroker::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, tidings_examples::chat_app(hub)).await
//! # }
//! ```

use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tidings::axum::HealthRouterExt;
use tidings::prelude::*;

/// The chat page: plain HTML and JavaScript speaking `tidings.v1.json` over a browser
/// `WebSocket`, or over `EventSource` + `fetch` with `?transport=sse` in the page URL.
pub const CHAT_HTML: &str = include_str!("../static/chat.html");

/// The chat application: `GET /` serves [`CHAT_HTML`], `/ws` is the tidings WebSocket endpoint
/// of `hub` and `/sse` its Server-Sent Events endpoint (`GET /sse`, `POST /sse/{session}`);
/// `/healthz` and `/readyz` report liveness and readiness (`tidings::axum::Health`).
///
/// Rooms are channels named `room:<name>`; messages are JSON objects `{"text": .., "from": ..}`.
///
/// The hub also serves RPC ([`chat_rpc`]): `chat.rooms` (the room list) and `chat.online`.
pub fn chat_app(hub: Hub) -> Router {
    hub.set_rpc(std::sync::Arc::new(chat_rpc(hub.clone())));
    Router::new()
        .route("/", get(index))
        .tidings("/ws", hub.clone())
        .tidings_sse("/sse", hub.clone())
        .tidings_health(tidings::axum::Health::new(hub))
}

/// The rooms the chat offers.
pub const ROOMS: [&str; 3] = ["lobby", "random", "help"];

/// The chat's RPC methods, served on the same connection as the rooms.
// Their reference, generated from this trait, is docs/rpc-schema/chat.md (JSON Schema:
// chat.json beside it); `examples/tests/rpc_docs.rs` keeps both current.
#[tidings::rpc(namespace = "chat")]
pub trait Chat {
    /// The rooms the chat offers, in the order the page lists them.
    async fn rooms(&self) -> Vec<String>;
    /// How many connections the server holds right now (every open tab counts).
    async fn online(&self) -> u64;
}

/// The chat's [`Chat`] methods on a hub.
#[derive(Clone, Debug)]
pub struct ChatService {
    hub: Hub,
}

impl Chat for ChatService {
    async fn rooms(&self) -> Vec<String> {
        ROOMS.iter().map(|r| (*r).to_owned()).collect()
    }

    async fn online(&self) -> u64 {
        self.hub.stats().connections
    }
}

/// The chat's RPC server: `chat.rooms` → the room names ([`ROOMS`]); `chat.online` → the
/// number of connections the hub serves (see [`Chat`]).
pub fn chat_rpc(hub: Hub) -> tidings::rpc::server::RpcServer {
    tidings::rpc::server::RpcServer::new(ChatService { hub }.into_router())
}

async fn index() -> impl IntoResponse {
    // The page is small and changes with the binary: never serve a stale copy.
    ([(header::CACHE_CONTROL, "no-cache")], Html(CHAT_HTML))
}

/// The port from the `PORT` environment variable, or `default` when it is unset.
///
/// # Errors
/// A message naming the bad value when `PORT` is set but is not a port number.
pub fn port_from_env(default: u16) -> Result<u16, String> {
    match std::env::var("PORT") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|e| format!("PORT={v:?} is not a port number (0-65535): {e}")),
        _ => Ok(default),
    }
}

/// The chat server's TLS settings from the environment: `TIDINGS_TLS_CERT` and
/// `TIDINGS_TLS_KEY` (PEM files) serve that certificate; else
/// `TIDINGS_TLS_SELF_SIGNED=1` makes a development certificate for `localhost` and
/// `127.0.0.1` and writes its PEM to `target/chat-dev-cert.pem` (or `$TIDINGS_TLS_DEV_CERT_OUT`) for
/// clients to trust; else plain HTTP (`Ok(None)`).
///
/// # Errors
/// A message naming what is wrong (unreadable PEM, only one variable set, ...).
pub fn tls_from_env()
-> Result<Option<(tidings::axum::TlsConfig, Option<std::path::PathBuf>)>, String> {
    use tidings::axum::TlsConfig;
    if let Some(tls) = TlsConfig::from_env().map_err(|e| e.to_string())? {
        return Ok(Some((tls, None)));
    }
    let dev = std::env::var("TIDINGS_TLS_SELF_SIGNED").is_ok_and(|v| v == "1" || v == "true");
    if !dev {
        return Ok(None);
    }
    let (tls, cert_pem) =
        TlsConfig::self_signed(&["localhost", "127.0.0.1"]).map_err(|e| e.to_string())?;
    let out = std::env::var_os("TIDINGS_TLS_DEV_CERT_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/chat-dev-cert.pem"));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(&out, cert_pem).map_err(|e| format!("writing {}: {e}", out.display()))?;
    Ok(Some((tls, Some(out))))
}

/// Logs to stderr with `RUST_LOG` as the filter (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on Ctrl-C, or on SIGTERM on Unix.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// Waits until `hub` serves no connection any more, at most `grace`; returns how many remain.
///
/// WebSocket connections leave axum's connection tracking once upgraded, so axum's graceful
/// shutdown does not wait for them: call this after [`Hub::shutdown`] so the `Close` frames are
/// written before the runtime stops.
pub async fn drain(hub: &Hub, grace: Duration) -> u64 {
    let _ = tokio::time::timeout(grace, hub.idle()).await;
    hub.stats().connections
}
