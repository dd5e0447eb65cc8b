//! `Feeds`: a node's per-channel fan-out of a backend's reader to its local subscribers — what every durable broker shares; the backend gives only how a feed's reader starts ([`FeedSource`]) and how it waits for and reads new entries ([`FeedReader`]).
//!
//! One [`Feed`] per channel subscribed on this node. Its gate holds the last
//! seq delivered here: the reader delivers under it, and a new subscriber
//! reads its backlog under it, so a subscriber sees its backlog, then
//! exactly the messages after it (no overlap, no hole). The reader reads
//! after the gate's seq (a reconnect never loses a message) and skips what
//! was delivered (a re-read never duplicates one). When the last subscriber
//! leaves, the feed is dead: out of the map, its reader stops.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tidings_protocol::{ChannelName, SharedMessage, SubscriptionStart};
use tidings_runtime::BoxFuture;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::backlog::read_backlog;
use crate::store::{Store, StoreError, StoredMessage};
use crate::{BrokerError, Delivery, SubscriberId, Subscription};

/// Backlog pages read for a resuming subscriber.
const BACKLOG_PAGE: usize = 1000;

type Subscribers = Vec<(SubscriberId, Arc<dyn Delivery>)>;

/// Run when a feed stops (e.g. to drop a wake-up subscription).
type OnStop = Box<dyn FnOnce() + Send>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reconnect delays after failed reads: 50 ms doubling up to 2 s.
fn retry_delay(failures: u32) -> Duration {
    (Duration::from_millis(50) * 2u32.pow(failures.min(6))).min(Duration::from_secs(2))
}

/// One channel's fan-out on this node: its subscribers, the last seq
/// delivered to them, and a wake-up for readers that wait on notifications.
pub struct Feed {
    channel: ChannelName,
    /// The last seq delivered to this node's subscribers (`None`: not read
    /// yet). Held while delivering and while a new subscriber reads its
    /// backlog.
    gate: tokio::sync::Mutex<Option<u64>>,
    subs: Mutex<Subscribers>,
    /// No subscriber left: the reader stops, the feed is out of the map.
    dead: AtomicBool,
    /// "The channel has news" (a notification, a local publish).
    news: Notify,
    on_stop: Mutex<Option<OnStop>>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("channel", &self.channel)
            .field("dead", &self.is_dead())
            .finish_non_exhaustive()
    }
}

impl Feed {
    fn new(channel: ChannelName) -> Self {
        Self {
            channel,
            gate: tokio::sync::Mutex::new(None),
            subs: Mutex::default(),
            dead: AtomicBool::new(false),
            news: Notify::new(),
            on_stop: Mutex::new(None),
        }
    }

    /// The channel.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// Whether the last subscriber left (the reader should stop).
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Wakes a reader waiting in [`Feed::news`] (a wake-up is kept if none
    /// is waiting).
    pub fn wake(&self) {
        self.news.notify_one();
    }

    /// Resolves at the next [`Feed::wake`] (also when the feed dies).
    pub async fn news(&self) {
        self.news.notified().await;
    }

    /// Runs `f` once, when the feed stops (at once if it already has).
    pub fn on_stop(&self, f: impl FnOnce() + Send + 'static) {
        let mut slot = lock(&self.on_stop);
        if self.is_dead() {
            drop(slot);
            f();
        } else {
            *slot = Some(Box::new(f));
        }
    }

    fn subs(&self) -> MutexGuard<'_, Subscribers> {
        lock(&self.subs)
    }

    /// The last seq delivered (`None`: the feed never started; its reader stops).
    pub async fn delivered(&self) -> Option<u64> {
        *self.gate.lock().await
    }

    /// Delivers `messages` (in seq order) to the subscribers, skipping
    /// those already delivered; `false` if the feed never started (the
    /// reader stops).
    pub async fn deliver(&self, messages: Vec<StoredMessage>) -> bool {
        let mut gate = self.gate.lock().await;
        let Some(mut delivered) = *gate else {
            return false;
        };
        let subs: Subscribers = self.subs().clone();
        for m in messages {
            if m.seq <= delivered {
                continue;
            }
            delivered = m.seq;
            let message = Arc::new(SharedMessage::new(
                self.channel.clone(),
                m.seq,
                m.id,
                m.payload,
            ));
            match subs.as_slice() {
                [(_, only)] => only.deliver_alone(&message),
                all => all.iter().for_each(|(_, s)| s.deliver(&message)),
            }
            message.release_encoded();
        }
        *gate = Some(delivered);
        true
    }

