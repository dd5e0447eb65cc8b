//! Echo demo: a standalone tidings WebSocket server in raw echo mode (every text or binary message
//! comes back unchanged).
//!
//! ```text
//! PORT=3001 cargo run -p tidings-examples --bin echo
//! ```
//!
//! Try it with any WebSocket client, e.g. `websocat ws://127.0.0.1:3001`. Ctrl-C (or SIGTERM)
//! closes every connection with 1001 "server shutting down".

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use tidings::ws::{ServerConfig, WsServer, raw_echo};
use tidings_examples::{init_tracing, port_from_env, shutdown_signal};
use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let port = match port_from_env(3001) {
        Ok(p) => p,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let server = match WsServer::bind(addr, ServerConfig::default()).await {
        Ok(s) => s,
        Err(e) => {
            error!(%addr, "cannot listen: {e} (is another server on this port? set PORT)");
            return ExitCode::FAILURE;
        }
    };
    let handle = server.serve(raw_echo);
    println!("echo server on ws://{}", handle.local_addr());
    info!(
        connections = handle.connections(),
        "raw echo mode; Ctrl-C to stop"
    );
    shutdown_signal().await;
    info!(connections = handle.connections(), "shutting down");
    handle.shutdown().await;
    info!("bye");
    ExitCode::SUCCESS
}
