//! Shared helpers of the adaptive tests: one hub behind WebTransport (optionally through a UDP fault proxy), WebSocket and SSE (optionally through an upgrade-refusing HTTP proxy), with its discovery document.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tidings_adaptive::{AdaptiveEvent, Client, ClientBuilder};
use tidings_axum::{DiscoveryRouterExt, RouterExt, SseRouterExt};
use tidings_channels::{Hub, HubConfig, MemoryBroker};
use tidings_protocol::{ClientEvent, DiscoveredTransport, Discovery, Message};
use tidings_runtime::TransportKind;
use tidings_test::{UdpFaultProxy, UpgradeRefusingProxy, suite};
use tidings_webtransport::{Accepted, Certificate, ServerConfig, ServerHandle, WtConfig, WtServer};

/// Generous bound on waiting for one event (a wait on a condition, not a timing claim).
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A short QUIC idle timeout, so a blackholed path is noticed within a second.
pub(crate) fn fast_wt() -> WtConfig {
    WtConfig::default().with_idle_timeout(
        Duration::from_millis(1000),
        Some(Duration::from_millis(200)),
    )
}

/// One hub served three ways.
pub(crate) struct Servers {
    pub(crate) hub: Hub,
    pub(crate) http: SocketAddr,
    pub(crate) wt: ServerHandle,
    pub(crate) doc: Discovery,
}

impl Servers {
    pub(crate) async fn start() -> Self {
        let hub = Hub::with_config(
            Arc::new(MemoryBroker::default()),
            HubConfig::default().with_session(suite::server_session_config()),
        );
        let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
        let server = WtServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            ServerConfig::default().with_wt(fast_wt()),
            cert,
        )
        .unwrap();
        let h = hub.clone();
        let wt = server.serve(move |s: Accepted| {
            let hub = h.clone();
            async move { hub.serve(s.transport, s.codec).await }
        });
        let doc = Discovery::new()
            .with_transport(wt.discovered("/"))
            .with_transport(DiscoveredTransport::new("websocket", "/ws"))
            .with_transport(DiscoveredTransport::new("sse", "/sse"))
            .with_codec("tidings.v1.json");
        let app = Router::new()
            .tidings("/ws", hub.clone())
            .tidings_sse("/sse", hub.clone())
            .tidings_discovery(&doc);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { hub, http, wt, doc }
    }

    /// A UDP fault proxy in front of the WebTransport server.
    pub(crate) async fn wt_proxy(&self) -> UdpFaultProxy {
        UdpFaultProxy::start(self.wt.local_addr()).await.unwrap()
    }

    /// An HTTP proxy in front of the axum server that refuses WebSocket upgrades.
    pub(crate) async fn refusing_proxy(&self) -> UpgradeRefusingProxy {
        UpgradeRefusingProxy::start(self.http).await.unwrap()
    }

    /// A builder with all three transports: WebTransport at `wt` (the server
    /// itself or a proxy), WebSocket and SSE at `http`; quick timings.
    pub(crate) fn builder(&self, wt: SocketAddr, http: SocketAddr) -> ClientBuilder {
        let wt_builder =
            <tidings_webtransport::WebTransport as tidings_runtime::ClientTransport>::builder(
                format!("https://{wt}/"),
            )
            .server_certificate_hash(self.wt.certificate_hash())
            .wt_config(fast_wt());
        Client::builder()
            .session_config(suite::client_session_config())
            .webtransport_builder(wt_builder)
            .websocket(format!("ws://{http}/ws"))
            .sse(format!("http://{http}/sse"))
            .attempt_timeout(Duration::from_secs(1))
            .stagger(Duration::from_millis(200))
    }
}

/// Waits for the first `Connected` adaptive event.
pub(crate) async fn connected(
    c: &Client,
) -> (TransportKind, Duration, Vec<(TransportKind, String)>) {
    loop {
        let e = tokio::time::timeout(WAIT, c.next_adaptive_event())
            .await
            .expect("an adaptive event");
        if let AdaptiveEvent::Connected {
            kind,
            after,
            failed,
        } = e
        {
            return (kind, after, failed);
        }
    }
}

/// Waits until the session moved to `to`.
pub(crate) async fn switched_to(c: &Client, to: TransportKind) -> AdaptiveEvent {
    loop {
        let e = tokio::time::timeout(WAIT, c.next_adaptive_event())
            .await
            .expect("a switch");
        if matches!(&e, AdaptiveEvent::Switched { to: t, .. } if *t == to) {
            return e;
        }
    }
}

/// The next message, skipping other session events.
pub(crate) async fn next_message(c: &Client) -> Message {
    loop {
        let ev = tokio::time::timeout(WAIT, c.next_event())
            .await
            .expect("a message")
            .expect("client open");
        match ev {
            ClientEvent::Message(m) => return m,
            ClientEvent::Gap(g) => panic!("gap: {g:?}"),
            _ => continue,
        }
    }
}

/// Waits for `Subscribed` on any channel.
pub(crate) async fn subscribed(c: &Client) {
    loop {
        let ev = tokio::time::timeout(WAIT, c.next_event())
            .await
            .expect("subscribed")
            .expect("client open");
        if matches!(ev, ClientEvent::Subscribed { .. }) {
            return;
        }
    }
}
