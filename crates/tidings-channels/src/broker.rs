//! The `Broker` trait: moves messages from publishers to the subscribers of a channel, on one node or many.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;
use tidings_core::{BoxFuture, ChannelName, MessageId, SharedMessage, SubscriptionStart};

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

/// Moves messages between publishers and subscribers.
///
/// Guarantees per channel: sequence numbers 1, 2, 3, ... without holes, and
/// every subscriber sees them in that order. Implementations: in memory
/// ([`crate::MemoryBroker`]); Redis and NATS for several nodes.
pub trait Broker: Send + Sync + 'static {
    /// Publishes `payload` on `channel`.
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>>;

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

    /// Publishes without waiting, when this broker can (an in-memory broker):
    /// the hub then publishes straight from the connection's read path instead
    /// of leaving it for an `await`. `None` (the default) means "use
    /// [`Broker::publish`]"; the payload is handed back untouched.
    fn try_publish_now(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> Result<Result<PublishReceipt, BrokerError>, Bytes> {
        let _ = channel;
        Err(payload)
    }

    /// [`Broker::try_publish_now`] for a publisher that publishes again and
    /// again, often to the same channel (a connection): `cache` remembers
    /// what the broker resolved for the last channel, so that the next
    /// publish there skips the lookup. The default ignores `cache`.
    fn try_publish_now_cached(
        &self,
        cache: &mut PublishCache,
        channel: &ChannelName,
        payload: Bytes,
    ) -> Result<Result<PublishReceipt, BrokerError>, Bytes> {
        let _ = cache;
        self.try_publish_now(channel, payload)
    }

    /// Whether [`Broker::try_publish_now`] always publishes (never hands the payload back).
    fn publishes_synchronously(&self) -> bool {
        false
    }
}

/// What one publisher (a connection) keeps of the channel it last published
/// to, for [`Broker::try_publish_now_cached`]: the broker's own handle to that
/// channel, tagged with the broker it belongs to.
///
/// Holding a handle keeps the broker's state of that channel alive (an
/// in-memory broker does not evict a channel someone holds), one channel per
/// publisher at most.
#[derive(Default)]
pub struct PublishCache {
    entry: Option<(usize, ChannelName, Arc<dyn Any + Send + Sync>)>,
}

impl std::fmt::Debug for PublishCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishCache")
            .field("channel", &self.entry.as_ref().map(|(_, c, _)| c))
            .finish()
    }
}

impl PublishCache {
    /// The handle `owner` stored for `channel`, if that is what the cache holds.
    pub fn get<T: Any + Send + Sync>(&self, owner: usize, channel: &ChannelName) -> Option<&T> {
        match &self.entry {
            Some((o, c, handle)) if *o == owner && c == channel => handle.downcast_ref(),
            _ => None,
        }
    }

    /// Remembers `handle` as `owner`'s handle to `channel` (replacing what was there).
    pub fn set(&mut self, owner: usize, channel: ChannelName, handle: Arc<dyn Any + Send + Sync>) {
        self.entry = Some((owner, channel, handle));
    }

    /// Forgets the channel.
    pub fn clear(&mut self) {
        self.entry = None;
    }
}
