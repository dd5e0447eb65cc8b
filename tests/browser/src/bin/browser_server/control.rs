//! `POST /control/publish/{channel}`: publishing from server code, for the scenarios.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use tidings::prelude::*;

pub(crate) fn routes(hub: Hub) -> Router {
    Router::new()
        .route("/control/publish/{channel}", post(publish))
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
