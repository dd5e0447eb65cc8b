//! Operations: health and readiness, Prometheus metrics, and a graceful shutdown that drains.

use std::time::Duration;

use tidings::axum::{Health, HealthRouterExt, Metrics, MetricsRouterExt, Server};
use tidings::prelude::*;

// ANCHOR: routes
/// `/healthz` (alive), `/readyz` (ready: not shutting down, broker reachable) and `/metrics`.
pub fn observable(hub: Hub) -> axum::Router {
    axum::Router::new()
        .tidings("/ws", hub.clone())
        .tidings_health(Health::new(hub.clone()))
        .tidings_metrics(Metrics::new(hub))
}
// ANCHOR_END: routes

// ANCHOR: shutdown
/// Serves until Ctrl-C, then: every session gets `Close` (1001) and reconnects elsewhere,
/// requests in flight finish, and the process waits up to 5 s for the connections to end.
pub async fn run(hub: Hub, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let stopping = hub.clone();
    Server::new()
        .serve(listener, observable(hub.clone()), async move {
            let _ = tokio::signal::ctrl_c().await;
            stopping.shutdown("server stopping");
        })
        .await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), hub.idle()).await;
    Ok(())
}
// ANCHOR_END: shutdown
