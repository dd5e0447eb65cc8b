//! The collaborative editor of the chat example: presence and the shared documents plugged into the chat's hub, the `/editor` page (server-rendered Leptos, hydrated by the same bundle) and the y-websocket endpoint `/yjs/NAME` for standard Yjs clients.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use tidings::axum::{DocsExtension, YjsRoute, YjsRouterExt};
use tidings::prelude::*;
use tidings::presence::{Presence, PresenceConfig, PresenceStartError};
use tidings::sync::{Docs, DocsConfig};

/// Plugs presence (rooms `room:*`, watched on `presence:room:*`) and the documents (channels
/// `doc:NAME` on the session) into `hub`; call before serving connections. The documents are
/// in memory: they last as long as the process.
///
/// # Errors
/// When presence cannot subscribe to its node-sync channel on the hub's broker.
pub async fn attach_collab(hub: &Hub) -> Result<Docs, PresenceStartError> {
    Presence::attach(hub, PresenceConfig::default()).await?;
    let docs = Docs::new(DocsConfig::default());
    DocsExtension::attach(hub, docs.clone());
    Ok(docs)
}

/// `GET /editor` (the editor page) and `/yjs/NAME` (document `NAME` of `docs` for standard Yjs
/// clients: the same document the page edits over the tidings session is `/yjs/editor`).
pub fn collab_routes(docs: Docs) -> Router {
    Router::new()
        .route("/editor", get(editor_index))
        .tidings_yjs("/yjs", YjsRoute::new(docs))
}

async fn editor_index() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(tidings_chat_web::render_editor_page()),
    )
}
