//! Chat demo: an axum server with the tidings endpoints at `/ws` (WebSocket) and `/sse` (Server-Sent Events), WebTransport on the UDP port of the same number, the Leptos front end at `/` and the plain-JS reference page at `/plain`.
//!
//! ```text
//! PORT=3000 cargo run -p tidings-examples --bin chat
//! ```
//!
//! Open <http://127.0.0.1:3000> in two tabs and chat; <http://127.0.0.1:3000/editor> in two tabs
//! and edit one text together (a Yjs document on the same session, with who is present). The page is the Leptos 0.8 front end of
//! `examples/chat-web` on the `tidings-leptos` hooks: rendered here on the server, hydrated in
//! the browser by its wasm bundle (built by this crate's `build.rs`, which needs the
//! `wasm32-unknown-unknown` target: `cargo xtask setup`). It shows the rooms, your name, the
//! messages, the connection's status and notices of anything lost; its client resumes the
//! session after a network blip or a server restart, so messages still in the server's buffer
//! are not lost. <http://127.0.0.1:3000/plain> is the protocol's reference client in plain
//! JavaScript (no wasm), and <http://127.0.0.1:3000/plain?transport=sse> the same over
//! Server-Sent Events (`EventSource` down, `fetch` POSTs up); all of them share the rooms.
//! <http://127.0.0.1:3000/?transport=webtransport> is the Leptos front end over WebTransport
//! (HTTP/3 on UDP 127.0.0.1:3000, the same port number): a self-signed ECDSA development
//! certificate valid 13 days is made at start and the page pins its SHA-256, served at
//! `/webtransport-hashes.json` (with `TIDINGS_TLS_CERT` / `TIDINGS_TLS_KEY` that chain is
//! used instead, verified by the browser's roots). Ctrl-C (or SIGTERM) closes every session with "server stopping" (1001) before the process
//! exits.
//!
//! `TIDINGS_BROKER` picks the broker by URL (default `memory://`); with
//! `redis://127.0.0.1:6379?prefix=chat` two servers on different `PORT`s share
//! the rooms and the history survives restarts (`postgres://…` and `nats://…` likewise).
//! `TIDINGS_STORE` (history, and who numbers each room's messages) defaults to the broker, which
//! then keeps the history itself; set apart, the store keeps the history and the broker only
//! wakes the other servers (e.g. `TIDINGS_BROKER=nats://… TIDINGS_STORE=postgres://…`, or
//! `TIDINGS_BROKER=memory:// TIDINGS_STORE=postgres://…` for one server whose history survives).
//!
//! TLS (https:// and wss:// on the same port):
//!
//! ```text
//! TIDINGS_TLS_CERT=cert.pem TIDINGS_TLS_KEY=key.pem cargo run -p tidings-examples --bin chat
//! TIDINGS_TLS_SELF_SIGNED=1 cargo run -p tidings-examples --bin chat   # dev certificate
//! ```
//!
//! The dev mode writes its certificate to `target/chat-dev-cert.pem` (`curl --cacert` it; browsers
//! warn). The server limits each IP to 256 connections and closes requests whose head has not
//! arrived within 10 s (`tidings_axum::Server`).

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use tidings::axum::Server;
use tidings::prelude::*;
use tidings_examples::{
    chat_app, collab_routes, drain, init_tracing, port_from_env, shutdown_signal, tls_from_env,
    webtransport_server,
};
use tracing::{error, info, warn};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let port = match port_from_env(3000) {
        Ok(p) => p,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            error!(%addr, "cannot listen: {e} (is another server on this port? set PORT)");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(addr);
    let tls = match tls_from_env() {
        Ok(t) => t,
        Err(e) => {
            error!("TLS: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut server = Server::new();
    let scheme = match tls {
        Some((tls, dev_cert)) => {
            if let Some(path) = dev_cert {
                info!(cert = %path.display(), "self-signed development certificate: trust this file");
            }
            server = server.tls(tls);
            "https"
        }
        None => "http",
    };
    let broker = std::env::var("TIDINGS_BROKER").unwrap_or_else(|_| "memory://".into());
    let store = std::env::var("TIDINGS_STORE").ok();
    let hub = match tidings::backend::connect_hub_with_store(
        &broker,
        store.as_deref(),
        HubConfig::default(),
    )
    .await
    {
        Ok(hub) => hub,
        Err(e) => {
            error!(%broker, ?store, "cannot use TIDINGS_BROKER / TIDINGS_STORE: {e}");
            return ExitCode::FAILURE;
        }
    };
    info!(%broker, store = store.as_deref().unwrap_or(&broker), "broker and store");
    let docs = match tidings_examples::attach_collab(&hub).await {
        Ok(docs) => docs,
        Err(e) => {
            error!("cannot start presence: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut app = chat_app(hub.clone()).merge(collab_routes(docs));
    // WebTransport beside HTTP: the UDP port of the same number.
    let webtransport = match webtransport_server(hub.clone(), addr).await {
        Ok((handle, route)) => {
            info!(udp = %handle.local_addr(), hash = %hex(&handle.certificate_hash()), "WebTransport (HTTP/3); ?transport=webtransport in the page URL uses it");
            app = app.merge(route);
            Some(handle)
        }
        Err(e) => {
            warn!("WebTransport is off: {e}");
            None
        }
    };
    println!("chat server on {scheme}://{addr}");
    info!(%addr, "serving the Leptos chat at /, the plain-JS page at /plain and the tidings endpoints at /ws and /sse");

    let stopping = hub.clone();
    let served = server
        .serve(listener, app, async move {
            shutdown_signal().await;
            info!("shutting down: closing sessions");
            stopping.shutdown("server stopping");
        })
        .await;
    if let Err(e) = served {
        error!("server failed: {e}");
        return ExitCode::FAILURE;
    }
    let left = drain(&hub, Duration::from_secs(5)).await;
    if let Some(handle) = webtransport {
        handle.shutdown().await;
    }
    if left > 0 {
        warn!(
            connections = left,
            "connections still open after 5 s; exiting anyway"
        );
    }
    info!("bye");
    ExitCode::SUCCESS
}
