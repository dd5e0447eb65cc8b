//! `POST /control/publish/{channel}`: publishing from server code, for the scenarios; `GET /ws-refused`: a WebSocket endpoint that refuses every upgrade (403), as a proxy that forbids WebSocket does.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use tidings::prelude::*;

pub(crate) fn routes(hub: Hub) -> Router {
    Router::new()
        .route("/control/publish/{channel}", post(publish))
        .route("/ws-refused", get(refuse_upgrade))
        .with_state(hub)
}

/// Publishes the body on `channel`; answers with the message's sequence number.
async fn publish(
    State(hub): State<Hub>,
    Path(channel): Path<String>,
    body: Bytes,
) -> (StatusCode, String) {
    match hub.publish(&channel, body).await {
        Ok(receipt) => (StatusCode::OK, receipt.seq.to_string()),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            format!("publish on {channel}: {e}"),
        ),
    }
}

/// Answers every request (a WebSocket upgrade included) with 403: the adaptive scenario's
/// WebSocket URL, so that the client must fall back to SSE.
async fn refuse_upgrade() -> (StatusCode, &'static str) {
    (
        StatusCode::FORBIDDEN,
        "WebSocket upgrades are not allowed here",
    )
}
