//! Shared harness of the RPC tests: a hub serving an `RpcServer` behind a real WebSocket (or WebTransport) server, clients that wait until their session is up, and a bounded wait for a condition.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tidings_channels::{Hub, MemoryBroker};
use tidings_protocol::ClientEvent;
use tidings_rpc::client::RpcClient;
use tidings_rpc::server::RpcServer;
use tidings_runtime::{Client, ClientTransport as _};
use tidings_ws::{Accepted, ServerConfig, WsServer};

/// The longest any one step of a test may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

enum Handle {
    Ws(tidings_ws::ServerHandle),
    Wt(tidings_webtransport::ServerHandle),
}

/// A hub with `rpc` installed, served on a loopback port.
pub(crate) struct Served {
    pub(crate) hub: Hub,
    handle: Handle,
    /// `ws://…/` or `https://…/`.
    pub(crate) url: String,
}

fn hub_with(rpc: RpcServer) -> Hub {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    assert!(hub.set_rpc(Arc::new(rpc)));
    hub
}

impl Served {
    /// Over WebSocket (`tidings-ws`).
    pub(crate) async fn ws(rpc: RpcServer) -> Self {
        let hub = hub_with(rpc);
        let served = hub.clone();
        let server = WsServer::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
            .await
            .unwrap()
            .serve(move |conn: Accepted| {
                let hub = served.clone();
                async move {
                    let (t, codec, _shutdown) = conn.into_transport();
                    hub.serve(t, codec).await
                }
            });
        let url = format!("ws://{}/", server.local_addr());
        Self {
            hub,
            handle: Handle::Ws(server),
            url,
        }
    }

    /// Over WebTransport (`tidings-webtransport`), with a development
    /// certificate that its clients pin by hash.
    pub(crate) async fn webtransport(rpc: RpcServer) -> Self {
        use tidings_webtransport::{Certificate, ServerConfig, WtServer};
        let hub = hub_with(rpc);
        let served = hub.clone();
        let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
        let server = WtServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            ServerConfig::default(),
            cert,
        )
        .unwrap()
        .serve(move |s: tidings_webtransport::Accepted| {
            let hub = served.clone();
            async move { hub.serve(s.transport, s.codec).await }
        });
        let url = format!("https://{}/", server.local_addr());
        Self {
            hub,
            handle: Handle::Wt(server),
            url,
        }
    }

    /// A WebSocket client with its RPC client, once connected.
    pub(crate) async fn client(&self) -> (tidings_ws::Client, RpcClient) {
        let client = tidings_ws::Client::builder(&self.url).connect().unwrap();
        let rpc = RpcClient::new(&client);
        connected(&client).await;
        (client, rpc)
    }

    /// A WebTransport client (pinning the server's certificate) with its
    /// RPC client, once connected.
    pub(crate) async fn wt_client(&self) -> (tidings_webtransport::Client, RpcClient) {
        let Handle::Wt(server) = &self.handle else {
            panic!("not a WebTransport server");
        };
        let client = tidings_webtransport::WebTransport::builder(self.url.clone())
            .server_certificate_hash(server.certificate_hash())
            .connect()
            .unwrap();
        let rpc = RpcClient::new(&client);
        connected(&client).await;
        (client, rpc)
    }

    /// Shuts the hub and the server down.
    pub(crate) async fn stop(self) {
        self.hub.shutdown("test over");
        match self.handle {
            Handle::Ws(h) => h.shutdown().await,
            Handle::Wt(h) => h.shutdown().await,
        }
    }
}

/// Waits until `client`'s session is up.
pub(crate) async fn connected<T>(client: &Client<T>) {
    loop {
        match tokio::time::timeout(STEP, client.next_event())
            .await
            .unwrap()
        {
            Some(ClientEvent::Connected { .. }) => return,
            Some(_) => {}
            None => panic!("closed before connecting"),
        }
    }
}

/// Waits (up to 5 s) until `f` holds.
pub(crate) async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}