    /// Reads with `reader` after the last delivered seq and fans out, until
    /// the feed is dead (or the reader says its backend is gone). A failed
    /// read is retried with backoff, from the last delivered seq again, so
    /// nothing published meanwhile is missed. Spawn it from
    /// [`FeedSource::start_feed`].
    pub async fn run<R: FeedReader>(self: Arc<Self>, mut reader: R) {
        let mut failures = 0u32;
        while !self.is_dead() {
            let Some(after) = self.delivered().await else {
                return;
            };
            match reader.read(&self, after).await {
                Ok(Some(batch)) => {
                    failures = 0;
                    if !batch.is_empty() && !self.deliver(batch).await {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    warn!(error = %e, after, "feed read failed, retrying");
                    tokio::time::sleep(retry_delay(failures)).await;
                    failures = failures.saturating_add(1);
                }
            }
        }
        debug!("feed stopped");
    }

    /// Marks the feed dead and takes what must run when it stops.
    fn kill(&self) -> Option<OnStop> {
        self.dead.store(true, Ordering::Release);
        self.news.notify_one();
        lock(&self.on_stop).take()
    }
}

/// How a backend waits for and reads a channel's new entries.
pub trait FeedReader: Send + 'static {
    /// The entries after `after`, in seq order, waiting for them as the
    /// backend can (a blocking read, a notification, a poll). Answers an
    /// empty batch after a while without news, so that a dead feed stops;
    /// `Ok(None)`: the backend is gone, the reader stops.
    fn read(
        &mut self,
        feed: &Feed,
        after: u64,
    ) -> impl Future<Output = Result<Option<Vec<StoredMessage>>, StoreError>> + Send;
}

/// A [`FeedReader`] on any [`Store`] for backends that are told of news
/// ([`Feed::wake`]: a notification, a local publish): reads a page after
/// the last delivered seq, the next page at once while pages are full, else
/// waits for a wake-up or `poll`. Holds the store weakly: a dropped
/// backend stops it.
#[derive(Debug)]
pub struct PollReader {
    store: Weak<dyn Store>,
    poll: Duration,
    page: usize,
    more: bool,
}

impl PollReader {
    /// Reads `store` in pages of `page`, at the latest every `poll`.
    pub fn new(store: Weak<dyn Store>, poll: Duration, page: usize) -> Self {
        Self {
            store,
            poll,
            page: page.max(1),
            more: true,
        }
    }
}

impl FeedReader for PollReader {
    async fn read(
        &mut self,
        feed: &Feed,
        after: u64,
    ) -> Result<Option<Vec<StoredMessage>>, StoreError> {
        if !self.more {
            let _ = tokio::time::timeout(self.poll, feed.news()).await;
            if feed.is_dead() {
                return Ok(Some(Vec::new()));
            }
        }
        let Some(store) = self.store.upgrade() else {
            return Ok(None);
        };
        // Read again at once after a failure (once the backoff is over).
        self.more = true;
        let range = store.read_after(feed.channel(), after, self.page).await?;
        self.more = range.messages.len() >= self.page;
        Ok(Some(range.messages))
    }
}

/// What a backend gives [`Feeds::subscribe`].
pub trait FeedSource: Send + Sync {
    /// The history: each channel's last seq and resuming subscribers' backlogs.
    fn history(&self) -> &dyn Store;

    /// Starts reading `feed`'s channel: called once per feed, when its
    /// first subscriber arrives, with the gate held (the reader waits for
    /// the start position) — typically spawns `feed.clone().run(reader)`.
    fn start_feed(&self, feed: &Arc<Feed>) -> BoxFuture<'_, Result<(), BrokerError>>;
}

/// A node's feeds, one per subscribed channel, and the subscriber ids.
pub struct Feeds {
    map: Mutex<HashMap<ChannelName, Arc<Feed>>>,
    next_sub: AtomicU64,
}

impl Default for Feeds {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
            next_sub: AtomicU64::new(1),
        }
    }
}

