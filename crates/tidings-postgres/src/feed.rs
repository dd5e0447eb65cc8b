//! The PostgreSQL `Broker`: appends go through the `append` function; each node LISTENs on its schema's channel and wakes the feed of the channel a NOTIFY names, which reads by seq after the last one it delivered.
//!
//! Why LISTEN/NOTIFY plus reads by seq (not NOTIFY payloads): a notification
//! only says "this channel has news"; the feed then reads the rows after its
//! last delivered seq. A lost notification (the listening connection broke)
//! costs latency, never a message: feeds also read every `poll_interval`,
//! and all of them read again when the listener reconnects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tidings_broker::{
    Backlog, BoxFuture, Broker, BrokerError, Delivery, NewMessage, PublishReceipt, StoreError,
    SubscriberId, Subscription, read_backlog,
};
use tidings_protocol::{ChannelName, SharedMessage, SubscriptionStart};
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tracing::{Instrument, debug, debug_span, info_span, warn};

use crate::backend::PostgresBackend;

/// How long a keyed publish is retried while PostgreSQL is unreachable.
const PUBLISH_RETRY: Duration = Duration::from_secs(2);
/// Rows one read returns at most.
const PAGE: usize = 1000;

type Subscribers = Vec<(SubscriberId, Arc<dyn Delivery>)>;

/// A channel's fan-out on this node.
pub(crate) struct Feed {
    /// The last seq delivered here (`None`: not read yet); held while
    /// delivering and while a new subscriber reads its backlog.
    gate: tokio::sync::Mutex<Option<u64>>,
    subs: Mutex<Subscribers>,
    dead: AtomicBool,
    /// Woken by a NOTIFY for this channel.
    news: Notify,
}

impl Feed {
    fn subs(&self) -> MutexGuard<'_, Subscribers> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lost(e: StoreError) -> BrokerError {
    e.into()
}

/// Starts the task that LISTENs for this backend's notifications and
/// reconnects (with backoff) when its connection ends.
pub(crate) fn start_listener(backend: &Arc<PostgresBackend>) {
    let weak = Arc::downgrade(backend);
    let url = backend.config.url.clone();
    let topic = format!("{}_feed", backend.config.schema);
    tokio::spawn(listen(weak, url, topic).instrument(info_span!("postgres_listener")));
}

