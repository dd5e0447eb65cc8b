//! The `Store` trait: durable, ordered per-channel history with idempotent appends and retention.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tidings_protocol::{ChannelName, MessageId};
use tidings_runtime::BoxFuture;

/// A message to append: its id, an optional idempotency key and the payload.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Unique id (kept with the message and given back on reads).
    pub id: MessageId,
    /// Idempotency key (e.g. `session:publish-seq`): a second append with the
    /// same key on the same channel stores nothing and returns the first
    /// append's seq and id. `None`: no deduplication.
    pub dedup: Option<Arc<str>>,
    /// Payload.
    pub payload: Bytes,
}

/// What an append stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The per-channel sequence number the store assigned (1, 2, 3, ...).
    pub seq: u64,
    /// The message's id (the original one for a duplicate).
    pub id: MessageId,
    /// The idempotency key had been seen: nothing new was stored.
    pub duplicate: bool,
}

/// One message read back from a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Sequence number.
    pub seq: u64,
    /// Id.
    pub id: MessageId,
    /// Payload.
    pub payload: Bytes,
}

/// The answer to [`Store::read_after`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryRange {
    /// Messages `from..=to` that retention dropped (never a silent hole).
    pub gap: Option<(u64, u64)>,
    /// Messages after the requested seq, in order (at most the limit asked).
    pub messages: Vec<StoredMessage>,
    /// The channel's last assigned sequence number when read.
    pub last_seq: u64,
}

/// How much history a store keeps per channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Keep at most this many messages (`None`: no count limit).
    pub max_len: Option<u64>,
    /// Drop messages older than this (`None`: no age limit).
    pub max_age: Option<Duration>,
}

impl Retention {
    /// Keeps the last `n` messages.
    pub fn with_max_len(mut self, n: u64) -> Self {
        self.max_len = Some(n);
        self
    }

    /// Drops messages older than `age`.
    pub fn with_max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }
}

/// A store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable or failed; retry later (the store reconnects by itself).
    #[error("store backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with data this crate cannot read (another
    /// program wrote under this prefix / schema / stream?).
    #[error("store data is malformed: {0}")]
    Malformed(String),
    /// The message is larger than the store accepts.
    #[error("message of {size} bytes exceeds the store limit of {max} bytes")]
    TooLarge {
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
}

impl StoreError {
    /// Whether retrying later may succeed (the backend was unreachable).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<StoreError> for crate::BrokerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { size, max } => Self::TooLarge { size, max },
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Durable per-channel history: what a node reads a resuming client's
/// missed messages from, and what assigns the channel's sequence numbers
/// (so they stay gap-free across nodes).
///
/// Object-safe: hold it as `Arc<dyn Store>`.
///
/// ```
/// # futures_lite_block_on(async {
/// use bytes::Bytes;
/// use tidings_broker::{MemoryStore, NewMessage, Store};
/// use tidings_protocol::{ChannelName, MessageId};
/// let store = MemoryStore::default();
/// let ch = ChannelName::new("room").unwrap();
/// let msg = NewMessage { id: MessageId(7), dedup: Some("s1:1".into()), payload: Bytes::from_static(b"hi") };
/// let first = store.append(&ch, msg.clone()).await.unwrap();
/// let again = store.append(&ch, msg).await.unwrap();
/// assert_eq!((first.seq, again.seq, again.duplicate), (1, 1, true));
/// assert_eq!(store.read_after(&ch, 0, 10).await.unwrap().messages.len(), 1);
/// # });
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// ```
pub trait Store: Send + Sync + 'static {
    /// Appends a message to `channel`'s history and assigns its sequence
    /// number (exactly once per idempotency key).
    fn append(
        &self,
        channel: &ChannelName,
        message: NewMessage,
    ) -> BoxFuture<'_, Result<Appended, StoreError>>;

    /// Up to `limit` messages after `after`, with the gap retention left
    /// (messages after `after` that are no longer kept).
    fn read_after(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryRange, StoreError>>;

    /// The channel's last assigned sequence number (0: none yet).
    fn last_seq(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Applies the retention now (stores also apply it as they append);
    /// returns how many messages were dropped.
    fn trim(&self, channel: &ChannelName) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Drops every message of `channel` up to and including seq `through`
    /// (a prefix something else now covers, e.g. the updates a document
    /// snapshot holds); returns how many were dropped. The numbering goes
    /// on (the next append gets `last_seq + 1`), and a read from before
    /// `through` sees the dropped range as a gap. A `through` past the last
    /// seq drops everything.
    ///
    /// The default drops nothing and returns 0 (the messages stay until the
    /// retention drops them): correct, but a store that can drop by
    /// position should.
    fn trim_through(
        &self,
        channel: &ChannelName,
        through: u64,
    ) -> BoxFuture<'_, Result<u64, StoreError>> {
        let _ = (channel, through);
        Box::pin(std::future::ready(Ok(0)))
    }
}
