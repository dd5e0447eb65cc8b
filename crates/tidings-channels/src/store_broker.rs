//! `StoreBroker`: a `Broker` made of any `Store` (which keeps the history and numbers each channel) and an optional wake-up broker between nodes — `TIDINGS_STORE` beside `TIDINGS_BROKER`.
//!
//! A publish appends to the store (which assigns the seq, so seqs stay
//! gap-free whichever node publishes), then wakes this node's reader of the
//! channel and, through the wake-up broker, every other node's. A reader
//! reads the store after the last seq it delivered and fans out to its
//! node's subscribers. The wake-up only says "read now": a lost one costs
//! latency (every reader also reads every `poll_interval`), never a message.
//! Subscribers resuming after a seq get their backlog from the store while
//! holding the channel's gate, so backlog and live messages neither overlap
//! nor leave a hole.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidings_broker::{
    BoxFuture, Broker, BrokerError, Delivery, Feed, FeedSource, Feeds, NewMessage, PollReader,
    PublishReceipt, Store, SubscriberId, Subscription,
};
use tidings_protocol::{ChannelName, MessageIdGen, SharedMessage};
use tracing::{Instrument, debug_span, warn};

/// Messages one store read returns at most.
const READ_BATCH: usize = 512;

/// Wakes a feed when another node published.
struct Waker(Arc<Feed>);

impl Delivery for Waker {
    fn deliver(&self, _: &Arc<SharedMessage>) {
        self.0.wake();
    }
}

/// A [`Broker`] on any [`Store`]: the store keeps each channel's history
/// and assigns its sequence numbers; `wake` (any broker: Redis, NATS, ...)
/// carries an empty wake-up message per publish to the other nodes, on the
/// same channel name. Without `wake`, a single node (e.g. memory fan-out,
/// history in PostgreSQL that survives a restart).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::sync::Arc;
/// use tidings_broker::{Broker, MemoryStore};
/// use tidings_channels::StoreBroker;
/// use tidings_protocol::ChannelName;
/// let broker = StoreBroker::new(Arc::new(MemoryStore::default()), None);
/// let room = ChannelName::new("room").unwrap();
/// let r = broker.publish(&room, "hi".into()).await.unwrap();
/// assert_eq!(r.seq, 1);
/// # }
/// ```
pub struct StoreBroker {
    store: Arc<dyn Store>,
    wake: Option<Arc<dyn Broker>>,
    ids: MessageIdGen,
    feeds: Feeds,
    poll_interval: Duration,
}

impl std::fmt::Debug for StoreBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBroker")
            .field("wake", &self.wake.is_some())
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl StoreBroker {
    /// History and seqs in `store`; wake-ups between nodes through `wake`
    /// (`None`: one node). Readers also poll every second.
    pub fn new(store: Arc<dyn Store>, wake: Option<Arc<dyn Broker>>) -> Self {
        let mut node = [0u8; 4];
        let node = match getrandom::fill(&mut node) {
            Ok(()) => u32::from_le_bytes(node),
            Err(_) => std::process::id(),
        };
        Self {
            store,
            wake,
            ids: MessageIdGen::new(node),
            feeds: Feeds::default(),
            poll_interval: Duration::from_secs(1),
        }
    }

    /// How often a reader reads without a wake-up (default 1 s).
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn publish_inner(
        &self,
        channel: &ChannelName,
        payload: Bytes,
        key: Option<&str>,
    ) -> Result<PublishReceipt, BrokerError> {
        let message = NewMessage {
            id: self.ids.next_id(),
            dedup: key.map(Arc::from),
            payload,
        };
        let a = self.store.append(channel, message).await?;
        if let Some(feed) = self.feeds.get(channel) {
            feed.wake();
        }
        if let Some(wake) = &self.wake {
            let (wake, channel) = (wake.clone(), channel.clone());
            // Not awaited: the publish is stored; a lost wake-up only delays
            // other nodes until their next poll.
            tokio::spawn(async move {
                if let Err(e) = wake.publish(&channel, Bytes::new()).await {
                    warn!(error = %e, %channel, "wake-up not sent; other nodes read at their next poll");
                }
            });
        }
        Ok(PublishReceipt {
            seq: a.seq,
            id: a.id,
        })
    }
}

impl FeedSource for StoreBroker {
    fn history(&self) -> &dyn Store {
        &*self.store
    }

    /// The reader reads the store when woken (a publish here, a wake-up
    /// from another node) or every `poll_interval`; with a wake broker, the
    /// feed holds a wake-up subscription on it until it stops.
    fn start_feed(&self, feed: &Arc<Feed>) -> BoxFuture<'_, Result<(), BrokerError>> {
        let feed = feed.clone();
        Box::pin(async move {
            let channel = feed.channel().clone();
            if let Some(wake) = &self.wake {
                let sub = wake
                    .subscribe(&channel, None, Arc::new(Waker(feed.clone())))
                    .await?;
                let (wake, channel) = (wake.clone(), channel.clone());
                feed.on_stop(move || wake.unsubscribe(&channel, sub.id));
            }
            let reader =
                PollReader::new(Arc::downgrade(&self.store), self.poll_interval, READ_BATCH);
            tokio::spawn(
                feed.run(reader)
                    .instrument(debug_span!("store_feed", %channel)),
            );
            Ok(())
        })
    }
}

impl Broker for StoreBroker {
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        let channel = channel.clone();
        Box::pin(async move { self.publish_inner(&channel, payload, None).await })
    }

    fn publish_keyed(
        &self,
        channel: &ChannelName,
        payload: Bytes,
        key: &str,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        let channel = channel.clone();
        let key = key.to_owned();
        Box::pin(async move { self.publish_inner(&channel, payload, Some(&key)).await })
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn subscribe(
        &self,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        let channel = channel.clone();
        let span = debug_span!("store_subscribe", %channel, ?after);
        Box::pin(
            self.feeds
                .subscribe(self, channel, after, sink)
                .instrument(span),
        )
    }

    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        self.feeds.unsubscribe(channel, id);
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            if let Some(wake) = &self.wake {
                wake.ping().await?;
            }
            // The store answers a read (of a channel nobody uses) when reachable.
            let probe = ChannelName::new("~tidings-ping")
                .map_err(|e| BrokerError::Unavailable(e.to_string()))?;
            self.store.last_seq(&probe).await?;
            Ok(())
        })
    }
}
