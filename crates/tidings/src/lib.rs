//! tidings: real-time communication for Rust web apps — channels (rooms) with ordered, deduplicated,
//! resumable delivery over WebSocket, mounted on an axum `Router` in one line.
//!
//! This is the facade crate: it re-exports the `tidings-*` crates behind additive features, so an
//! application depends on `tidings` alone.
//!
//! # Quick start
//!
//! A server with the tidings endpoint at `/ws`, and a native client that joins a room and chats:
//!
//! ```no_run
//! # #[cfg(all(feature = "axum", feature = "ws"))]
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use tidings::prelude::*;
//!
//! // Server: an axum Router serving the tidings WebSocket endpoint at /ws.
//! let hub = Hub::new(Arc::new(MemoryBroker::default()));
//! let app = axum::Router::new().tidings("/ws", hub.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! tokio::spawn(async move { axum::serve(listener, app).await });
//!
//! // Server code can publish too.
//! hub.publish("room:lobby", r#"{"text":"server started"}"#).await?;
//!
//! // Client: reconnects with backoff and resumes its session by itself.
//! let client = Client::builder("ws://127.0.0.1:3000/ws").connect()?;
//! client.subscribe("room:lobby")?;
//! client.publish("room:lobby", r#"{"text":"hello"}"#)?;
//! while let Some(event) = client.next_event().await {
//!     match event {
//!         ClientEvent::Message(m) => println!("{} #{}: {:?}", m.channel, m.seq, m.payload),
//!         ClientEvent::Gap(g) => println!("missed {}..={} on {}: reload", g.from, g.to, g.channel),
//!         _ => {}
//!     }
//! }
//!
//! // Graceful shutdown: every session gets `Close` (1001) and reconnects elsewhere.
//! hub.shutdown("server stopping");
//! # Ok(())
//! # }
//! # #[cfg(not(all(feature = "axum", feature = "ws")))]
//! # fn main() {}
//! ```
//!
//! Browsers can use the Rust client compiled to wasm (feature `ws-client`) or speak the JSON wire
//! protocol directly: `new WebSocket(url, ["tidings.v1.json"])` (see `docs/protocol.md` and the
//! chat example in `examples/`).
//!
//! # Features
//!
//! | feature     | enables                                                         | wasm32 |
//! |-------------|-----------------------------------------------------------------|--------|
//! | `ws`        | `tidings::ws`: native WebSocket server and client               | client |
//! | `ws-client` | `tidings::ws`: the client only (browser `WebSocket` on wasm32)  | yes    |
//! | `sse`       | `tidings::sse`: SSE endpoint (`Router::tidings_sse`) and client; + `axum` | client |
//! | `sse-client`| `tidings::sse`: the client only (browser `EventSource` on wasm32) | yes    |
//! | `webtransport` | `tidings::webtransport`: WebTransport (HTTP/3) server and client | client |
//! | `webtransport-client` | `tidings::webtransport`: the client only (browser `WebTransport` on wasm32) | yes |
//! | `channels`  | `tidings::channels`: `Hub`, `Broker`, `MemoryBroker`            | no     |
//! | `axum`      | `tidings::axum`: `Router::tidings`, `Router::tidings_sse`, auth, `Rejection`; + `channels` | no |
//! | `rpc`       | `tidings::rpc`: typed RPC server (router, layers), client, `#[tidings::rpc]` with schemas; + `channels` | client |
//! | `rpc-client`| `tidings::rpc`: the RPC client only (and `#[tidings::rpc]` typed clients) | yes    |
//! | `redis`     | `tidings::backend::redis`: Redis broker and store (`redis://` URLs); + `channels` | no |
//! | `postgres`  | `tidings::backend::postgres`: PostgreSQL broker and store (`postgres://` URLs); + `channels` | no |
//! | `nats`      | `tidings::backend::nats`: NATS JetStream broker and store (`nats://` URLs); + `channels` | no |
//! | `tls`       | `tidings::axum::{Server::tls, TlsConfig}`: https:// and wss:// (rustls, ring); + `axum` | no |
//! | `tls-self-signed` | `TlsConfig::self_signed`: a development certificate (rcgen); + `tls` | no |
//! | `rustls`    | wss:// / https:// in the native clients, `root_certificate_pem` for a private CA | no |
//! | `metrics`   | `tidings::axum::{Metrics, MetricsRouterExt}`: `GET /metrics` (Prometheus); + `axum` | no |
//! | `otel`      | `tidings::otel`: OpenTelemetry export of the spans over OTLP/HTTP (off by default, not in `full`) | no |
//! | `leptos`    | `tidings::leptos`: Leptos 0.8 hooks (off by default, not in `full`) | yes  |
//! | `full`      | all of the above except the backends, `otel` and `leptos`       | no     |
//!
//! Default: `ws`, `channels`, `axum`. [`protocol`] (frames, sans-IO sessions), [`runtime`]
//! (`Transport`, pump, the one `Client`), [`core`] (both in one path) and [`codec`] (wire
//! codecs) are always available. For a browser (wasm) build use
//! `default-features = false, features = ["ws-client"]` (and/or `"sse-client"`).

pub use tidings_codec as codec;
pub use tidings_protocol as protocol;
pub use tidings_runtime as runtime;

