//! Channels (rooms) of tidings: the `Broker` trait, the in-memory broker, and the `Hub` that serves sessions.
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

mod broker;
mod hub;
mod memory;

pub use broker::{
    Broker, BrokerError, Delivery, PublishCache, PublishReceipt, SubscriberId, Subscription,
};
pub use hub::{Hub, HubConfig, HubPublishError, HubStats};
pub use memory::{MemoryBroker, MemoryBrokerConfig};
