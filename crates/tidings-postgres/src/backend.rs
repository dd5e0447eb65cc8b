//! `PostgresBackend`: connection, migrations and the `Store` implementation (append by the `append` function, reads by seq).

use std::sync::{Arc, Weak};

use bytes::Bytes;
use tidings_broker::{
    Appended, BoxFuture, Feeds, HistoryRange, NewMessage, Store, StoreError, StoredMessage,
};
use tidings_protocol::{ChannelName, MessageId, MessageIdGen};
use tracing::{Instrument, debug_span};

use crate::config::{PostgresConfig, valid_schema};
use crate::conn::{Conn, open, unavailable};
use crate::migrate;

/// PostgreSQL as a tidings [`Store`] and [`tidings_broker::Broker`].
///
/// Tables in the configured schema (created and migrated on connect):
/// `channels` (name, last seq), `messages` (channel, seq, id, payload, time),
/// `dedup` (idempotency keys); the `append` function assigns a seq under
/// the channel row's lock and sends `NOTIFY {schema}_feed`.
pub struct PostgresBackend {
    pub(crate) config: PostgresConfig,
    pub(crate) conn: Conn,
    pub(crate) ids: MessageIdGen,
    pub(crate) feeds: Feeds,
    /// This backend, for the tasks it spawns (they must not keep it alive).
    pub(crate) me: Weak<PostgresBackend>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("schema", &self.config.schema)
            .finish_non_exhaustive()
    }
}

