//! Document persistence through a tidings `Store`: an update log per document, a snapshot every N updates or bytes (compaction), and loading a document back from its last snapshot plus the updates after it.
//!
//! Two store channels per document `NAME` (under [`PersistConfig::prefix`]):
//! `PREFIX NAME :log` holds every applied update (v1) in order, and
//! `PREFIX NAME :snap` holds snapshots, each the covered log position
//! (8 bytes, little-endian) followed by the whole document as one update.
//! A snapshot at position `S` holds at least the updates `1..=S` of the log
//! (it is encoded from the live document after update `S` was appended), so
//! loading applies the last snapshot, then the log after `S`; an update that
//! is both in the snapshot and replayed is harmless (Yjs updates are
//! idempotent). After each snapshot both channels are compacted by
//! position (`Store::trim_through`): the log through `S` and every snapshot
//! before the new one go, so the store holds one snapshot and the updates
//! after it. The store's retention is applied as well (`Store::trim`): with
//! a count retention of at least [`PersistConfig::compact_every`] updates,
//! the log keeps what the last snapshot does not cover. If retention ever
//! dropped updates after the snapshot, loading fails with
//! [`PersistError::LostUpdates`] rather than serving a silently different
//! document.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tidings_broker::{NewMessage, Store, StoreError};
use tidings_protocol::{ChannelName, MessageIdGen};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::doc::SyncDoc;
use crate::error::SyncError;

/// How documents are persisted.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PersistConfig {
    /// Store channels of a document are named `{prefix}{name}:log` and
    /// `{prefix}{name}:snap`.
    pub prefix: String,
    /// A snapshot is written after this many logged updates...
    pub compact_every: u64,
    /// ...or after this many logged bytes, whichever comes first.
    pub compact_bytes: usize,
    /// Updates waiting to be written at most per document; a peer sending
    /// while the queue is full is disconnected (close 1013) and resyncs later.
    pub queue: usize,
}

impl Default for PersistConfig {
    fn default() -> Self {
        Self {
            prefix: "ydoc:".into(),
            compact_every: 500,
            compact_bytes: 1 << 20,
            queue: 4096,
        }
    }
}

/// A document could not be loaded from, or written to, its store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The store failed (e.g. unreachable).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The document's name does not make a valid store channel name.
    #[error("document name {0:?} is not a valid store channel name")]
    Name(String),
    /// A snapshot in the store is not one this crate wrote.
    #[error("malformed snapshot at seq {seq}: {reason}")]
    MalformedSnapshot {
        /// Its seq on the snapshot channel.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A stored update or snapshot does not apply as a Yjs update.
    #[error("stored update at seq {seq} does not apply: {source}")]
    Update {
        /// Its seq (log or snapshot channel).
        seq: u64,
        /// Why.
        source: SyncError,
    },
    /// The store's retention dropped logged updates that no snapshot covers
    /// (or the last snapshot itself): the document cannot be restored exactly.
    #[error("updates {from}..={to} of the log are gone and no snapshot covers them")]
    LostUpdates {
        /// First lost seq.
        from: u64,
        /// Last lost seq.
        to: u64,
    },
    /// The document's writer has [`PersistConfig::queue`] updates waiting:
    /// the sender is disconnected (close 1013) and resyncs later.
    #[error("the document's store is behind; try again later")]
    Backlog,
    /// The document's writer stopped (the server is shutting down).
    #[error("the document's writer stopped")]
    Closed,
}

/// The store and settings shared by every document of a `Docs`.
pub(crate) struct Persistence {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: PersistConfig,
    ids: MessageIdGen,
}

impl Persistence {
    pub(crate) fn new(store: Arc<dyn Store>, config: PersistConfig) -> Self {
        Self {
            store,
            config,
            ids: MessageIdGen::new(0),
        }
    }

    fn channels(&self, name: &str) -> Result<(ChannelName, ChannelName), PersistError> {
        let p = &self.config.prefix;
        let log = ChannelName::new(format!("{p}{name}:log"))
            .map_err(|_| PersistError::Name(name.to_owned()))?;
        let snap = ChannelName::new(format!("{p}{name}:snap"))
            .map_err(|_| PersistError::Name(name.to_owned()))?;
        Ok((log, snap))
    }

    /// Loads document `name` into `doc` (empty): the last snapshot, then
    /// the log after it. Returns the document's log channels and position.
    pub(crate) async fn load(&self, name: &str, doc: &mut SyncDoc) -> Result<Loaded, PersistError> {
        let (log, snap) = self.channels(name)?;
        let store = &self.store;
        let last_snap = store.last_seq(&snap).await?;
        let mut covered = 0;
        if last_snap > 0 {
            let range = store.read_after(&snap, last_snap - 1, 1).await?;
            let Some(m) = range.messages.into_iter().find(|m| m.seq == last_snap) else {
                return Err(PersistError::LostUpdates {
                    from: last_snap,
                    to: last_snap,
                });
            };
            if m.payload.len() < 8 {
                return Err(PersistError::MalformedSnapshot {
                    seq: m.seq,
                    reason: format!("{} bytes, no position", m.payload.len()),
                });
            }
            let (pos, state) = m.payload.split_at(8);
            let mut b = [0u8; 8];
            b.copy_from_slice(pos);
            covered = u64::from_le_bytes(b);
            doc.restore(state)
                .map_err(|source| PersistError::Update { seq: m.seq, source })?;
        }
        let mut after = covered;
        loop {
            let range = store.read_after(&log, after, 1000).await?;
            if let Some((from, to)) = range.gap {
                return Err(PersistError::LostUpdates { from, to });
            }
            if range.messages.is_empty() {
                // The log may end before the snapshot's position only if
                // nothing was appended since.
                break;
            }
            for m in range.messages {
                doc.restore(&m.payload)
                    .map_err(|source| PersistError::Update { seq: m.seq, source })?;
                after = m.seq;
            }
        }
        Ok(Loaded {
            log,
            snap,
            position: after.max(covered),
            since_snapshot: after.saturating_sub(covered),
        })
    }

