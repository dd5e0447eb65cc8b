//! `NatsBackend`: the connection, the stream layout (one JetStream stream per channel) and the `Store` implementation (append by JetStream publish, reads by message get).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use futures_util::{StreamExt, TryStreamExt};
use tidings_broker::{
    Appended, BoxFuture, Feeds, HistoryRange, NewMessage, Store, StoreError, StoredMessage,
};
use tidings_protocol::{ChannelName, MessageId, MessageIdGen};
use tracing::{Instrument, debug_span};

use crate::config::NatsConfig;
use crate::names;

/// The header carrying a message's tidings id.
pub(crate) const ID_HEADER: &str = "Tidings-Id";
/// Messages fetched at once while reading history.
const READ_CONCURRENCY: usize = 64;

/// A NATS failure as the typed error callers see.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("nats: {e}"))
}

/// NATS JetStream as a tidings [`Store`] and [`tidings_broker::Broker`].
///
/// Layout per channel `c` under prefix `p`: a stream `p_C` on subject `p.C`
/// (`C`: the channel name escaped into a NATS token), file storage, one
/// replica, `max_msgs` / `max_age` from the retention, duplicate window
/// from `dedup_ttl`. Each message has header `Tidings-Id` (its id) and, when
/// published with a key, `Nats-Msg-Id` (the key).
///
/// One connection (which reconnects by itself with exponential backoff)
/// carries publishes, reads and each subscribed channel's ordered consumer
/// (see the `feed` module).
pub struct NatsBackend {
    pub(crate) config: NatsConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) ids: MessageIdGen,
    pub(crate) feeds: Feeds,
    /// Streams known to exist, by channel.
    streams: Mutex<HashMap<ChannelName, stream::Stream>>,
}

impl std::fmt::Debug for NatsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBackend")
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

/// Reconnect delays: 50 ms doubling up to 2 s.
pub(crate) fn backoff(attempt: usize) -> Duration {
    let shift = u32::try_from(attempt.min(6)).unwrap_or(6);
    (Duration::from_millis(50) * 2u32.pow(shift)).min(Duration::from_secs(2))
}