impl std::fmt::Debug for Feeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeds")
            .field("channels", &lock(&self.map).len())
            .finish()
    }
}

impl Feeds {
    /// The feed of `channel`, if it has subscribers here.
    pub fn get(&self, channel: &ChannelName) -> Option<Arc<Feed>> {
        lock(&self.map).get(channel).cloned()
    }

    /// Wakes every feed (e.g. notifications may have been missed).
    pub fn wake_all(&self) {
        lock(&self.map).values().for_each(|f| f.wake());
    }

    fn feed(&self, channel: &ChannelName) -> Arc<Feed> {
        lock(&self.map)
            .entry(channel.clone())
            .or_insert_with(|| Arc::new(Feed::new(channel.clone())))
            .clone()
    }

    /// Subscribes `sink` to `channel`: the first subscriber on this node
    /// starts the feed (its reader begins after the channel's current end);
    /// with `after`, the backlog after that seq comes from the history.
    pub async fn subscribe(
        &self,
        source: &impl FeedSource,
        channel: ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> Result<Subscription, BrokerError> {
        loop {
            let feed = self.feed(&channel);
            let mut gate = feed.gate.lock().await;
            let start = match start_of(source, &feed, &mut gate, after).await {
                Ok(s) => s,
                Err(e) => {
                    drop(gate);
                    self.retire_if_unused(&feed);
                    return Err(e);
                }
            };
            let id = SubscriberId(self.next_sub.fetch_add(1, Ordering::Relaxed));
            {
                let mut subs = feed.subs();
                if feed.is_dead() {
                    continue; // its last subscriber left meanwhile: a new feed
                }
                subs.push((id, sink.clone()));
            }
            drop(gate);
            return Ok(Subscription { id, start });
        }
    }

    /// Removes a subscription; the last one of a channel stops its feed.
    pub fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        let stop = {
            let mut map = lock(&self.map);
            let Some(feed) = map.get(channel).cloned() else {
                return;
            };
            let mut subs = feed.subs();
            subs.retain(|(s, _)| *s != id);
            if !subs.is_empty() {
                return;
            }
            map.remove(channel);
            feed.kill()
        };
        if let Some(f) = stop {
            f();
        }
    }

    /// A feed whose first subscriber failed to start it stops again.
    fn retire_if_unused(&self, feed: &Arc<Feed>) {
        let stop = {
            let mut map = lock(&self.map);
            if !feed.subs().is_empty() || feed.is_dead() {
                return;
            }
            if map.get(&feed.channel).is_some_and(|f| Arc::ptr_eq(f, feed)) {
                map.remove(&feed.channel);
            }
            feed.kill()
        };
        if let Some(f) = stop {
            f();
        }
    }
}

/// Where a new subscriber's stream starts (starting the feed if it is the first).
async fn start_of(
    source: &impl FeedSource,
    feed: &Arc<Feed>,
    gate: &mut Option<u64>,
    after: Option<u64>,
) -> Result<SubscriptionStart, BrokerError> {
    let history = source.history();
    let channel = &feed.channel;
    let delivered = match *gate {
        Some(d) => d,
        None => {
            // First subscriber on this node: the reader starts after the
            // channel's current end.
            source.start_feed(feed).await?;
            let d = history.last_seq(channel).await?;
            *gate = Some(d);
            d
        }
    };
    let backlog = |after| read_backlog(history, channel, after, delivered, BACKLOG_PAGE);
    Ok(match after {
        None => SubscriptionStart {
            position: delivered,
            gap: None,
            backlog: Vec::new(),
        },
        Some(a) if a < delivered => {
            let (gap, backlog) = backlog(a).await?;
            SubscriptionStart {
                position: a,
                gap,
                backlog,
            }
        }
        Some(a) => {
            // Beyond what this node delivered: fine if the history has it
            // (another node's client was ahead); beyond its end, the channel
            // restarted (its history was lost): start over.
            if a <= history.last_seq(channel).await? {
                SubscriptionStart {
                    position: a,
                    gap: None,
                    backlog: Vec::new(),
                }
            } else {
                let (gap, backlog) = backlog(0).await?;
                SubscriptionStart {
                    position: 0,
                    gap,
                    backlog,
                }
            }
        }
    })
}