    /// Appends `payload` to `channel`, retrying while the store is
    /// unavailable (in order: the writer waits). Other errors are returned.
    async fn append(&self, channel: &ChannelName, payload: Bytes) -> Result<u64, StoreError> {
        let mut backoff = Duration::from_millis(50);
        loop {
            let message = NewMessage {
                id: self.ids.next_id(),
                dedup: None,
                payload: payload.clone(),
            };
            match self.store.append(channel, message).await {
                Ok(a) => return Ok(a.seq),
                Err(e) if e.is_unavailable() => {
                    warn!(error = %e, %channel, "document store unavailable: retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Where a loaded document's log stands.
pub(crate) struct Loaded {
    log: ChannelName,
    snap: ChannelName,
    position: u64,
    since_snapshot: u64,
}

/// What a document's writer is asked to do, in order.
pub(crate) enum Job {
    /// Log one applied update.
    Update(Vec<u8>),
    /// Answer once everything before is written.
    Flush(oneshot::Sender<Result<(), PersistError>>),
    /// Write a snapshot now (after everything before), then answer.
    Compact(oneshot::Sender<Result<(), PersistError>>),
}

/// The handle of a loaded document's writer.
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    /// An update could not be queued: the next snapshot must come soon (it
    /// is encoded from the live document, so it covers the missed update).
    missed: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer of a loaded document; `state` encodes the live
    /// document (called for snapshots).
    pub(crate) fn start(
        persistence: Arc<Persistence>,
        loaded: Loaded,
        state: impl Fn() -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel(persistence.config.queue.max(1));
        let missed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write(persistence, loaded, rx, missed.clone(), state));
        Self { tx, missed }
    }

    /// Whether an update can be queued now.
    pub(crate) fn has_room(&self) -> bool {
        self.tx.capacity() > 0
    }

    /// Queues applied updates (never waits; see [`Writer::missed`]).
    pub(crate) fn log(&self, updates: Vec<Vec<u8>>) {
        for u in updates {
            if self.tx.try_send(Job::Update(u)).is_err() {
                warn!("document writer queue full: the next snapshot covers the update");
                self.missed.store(true, Ordering::Release);
                // Wake the writer for a snapshot even with nothing queued.
                let (ack, _) = oneshot::channel();
                let _ = self.tx.try_send(Job::Compact(ack));
            }
        }
    }

    /// Sends `job` (waits for room in the queue).
    pub(crate) async fn ask(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<(), PersistError>>) -> Job,
    ) -> Result<(), PersistError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(job(ack))
            .await
            .map_err(|_| PersistError::Closed)?;
        done.await.map_err(|_| PersistError::Closed)?
    }
}

/// A document's writer: logs updates in order and compacts.
async fn write(
    p: Arc<Persistence>,
    mut at: Loaded,
    mut rx: mpsc::Receiver<Job>,
    missed: Arc<AtomicBool>,
    state: impl Fn() -> Vec<u8>,
) {
    let mut bytes_since = 0usize;
    while let Some(job) = rx.recv().await {
        let compact = match job {
            Job::Update(u) => {
                let len = u.len();
                match p.append(&at.log, Bytes::from(u)).await {
                    Ok(seq) => {
                        at.position = seq;
                        at.since_snapshot += 1;
                        bytes_since += len;
                    }
                    Err(e) => {
                        warn!(error = %e, "update not logged: a snapshot covers it");
                        missed.store(true, Ordering::Release);
                    }
                }
                None
            }
            Job::Flush(ack) => {
                let _ = ack.send(Ok(()));
                continue;
            }
            Job::Compact(ack) => Some(ack),
        };
        let due = at.since_snapshot >= p.config.compact_every
            || bytes_since >= p.config.compact_bytes
            || missed.load(Ordering::Acquire);
        if compact.is_none() && !due {
            continue;
        }
        missed.store(false, Ordering::Release);
        let result = snapshot(&p, &at, &state).await;
        if result.is_ok() {
            at.since_snapshot = 0;
            bytes_since = 0;
        } else {
            missed.store(true, Ordering::Release);
        }
        if let Some(ack) = compact {
            let _ = ack.send(result);
        } else if let Err(e) = result {
            warn!(error = %e, "document snapshot failed: retried after the next update");
        }
    }
}

/// Writes a snapshot covering the log up to `at.position`, then applies the
/// store's retention to both channels.
async fn snapshot(
    p: &Persistence,
    at: &Loaded,
    state: &impl Fn() -> Vec<u8>,
) -> Result<(), PersistError> {
    let doc = state();
    let mut payload = Vec::with_capacity(8 + doc.len());
    payload.extend_from_slice(&at.position.to_le_bytes());
    payload.extend_from_slice(&doc);
    let snap_seq = p.append(&at.snap, Bytes::from(payload)).await?;
    // The snapshot covers the log through its position, and replaces the
    // snapshots before it: both prefixes go (by position where the store
    // can; its retention applies as well).
    p.store.trim_through(&at.log, at.position).await?;
    p.store
        .trim_through(&at.snap, snap_seq.saturating_sub(1))
        .await?;
    p.store.trim(&at.log).await?;
    p.store.trim(&at.snap).await?;
    Ok(())
}