async fn listen(weak: Weak<PostgresBackend>, url: String, topic: String) {
    let mut delay = Duration::from_millis(50);
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        match tokio_postgres::connect(&url, NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let sql = format!("LISTEN {topic}");
                let ok = {
                    let listening = client.batch_execute(&sql);
                    // The connection must be driven while LISTEN runs.
                    let mut listening = std::pin::pin!(listening);
                    loop {
                        tokio::select! {
                            r = &mut listening => break r.is_ok(),
                            m = messages.next() => if m.is_none() { break false },
                        }
                    }
                };
                if ok {
                    delay = Duration::from_millis(50);
                    // Notifications may have been missed while not listening.
                    wake_all(&weak);
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                let Some(b) = weak.upgrade() else { return };
                                let feed = ChannelName::new(n.payload()).ok().and_then(|c| {
                                    b.feeds
                                        .lock()
                                        .unwrap_or_else(|p| p.into_inner())
                                        .get(&c)
                                        .cloned()
                                });
                                if let Some(f) = feed {
                                    f.news.notify_one();
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                warn!(error = %e, "listener connection failed");
                                break;
                            }
                        }
                    }
                }
                drop(client);
                warn!("listener connection lost, reconnecting");
            }
            Err(e) => warn!(error = %e, retry_in = ?delay, "listener cannot connect"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

fn wake_all(weak: &Weak<PostgresBackend>) {
    if let Some(b) = weak.upgrade() {
        for f in b.feeds.lock().unwrap_or_else(|p| p.into_inner()).values() {
            f.news.notify_one();
        }
    }
}

impl PostgresBackend {
    fn feed(&self, channel: &ChannelName) -> Arc<Feed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .entry(channel.clone())
            .or_insert_with(|| {
                Arc::new(Feed {
                    gate: tokio::sync::Mutex::new(None),
                    subs: Mutex::default(),
                    dead: AtomicBool::new(false),
                    news: Notify::new(),
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
        // With a key, a retry is safe (a lost reply's commit is found by
        // the key): retried while PostgreSQL is unreachable, for up to 2 s.
        let deadline = tokio::time::Instant::now() + PUBLISH_RETRY;
        let mut delay = Duration::from_millis(20);
        let a = loop {
            match self.append_inner(channel, &message).await {
                Err(e)
                    if e.is_unavailable()
                        && message.dedup.is_some()
                        && tokio::time::Instant::now() + delay < deadline =>
                {
                    debug!(error = %e, "append failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                other => break other.map_err(lost)?,
            }
        };
        Ok(PublishReceipt {
            seq: a.seq,
            id: a.id,
        })
    }

    /// Everything after `after` up to `to`, in pages, with the gap retention left.
    async fn backlog(
        &self,
        channel: &ChannelName,
        after: u64,
        to: u64,
    ) -> Result<Backlog, BrokerError> {
        read_backlog(self, channel, after, to, PAGE)
            .await
            .map_err(lost)
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
                    let d = self.last(&channel).await.map_err(lost)?;
                    *gate = Some(d);
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
                    let last = self.last(&channel).await.map_err(lost)?;
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
            let first = {
                let mut subs = feed.subs();
                if feed.dead.load(Ordering::Acquire) {
                    continue;
                }
                subs.push((id, sink.clone()));
                subs.len() == 1
            };
            drop(gate);
            if first {
                self.spawn_reader(&channel, feed);
            }
            return Ok(Subscription { id, start });
        }
    }

    fn spawn_reader(&self, channel: &ChannelName, feed: Arc<Feed>) {
        let reader = Reader {
            channel: channel.clone(),
            feed,
            poll: self.config.poll_interval,
        };
        // The reader holds the backend weakly: a dropped backend stops it.
        tokio::spawn(
            reader
                .run(self.me.clone())
                .instrument(debug_span!("postgres_feed", channel = %channel)),
        );
    }
}

struct Reader {
    channel: ChannelName,
    feed: Arc<Feed>,
    poll: Duration,
}

impl Reader {
    async fn run(self, backend: Weak<PostgresBackend>) {
        let mut delay = Duration::from_millis(50);
        while !self.feed.dead.load(Ordering::Acquire) {
            let Some(b) = backend.upgrade() else { return };
            let mut gate = self.feed.gate.lock().await;
            let Some(mut delivered) = *gate else { return };
            let mut failed = false;
            loop {
                match b.read_range(&self.channel, delivered, PAGE).await {
                    Ok(page) => {
                        let subs: Subscribers = self.feed.subs().clone();
                        let n = page.messages.len();
                        for m in page.messages {
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
                        if n < PAGE {
                            break;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, delivered, "feed read failed, retrying");
                        failed = true;
                        break;
                    }
                }
            }
            *gate = Some(delivered);
            drop(gate);
            drop(b);
            if failed {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
            delay = Duration::from_millis(50);
            let _ = tokio::time::timeout(self.poll, self.feed.news.notified()).await;
        }
        debug!("feed stopped");
    }
}

impl Broker for PostgresBackend {
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        let channel = channel.clone();
        let span = debug_span!("postgres_publish", %channel);
        Box::pin(async move { self.publish_inner(&channel, payload, None).await }.instrument(span))
    }

    fn publish_keyed(
        &self,
        channel: &ChannelName,
        payload: Bytes,
        key: &str,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        let channel = channel.clone();
        let key = key.to_owned();
        let span = debug_span!("postgres_publish", %channel, %key);
        Box::pin(
            async move { self.publish_inner(&channel, payload, Some(&key)).await }.instrument(span),
        )
    }

    fn is_durable(&self) -> bool {
        true
    }

    /// `SELECT 1` on the shared connection (re-opened if it was lost).
    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            let c = self.conn.get().await?;
            c.simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| BrokerError::Unavailable(format!("postgres: {e}")))
        })
    }

    fn subscribe(
        &self,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        let channel = channel.clone();
        let span = debug_span!("postgres_subscribe", %channel, ?after);
        Box::pin(self.subscribe_inner(channel, after, sink).instrument(span))
    }

    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let Some(feed) = feeds.get(channel).cloned() else {
            return;
        };
        let mut subs = feed.subs();
        subs.retain(|(s, _)| *s != id);
        if subs.is_empty() {
            feed.dead.store(true, Ordering::Release);
            feed.news.notify_one();
            feeds.remove(channel);
        }
    }
}
