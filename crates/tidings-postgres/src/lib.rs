//! PostgreSQL backend of tidings: a `Store` that keeps each channel's history in tables it migrates itself, and a `Broker` that fans messages out across nodes with LISTEN/NOTIFY and reads by seq, chosen by a `postgres://` URL.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tidings_postgres::PostgresBackend;
//! let backend = PostgresBackend::connect_url("postgres://postgres@127.0.0.1/test?schema=chat").await?;
//! // `backend` is a `tidings_broker::Broker` (for `tidings_channels::Hub`) and a `tidings_broker::Store`.
//! # Ok(()) }
//! ```
//!
//! **Sequence numbers.** The `append` SQL function (migration 1, in
//! `migrate`) locks the channel's row (`SELECT ... FOR UPDATE`), checks the
//! idempotency key, sets `seq = last + 1`, inserts the message and trims by
//! count and age, all in one transaction: gap-free, monotonic seqs whichever
//! node appends (a rolled-back append takes its number back with it, unlike
//! a `SEQUENCE`).
//!
//! **Fan-out (the choice).** LISTEN/NOTIFY as a wake-up, reads by seq as the
//! truth: `append` sends `NOTIFY {schema}_feed, channel` (delivered at
//! commit); every node LISTENs and wakes that channel's feed, which reads
//! the rows after its last delivered seq. A lost notification (a broken
//! listening connection, or a burst PostgreSQL coalesced) costs at most
//! `poll_interval` (1 s) of latency, never a message: feeds read on a timer
//! too, and all read again when the listener reconnects. Polling alone would
//! cost a query per channel and node per tick even when idle and add the
//! tick to every delivery.
//!
//! **Faults.** A lost connection gives `Unavailable` errors; the shared
//! connection is re-opened on next use (backoff 50 ms → 2 s between failed
//! attempts) and the listener reconnects by itself.
//!
//! Dependencies: `tokio-postgres` (the async PostgreSQL client; only its
//! `runtime` feature, for `connect` on tokio; no TLS compiled in: `NoTls`),
//! `futures-util` (to drive the listening connection as a stream), `tokio`
//! (tasks, timers, `Notify`), `getrandom` (this node's message-id prefix),
//! `tracing`, `thiserror`, `bytes` and the tidings trait crates.

mod backend;
mod config;
mod conn;
mod feed;
mod migrate;

pub use backend::PostgresBackend;
pub use config::{PostgresConfig, PostgresConfigError};
