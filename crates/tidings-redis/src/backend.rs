//! `RedisBackend`: the connection, the key layout and the `Store` implementation (append by script, reads by XRANGE).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use tidings_broker::{Appended, BoxFuture, Feeds, HistoryRange, NewMessage, Store, StoreError};
use tidings_protocol::{ChannelName, MessageIdGen};
use tracing::{Instrument, debug_span};

use crate::config::RedisConfig;
use crate::{reply, scripts};

/// A Redis connection lost or refused: the typed error callers see.
pub(crate) fn unavailable(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

/// Redis as a tidings [`Store`] and [`tidings_broker::Broker`].
///
/// Key layout per channel `c` under prefix `p`: `p:c:seq` (the counter that
/// numbers the channel's messages), `p:c:log` (a stream whose entry ids are
/// `seq-0`, fields `i` message id, `p` payload, `t` time in ms) and
/// `p:c:dedup:KEY` (an idempotency key, expiring).
///
/// One multiplexed connection (a [`ConnectionManager`], which reconnects by
/// itself with exponential backoff) carries appends and reads; each channel
/// subscribed on this node has a reader with its own connection blocking on
/// `XREAD` (see the `feed` module).
pub struct RedisBackend {
    pub(crate) config: RedisConfig,
    pub(crate) client: redis::Client,
    pub(crate) conn: ConnectionManager,
    append: Script,
    trim: Script,
    pub(crate) ids: MessageIdGen,
    pub(crate) feeds: Feeds,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

/// The manager settings: quick to notice a dead link, reconnecting with
/// backoff from 50 ms up to 2 s.
pub(crate) fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_number_of_retries(3)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ms(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RedisBackend {
    /// Connects (fails with `Unavailable` if Redis cannot be reached now;
    /// once connected, a lost connection is re-established by itself).
    pub async fn connect(config: RedisConfig) -> Result<Arc<Self>, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError::Unavailable(format!("redis URL: {e}")))?;
        let conn = ConnectionManager::new_with_config(
            client.clone(),
            manager_config(Duration::from_secs(2)),
        )
        .await
        .map_err(|e| unavailable(&e))?;
        let mut node = [0u8; 4];
        let node = match getrandom::fill(&mut node) {
            Ok(()) => u32::from_le_bytes(node),
            Err(_) => std::process::id(),
        };
        Ok(Arc::new(Self {
            config,
            client,
            conn,
            append: Script::new(&scripts::append()),
            trim: Script::new(&scripts::trim()),
            ids: MessageIdGen::new(node),
            feeds: Feeds::default(),
        }))
    }

    /// Connects to `url` (see [`RedisConfig::from_url`]).
    pub async fn connect_url(url: &str) -> Result<Arc<Self>, StoreError> {
        let config =
            RedisConfig::from_url(url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Self::connect(config).await
    }

    /// The settings.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    pub(crate) fn key(&self, channel: &ChannelName, what: &str) -> String {
        format!("{}:{}:{what}", self.config.prefix, channel.as_str())
    }

    /// Deletes every key under this backend's prefix (tests clean up with it;
    /// destructive: all history under the prefix is gone).
    pub async fn purge(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}:*", self.config.prefix);
        let mut cursor = 0u64;
        let mut deleted = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable(&e))?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| unavailable(&e))?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// One append attempt.
    async fn append_once(
        &self,
        channel: &ChannelName,
        message: &NewMessage,
        now: u64,
    ) -> Result<Appended, StoreError> {
        let dedup = message
            .dedup
            .as_deref()
            .map_or(String::new(), |k| self.key(channel, &format!("dedup:{k}")));
        let r = &self.config.retention;
        let mut conn = self.conn.clone();
        let v: Value = self
            .append
            .key(self.key(channel, "seq"))
            .key(self.key(channel, "log"))
            .key(dedup)
            .arg(message.id.0)
            .arg(&message.payload[..])
            .arg(now)
            .arg(r.max_len.unwrap_or(0))
            .arg(ms(r.max_age))
            .arg(self.config.dedup_ttl.as_secs().max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let Value::Array(parts) = &v else {
            return Err(StoreError::Malformed(format!("append: {v:?}")));
        };
        let [dup, out] = parts.as_slice() else {
            return Err(StoreError::Malformed(format!("append: {v:?}")));
        };
        let (seq, id) = reply::seq_and_id(out)?;
        Ok(Appended {
            seq,
            id,
            duplicate: reply::number(dup)? == 1,
        })
    }

    pub(crate) async fn append_retrying(
        &self,
        channel: &ChannelName,
        message: NewMessage,
    ) -> Result<Appended, StoreError> {
        tidings_broker::append_retrying(
            message.dedup.is_some(),
            self.config.publish_timeout,
            |_| self.append_once(channel, &message, now_ms()),
        )
        .await
    }

    pub(crate) async fn read_range(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> Result<HistoryRange, StoreError> {
        let mut conn = self.conn.clone();
        let (last, raw): (Value, Value) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(self.key(channel, "seq"))
            .cmd("XRANGE")
            .arg(self.key(channel, "log"))
            .arg(format!("{}-0", after.saturating_add(1)))
            .arg("+")
            .arg("COUNT")
            .arg(limit.max(1))
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        let last_seq = reply::number(&last)?;
        let messages = reply::entries(&raw)?;
        let first = messages.first().map_or(last_seq + 1, |m| m.seq);
        let gap = (after < last_seq && first > after + 1).then(|| (after + 1, first - 1));
        Ok(HistoryRange {
            gap,
            messages,
            last_seq,
        })
    }

    pub(crate) async fn last(&self, channel: &ChannelName) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let v: Value = redis::cmd("GET")
            .arg(self.key(channel, "seq"))
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        reply::number(&v)
    }
}

impl Store for RedisBackend {
    fn append(
        &self,
        channel: &ChannelName,
        message: NewMessage,
    ) -> BoxFuture<'_, Result<Appended, StoreError>> {
        let channel = channel.clone();
        let span = debug_span!("redis_append", %channel);
        Box::pin(async move { self.append_retrying(&channel, message).await }.instrument(span))
    }

    fn read_after(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryRange, StoreError>> {
        let channel = channel.clone();
        let span = debug_span!("redis_read", %channel, after);
        Box::pin(async move { self.read_range(&channel, after, limit).await }.instrument(span))
    }

    fn last_seq(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move { self.last(&channel).await })
    }

    fn trim(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move {
            let before = self.len(&channel).await?;
            let r = &self.config.retention;
            let mut conn = self.conn.clone();
            let after: u64 = self
                .trim
                .key(self.key(&channel, "seq"))
                .key(self.key(&channel, "log"))
                .arg(now_ms())
                .arg(r.max_len.unwrap_or(0))
                .arg(ms(r.max_age))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(before.saturating_sub(after))
        })
    }

    /// `XTRIM MINID`: stream ids are `seq-0`, so the prefix is one command.
    fn trim_through(
        &self,
        channel: &ChannelName,
        through: u64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move {
            let mut conn = self.conn.clone();
            redis::cmd("XTRIM")
                .arg(self.key(&channel, "log"))
                .arg("MINID")
                .arg(format!("{}-0", through.saturating_add(1)))
                .query_async(&mut conn)
                .await
                .map_err(|e| unavailable(&e))
        })
    }
}

impl RedisBackend {
    async fn len(&self, channel: &ChannelName) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("XLEN")
            .arg(self.key(channel, "log"))
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))
    }
}
