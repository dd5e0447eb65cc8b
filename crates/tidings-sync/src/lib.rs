//! CRDT documents for tidings on yrs: Yjs-compatible sync (y-protocols sync step 1 / step 2 / update, awareness), bounded documents, update hooks, a y-websocket connection handler, and documents carried on the tidings session itself.
//!
//! Standard Yjs clients interoperate: a `y-websocket` `WebsocketProvider`, or
//! any client speaking y-protocols over binary WebSocket messages, connects
//! to a route that hands its upgraded stream to [`Docs::serve_connection`]
//! (`tidings-axum` mounts one with its auth and Origin checks, feature
//! `yjs`). The server answers sync step 1 with the missing updates, applies
//! and relays updates and awareness to the document's other peers.
//!
//! The same documents ride the tidings session ([`SessionDocs`], plugged into
//! the hub by `tidings_axum::DocsExtension`): a client subscribes to channel
//! `doc:NAME` and publishes y-protocols messages on it, with the session's
//! connection, auth, resume and ordering; feature `client` has the client
//! side ([`SyncedDoc`], sans-IO, and [`SyncedClient`] over any
//! `tidings_runtime::Client`, native and wasm32). y-websocket peers and
//! session peers of one document see each other's edits.
//!
//! With a store ([`Docs::with_store`], any `tidings_broker::Store`: memory,
//! Redis, PostgreSQL), documents are persisted as an update log with
//! periodic snapshots and restored when a server opens them again (see
//! `persist.rs` for the layout).
//!
//! Features: `server` (default: `Docs`, `SessionDocs`, persistence; tokio),
//! `client` (`SyncedDoc`, `SyncedClient`; builds for wasm32).
//!
//! Dependencies: `yrs` (the Yjs CRDT and its y-protocols `sync` module: the
//! wire format and merge rules must be exactly Yjs's, so it is not
//! hand-written), `tokio-tungstenite` (the y-websocket connection, the same
//! WebSocket stack as the rest of tidings), `tokio`, `futures-util`,
//! `thiserror`, `tracing`; `tidings-broker` (the `Store` trait documents
//! persist through, the `Delivery` sessions are fed through),
//! `tidings-protocol` (channel names, message ids, client events), `bytes`;
//! `tidings-runtime` (feature `client`: the client a `SyncedClient` runs on).

#[cfg(feature = "client")]
mod client;
#[cfg(feature = "server")]
mod doc;
#[cfg(feature = "server")]
mod docs;
mod error;
#[cfg(feature = "server")]
mod persist;
#[cfg(feature = "server")]
mod session;
mod wire;

#[cfg(feature = "client")]
pub use client::{DocError, SyncedClient, SyncedDoc};
#[cfg(feature = "server")]
pub use doc::{DocConfig, Outcome, SyncDoc, UpdateHook};
#[cfg(feature = "server")]
pub use docs::{Docs, DocsConfig, LoadError, OpenError};
pub use error::SyncError;
#[cfg(feature = "server")]
pub use persist::{PersistConfig, PersistError};
#[cfg(feature = "server")]
pub use session::{SessionDocError, SessionDocs};
pub use yrs;