/// Protocol types and the runtime together (`tidings::protocol` and
/// `tidings::runtime` in one path): frames, ids, errors, sessions, the
/// `Transport` trait, the pump and the `Client`. Kept for code written
/// against the single core crate of earlier releases.
pub mod core {
    pub use tidings_protocol::*;
    pub use tidings_runtime::*;
}

/// WebSocket transport (`tidings-ws`): `Client` (native and wasm) and, with the `ws` feature on
/// native targets, `WsServer`, `WsTransport` and `raw_echo`.
#[cfg(any(feature = "ws", feature = "ws-client"))]
#[doc(inline)]
pub use tidings_ws as ws;

/// Server-Sent Events transport (`tidings-sse`): `Client` (native and wasm) and, with the `sse`
/// feature on native targets, the framework-free `SseEndpoint`, and the axum mount `SseRoute`
/// with `Router::tidings_sse` through `SseRouterExt` (from `tidings-axum`).
#[cfg(any(feature = "sse", feature = "sse-client"))]
pub mod sse {
    pub use tidings_sse::*;

    #[cfg(all(feature = "sse", not(target_arch = "wasm32")))]
    pub use tidings_axum::{SseRoute, SseRouterExt};
}

/// WebTransport over HTTP/3 (`tidings-webtransport`): `Client` (native and wasm) and, on
/// native targets, `WtServer`, `Datagrams`, development certificates pinned by hash.
#[cfg(any(feature = "webtransport", feature = "webtransport-client"))]
#[doc(inline)]
pub use tidings_webtransport as webtransport;

/// Adaptive client (`tidings-adaptive`): one `Client` over the best transport that works
/// (WebTransport → WebSocket → SSE, happy eyeballs), moving its session between them at run
/// time without losing or repeating a message; events and counters for every switch.
#[cfg(feature = "adaptive")]
#[doc(inline)]
pub use tidings_adaptive as adaptive;

/// Channels (`tidings-channels`): the `Hub` that serves sessions, the `Broker` trait and the
/// in-memory broker.
#[cfg(feature = "channels")]
#[doc(inline)]
pub use tidings_channels as channels;

/// Typed RPC (`tidings-rpc`): calls, server streams with credits, cancellation, typed errors,
/// tower layers; the client also on wasm32.
#[cfg(any(feature = "rpc", feature = "rpc-client"))]
#[doc(inline)]
pub use tidings_rpc as rpc;

/// `#[tidings::rpc]`: a typed client, a server trait with its routing and (feature `rpc`) a
/// JSON Schema from one trait definition (see `tidings_rpc_macros`). The attribute and the
/// module [`rpc`](mod@rpc) share the name: one is a macro, the other a module.
#[cfg(any(feature = "rpc", feature = "rpc-client"))]
pub use tidings_rpc_macros::rpc_via_facade as rpc;
/// Backends chosen by URL (`memory://`; `redis://`, `postgres://`, `nats://` with their features):
/// [`backend::connect_broker`], [`backend::connect_store`], [`backend::connect_hub`].
#[cfg(feature = "channels")]
pub mod backend;

/// Axum integration (`tidings-axum`): `Router::tidings("/ws", hub)` through `RouterExt`, and
/// `TidingsRoute` with an auth hook on upgrade.
#[cfg(feature = "axum")]
#[doc(inline)]
pub use tidings_axum as axum;

/// Leptos 0.8 hooks (`tidings-leptos`): `use_connection`, `use_channel`, `use_subscription`,
/// `use_publish`. Connects on wasm32 only; inert under SSR.
#[cfg(feature = "leptos")]
#[doc(inline)]
pub use tidings_leptos as leptos;

/// Presence (`tidings-presence`): who is in each room, across nodes — the `Presence` hub
/// extension (feature `presence`) and the client's `PresenceView` (feature `presence-client`).
#[cfg(any(feature = "presence", feature = "presence-client"))]
#[doc(inline)]
pub use tidings_presence as presence;

/// CRDT documents (`tidings-sync`): Yjs-compatible sync on yrs (`SyncDoc`, `Docs`, a
/// y-websocket connection handler, `SessionDocs`: feature `sync`) and the client side of
/// documents on the session (`SyncedDoc`, `SyncedClient`: feature `sync-client`).
#[cfg(any(feature = "sync", feature = "sync-client"))]
#[doc(inline)]
pub use tidings_sync as sync;

/// OpenTelemetry export of the tracing spans (feature `otel`, off by default):
/// [`otel::init`] with an OTLP/HTTP endpoint, a guard that flushes on drop.
#[cfg(feature = "otel")]
pub mod otel;

/// The items most applications need: `use tidings::prelude::*;`.
pub mod prelude {
    pub use crate::core::{ChannelName, ClientEvent, ClientState, Gap, Message};

    #[cfg(feature = "axum")]
    pub use crate::axum::{
        AuthError, Rejection, RouterExt, SseRoute, SseRouterExt, TidingsRoute, UpgradeRequest,
    };
    #[cfg(feature = "channels")]
    pub use crate::channels::{Broker, Hub, HubConfig, MemoryBroker};
    #[cfg(any(feature = "ws", feature = "ws-client"))]
    pub use crate::ws::{Client, ClientBuilder};
}
