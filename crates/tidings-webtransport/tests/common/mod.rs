//! Shared helpers of the WebTransport tests: a hub behind a `WtServer` with a development certificate, and clients that pin its hash.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tidings_channels::{Hub, HubConfig, MemoryBroker};
use tidings_protocol::ClientConfig;
use tidings_runtime::ClientTransport;
use tidings_test::suite;
use tidings_webtransport::{
    Accepted, Certificate, Client, ServerConfig, ServerHandle, WebTransport, WtConfig, WtServer,
};

/// Short idle timeout so a dead path is noticed within a second.
pub(crate) fn fast_wt() -> WtConfig {
    WtConfig::default().with_idle_timeout(
        Duration::from_millis(1000),
        Some(Duration::from_millis(200)),
    )
}

/// A hub on a WebTransport server.
pub(crate) async fn server(wt: WtConfig) -> ServerHandle {
    let hub = Hub::with_config(
        Arc::new(MemoryBroker::default()),
        HubConfig::default().with_session(suite::server_session_config()),
    );
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let server = WtServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default().with_wt(wt),
        cert,
    )
    .unwrap();
    server.serve(move |s: Accepted| {
        let hub = hub.clone();
        async move { hub.serve(s.transport, s.codec).await }
    })
}

/// Builds clients of `addr` that trust `hash`.
pub(crate) fn connector(
    addr: std::net::SocketAddr,
    hash: [u8; 32],
    wt: WtConfig,
) -> impl Fn(ClientConfig) -> Client {
    move |config| {
        WebTransport::builder(format!("https://{addr}/"))
            .session_config(config)
            .server_certificate_hash(hash)
            .wt_config(wt.clone())
            .connect()
            .unwrap()
    }
}

/// A raw wtransport session (no tidings client) to `addr`, trusting `hash`.
pub(crate) async fn raw_session(
    addr: std::net::SocketAddr,
    hash: [u8; 32],
) -> wtransport::Connection {
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
        .build();
    let endpoint = wtransport::Endpoint::client(config).unwrap();
    let conn = endpoint.connect(format!("https://{addr}/")).await.unwrap();
    // The endpoint's driver lives as long as its connections.
    std::mem::forget(endpoint);
    conn
}

/// A raw wtransport session to `https://addr{path}`, trusting `hash`, whose
/// streams each take at most `stream_window` bytes the application has not
/// read (QUIC flow control), with up to `uni_streams` streams from the server.
pub(crate) async fn raw_session_with(
    addr: std::net::SocketAddr,
    hash: [u8; 32],
    path: &str,
    stream_window: u32,
    uni_streams: u32,
) -> wtransport::Connection {
    use wtransport::quinn::{TransportConfig, VarInt};
    let mut config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
        .build();
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(stream_window))
        .max_concurrent_uni_streams(VarInt::from_u32(uni_streams));
    config.quic_config_mut().transport_config(Arc::new(t));
    let endpoint = wtransport::Endpoint::client(config).unwrap();
    let conn = endpoint
        .connect(format!("https://{addr}{path}"))
        .await
        .unwrap();
    std::mem::forget(endpoint);
    conn
}

/// A length-prefixed frame.
pub(crate) fn framed(frame: &[u8]) -> Vec<u8> {
    let mut v = (frame.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(frame);
    v
}
