//! RPC: one `#[tidings::rpc]` trait gives the server's routing, a typed client and a JSON Schema; calls share the session with pub/sub.

use futures_util::Stream;
use tidings::prelude::*;

// ANCHOR: trait
/// A counter service.
#[tidings::rpc(namespace = "counter")]
pub trait Counter {
    /// Adds `n` and returns the new total.
    async fn add(&self, n: u64) -> u64;
    /// Counts from 1 to `to`, one item each (a server stream with credit-based flow control).
    fn count(&self, to: u64) -> impl Stream<Item = u64>;
}
// ANCHOR_END: trait

// ANCHOR: server
/// The service: state shared by every call.
#[derive(Clone, Debug, Default)]
pub struct CounterService {
    total: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Counter for CounterService {
    async fn add(&self, n: u64) -> u64 {
        use std::sync::atomic::Ordering;
        self.total.fetch_add(n, Ordering::SeqCst) + n
    }

    fn count(&self, to: u64) -> impl Stream<Item = u64> + Send + use<> {
        futures_util::stream::iter(1..=to)
    }
}

/// Serves `counter.add` and `counter.count` on every session of `hub`.
pub fn install(hub: &Hub) {
    let server = tidings::rpc::server::RpcServer::new(CounterService::default().into_router());
    hub.set_rpc(std::sync::Arc::new(server));
}
// ANCHOR_END: server

// ANCHOR: client
/// Calls through the typed client, on the same connection as the channels.
pub async fn call(url: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let client = Client::builder(url).connect()?;
    let rpc = tidings::rpc::client::RpcClient::new(&client);
    let counter = CounterClient::new(&rpc);
    let total = counter.add(5).await?;
    // The untyped form, for methods known only by name.
    let again: u64 = rpc.call("counter.add", &1u64).await?;
    Ok(total + again)
}
// ANCHOR_END: client