fn ms(d: Option<std::time::Duration>) -> i64 {
    d.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn seq_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl PostgresBackend {
    /// Connects, runs the migrations, and starts listening for this
    /// schema's notifications (fails with `Unavailable` if PostgreSQL cannot
    /// be reached now; later a lost connection is re-opened by itself).
    pub async fn connect(config: PostgresConfig) -> Result<Arc<Self>, StoreError> {
        if !valid_schema(&config.schema) {
            return Err(StoreError::Unavailable(format!(
                "invalid schema name {:?}: use [a-z_][a-z0-9_]*",
                config.schema
            )));
        }
        let client = open(&config.url).await?;
        migrate::run(&client, &config.schema)
            .await
            .map_err(|e| unavailable(&e))?;
        let mut node = [0u8; 4];
        let node = match getrandom::fill(&mut node) {
            Ok(()) => u32::from_le_bytes(node),
            Err(_) => std::process::id(),
        };
        let backend = Arc::new_cyclic(|me| Self {
            conn: Conn::new(config.url.clone(), client),
            config,
            ids: MessageIdGen::new(node),
            feeds: Feeds::default(),
            me: me.clone(),
        });
        crate::feed::start_listener(&backend);
        Ok(backend)
    }

    /// Connects to `url` (see [`PostgresConfig::from_url`]).
    pub async fn connect_url(url: &str) -> Result<Arc<Self>, StoreError> {
        let config =
            PostgresConfig::from_url(url).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Self::connect(config).await
    }

    /// The settings.
    pub fn config(&self) -> &PostgresConfig {
        &self.config
    }

    /// Drops this backend's schema with everything in it (tests clean up
    /// with it; destructive).
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        let c = self.conn.get().await?;
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            self.config.schema
        ))
        .await
        .map_err(|e| unavailable(&e))
    }

    pub(crate) async fn append_inner(
        &self,
        channel: &ChannelName,
        message: &NewMessage,
    ) -> Result<Appended, StoreError> {
        let c = self.conn.get().await?;
        let r = &self.config.retention;
        let max_len = r
            .max_len
            .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let row = c
            .query_one(
                &format!(
                    "SELECT seq, id, duplicate FROM {}.append($1, $2, $3, $4, $5, $6)",
                    self.config.schema
                ),
                &[
                    &channel.as_str(),
                    &message.dedup.as_deref(),
                    &(message.id.0 as i64),
                    &&message.payload[..],
                    &max_len,
                    &ms(r.max_age),
                ],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let (seq, id, duplicate): (i64, i64, bool) = (row.get(0), row.get(1), row.get(2));
        Ok(Appended {
            seq: seq_of(seq),
            id: MessageId(id as u64),
            duplicate,
        })
    }

    pub(crate) async fn read_range(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> Result<HistoryRange, StoreError> {
        let c = self.conn.get().await?;
        let s = &self.config.schema;
        let after_i = i64::try_from(after).unwrap_or(i64::MAX);
        let limit_i = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        // One statement, one snapshot: the last seq and the rows agree.
        let rows = c
            .query(
                &format!(
                    "SELECT (SELECT seq FROM {s}.channels WHERE name = $1), m.seq, m.id, m.payload
                     FROM (SELECT 1) one
                     LEFT JOIN LATERAL (SELECT seq, id, payload FROM {s}.messages
                         WHERE channel = $1 AND seq > $2 AND ($4::bigint = 0 OR at >= now() - $4::bigint * interval '1 millisecond')
                         ORDER BY seq LIMIT $3) m ON true"
                ),
                &[&channel.as_str(), &after_i, &limit_i, &ms(self.config.retention.max_age)],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        let mut last_seq = 0;
        let mut messages = Vec::new();
        for row in rows {
            last_seq = seq_of(row.get::<_, Option<i64>>(0).unwrap_or(0));
            if let (Some(seq), Some(id), Some(payload)) = (
                row.get::<_, Option<i64>>(1),
                row.get::<_, Option<i64>>(2),
                row.get::<_, Option<Vec<u8>>>(3),
            ) {
                messages.push(StoredMessage {
                    seq: seq_of(seq),
                    id: MessageId(id as u64),
                    payload: Bytes::from(payload),
                });
            }
        }
        let first = messages.first().map_or(last_seq + 1, |m| m.seq);
        let gap = (after < last_seq && first > after + 1).then(|| (after + 1, first - 1));
        Ok(HistoryRange {
            gap,
            messages,
            last_seq,
        })
    }

    pub(crate) async fn last(&self, channel: &ChannelName) -> Result<u64, StoreError> {
        let c = self.conn.get().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT seq FROM {}.channels WHERE name = $1",
                    self.config.schema
                ),
                &[&channel.as_str()],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(row.map_or(0, |r| seq_of(r.get(0))))
    }
}

impl Store for PostgresBackend {
    fn append(
        &self,
        channel: &ChannelName,
        message: NewMessage,
    ) -> BoxFuture<'_, Result<Appended, StoreError>> {
        let channel = channel.clone();
        let span = debug_span!("postgres_append", %channel);
        Box::pin(async move { self.append_inner(&channel, &message).await }.instrument(span))
    }

    fn read_after(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryRange, StoreError>> {
        let channel = channel.clone();
        let span = debug_span!("postgres_read", %channel, after);
        Box::pin(async move { self.read_range(&channel, after, limit).await }.instrument(span))
    }

    fn last_seq(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move { self.last(&channel).await })
    }

    fn trim(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move {
            let c = self.conn.get().await?;
            let s = &self.config.schema;
            let r = &self.config.retention;
            let max_len = r
                .max_len
                .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
            let n = c
                .execute(
                    &format!(
                        "DELETE FROM {s}.messages m WHERE m.channel = $1 AND (
                            ($2::bigint > 0 AND m.seq <= (SELECT seq FROM {s}.channels WHERE name = $1) - $2::bigint)
                         OR ($3::bigint > 0 AND m.at < now() - $3::bigint * interval '1 millisecond'))"
                    ),
                    &[&channel.as_str(), &max_len, &ms(r.max_age)],
                )
                .await
                .map_err(|e| unavailable(&e))?;
            Ok(n)
        })
    }

    fn trim_through(
        &self,
        channel: &ChannelName,
        through: u64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let channel = channel.clone();
        Box::pin(async move {
            let c = self.conn.get().await?;
            let through = i64::try_from(through).unwrap_or(i64::MAX);
            c.execute(
                &format!(
                    "DELETE FROM {}.messages WHERE channel = $1 AND seq <= $2",
                    self.config.schema
                ),
                &[&channel.as_str(), &through],
            )
            .await
            .map_err(|e| unavailable(&e))
        })
    }
}
