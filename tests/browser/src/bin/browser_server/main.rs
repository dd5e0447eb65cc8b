//! `browser-server`: the tidings server the browser tests run against.
//!
//! ```text
//! browser-server --port 0 --pages tests/browser/static --pkg <wasm-bindgen output>
//! ```
//!
//! Serves, on 127.0.0.1:
//! * `/` and `/<file>`: the test pages, from `--pages`; `/pkg/<file>`: the wasm module and its
//!   JavaScript bindings, from `--pkg`;
//! * `/ws`: the tidings WebSocket endpoint (`Router::tidings`), `/sse`: the SSE endpoint;
//! * `POST /control/publish/{channel}`: publishes the request body from server code (the
//!   messages a scenario sends "meanwhile", while a page is offline).
//!
//! With `--tls-dir DIR [--tls-port PORT]` the same routes are also served over TLS
//! (`tidings::axum::Server::tls`, rustls) with a self-signed certificate kept in `DIR`; the
//! server then prints `tls on https://ADDR spki=PIN` (PIN: base64 SHA-256 of the
//! certificate's public key, what Chromium's `--ignore-certificate-errors-spki-list` takes)
//! before its `listening` line.
//!
//! The hub also serves WebTransport on UDP 127.0.0.1 (`--wt-port`, 0: any free port) with a
//! self-signed ECDSA P-256 certificate valid 13 days (kept in `--tls-dir` when given, so a
//! restarted server presents the same one); the server prints `webtransport on https://ADDR/`
//! and serves the session URL at `/webtransport.json`, the certificate's SHA-256 at
//! `/webtransport-hashes.json`, and `GET /control/wt/stats`, `POST /control/wt/kill` (see
//! `wt.rs`).
//!
//! One hub with the in-memory broker serves every endpoint, so WebSocket and SSE clients share
//! rooms. `--heartbeat-ms` shortens the sessions' heartbeat, so that a silent connection (a page
//! whose network is cut without the socket closing) is declared dead in seconds, not 45 s. `--port 0` picks a free port; the server prints `listening on http://ADDR` on stdout
//! once it accepts connections. It exits when its stdin closes, so it never outlives the driver
//! that started it, even when the driver is killed.

mod args;
mod control;
mod files;
mod tls;
mod wt;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use tidings::core::ServerConfig;
use tidings::prelude::*;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args::Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("browser-server: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    let listener = match listen(args.port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "browser-server: cannot listen on 127.0.0.1:{}: {e}",
                args.port
            );
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("browser-server: no local address: {e}");
            return ExitCode::FAILURE;
        }
    };
    exit_when_stdin_closes();

    let mut session = ServerConfig::default();
    if let Some(heartbeat) = args.heartbeat {
        session = session.with_heartbeat(heartbeat);
    }
    let hub = Hub::with_config(
        Arc::new(MemoryBroker::default()),
        HubConfig::default().with_session(session),
    );
    // The chat page's RPC methods, as the chat server serves them.
    hub.set_rpc(Arc::new(tidings_examples::chat_rpc(hub.clone())));
    let (wt_routes, wt_url) =
        match wt::start(hub.clone(), args.wt_port, args.tls_dir.as_deref()).await {
            Ok(started) => started,
            Err(e) => {
                eprintln!("browser-server: WebTransport: {e}");
                return ExitCode::FAILURE;
            }
        };
    let app = Router::new()
        .tidings("/ws", hub.clone())
        .tidings_sse("/sse", hub.clone())
        .merge(control::routes(hub))
        .merge(wt_routes)
        .merge(files::routes(args.pages, args.pkg));
    if let Some(dir) = &args.tls_dir {
        let (config, pin) = match tls::load_or_make(dir) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("browser-server: TLS: {e}");
                return ExitCode::FAILURE;
            }
        };
        let tls_listener = match listen(args.tls_port) {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "browser-server: cannot listen on 127.0.0.1:{}: {e}",
                    args.tls_port
                );
                return ExitCode::FAILURE;
            }
        };
        let Ok(tls_addr) = tls_listener.local_addr() else {
            eprintln!("browser-server: no local address for TLS");
            return ExitCode::FAILURE;
        };
        let server = tidings::axum::Server::new().tls(config);
        tokio::spawn(server.serve(tls_listener, app.clone(), std::future::pending()));
        // A second TLS listener with a certificate nobody pins (a fresh one each start):
        // Chromium must refuse it, which shows the pin is what lets the first one in.
        let untrusted = match tls::fresh().map(|c| (c, listen(0))) {
            Ok((config, Ok(l))) => (config, l),
            Ok((_, Err(e))) => {
                eprintln!("browser-server: cannot listen for the untrusted TLS port: {e}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("browser-server: TLS: {e}");
                return ExitCode::FAILURE;
            }
        };
        let Ok(untrusted_addr) = untrusted.1.local_addr() else {
            eprintln!("browser-server: no local address for TLS");
            return ExitCode::FAILURE;
        };
        let server = tidings::axum::Server::new().tls(untrusted.0);
        tokio::spawn(server.serve(untrusted.1, app.clone(), std::future::pending()));
        println!("tls on https://{tls_addr} spki={pin} untrusted=https://{untrusted_addr}");
    }
    println!("webtransport on {wt_url}");
    println!("listening on http://{addr}");
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("browser-server: serving failed: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Binds with `SO_REUSEADDR`, so a restarted server gets the same port back at once, even while
/// connections of the killed one linger in TIME_WAIT.
fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(1024)
}

/// The driver holds our stdin open for as long as it wants us; end of file means it is gone.
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}
