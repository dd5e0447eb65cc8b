//! The PostgreSQL `Broker`: appends go through the `append` function; each node LISTENs on its schema's channel and wakes the feed of the channel a NOTIFY names, which reads by seq after the last one it delivered.
//!
//! Why LISTEN/NOTIFY plus reads by seq (not NOTIFY payloads): a notification
//! only says "this channel has news"; the feed then reads the rows after its
//! last delivered seq. A lost notification (the listening connection broke)
//! costs latency, never a message: feeds also read every `poll_interval`,
//! and all of them read again when the listener reconnects.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tidings_broker::{
    BoxFuture, Broker, BrokerError, Delivery, Feed, FeedSource, NewMessage, PollReader,
    PublishReceipt, Store, SubscriberId, Subscription,
};
use tidings_protocol::ChannelName;
use tokio_postgres::{AsyncMessage, NoTls};
use tracing::{Instrument, debug, debug_span, info_span, warn};

use crate::backend::PostgresBackend;

/// How long a keyed publish is retried while PostgreSQL is unreachable.
const PUBLISH_RETRY: Duration = Duration::from_secs(2);
/// Rows one read returns at most.
const PAGE: usize = 1000;

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
                                let feed = ChannelName::new(n.payload())
                                    .ok()
                                    .and_then(|c| b.feeds.get(&c));
                                if let Some(f) = feed {
                                    f.wake();
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
        b.feeds.wake_all();
    }
}

impl PostgresBackend {
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
                other => break other?,
            }
        };
        Ok(PublishReceipt {
            seq: a.seq,
            id: a.id,
        })
    }
}

impl FeedSource for PostgresBackend {
    fn history(&self) -> &dyn Store {
        self
    }

    /// The reader reads after the last delivered seq when the listener
    /// wakes it (a NOTIFY for this channel) or every `poll_interval`; it
    /// holds the backend weakly: a dropped backend stops it.
    fn start_feed(&self, feed: &Arc<Feed>) -> BoxFuture<'_, Result<(), BrokerError>> {
        let store: Weak<dyn Store> = self.me.clone();
        let reader = PollReader::new(store, self.config.poll_interval, PAGE);
        let channel = feed.channel().clone();
        tokio::spawn(
            feed.clone()
                .run(reader)
                .instrument(debug_span!("postgres_feed", channel = %channel)),
        );
        Box::pin(async { Ok(()) })
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
