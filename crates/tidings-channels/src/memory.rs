//! `MemoryBroker`: the single-node broker, with a bounded per-channel history for resume.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use tidings_broker::{
    BoxFuture, Broker, BrokerError, Delivery, PublishReceipt, SubscriberId, Subscription,
};
use tidings_protocol::{
    ChannelMap, ChannelName, IdBlock, MessageIdGen, SharedMessage, SubscriptionStart,
};

/// Settings of the [`MemoryBroker`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemoryBrokerConfig {
    /// Messages kept per channel for subscribers that resume from a position.
    pub history_len: usize,
    /// Payload bytes kept per channel (the oldest messages go first).
    pub history_bytes: usize,
    /// Channels kept. Beyond it, the least recently used channels without
    /// subscribers are dropped with their history (a client resuming one later
    /// sees an explicit channel reset), so publishing to ever new names cannot
    /// grow memory without bound.
    pub max_channels: usize,
}

impl Default for MemoryBrokerConfig {
    fn default() -> Self {
        Self {
            history_len: 1024,
            history_bytes: 1 << 20,
            max_channels: 100_000,
        }
    }
}

#[derive(Default)]
struct ChannelState {
    seq: u64,
    subscribers: Vec<(SubscriberId, Arc<dyn Delivery>)>,
    history: VecDeque<Arc<SharedMessage>>,
    history_bytes: usize,
    /// Broker tick at the last publish or subscribe (for idle eviction).
    last_used: u64,
    /// Message ids reserved for this channel (taken under its lock, so
    /// publishing touches no counter shared with other channels).
    ids: IdBlock,
}

/// Channels per shard at most before the map is split (a small broker, as in
/// tests, keeps one exact LRU; a large one spreads over [`MAX_SHARDS`]).
const SHARD_MIN_CHANNELS: usize = 1024;
/// Shards of the channel map: each has its own lock, so publishers on
/// different cores rarely touch the same lock word.
const MAX_SHARDS: usize = 32;

type Shard = RwLock<ChannelMap<Arc<Mutex<ChannelState>>>>;

/// In-process broker: per-channel sequence numbers, fan-out on the publisher's
/// task (each message encoded once per codec and shared), bounded history.
pub struct MemoryBroker {
    config: MemoryBrokerConfig,
    shards: Box<[Shard]>,
    /// Channels kept per shard (`max_channels` split evenly).
    shard_max: usize,
    /// Picks a name's shard.
    shard_hasher: foldhash::fast::RandomState,
    next_id: AtomicU64,
    ids: MessageIdGen,
    /// Advances when a channel is created; channels record it when used, so
    /// eviction finds the least recently used ones without a shared counter
    /// being written on every publish.
    tick: AtomicU64,
    /// Identifies this broker in a [`PublishCache`] (unique in the process): a
    /// cache filled by another broker holds nothing for this one.
    cache_id: usize,
}

/// What one publisher (a connection) keeps of the channel it last published
/// to, for [`MemoryBroker::publish_cached`]: the broker's state of that
/// channel, tagged with the broker it belongs to.
///
/// Holding it keeps that channel's state alive (the broker does not evict a
/// channel someone holds), one channel per publisher at most.
#[derive(Default)]
pub struct PublishCache {
    entry: Option<(usize, ChannelName, Arc<Mutex<ChannelState>>)>,
}

impl std::fmt::Debug for PublishCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishCache")
            .field("channel", &self.entry.as_ref().map(|(_, c, _)| c))
            .finish()
    }
}

impl PublishCache {
    /// Forgets the channel.
    pub fn clear(&mut self) {
        self.entry = None;
    }
}

/// Source of [`MemoryBroker`] cache ids.
static NEXT_CACHE_ID: AtomicUsize = AtomicUsize::new(1);

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new(MemoryBrokerConfig::default())
    }
}

