//! The Redis `Broker`: publishes append to the channel's stream; one reader per subscribed channel and node blocks on `XREAD` after the last seq it delivered and fans out to local subscribers (the fan-out is `tidings_broker::Feeds`).
//!
//! Why stream reads, not pub/sub: a reader that lost its connection asks
//! again from the last seq it delivered, so a reconnect never loses a message
//! (pub/sub drops what was published while disconnected), and every node
//! delivers in the order of the stream ids, which are the seqs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::Value;
use redis::aio::ConnectionManager;
use tidings_broker::{
    BoxFuture, Broker, BrokerError, Delivery, Feed, FeedReader, FeedSource, NewMessage,
    PublishReceipt, Store, StoreError, StoredMessage, SubscriberId, Subscription,
};
use tidings_protocol::ChannelName;
use tracing::{Instrument, debug_span};

use crate::backend::{RedisBackend, manager_config, unavailable};
use crate::reply;

/// Entries one `XREAD` returns at most.
const READ_BATCH: usize = 512;
/// How long one `XREAD` blocks (the reader then checks it is still wanted).
const BLOCK_MS: u64 = 1000;

impl RedisBackend {
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

impl FeedSource for RedisBackend {
    fn history(&self) -> &dyn Store {
        self
    }

    fn start_feed(&self, feed: &Arc<Feed>) -> BoxFuture<'_, Result<(), BrokerError>> {
        let channel = feed.channel().clone();
        let reader = XRead {
            client: self.client.clone(),
            log: self.key(&channel, "log"),
            conn: None,
        };
        tokio::spawn(
            feed.clone()
                .run(reader)
                .instrument(debug_span!("redis_feed", %channel)),
        );
        Box::pin(async { Ok(()) })
    }
}

/// Blocks on `XREAD` after the last delivered seq, on its own connection
/// (opened again when it cannot be had).
struct XRead {
    client: redis::Client,
    log: String,
    conn: Option<ConnectionManager>,
}

impl FeedReader for XRead {
    async fn read(
        &mut self,
        _: &Feed,
        after: u64,
    ) -> Result<Option<Vec<StoredMessage>>, StoreError> {
        let c = match &mut self.conn {
            Some(c) => c,
            None => {
                let c = ConnectionManager::new_with_config(
                    self.client.clone(),
                    manager_config(Duration::from_millis(BLOCK_MS * 3)),
                )
                .await
                .map_err(|e| unavailable(&e))?;
                self.conn.insert(c)
            }
        };
        let read: Value = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(&self.log)
            .arg(format!("{after}-0"))
            .query_async(c)
            .await
            .map_err(|e| unavailable(&e))?;
        reply::read_entries(&read).map(Some)
    }
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
        Box::pin(
            self.feeds
                .subscribe(self, channel, after, sink)
                .instrument(span),
        )
    }

    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        self.feeds.unsubscribe(channel, id);
    }
}
