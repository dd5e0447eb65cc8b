//! The NATS `Broker`: publishes append to the channel's stream; one ordered JetStream consumer per subscribed channel and node reads after the last seq it delivered and fans out to local subscribers.
//!
//! Why a consumer on the stream, not a core subscription: a reader whose
//! consumer or connection broke starts a new consumer after the last seq it
//! delivered, so a reconnect never loses a message (a core subscription
//! drops what was published while disconnected), and every node delivers in
//! the stream's order, which is the seq order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures_util::StreamExt;
use tidings_broker::{
    Backlog, BoxFuture, Broker, BrokerError, Delivery, NewMessage, PublishReceipt, StoreError,
    SubscriberId, Subscription, read_backlog,
};
use tidings_protocol::{ChannelName, MessageId, SharedMessage, SubscriptionStart};
use tracing::{Instrument, debug, debug_span, warn};

use crate::backend::{NatsBackend, backoff, parse_id, unavailable};

/// How long the reader waits for a message before it checks it is still wanted.
const IDLE_CHECK: Duration = Duration::from_secs(1);
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

impl NatsBackend {
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
                    // the channel's current end (its stream exists from now on).
                    let s = self.stream(&channel).await.map_err(lost)?;
                    let d = self.last(&channel).await.map_err(lost)?;
                    *gate = Some(d);
                    tokio::spawn(
                        read_loop(s, channel.clone(), feed.clone())
                            .instrument(debug_span!("nats_feed", %channel)),
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
                    // Beyond what this node delivered: fine if the stream has
                    // it (another node's client was ahead); beyond its last
                    // sequence, the channel restarted (its stream was
                    // deleted): start over.
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

/// Delivers one message read from the stream (skipping what was delivered).
async fn deliver(feed: &Feed, channel: &ChannelName, m: &async_nats::jetstream::Message) -> bool {
    let Ok(info) = m.info() else {
        return true; // not a stream message (a status): nothing to deliver
    };
    let seq = info.stream_sequence;
    let mut gate = feed.gate.lock().await;
    let Some(delivered) = *gate else {
        return false;
    };
    if seq <= delivered {
        return true;
    }
    let id = m
        .headers
        .as_ref()
        .and_then(parse_id)
        .unwrap_or(MessageId(0));
    let message = Arc::new(SharedMessage::new(
        channel.clone(),
        seq,
        id,
        m.payload.clone(),
    ));
    let subs: Subscribers = feed.subs().clone();
    match subs.as_slice() {
        [(_, only)] => only.deliver_alone(&message),
        all => all.iter().for_each(|(_, s)| s.deliver(&message)),
    }
    message.release_encoded();
    *gate = Some(seq);
    true
}

/// Reads the channel's stream after the last delivered seq and fans out,
/// until the feed has no subscriber. A failed consumer (lost connection,
/// deleted consumer) is replaced with backoff by a new one starting after
/// the last delivered seq, so nothing published meanwhile is missed.
async fn read_loop(s: stream::Stream, channel: ChannelName, feed: Arc<Feed>) {
    let mut attempt = 0usize;
    'outer: while !feed.dead.load(Ordering::Acquire) {
        let Some(after) = *feed.gate.lock().await else {
            return;
        };
        let config = OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ..Default::default()
        };
        let messages = match s.create_consumer(config).await {
            Ok(c) => c.messages().await.map_err(unavailable),
            Err(e) => Err(unavailable(e)),
        };
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, after, "feed cannot start a consumer, retrying");
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        loop {
            match tokio::time::timeout(IDLE_CHECK, messages.next()).await {
                Err(_) => {
                    if feed.dead.load(Ordering::Acquire) {
                        break 'outer;
                    }
                }
                Ok(Some(Ok(m))) => {
                    attempt = 0;
                    if !deliver(&feed, &channel, &m).await {
                        return;
                    }
                }
                Ok(Some(Err(e))) => {
                    warn!(error = %e, "feed consumer failed, starting a new one");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue 'outer;
                }
                Ok(None) => continue 'outer,
            }
        }
    }
    debug!("feed stopped");
}

impl Broker for NatsBackend {
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        let channel = channel.clone();
        let span = debug_span!("nats_publish", %channel);
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
        let span = debug_span!("nats_publish", %channel, %key);
        Box::pin(
            async move { self.publish_inner(&channel, payload, Some(&key)).await }.instrument(span),
        )
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
        let span = debug_span!("nats_subscribe", %channel, ?after);
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

    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            if !self.connected() {
                return Err(BrokerError::Unavailable("nats: not connected".into()));
            }
            tokio::time::timeout(Duration::from_secs(2), self.client.flush())
                .await
                .map_err(|_| BrokerError::Unavailable("nats: ping timed out".into()))?
                .map_err(|e| BrokerError::Unavailable(format!("nats: {e}")))
        })
    }
}