fn lock(m: &Mutex<ChannelState>) -> MutexGuard<'_, ChannelState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl MemoryBroker {
    /// A broker with `config`.
    pub fn new(config: MemoryBrokerConfig) -> Self {
        let mut node = [0u8; 4];
        let node = match getrandom::fill(&mut node) {
            Ok(()) => u32::from_le_bytes(node),
            Err(_) => std::process::id(),
        };
        let shards = (config.max_channels / SHARD_MIN_CHANNELS).clamp(1, MAX_SHARDS);
        let shard_max = (config.max_channels / shards).max(1);
        Self {
            config,
            shards: (0..shards).map(|_| Shard::default()).collect(),
            shard_max,
            shard_hasher: foldhash::fast::RandomState::default(),
            next_id: AtomicU64::new(1),
            ids: MessageIdGen::new(node),
            tick: AtomicU64::new(0),
            cache_id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn shard(&self, name: &ChannelName) -> &Shard {
        let n = self.shards.len();
        if n == 1 {
            return &self.shards[0];
        }
        let i = (self.shard_hasher.hash_one(name) % n as u64) as usize;
        &self.shards[i]
    }

    fn channel(&self, name: &ChannelName) -> Arc<Mutex<ChannelState>> {
        let shard = self.shard(name);
        if let Some(c) = shard.read().unwrap_or_else(|p| p.into_inner()).get(name) {
            return c.clone();
        }
        let mut channels = shard.write().unwrap_or_else(|p| p.into_inner());
        if !channels.contains_key(name) {
            if channels.len() >= self.shard_max {
                evict_idle(&mut channels);
            }
            self.tick.fetch_add(1, Ordering::Relaxed);
        }
        channels.entry(name.clone()).or_default().clone()
    }

    /// Channels held now (with subscribers, history, or both).
    pub fn channel_count(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    fn touch(&self, state: &mut ChannelState) {
        // A load, not a read-modify-write: the line stays shared between cores.
        state.last_used = self.tick.load(Ordering::Relaxed);
    }

    /// Publishes synchronously (what [`Broker::publish`] does, without the future).
    pub fn publish_now(&self, channel: &ChannelName, payload: Bytes) -> PublishReceipt {
        self.publish_to(channel, &self.channel(channel), payload)
    }

    /// [`MemoryBroker::publish_now`] for a publisher that publishes again and
    /// again, often to the same channel (a connection): `cache` remembers the
    /// channel's state, so the next publish there skips the map lookup. The
    /// cached state is the one in the map: a channel someone holds is never
    /// evicted (`evict_idle` takes only states nobody else holds).
    pub fn publish_cached(
        &self,
        cache: &mut PublishCache,
        channel: &ChannelName,
        payload: Bytes,
    ) -> PublishReceipt {
        let owner = self.cache_id;
        if let Some((o, c, state)) = &cache.entry
            && *o == owner
            && c == channel
        {
            return self.publish_to(channel, state, payload);
        }
        let state = self.channel(channel);
        let receipt = self.publish_to(channel, &state, payload);
        cache.entry = Some((owner, channel.clone(), state));
        receipt
    }

    fn publish_to(
        &self,
        channel: &ChannelName,
        state: &Mutex<ChannelState>,
        payload: Bytes,
    ) -> PublishReceipt {
        let mut state = lock(state);
        self.touch(&mut state);
        state.seq += 1;
        let id = self.ids.next_in(&mut state.ids);
        let message = Arc::new(SharedMessage::new(channel.clone(), state.seq, id, payload));
        if self.config.history_len > 0 {
            state.history_bytes += message.message().payload.len();
            state.history.push_back(message.clone());
            while state.history.len() > self.config.history_len
                || (state.history_bytes > self.config.history_bytes && state.history.len() > 1)
            {
                let Some(old) = state.history.pop_front() else {
                    break;
                };
                state.history_bytes -= old.message().payload.len();
            }
        }
        // Delivering under the channel lock keeps every subscriber's order equal to seq order.
        match state.subscribers.as_slice() {
            // One receiver (a client's own channel, a direct conversation):
            // nothing to share, so no encoding cache to fill and empty again.
            [(_, only)] => only.deliver_alone(&message),
            all => {
                for (_, sink) in all {
                    sink.deliver(&message);
                }
            }
        }
        // History keeps the message, not its encoded frames (most of its size).
        message.release_encoded();
        PublishReceipt { seq: state.seq, id }
    }

    /// Subscribers of `channel` now.
    pub fn subscriber_count(&self, channel: &ChannelName) -> usize {
        self.shard(channel)
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(channel)
            .map(|c| lock(c).subscribers.len())
            .unwrap_or(0)
    }
}

/// Drops the least recently used half of the channels nobody uses right now
/// (no subscriber, no task holding the state). Called with the map's write
/// lock held, so no one can pick up a state being dropped.
fn evict_idle(channels: &mut ChannelMap<Arc<Mutex<ChannelState>>>) {
    let mut idle: Vec<(u64, ChannelName)> = channels
        .iter()
        .filter(|(_, c)| Arc::strong_count(c) == 1)
        .filter_map(|(name, c)| {
            let state = c.try_lock().ok()?;
            state
                .subscribers
                .is_empty()
                .then(|| (state.last_used, name.clone()))
        })
        .collect();
    idle.sort_unstable_by_key(|(used, _)| *used);
    let drop = idle.len().div_ceil(2);
    for (_, name) in idle.into_iter().take(drop) {
        channels.remove(&name);
    }
}

impl Broker for MemoryBroker {
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        let receipt = self.publish_now(channel, payload);
        Box::pin(async move { Ok(receipt) })
    }

    fn subscribe(
        &self,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        let id = SubscriberId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let state = self.channel(channel);
        let mut state = lock(&state);
        self.touch(&mut state);
        state.subscribers.push((id, sink));
        let current = state.seq;
        let start = match after {
            Some(after) if after < current => {
                let first_kept = state
                    .history
                    .front()
                    .map(|m| m.seq())
                    .unwrap_or(current + 1);
                let gap = (first_kept > after + 1).then(|| (after + 1, first_kept - 1));
                let backlog = state
                    .history
                    .iter()
                    .filter(|m| m.seq() > after)
                    .cloned()
                    .collect();
                SubscriptionStart {
                    position: after,
                    gap,
                    backlog,
                }
            }
            // A position beyond this broker's count: the channel restarted (this
            // broker lost its state). Start the client over from 0 so nothing this
            // broker has is skipped; the client sees its position go back and
            // reports the reset.
            Some(after) if after > current => {
                let first_kept = state
                    .history
                    .front()
                    .map(|m| m.seq())
                    .unwrap_or(current + 1);
                let gap = (first_kept > 1).then(|| (1, first_kept - 1));
                SubscriptionStart {
                    position: 0,
                    gap,
                    backlog: state.history.iter().cloned().collect(),
                }
            }
            _ => SubscriptionStart {
                position: current,
                gap: None,
                backlog: Vec::new(),
            },
        };
        drop(state);
        Box::pin(async move { Ok(Subscription { id, start }) })
    }

    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        let state = self.channel(channel);
        lock(&state).subscribers.retain(|(sid, _)| *sid != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sink;
    impl Delivery for Sink {
        fn deliver(&self, _: &Arc<SharedMessage>) {}
    }

    fn ch() -> ChannelName {
        ChannelName::new("c").unwrap()
    }

    async fn start(b: &MemoryBroker, after: Option<u64>) -> SubscriptionStart {
        b.subscribe(&ch(), after, Arc::new(Sink))
            .await
            .unwrap()
            .start
    }

    #[tokio::test]
    async fn idle_channels_are_evicted_subscribed_ones_never() {
        let b = MemoryBroker::new(MemoryBrokerConfig {
            max_channels: 8,
            ..MemoryBrokerConfig::default()
        });
        let kept = ChannelName::new("kept").unwrap();
        let _sub = b.subscribe(&kept, None, Arc::new(Sink)).await.unwrap();
        b.publish_now(&kept, Bytes::from_static(b"1"));
        for i in 0..1_000 {
            b.publish_now(
                &ChannelName::new(format!("c{i}")).unwrap(),
                Bytes::from_static(b"1"),
            );
            assert!(
                b.channel_count() <= 8,
                "{} channels after {i}",
                b.channel_count()
            );
        }
        assert_eq!(b.subscriber_count(&kept), 1);
        // The subscribed channel kept its numbering.
        assert_eq!(b.publish_now(&kept, Bytes::from_static(b"2")).seq, 2);
        // An evicted channel starts over: a resume beyond it is a restart (position 0).
        let gone = ChannelName::new("c0").unwrap();
        let s = b
            .subscribe(&gone, Some(1), Arc::new(Sink))
            .await
            .unwrap()
            .start;
        assert_eq!(s.position, 0);
    }

    fn cached(b: &MemoryBroker, cache: &mut PublishCache, channel: &ChannelName) -> u64 {
        b.publish_cached(cache, channel, Bytes::from_static(b"1"))
            .seq
    }

    #[tokio::test]
    async fn a_publish_cache_reaches_the_same_channel_as_a_lookup() {
        struct Count(AtomicU64);
        impl Delivery for Count {
            fn deliver(&self, _: &Arc<SharedMessage>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let b = MemoryBroker::default();
        let count = Arc::new(Count(AtomicU64::new(0)));
        b.subscribe(&ch(), None, count.clone()).await.unwrap();
        let other = ChannelName::new("other").unwrap();
        let mut cache = PublishCache::default();
        assert_eq!(cached(&b, &mut cache, &ch()), 1);
        assert_eq!(cached(&b, &mut cache, &ch()), 2, "a hit");
        assert_eq!(b.publish_now(&ch(), Bytes::from_static(b"1")).seq, 3);
        assert_eq!(cached(&b, &mut cache, &other), 1, "another channel");
        assert_eq!(cached(&b, &mut cache, &ch()), 4);
        assert_eq!(count.0.load(Ordering::Relaxed), 4);
        assert_eq!(
            start(&b, Some(0)).await.backlog.len(),
            4,
            "cached publishes are in history"
        );
    }

    #[tokio::test]
    async fn a_lone_subscriber_gets_messages_alone_and_history_keeps_no_encodings() {
        /// Counts `deliver` and `deliver_alone` calls.
        #[derive(Default)]
        struct Calls(AtomicU64, AtomicU64);
        impl Delivery for Calls {
            fn deliver(&self, _: &Arc<SharedMessage>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            fn deliver_alone(&self, _: &Arc<SharedMessage>) {
                self.1.fetch_add(1, Ordering::Relaxed);
            }
        }
        let b = MemoryBroker::default();
        let (first, second) = (Arc::new(Calls::default()), Arc::new(Calls::default()));
        b.subscribe(&ch(), None, first.clone()).await.unwrap();
        b.publish_now(&ch(), Bytes::from_static(b"1"));
        let counts = |c: &Calls| (c.0.load(Ordering::Relaxed), c.1.load(Ordering::Relaxed));
        assert_eq!(counts(&first), (0, 1));
        b.subscribe(&ch(), None, second.clone()).await.unwrap();
        b.publish_now(&ch(), Bytes::from_static(b"2"));
        assert_eq!((counts(&first), counts(&second)), ((1, 1), (1, 0)));
        let history = start(&b, Some(0)).await.backlog;
        assert_eq!(history.len(), 2);
        assert!(history.iter().all(|m| !m.is_encoded()));
    }

    #[test]
    fn a_publish_cache_filled_by_another_broker_is_ignored() {
        let (a, b) = (MemoryBroker::default(), MemoryBroker::default());
        let mut cache = PublishCache::default();
        for _ in 0..3 {
            cached(&a, &mut cache, &ch());
        }
        assert_eq!(cached(&b, &mut cache, &ch()), 1, "b's own channel");
        assert_eq!(cached(&a, &mut cache, &ch()), 4);
    }

    #[test]
    fn a_cached_channel_is_not_evicted() {
        let b = MemoryBroker::new(MemoryBrokerConfig {
            max_channels: 8,
            ..MemoryBrokerConfig::default()
        });
        let mut cache = PublishCache::default();
        assert_eq!(cached(&b, &mut cache, &ch()), 1);
        for i in 0..100 {
            b.publish_now(
                &ChannelName::new(format!("c{i}")).unwrap(),
                Bytes::from_static(b"1"),
            );
        }
        // The channel a publisher holds kept its state: the lookup finds the
        // same numbering as the cache.
        assert_eq!(b.publish_now(&ch(), Bytes::from_static(b"1")).seq, 2);
        assert_eq!(cached(&b, &mut cache, &ch()), 3);
        cache.clear();
        assert_eq!(cached(&b, &mut cache, &ch()), 4);
    }

    #[tokio::test]
    async fn resume_points_get_backlog_gap_or_restart() {
        let b = MemoryBroker::new(MemoryBrokerConfig {
            history_len: 3,
            ..MemoryBrokerConfig::default()
        });
        for _ in 0..5 {
            b.publish_now(&ch(), Bytes::from_static(b"1"));
        }
        let s = start(&b, None).await;
        assert_eq!((s.position, s.gap, s.backlog.len()), (5, None, 0));
        let s = start(&b, Some(3)).await;
        assert_eq!((s.position, s.gap), (3, None));
        assert_eq!(
            s.backlog.iter().map(|m| m.seq()).collect::<Vec<_>>(),
            [4, 5]
        );
        let s = start(&b, Some(0)).await;
        assert_eq!((s.position, s.gap), (0, Some((1, 2))));
        assert_eq!(s.backlog.len(), 3);
        // A position this broker never reached: the channel restarted.
        let s = start(&b, Some(40)).await;
        assert_eq!((s.position, s.gap, s.backlog.len()), (0, Some((1, 2)), 3));
    }
}
