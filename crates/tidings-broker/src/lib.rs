//! The `Broker` trait of tidings: moves the messages of a channel from its publishers to its subscribers, on one node or many.
//!
//! This crate is what a backend implements (in memory, Redis, NATS, ...):
//! the trait and its types only, no hub and no runtime, so a backend crate
//! depends on it without pulling the server. The hub (`tidings-channels`)
//! drives a `Broker`; `tidings-channels::MemoryBroker` is the embedded one.
//!
//! Beside it, the [`Store`] trait (durable per-channel history with
//! idempotent appends and retention) and [`MemoryStore`]. With the feature
//! `feed`, `Feeds`: the per-node, per-channel fan-out of a backend's reader
//! to local subscribers that every durable broker shares.
//!
//! Dependencies: `bytes` (payloads are shared buffers), `thiserror` (typed
//! errors), `tidings-protocol` (channel names, messages) and
//! `tidings-runtime` (only for `BoxFuture`, the boxed future that is `Send`
//! on native targets); for `feed` only, `tokio` (its async gate, wake-ups
//! and retry timer) and `tracing` (a reader's failures).

use std::sync::Arc;

mod backlog;
#[cfg(feature = "feed")]
mod feed;
mod memory_store;
#[cfg(feature = "feed")]
mod retry;
mod store;

pub use backlog::{Backlog, read_backlog};
#[cfg(feature = "feed")]
pub use feed::{Feed, FeedReader, FeedSource, Feeds, PollReader};
pub use memory_store::MemoryStore;
#[cfg(feature = "feed")]
pub use retry::append_retrying;
pub use store::{Appended, HistoryRange, NewMessage, Retention, Store, StoreError, StoredMessage};

use bytes::Bytes;
use tidings_protocol::{ChannelName, MessageId, SharedMessage, SubscriptionStart};
pub use tidings_runtime::BoxFuture;

/// Receives the messages of the channels it subscribed to.
///
/// Called on the publisher's task, in sequence order per channel: must be
/// quick and must not block (the hub's sessions queue and wake their writer).
pub trait Delivery: Send + Sync + 'static {
    /// One message.
    fn deliver(&self, message: &Arc<SharedMessage>);

    /// One message of which this is the only receiver: nothing to share its
    /// encoding with (see [`SharedMessage::encode_unshared`]). The default
    /// is [`Delivery::deliver`].
    fn deliver_alone(&self, message: &Arc<SharedMessage>) {
        self.deliver(message);
    }
}

/// Identifies one subscription on a broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriberId(pub u64);

/// An active subscription: its id and where its stream starts.
#[derive(Debug)]
pub struct Subscription {
    /// Id, for [`Broker::unsubscribe`].
    pub id: SubscriberId,
    /// Position, gap and backlog to send before live messages.
    pub start: SubscriptionStart,
}

/// The sequence number and id a broker gave a published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishReceipt {
    /// Per-channel sequence number.
    pub seq: u64,
    /// Unique id.
    pub id: MessageId,
}

/// A broker failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The backend (Redis, NATS, ...) is unreachable or failed.
    #[error("broker backend unavailable: {0}")]
    Unavailable(String),
    /// The message is larger than the broker accepts.
    #[error("message of {size} bytes exceeds the broker limit of {max} bytes")]
    TooLarge {
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
}

impl BrokerError {
    /// Whether the backend was unreachable (retry later: the broker reconnects by itself).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Moves messages between publishers and subscribers.
///
/// Guarantees per channel: sequence numbers 1, 2, 3, ... without holes, and
/// every subscriber sees them in that order. Implementations: in memory
/// (`tidings_channels::MemoryBroker`); backends for several nodes.
pub trait Broker: Send + Sync + 'static {
    /// Publishes `payload` on `channel`.
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>>;

    /// [`Broker::publish`] with an idempotency key (e.g. `session:publish-seq`):
    /// a durable broker stores a re-sent publish once and answers with the
    /// first receipt. The default ignores the key.
    fn publish_keyed(
        &self,
        channel: &ChannelName,
        payload: Bytes,
        key: &str,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        let _ = key;
        self.publish(channel, payload)
    }

    /// Whether [`Broker::publish`] returns only once the message is durably
    /// stored (a backend), so that a client's publish should be acknowledged
    /// only then (see `ServerConfig::ack_after_store`). `false` (the
    /// default): an in-process broker, which cannot fail.
    fn is_durable(&self) -> bool {
        false
    }

    /// Subscribes `sink` to `channel`. With `after`, the backlog after that
    /// sequence number comes from history (or is reported as a gap).
    fn subscribe(
        &self,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>>;

    /// Removes a subscription (no-op if unknown).
    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId);

    /// Answers when the backend is reachable: what `/readyz` asks. The
    /// default (for in-process brokers) always answers `Ok`; a networked
    /// backend sends its protocol's ping.
    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A dependency that must answer before a node counts as ready (`/readyz`):
/// a store, a database pool, a downstream service. The hub's broker is
/// always checked (through [`Broker::ping`]); add others with
/// `tidings_axum::Health::check`.
///
/// ```
/// use tidings_broker::{BoxFuture, ReadinessCheck};
/// struct Db;
/// impl ReadinessCheck for Db {
///     fn name(&self) -> &str { "db" }
///     fn check(&self) -> BoxFuture<'_, Result<(), String>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
/// ```
pub trait ReadinessCheck: Send + Sync + 'static {
    /// A short name shown in the `/readyz` answer.
    fn name(&self) -> &str;
    /// `Ok` when the dependency answers; else why not.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}
