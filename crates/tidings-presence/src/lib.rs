//! Presence for tidings: who is in each room, with metadata, across nodes — a snapshot when a client subscribes to a room's presence channel, diffs after.
//!
//! ```no_run
//! # async fn demo(hub: tidings_channels::Hub) -> Result<(), Box<dyn std::error::Error>> {
//! use tidings_presence::{Presence, PresenceConfig};
//! // Sessions subscribed to `room:*` are in that room; clients watch
//! // `presence:room:lobby` (snapshot, then diffs).
//! let presence = Presence::attach(&hub, PresenceConfig::default()).await?;
//! println!("{} in the lobby", presence.len("room:lobby"));
//! # Ok(()) }
//! ```
//!
//! How it works (docs/architecture.md, presence): each node tracks its own
//! sessions and tells the others through the hub's `Broker` (a join or
//! leave at once, and its whole state every heartbeat, which repairs any lost
//! message); a node not heard from within the timeout is dead and its
//! members leave. Each node computes the same room state and serves its own
//! clients' presence channels: every subscription starts with a snapshot,
//! so a client resuming on another node needs nothing the old node had.
//!
//! Dependencies: `serde` / `serde_json` (the presence payloads are JSON for
//! every client, whatever the codec of the session), `thiserror`; with the
//! `server` feature (default), `tokio` (timers, the sync queue), `getrandom`
//! (node ids) and the hub crates. Without it, the crate is the wire types and
//! [`PresenceView`] only, for wasm32 clients.

#[cfg(feature = "server")]
mod room;
#[cfg(feature = "server")]
mod service;
#[cfg(feature = "server")]
mod sync;
mod view;
mod wire;

#[cfg(feature = "server")]
pub use service::{MAX_CLIENT_META, MetaFn, Presence, PresenceConfig, PresenceStartError};
pub use view::{PresenceChange, PresenceError, PresenceView};
pub use wire::{Members, PresenceEvent};
