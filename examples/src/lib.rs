//! Shared pieces of the tidings examples: the chat app's `Router` (the server-rendered Leptos front end, its wasm bundle, the plain-JS reference page, the tidings endpoints), the environment helpers and the shutdown signal used by the binaries in `src/bin/`.
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
use tidings::axum::{DiscoveryRouterExt, HealthRouterExt, MetricsRouterExt};
use tidings::core::{DiscoveredTransport, Discovery};
use tidings::prelude::*;
use tidings_chat_web::BUNDLE_NAME;

mod collab;

pub use collab::{attach_collab, collab_routes};

/// The protocol's reference client: plain HTML and JavaScript speaking `tidings.v1.json` over a
/// browser `WebSocket`, or over `EventSource` + `fetch` with `?transport=sse` in the page URL.
/// Served at `/plain`.
pub const CHAT_HTML: &str = include_str!("../static/chat.html");

/// The Leptos front end's JavaScript bindings (wasm-bindgen `--target web` output), built by
/// `build.rs`; served at `/pkg/tidings_chat_web.js`.
pub const CHAT_WEB_JS: &str = include_str!(concat!(env!("OUT_DIR"), "/pkg/tidings_chat_web.js"));

/// The Leptos front end's wasm module (release profile `wasm-release`), built by `build.rs`;
/// served at `/pkg/tidings_chat_web_bg.wasm`.
pub const CHAT_WEB_WASM: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pkg/tidings_chat_web_bg.wasm"));

/// The chat application:
///
/// * `GET /`: the Leptos front end (`tidings-chat-web`), rendered on the server and hydrated in
///   the browser by the bundle at `/pkg/`; rendering opens no connection (the hooks are inert
///   off wasm32);
/// * `GET /plain`: [`CHAT_HTML`], the plain-JS reference client;
/// * `/ws`: the tidings WebSocket endpoint of `hub`, `/sse` its Server-Sent Events endpoint
///   (`GET /sse`, `POST /sse/{session}`);
/// * `/.well-known/tidings`: the discovery document naming both (what `tidings doctor` and
///   adaptive clients read);
/// * `/healthz` and `/readyz` report liveness and readiness (`tidings::axum::Health`), `/metrics`
///   the hub's counters for Prometheus (`tidings::axum::Metrics`).
///
/// Rooms are channels named `room:<name>`; messages are JSON objects `{"text": .., "from": ..}`.
///
/// The hub also serves RPC ([`chat_rpc`]): `chat.rooms` (the room list) and `chat.online`.
pub fn chat_app(hub: Hub) -> Router {
    hub.set_rpc(std::sync::Arc::new(chat_rpc(hub.clone())));
    Router::new()
        .route("/", get(leptos_index))
        .route("/plain", get(plain_index))
        .route(&format!("/pkg/{BUNDLE_NAME}.js"), get(bundle_js))
        .route(&format!("/pkg/{BUNDLE_NAME}_bg.wasm"), get(bundle_wasm))
        .tidings("/ws", hub.clone())
        .tidings_sse("/sse", hub.clone())
        .tidings_discovery(
            &Discovery::new()
                .with_transport(DiscoveredTransport::new("websocket", "/ws"))
                .with_transport(DiscoveredTransport::new("sse", "/sse"))
                .with_codec("tidings.v1.json")
                .with_codec("tidings.v1.bin"),
        )
        .tidings_health(tidings::axum::Health::new(hub.clone()))
        .tidings_metrics(tidings::axum::Metrics::new(hub))
}

/// The rooms the chat offers (the Leptos front end's list).
pub use tidings_chat_web::ROOMS;

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

/// The pages change with the binary: never let a browser keep a stale copy.
const NO_CACHE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

async fn leptos_index() -> impl IntoResponse {
    ([NO_CACHE], Html(tidings_chat_web::render_page()))
}

async fn plain_index() -> impl IntoResponse {
    ([NO_CACHE], Html(CHAT_HTML))
}

async fn bundle_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            NO_CACHE,
        ],
        CHAT_WEB_JS,
    )
}

async fn bundle_wasm() -> impl IntoResponse {
    // `application/wasm`: the bindings compile it with `WebAssembly.instantiateStreaming`.
    (
        [(header::CONTENT_TYPE, "application/wasm"), NO_CACHE],
        CHAT_WEB_WASM,
    )
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

/// The chat's WebTransport server: sessions served by `hub` on UDP `addr` (the HTTP port's
/// number beside it), and the routes that give pages its session URL (`GET /webtransport.json`,
/// `{"url": "https://…/"}`) and its certificate's SHA-256.
///
/// The certificate is the chain of `TIDINGS_TLS_CERT` / `TIDINGS_TLS_KEY` when both are set
/// (browsers verify it with their roots; `/webtransport-hashes.json` is then `[]`), else a
/// self-signed ECDSA P-256 development certificate valid 13 days, made now, whose hash
/// `GET /webtransport-hashes.json` serves (`serverCertificateHashes`; the Leptos front end
/// fetches it before each connect, so a restarted server's new certificate is pinned too).
///
/// # Errors
/// A message naming what failed (unreadable PEM files, the UDP port taken, ...).
pub async fn webtransport_server(
    hub: Hub,
    addr: std::net::SocketAddr,
) -> Result<(tidings::webtransport::ServerHandle, Router), String> {
    use tidings::webtransport::{Accepted, Certificate, ServerConfig, WtServer};
    let chain = match (
        std::env::var_os("TIDINGS_TLS_CERT"),
        std::env::var_os("TIDINGS_TLS_KEY"),
    ) {
        (Some(cert), Some(key)) => Some(
            Certificate::from_pem_files(cert, key)
                .await
                .map_err(|e| e.to_string())?,
        ),
        _ => None,
    };
    let pinned = chain.is_none();
    let cert = match chain {
        Some(cert) => cert,
        None => Certificate::self_signed(["localhost", "127.0.0.1"]).map_err(|e| e.to_string())?,
    };
    let server = WtServer::bind(addr, ServerConfig::default(), cert)
        .map_err(|e| format!("UDP {addr}: {e}"))?;
    let handle = server.serve(move |s: Accepted| {
        let hub = hub.clone();
        async move { hub.serve(s.transport, s.codec).await }
    });
    let hashes = if pinned {
        handle.certificate_hashes_json().to_owned()
    } else {
        "[]".to_owned()
    };
    let session = format!(r#"{{"url":"https://{}/"}}"#, handle.local_addr());
    let json = |body: String| {
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json"), NO_CACHE], body) }
        })
    };
    let route = Router::new()
        .route("/webtransport.json", json(session))
        .route("/webtransport-hashes.json", json(hashes));
    Ok((handle, route))
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
