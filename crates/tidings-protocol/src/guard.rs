//! `ChannelGuard`: what a session's client may subscribe to and publish on, decided by the server's authorization (a token's claims, a user hook).

use std::fmt;

use crate::ids::ChannelName;

/// Decides, per channel, what the client of a session may do. The server
/// session asks it for every `subscribe` and every `publish`: a refused
/// subscribe gets an `error forbidden` frame, a refused publish an `error
/// forbidden` frame naming it (docs/protocol.md §6); the session goes on.
///
/// Called on the connection's task for every publish: keep it cheap (no I/O,
/// no locks held by others).
pub trait ChannelGuard: Send + Sync + fmt::Debug {
    /// Whether the client may subscribe to `channel`.
    fn may_subscribe(&self, channel: &ChannelName) -> bool;
    /// Whether the client may publish on `channel`.
    fn may_publish(&self, channel: &ChannelName) -> bool;
}
