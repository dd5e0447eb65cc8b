//! CRDT documents for tidings on yrs: Yjs-compatible sync (y-protocols sync step 1 / step 2 / update, awareness), bounded documents, update hooks, and a y-websocket connection handler.
//!
//! Standard Yjs clients interoperate: a `y-websocket` `WebsocketProvider`, or
//! any client speaking y-protocols over binary WebSocket messages, connects
//! to a route that hands its upgraded stream to [`Docs::serve_connection`]
//! (`tidings-axum` mounts one with its auth and Origin checks, feature
//! `yjs`). The server answers sync step 1 with the missing updates, applies
//! and relays updates and awareness to the document's other peers.
//!
//! With a store ([`Docs::with_store`], any `tidings_broker::Store`: memory,
//! Redis, PostgreSQL), documents are persisted as an update log with
//! periodic snapshots and restored when a server opens them again (see
//! `persist.rs` for the layout).
//!
//! Dependencies: `yrs` (the Yjs CRDT and its y-protocols `sync` module: the
//! wire format and merge rules must be exactly Yjs's, so it is not
//! hand-written), `tokio-tungstenite` (the y-websocket connection, the same
//! WebSocket stack as the rest of tidings), `tokio`, `futures-util`,
//! `thiserror`, `tracing`; `tidings-broker` (the `Store` trait documents
//! persist through), `tidings-protocol` (channel names and message ids of
//! the store), `bytes`.

mod doc;
mod docs;
mod error;
mod persist;

pub use doc::{DocConfig, Outcome, SyncDoc, UpdateHook};
pub use docs::{Docs, DocsConfig, LoadError, OpenError};
pub use error::SyncError;
pub use persist::{PersistConfig, PersistError};
pub use yrs;
