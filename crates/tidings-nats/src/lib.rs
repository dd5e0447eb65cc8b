//! NATS JetStream backend of tidings: a `Broker` that fans a channel's messages out across nodes and a `Store` that keeps its history, one JetStream stream per channel, chosen by a `nats://` URL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tidings_nats::NatsBackend;
//! let backend = NatsBackend::connect_url("nats://127.0.0.1:4222?prefix=chat").await?;
//! // `backend` is a `tidings_broker::Broker` (give it to `tidings_channels::Hub`)
//! // and a `tidings_broker::Store`.
//! # Ok(()) }
//! ```
//!
//! **Sequence numbers.** Each channel is one JetStream stream (named
//! `{prefix}_{channel}`, subject `{prefix}.{channel}`, the channel's name
//! escaped into a NATS token). JetStream numbers a stream's messages 1, 2,
//! 3, ... in the order it stores them, whichever node published, and only
//! ever drops messages from the front (retention), so the stream sequence
//! *is* the channel's seq: gap-free and monotonic without optimistic
//! concurrency or retries. The stream keeps its last sequence when
//! retention has emptied it, so a channel never restarts at 1.
//!
//! **Idempotency.** A publish with a key carries it as `Nats-Msg-Id`:
//! JetStream stores one copy per key within the stream's duplicate window
//! (`dedup_secs`) and answers a re-send with the first copy's sequence.
//!
//! **Retention.** `max_len` is the stream's `max_msgs`, `max_age_secs` its
//! `max_age`; JetStream applies both itself. A read after a position that
//! retention dropped reports the gap explicitly.
//!
//! **Fan-out.** Each node reads each channel it has subscribers for with an
//! ordered JetStream consumer starting after the last seq it delivered
//! (module `feed`): every node delivers the stream's order, and a reader
//! whose consumer or connection broke starts a new consumer after its last
//! seq — no message published meanwhile is lost.
//!
//! **Faults.** A lost connection gives `BrokerError::Unavailable` /
//! `StoreError::Unavailable`; the client reconnects by itself with
//! exponential backoff (50 ms to 2 s). A publish is not sent while the
//! connection is down (it is refused at once, not queued to be sent
//! later); a keyed publish is retried under its key for up to
//! `NatsConfig::publish_timeout`, then refused.
//!
//! Dependencies: `async-nats` (the NATS maintainers' async client; only
//! `jetstream` and `ring` for TLS, no key-value / object store / service /
//! websocket / nkeys features), `futures-util` (consumer streams, bounded
//! concurrent reads), `tokio` (reader tasks, timers), `getrandom` (this
//! node's message-id prefix), `tracing`, `thiserror`, `bytes`, and the
//! tidings trait crates.

mod backend;
mod config;
mod feed;
mod names;

pub use backend::NatsBackend;
pub use config::{NatsConfig, NatsConfigError};
