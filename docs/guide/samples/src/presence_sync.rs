//! Presence and CRDT sync: who is in each room, across nodes; Yjs-compatible documents for standard Yjs clients.

use tidings::prelude::*;

// ANCHOR: presence
/// Sessions subscribed to `room:*` are in that room; clients watch `presence:room:NAME` (a
/// snapshot, then joins and leaves). Keep the returned handle alive.
pub async fn attach_presence(
    hub: &Hub,
) -> Result<tidings::presence::Presence, Box<dyn std::error::Error>> {
    use tidings::presence::{Presence, PresenceConfig};
    let presence = Presence::attach(hub, PresenceConfig::default()).await?;
    println!("{} in the lobby", presence.len("room:lobby"));
    Ok(presence)
}
// ANCHOR_END: presence

// ANCHOR: yjs
/// A y-websocket endpoint: document `NAME` at `/yjs/NAME`, for any Yjs client
/// (`new WebsocketProvider("ws://host/yjs", "NAME", doc)`).
pub fn yjs_endpoint() -> axum::Router {
    use tidings::axum::{YjsRoute, YjsRouterExt};
    use tidings::sync::{Docs, DocsConfig};
    let docs = Docs::new(DocsConfig::default());
    axum::Router::new().tidings_yjs("/yjs", YjsRoute::new(docs))
}
// ANCHOR_END: yjs