impl NatsBackend {
    /// Connects (fails with `Unavailable` if NATS cannot be reached now;
    /// once connected, a lost connection is re-established by itself).
    pub async fn connect(config: NatsConfig) -> Result<Arc<Self>, StoreError> {
        config
            .check()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(10))
            .reconnect_delay_callback(backoff)
            .connect(config.url.as_str())
            .await
            .map_err(unavailable)?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.publish_timeout)
            .build(client.clone());
        let mut node = [0u8; 4];
        let node = match getrandom::fill(&mut node) {
            Ok(()) => u32::from_le_bytes(node),
            Err(_) => std::process::id(),
        };
        Ok(Arc::new(Self {
            config,
            client,
            js,
            ids: MessageIdGen::new(node),
            feeds: Feeds::default(),
            streams: Mutex::default(),
        }))
    }

    /// Connects to `url` (see [`NatsConfig::from_url`]).
    pub async fn connect_url(url: &str) -> Result<Arc<Self>, StoreError> {
        let config =
            NatsConfig::from_url(url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Self::connect(config).await
    }

    /// The settings.
    pub fn config(&self) -> &NatsConfig {
        &self.config
    }

    /// The stream name of `channel`.
    pub fn stream_name(&self, channel: &ChannelName) -> String {
        format!("{}_{}", self.config.prefix, names::token(channel))
    }

    /// The subject `channel`'s messages are published on.
    pub(crate) fn subject(&self, channel: &ChannelName) -> String {
        format!("{}.{}", self.config.prefix, names::token(channel))
    }

    pub(crate) fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn stream_config(&self, channel: &ChannelName) -> stream::Config {
        let r = &self.config.retention;
        let max_age = r.max_age.unwrap_or(Duration::ZERO);
        let window = if max_age.is_zero() {
            self.config.dedup_ttl
        } else {
            self.config.dedup_ttl.min(max_age)
        };
        stream::Config {
            name: self.stream_name(channel),
            subjects: vec![self.subject(channel)],
            max_messages: r
                .max_len
                .map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX)),
            max_age,
            duplicate_window: window,
            storage: stream::StorageType::File,
            num_replicas: 1,
            allow_direct: true,
            ..Default::default()
        }
    }

    fn cached(&self, channel: &ChannelName) -> Option<stream::Stream> {
        let streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.get(channel).cloned()
    }

    fn remember(&self, channel: &ChannelName, s: &stream::Stream) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.insert(channel.clone(), s.clone());
    }

    pub(crate) fn forget(&self, channel: &ChannelName) {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        streams.remove(channel);
    }

    /// The channel's stream, created if it does not exist yet.
    pub(crate) async fn stream(&self, channel: &ChannelName) -> Result<stream::Stream, StoreError> {
        if let Some(s) = self.cached(channel) {
            return Ok(s);
        }
        let s = self
            .js
            .get_or_create_stream(self.stream_config(channel))
            .await
            .map_err(unavailable)?;
        self.remember(channel, &s);
        Ok(s)
    }

    /// The channel's stream if it exists (reads never create one).
    async fn existing(&self, channel: &ChannelName) -> Result<Option<stream::Stream>, StoreError> {
        if let Some(s) = self.cached(channel) {
            return Ok(Some(s));
        }
        match self.js.get_stream(self.stream_name(channel)).await {
            Ok(s) => {
                self.remember(channel, &s);
                Ok(Some(s))
            }
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(unavailable(e)),
            },
        }
    }

    /// The stream's first and last sequence now (`None`: no stream).
    async fn bounds(
        &self,
        channel: &ChannelName,
    ) -> Result<Option<(stream::Stream, u64, u64)>, StoreError> {
        let Some(s) = self.existing(channel).await? else {
            return Ok(None);
        };
        match s.get_info().await {
            Ok(info) => Ok(Some((
                s,
                info.state.first_sequence,
                info.state.last_sequence,
            ))),
            Err(e) => {
                // Deleted behind our back (a purge)? Ask again without the cache.
                self.forget(channel);
                if e.to_string().contains("not found") {
                    return Ok(None);
                }
                Err(unavailable(e))
            }
        }
    }

    /// One publish attempt: JetStream's ack gives the seq.
    async fn append_once(
        &self,
        channel: &ChannelName,
        message: &NewMessage,
    ) -> Result<Appended, StoreError> {
        if !self.connected() {
            // Not queued for later: a publish refused now is not stored behind the caller's back.
            return Err(StoreError::Unavailable("nats: not connected".into()));
        }
        let s = self.stream(channel).await?;
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(message.payload.clone())
            .header(ID_HEADER, message.id.0.to_string().as_str());
        if let Some(key) = &message.dedup {
            publish = publish.message_id(key.as_ref());
        }
        let ack = async {
            self.js
                .send_publish(self.subject(channel), publish)
                .await?
                .await
        }
        .await;
        let ack = match ack {
            Ok(a) => a,
            Err(e) => {
                if e.kind() == PublishErrorKind::StreamNotFound {
                    self.forget(channel);
                }
                return Err(match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => StoreError::TooLarge {
                        size: message.payload.len(),
                        max: self.client.server_info().max_payload,
                    },
                    _ => unavailable(e),
                });
            }
        };
        let id = if ack.duplicate {
            // The first copy's id (it may be gone already: then this one's).
            match s.get_raw_message(ack.sequence).await {
                Ok(m) => parse_id(&m.headers).unwrap_or(message.id),
                Err(_) => message.id,
            }
        } else {
            message.id
        };
        Ok(Appended {
            seq: ack.sequence,
            id,
            duplicate: ack.duplicate,
        })
    }

    pub(crate) async fn append_retrying(
        &self,
        channel: &ChannelName,
        message: NewMessage,
    ) -> Result<Appended, StoreError> {
        // Each attempt is bounded by the deadline too: JetStream's ack may never come.
        tidings_broker::append_retrying(
            message.dedup.is_some(),
            self.config.publish_timeout,
            |deadline| {
                let message = &message;
                async move {
                    tokio::time::timeout_at(deadline, self.append_once(channel, message))
                        .await
                        .unwrap_or_else(|_| {
                            Err(StoreError::Unavailable("nats: publish timed out".into()))
                        })
                }
            },
        )
        .await
    }

    pub(crate) async fn read_range(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> Result<HistoryRange, StoreError> {
        let Some((s, first, last)) = self.bounds(channel).await? else {
            return Ok(HistoryRange::default());
        };
        let from = after.saturating_add(1).max(first);
        let to = last.min(from.saturating_add(limit.max(1) as u64 - 1));
        let s = &s;
        let fetched: Vec<Option<StoredMessage>> = futures_util::stream::iter(from..=to)
            .map(|seq| async move {
                match s.get_raw_message(seq).await {
                    Ok(m) => Ok(Some(StoredMessage {
                        seq: m.sequence,
                        id: parse_id(&m.headers).unwrap_or(MessageId(0)),
                        payload: m.payload,
                    })),
                    // Dropped by retention since the bounds were read.
                    Err(e)
                        if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) =>
                    {
                        Ok(None)
                    }
                    Err(e) => Err(unavailable(e)),
                }
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let messages: Vec<StoredMessage> = fetched.into_iter().flatten().collect();
        let first_kept = messages.first().map_or(last + 1, |m| m.seq);
        let gap = (after < last && first_kept > after + 1).then(|| (after + 1, first_kept - 1));
        Ok(HistoryRange {
            gap,
            messages,
            last_seq: last,
        })
    }

    pub(crate) async fn last(&self, channel: &ChannelName) -> Result<u64, StoreError> {
        Ok(self.bounds(channel).await?.map_or(0, |(_, _, last)| last))
    }

    /// Deletes every stream under this backend's prefix (tests clean up
    /// with it; destructive: all history under the prefix is gone).
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let start = format!("{}_", self.config.prefix);
        let names: Vec<String> = self
            .js
            .stream_names()
            .try_filter(|n| std::future::ready(n.starts_with(&start)))
            .try_collect()
            .await
            .map_err(unavailable)?;
        let mut deleted = 0;
        for name in names {
            self.js.delete_stream(&name).await.map_err(unavailable)?;
            deleted += 1;
        }
        self.streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(deleted)
    }
}

