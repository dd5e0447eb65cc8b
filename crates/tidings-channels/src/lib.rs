//! Channels (rooms) of tidings: the `Hub` that serves sessions over any transport, and the in-memory broker; the `Broker` trait itself is `tidings-broker` (re-exported here).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use tidings_channels::{Hub, MemoryBroker};
//! let hub = Hub::new(Arc::new(MemoryBroker::default()));
//! // hand transports to `hub.serve(transport, codec)`, e.g. from tidings-ws or tidings-axum
//! let receipt = hub.publish("room:lobby", "{}").await.unwrap();
//! assert_eq!(receipt.seq, 1);
//! # }
//! ```
//!
//! Dependencies: `tokio` (timers and the session reaper), `getrandom` (resume
//! tokens are secrets and come from the operating system's CSPRNG), `foldhash`
//! (picks the memory broker's map shard for a channel name, seeded at random).

mod extension;
mod hub;
mod identity;
mod latency;
mod memory;
mod rpc_hook;
mod store_broker;

pub use extension::{HubExtension, Refusal, SessionInfo, SubscribeRule};
pub use hub::{Hub, HubConfig, HubCounters, HubPublishError, HubStats};
pub use identity::{ChannelGrants, Identity};
pub use latency::{LATENCY_BOUNDS, LatencySnapshot, PublishLatency};
pub use memory::{MemoryBroker, MemoryBrokerConfig, PublishCache};
pub use rpc_hook::{RpcConnection, RpcLink, RpcService};
pub use store_broker::StoreBroker;
pub use tidings_broker::{
    Broker, BrokerError, Delivery, PublishReceipt, ReadinessCheck, SubscriberId, Subscription,
};
