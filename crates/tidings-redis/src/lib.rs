//! Redis backend of tidings: a `Broker` that fans a channel's messages out across nodes and a `Store` that keeps its history, both on Redis Streams, chosen by a `redis://` URL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tidings_redis::RedisBackend;
//! let backend = RedisBackend::connect_url("redis://127.0.0.1:6379?prefix=chat").await?;
//! // `backend` is a `tidings_broker::Broker` (give it to `tidings_channels::Hub`)
//! // and a `tidings_broker::Store`.
//! # Ok(()) }
//! ```
//!
//! **Sequence numbers.** A Lua script appends atomically: it checks the
//! idempotency key (`SET ... EX`, a re-sent publish returns the first
//! seq), `INCR`s the channel's counter and `XADD`s the entry with stream id
//! `seq-0`, then applies retention (count: `XTRIM MINID`; age: the entries'
//! time field). Redis runs scripts one at a time, so a channel's seqs are
//! gap-free and monotonic whichever node publishes.
//!
//! **Fan-out.** Each node reads each channel it has subscribers for with a
//! blocking `XREAD` after the last seq it delivered (module `feed`): every
//! node delivers the stream's order, and a reader whose connection broke
//! reads on from its last seq — no message published meanwhile is lost.
//!
//! **Faults.** A lost connection gives `BrokerError::Unavailable` /
//! `StoreError::Unavailable`; the `ConnectionManager` reconnects by itself
//! with exponential backoff (50 ms to 2 s). A client publish carries an
//! idempotency key and is retried with it for up to
//! `RedisConfig::publish_timeout`, then refused (the hub acknowledges client
//! publishes only once stored).
//!
//! Dependencies: `redis` (the maintained Redis client; only `tokio-comp`
//! for async I/O, `connection-manager` for the reconnecting connection,
//! `script` for the atomic append; `streams` is not needed, the replies are
//! read by hand in `reply`), `tokio` (reader tasks, timers), `getrandom`
//! (this node's message-id prefix), `tracing` (spans per publish, read and
//! subscription), `thiserror`, `bytes`, and the tidings trait crates.

mod backend;
mod config;
mod feed;
mod reply;
mod scripts;

pub use backend::RedisBackend;
pub use config::{RedisConfig, RedisConfigError};
