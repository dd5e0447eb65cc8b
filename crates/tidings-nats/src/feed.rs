//! The NATS `Broker`: publishes append to the channel's stream; one ordered JetStream consumer per subscribed channel and node reads after the last seq it delivered and fans out to local subscribers (the fan-out is `tidings_broker::Feeds`).
//!
//! Why a consumer on the stream, not a core subscription: a reader whose
//! consumer or connection broke starts a new consumer after the last seq it
//! delivered, so a reconnect never loses a message (a core subscription
//! drops what was published while disconnected), and every node delivers in
//! the stream's order, which is the seq order.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{
    DeliverPolicy,
    pull::{Ordered, OrderedConfig},
};
use async_nats::jetstream::stream;
use bytes::Bytes;
use futures_util::StreamExt;
use tidings_broker::{
    BoxFuture, Broker, BrokerError, Delivery, Feed, FeedReader, FeedSource, NewMessage,
    PublishReceipt, Store, StoreError, StoredMessage, SubscriberId, Subscription,
};
use tidings_protocol::{ChannelName, MessageId};
use tracing::{Instrument, debug_span};

use crate::backend::{NatsBackend, parse_id, unavailable};

/// How long the reader waits for a message before it checks it is still wanted.
const IDLE_CHECK: Duration = Duration::from_secs(1);

impl NatsBackend {
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
        let a = self.append_retrying(channel, message).await?;
        Ok(PublishReceipt {
            seq: a.seq,
            id: a.id,
        })
    }
}

impl FeedSource for NatsBackend {
    fn history(&self) -> &dyn Store {
        self
    }

    /// The channel's stream exists from now on; its reader is an ordered consumer on it.
    fn start_feed(&self, feed: &Arc<Feed>) -> BoxFuture<'_, Result<(), BrokerError>> {
        let feed = feed.clone();
        Box::pin(async move {
            let channel = feed.channel().clone();
            let stream = self.stream(&channel).await?;
            let reader = Consumer {
                stream,
                messages: None,
            };
            tokio::spawn(
                feed.run(reader)
                    .instrument(debug_span!("nats_feed", %channel)),
            );
            Ok(())
        })
    }
}

/// An ordered consumer on the channel's stream, started after the last
/// delivered seq; a failed one (lost connection, deleted consumer) is
/// replaced by a new one starting after the last delivered seq again.
struct Consumer {
    stream: stream::Stream,
    messages: Option<Ordered>,
}

impl FeedReader for Consumer {
    async fn read(
        &mut self,
        _: &Feed,
        after: u64,
    ) -> Result<Option<Vec<StoredMessage>>, StoreError> {
        let messages = match &mut self.messages {
            Some(m) => m,
            None => {
                let config = OrderedConfig {
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: after + 1,
                    },
                    ..Default::default()
                };
                let consumer = self
                    .stream
                    .create_consumer(config)
                    .await
                    .map_err(unavailable)?;
                self.messages
                    .insert(consumer.messages().await.map_err(unavailable)?)
            }
        };
        match tokio::time::timeout(IDLE_CHECK, messages.next()).await {
            Err(_) => Ok(Some(Vec::new())),
            Ok(Some(Ok(m))) => {
                let Ok(info) = m.info() else {
                    // Not a stream message (a status): nothing to deliver.
                    return Ok(Some(Vec::new()));
                };
                let id = m
                    .headers
                    .as_ref()
                    .and_then(parse_id)
                    .unwrap_or(MessageId(0));
                Ok(Some(vec![StoredMessage {
                    seq: info.stream_sequence,
                    id,
                    payload: m.payload.clone(),
                }]))
            }
            Ok(Some(Err(e))) => {
                self.messages = None;
                Err(unavailable(e))
            }
            Ok(None) => {
                self.messages = None;
                Ok(Some(Vec::new()))
            }
        }
    }
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
