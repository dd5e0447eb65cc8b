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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tidings_broker::{
    Backlog, BoxFuture, Broker, BrokerError, Delivery, NewMessage, PublishReceipt, Store,
    SubscriberId, Subscription, read_backlog,
};
use tidings_protocol::{ChannelName, MessageIdGen, SharedMessage, SubscriptionStart};
use tracing::{Instrument, debug_span, warn};

/// Messages one store read returns at most.
const READ_BATCH: usize = 512;
/// Backlog pages read for a resuming subscriber.
const PAGE: usize = 1000;

type Subscribers = Vec<(SubscriberId, Arc<dyn Delivery>)>;

/// A channel's fan-out on this node.
struct Feed {
    /// Last seq delivered here (`None`: reader not started). Held while
    /// delivering and while a subscriber reads its backlog.
    gate: tokio::sync::Mutex<Option<u64>>,
    subs: Mutex<Subscribers>,
    wake: tokio::sync::Notify,
    dead: AtomicBool,
    /// The wake-up subscription on the wake broker, if any.
    wake_sub: Mutex<Option<SubscriberId>>,
}

impl Feed {
    fn subs(&self) -> MutexGuard<'_, Subscribers> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wakes a feed when another node published.
struct Waker(Arc<Feed>);

impl Delivery for Waker {
    fn deliver(&self, _: &Arc<SharedMessage>) {
        self.0.wake.notify_one();
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
    next_sub: AtomicU64,
    feeds: Mutex<HashMap<ChannelName, Arc<Feed>>>,
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
            next_sub: AtomicU64::new(1),
            feeds: Mutex::default(),
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

    fn feeds(&self) -> MutexGuard<'_, HashMap<ChannelName, Arc<Feed>>> {
        self.feeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn feed(&self, channel: &ChannelName) -> Arc<Feed> {
        self.feeds()
            .entry(channel.clone())
            .or_insert_with(|| {
                Arc::new(Feed {
                    gate: tokio::sync::Mutex::new(None),
                    subs: Mutex::default(),
                    wake: tokio::sync::Notify::new(),
                    dead: AtomicBool::new(false),
                    wake_sub: Mutex::new(None),
                })
            })
            .clone()
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
        if let Some(feed) = self.feeds().get(channel) {
            feed.wake.notify_one();
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

    async fn backlog(
        &self,
        channel: &ChannelName,
        after: u64,
        to: u64,
    ) -> Result<Backlog, BrokerError> {
        Ok(read_backlog(&*self.store, channel, after, to, PAGE).await?)
    }

    async fn subscribe_inner(
        &self,
        channel: ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> Result<Subscription, BrokerError> {
        loop {
            let feed = self.feed(&channel);
            let mut gate = feed.gate.lock().await;
            let delivered = match *gate {
                Some(d) => d,
                None => {
                    let d = self.store.last_seq(&channel).await?;
                    if let Some(wake) = &self.wake {
                        let sub = wake
                            .subscribe(&channel, None, Arc::new(Waker(feed.clone())))
                            .await?;
                        *feed.wake_sub.lock().unwrap_or_else(|p| p.into_inner()) = Some(sub.id);
                    }
                    *gate = Some(d);
                    tokio::spawn(
                        read_loop(
                            self.store.clone(),
                            channel.clone(),
                            feed.clone(),
                            self.poll_interval,
                        )
                        .instrument(debug_span!("store_feed", %channel)),
                    );
                    d
                }
            };
            let start = match after {
                None => SubscriptionStart {
                    position: delivered,
                    gap: None,
                    backlog: Vec::new(),
                },
                Some(a) if a < delivered => {
                    let (gap, backlog) = self.backlog(&channel, a, delivered).await?;
                    SubscriptionStart {
                        position: a,
                        gap,
                        backlog,
                    }
                }
                Some(a) => {
                    // Ahead of this node but known to the store: fine; beyond
                    // the store's end, the channel restarted: start over.
                    let last = self.store.last_seq(&channel).await?;
                    if a <= last {
                        SubscriptionStart {
                            position: a,
                            gap: None,
                            backlog: Vec::new(),
                        }
                    } else {
                        let (gap, backlog) = self.backlog(&channel, 0, delivered).await?;
                        SubscriptionStart {
                            position: 0,
                            gap,
                            backlog,
                        }
                    }
                }
            };
            let id = SubscriberId(self.next_sub.fetch_add(1, Ordering::Relaxed));
            {
                let mut subs = feed.subs();
                if feed.dead.load(Ordering::Acquire) {
                    continue;
                }
                subs.push((id, sink.clone()));
            }
            drop(gate);
            return Ok(Subscription { id, start });
        }
    }
}

/// Reads the store after the last delivered seq whenever woken (or every
/// `poll`), and fans out, until the feed has no subscriber.
async fn read_loop(store: Arc<dyn Store>, channel: ChannelName, feed: Arc<Feed>, poll: Duration) {
    let mut delay = Duration::from_millis(50);
    while !feed.dead.load(Ordering::Acquire) {
        let _ = tokio::time::timeout(poll, feed.wake.notified()).await;
        loop {
            let mut gate = feed.gate.lock().await;
            let Some(mut delivered) = *gate else { return };
            let range = match store.read_after(&channel, delivered, READ_BATCH).await {
                Ok(r) => {
                    delay = Duration::from_millis(50);
                    r
                }
                Err(e) => {
                    drop(gate);
                    warn!(error = %e, delivered, "store read failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    break;
                }
            };
            let full = range.messages.len() >= READ_BATCH;
            let subs: Subscribers = feed.subs().clone();
            for m in range.messages {
                if m.seq <= delivered {
                    continue;
                }
                delivered = m.seq;
                let message = Arc::new(SharedMessage::new(channel.clone(), m.seq, m.id, m.payload));
                match subs.as_slice() {
                    [(_, only)] => only.deliver_alone(&message),
                    all => all.iter().for_each(|(_, s)| s.deliver(&message)),
                }
                message.release_encoded();
            }
            *gate = Some(delivered);
            if !full {
                break;
            }
        }
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
        Box::pin(self.subscribe_inner(channel, after, sink).instrument(span))
    }

    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        let mut feeds = self.feeds();
        let Some(feed) = feeds.get(channel).cloned() else {
            return;
        };
        let mut subs = feed.subs();
        subs.retain(|(s, _)| *s != id);
        if subs.is_empty() {
            feed.dead.store(true, Ordering::Release);
            feed.wake.notify_one();
            feeds.remove(channel);
            let wake_sub = feed
                .wake_sub
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let (Some(wake), Some(sub)) = (&self.wake, wake_sub) {
                wake.unsubscribe(channel, sub);
            }
        }
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