/// The tidings id in a stored message's headers.
pub(crate) fn parse_id(headers: &async_nats::HeaderMap) -> Option<MessageId> {
    headers
        .get(ID_HEADER)
        .and_then(|v| v.as_str().parse::<u64>().ok())
        .map(MessageId)
}

impl Store for NatsBackend {
    fn append(
        &self,
        channel: &ChannelName,
        message: NewMessage,
    ) -> BoxFuture<'_, Result<Appended, StoreError>> {
        let channel = channel.clone();
        let span = debug_span!("nats_append", %channel);
        Box::pin(async move { self.append_retrying(&channel, message).await }.instrument(span))
    }

    fn read_after(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryRange, StoreError>> {
        let channel = channel.clone();
        let span = debug_span!("nats_read", %channel, after);
        Box::pin(async move { self.read_range(&channel, after, limit).await }.instrument(span))
    }

    fn last_seq(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move { self.last(&channel).await })
    }

    /// JetStream applies the retention itself (count on every publish, age
    /// on its own timer); this purges down to `max_len` now and reports
    /// what that dropped.
    fn trim(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move {
            let Some((s, _, _)) = self.bounds(&channel).await? else {
                return Ok(0);
            };
            let Some(keep) = self.config.retention.max_len else {
                return Ok(0);
            };
            let r = s.purge().keep(keep).await.map_err(unavailable)?;
            Ok(r.purged)
        })
    }

    /// A JetStream purge up to (not including) `through + 1`, clamped to
    /// the last seq + 1: a purge sequence beyond that would move the
    /// stream's numbering forward.
    fn trim_through(
        &self,
        channel: &ChannelName,
        through: u64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move {
            let Some((s, first, last)) = self.bounds(&channel).await? else {
                return Ok(0);
            };
            let upto = through.min(last).saturating_add(1);
            if upto <= first || last == 0 {
                return Ok(0);
            }
            let r = s.purge().sequence(upto).await.map_err(unavailable)?;
            Ok(r.purged)
        })
    }
}
