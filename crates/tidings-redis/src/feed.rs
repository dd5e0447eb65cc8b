//! The Redis `Broker`: publishes append to the channel's stream; one reader per subscribed channel and node blocks on `XREAD` after the last seq it delivered and fans out to local subscribers.
//!
//! Why stream reads, not pub/sub: a reader that lost its connection asks
//! again from the last seq it delivered, so a reconnect never loses a message
//! (pub/sub drops what was published while disconnected), and every node
//! delivers in the order of the stream ids, which are the seqs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use redis::Value;
use redis::aio::ConnectionManager;
use tidings_broker::{
    Backlog, BoxFuture, Broker, BrokerError, Delivery, NewMessage, PublishReceipt, StoreError,
    SubscriberId, Subscription, read_backlog,
};
use tidings_protocol::{ChannelName, SharedMessage, SubscriptionStart};
use tracing::{Instrument, debug, debug_span, warn};

use crate::backend::{RedisBackend, manager_config, unavailable};
use crate::reply;

/// Entries one `XREAD` returns at most.
const READ_BATCH: usize = 512;
/// How long one `XREAD` blocks (the reader then checks it is still wanted).
const BLOCK_MS: u64 = 1000;
/// Backlog pages read for a resuming subscriber.
const PAGE: usize = 1000;

type Subscribers = Vec<(SubscriberId, Arc<dyn Delivery>)>;

/// A channel's fan-out on this node.
pub(crate) struct Feed {
    /// The last seq delivered to this node's subscribers (`None`: not read
    /// yet). Held while delivering and while a new subscriber reads its
    /// backlog, so a subscriber sees the backlog, then exactly the messages after it.
    gate: tokio::sync::Mutex<Option<u64>>,
    subs: Mutex<Subscribers>,
    /// No subscriber left: the reader stops, the feed is out of the map.
    dead: AtomicBool,
}

impl Feed {
    fn subs(&self) -> MutexGuard<'_, Subscribers> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn lost(e: StoreError) -> BrokerError {
    e.into()
}

impl RedisBackend {
    fn feed(&self, channel: &ChannelName) -> Arc<Feed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .entry(channel.clone())
            .or_insert_with(|| {
                Arc::new(Feed {
                    gate: tokio::sync::Mutex::new(None),
                    subs: Mutex::default(),
                    dead: AtomicBool::new(false),
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
        let a = self.append_retrying(channel, message).await.map_err(lost)?;
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
                    // First subscriber on this node: the reader starts after
                    // the channel's current end.
                    let d = self.last(&channel).await.map_err(lost)?;
                    *gate = Some(d);
                    tokio::spawn(
                        read_loop(
                            self.client.clone(),
                            self.key(&channel, "log"),
                            channel.clone(),
                            feed.clone(),
                        )
                        .instrument(debug_span!("redis_feed", %channel)),
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
                    // Beyond what this node delivered: fine if Redis has it
                    // (another node's client was ahead); beyond Redis's count,
                    // the channel restarted (its keys were lost): start over.
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
            {
                let mut subs = feed.subs();
                if feed.dead.load(Ordering::Acquire) {
                    continue; // its last subscriber left meanwhile: a new feed
                }
                subs.push((id, sink.clone()));
            }
            drop(gate);
            return Ok(Subscription { id, start });
        }
    }
}

/// Reads the channel's stream after the last delivered seq and fans out,
/// until the feed has no subscriber. Connection failures are retried with
/// backoff; the next read asks from the last delivered seq again, so
/// nothing published meanwhile is missed.
async fn read_loop(client: redis::Client, log: String, channel: ChannelName, feed: Arc<Feed>) {
    let mut conn: Option<ConnectionManager> = None;
    let mut delay = Duration::from_millis(50);
    while !feed.dead.load(Ordering::Acquire) {
        let c = match &mut conn {
            Some(c) => c,
            None => match ConnectionManager::new_with_config(
                client.clone(),
                manager_config(Duration::from_millis(BLOCK_MS * 3)),
            )
            .await
            {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    warn!(error = %unavailable(&e), "feed cannot connect, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        let Some(after) = *feed.gate.lock().await else {
            return;
        };
        let read: Result<Value, _> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&log)
            .arg(format!("{after}-0"))
            .query_async(c)
            .await;
        let entries = match read
            .map_err(|e| unavailable(&e))
            .and_then(|v| reply::read_entries(&v))
        {
            Ok(e) => {
                delay = Duration::from_millis(50);
                e
            }
            Err(e) => {
                warn!(error = %e, after, "feed read failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        let mut gate = feed.gate.lock().await;
        let Some(mut delivered) = *gate else { return };
        let subs: Subscribers = feed.subs().clone();
        for m in entries {
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
    }
    debug!("feed stopped");
}

impl Broker for RedisBackend {
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        let channel = channel.clone();
        let span = debug_span!("redis_publish", %channel);
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
        let span = debug_span!("redis_publish", %channel, %key);
        Box::pin(
            async move { self.publish_inner(&channel, payload, Some(&key)).await }.instrument(span),
        )
    }

    fn is_durable(&self) -> bool {
        true
    }

    /// `PING` on the shared connection (bounded by its response timeout, 2 s).
    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let pong: Value = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| BrokerError::from(unavailable(&e)))?;
            match pong {
                Value::SimpleString(s) if s == "PONG" => Ok(()),
                other => Err(BrokerError::Unavailable(format!(
                    "redis: PING answered {other:?}"
                ))),
            }
        })
    }

    fn subscribe(
        &self,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        let channel = channel.clone();
        let span = debug_span!("redis_subscribe", %channel, ?after);
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
            feeds.remove(channel);
        }
    }
}
