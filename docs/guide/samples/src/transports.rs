//! Transports: WebSocket with either codec, Server-Sent Events (server and client), WebTransport over HTTP/3 (server and client pinned to a development certificate).

use std::sync::Arc;

use tidings::prelude::*;

// ANCHOR: ws_binary
/// A WebSocket client that prefers the binary codec and still talks to JSON-only servers.
pub fn binary_client(url: &str) -> Result<tidings::ws::Client, tidings::ws::Error> {
    tidings::ws::Client::builder(url)
        .subprotocols(["tidings.v1.bin", "tidings.v1.json"])
        .connect()
}
// ANCHOR_END: ws_binary

// ANCHOR: sse_server
/// WebSocket at `/ws` and Server-Sent Events at `/sse` (`GET /sse`, `POST /sse/{session}`),
/// both served by the same hub: a message published on one reaches subscribers on the other.
pub fn both_endpoints(hub: Hub) -> axum::Router {
    axum::Router::new()
        .tidings("/ws", hub.clone())
        .tidings_sse("/sse", hub)
}
// ANCHOR_END: sse_server

// ANCHOR: sse_client
/// The same `Client` API over SSE: events down a `text/event-stream`, publishes up by POST.
pub async fn sse_listen(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = tidings::sse::Client::builder(url).connect()?;
    client.subscribe("room:lobby")?;
    while let Some(event) = client.next_event().await {
        if let ClientEvent::Message(m) = event {
            println!("{} #{}", m.channel, m.seq);
        }
    }
    Ok(())
}
// ANCHOR_END: sse_client

// ANCHOR: webtransport
/// A hub behind a WebTransport server on UDP `addr` with a development certificate; returns
/// the handle (keep it) and the certificate's SHA-256 that clients pin.
pub fn webtransport_server(
    hub: Hub,
    addr: std::net::SocketAddr,
) -> Result<(tidings::webtransport::ServerHandle, [u8; 32]), tidings::webtransport::WtError> {
    use tidings::webtransport::{Accepted, Certificate, ServerConfig, WtServer};
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"])?;
    let server = WtServer::bind(addr, ServerConfig::default(), cert)?;
    let hash = server.certificate_hash();
    let handle = server.serve(move |s: Accepted| {
        let hub = hub.clone();
        async move { hub.serve(s.transport, s.codec).await }
    });
    Ok((handle, hash))
}

/// A native WebTransport client trusting that certificate by its hash.
pub fn webtransport_client(
    url: &str,
    hash: [u8; 32],
) -> Result<tidings::webtransport::Client, tidings::webtransport::Error> {
    tidings::webtransport::Client::builder(url)
        .server_certificate_hash(hash)
        .connect()
}
// ANCHOR_END: webtransport

/// A hub for the samples above.
pub fn hub() -> Hub {
    Hub::new(Arc::new(MemoryBroker::default()))
}
