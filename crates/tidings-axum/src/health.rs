//! `/healthz` (the process is alive) and `/readyz` (the node should get traffic: not draining, its broker and every added check answer in time).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tidings_channels::{Hub, ReadinessCheck};

/// Health endpoints of a node, mounted with [`HealthRouterExt::tidings_health`]:
///
/// * `GET /healthz` → `200 ok` while the process serves HTTP at all;
/// * `GET /readyz` → `200 ready` when the hub is not shutting down and its
///   broker ([`tidings_channels::Broker::ping`]) and every [`Self::check`]
///   answer within [`Self::timeout`] (default 2 s); else `503` with
///   `x-tidings-error: not-ready` and one line per failing check.
///
/// ```no_run
/// use std::sync::Arc;
/// use tidings_axum::{Health, HealthRouterExt};
/// use tidings_channels::{Hub, MemoryBroker};
/// let hub = Hub::new(Arc::new(MemoryBroker::default()));
/// let app: axum::Router = axum::Router::new().tidings_health(Health::new(hub));
/// ```
#[derive(Clone)]
pub struct Health {
    hub: Hub,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    timeout: Duration,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field(
                "checks",
                &self
                    .checks
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Health {
    /// Readiness of `hub`: not shutting down, broker answers.
    pub fn new(hub: Hub) -> Self {
        Self {
            hub,
            checks: Vec::new(),
            timeout: Duration::from_secs(2),
        }
    }

    /// Also requires `check` to answer (a store, a database).
    pub fn check(mut self, check: impl ReadinessCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Time each check may take before it counts as failed.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Runs every check; `Err` lists what failed, one per line.
    pub async fn ready(&self) -> Result<(), String> {
        let mut failed = Vec::new();
        if self.hub.is_shutting_down() {
            failed.push("hub: shutting down".to_string());
        }
        match tokio::time::timeout(self.timeout, self.hub.broker().ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(format!("broker: {e}")),
            Err(_) => failed.push(format!("broker: no answer within {:?}", self.timeout)),
        }
        for c in &self.checks {
            match tokio::time::timeout(self.timeout, c.check()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed.push(format!("{}: {e}", c.name())),
                Err(_) => failed.push(format!("{}: no answer within {:?}", c.name(), self.timeout)),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("\n"))
        }
    }

    async fn readyz(self) -> Response {
        match self.ready().await {
            Ok(()) => (StatusCode::OK, "ready").into_response(),
            Err(why) => {
                tracing::debug!(%why, "not ready");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("x-tidings-error", "not-ready")],
                    why,
                )
                    .into_response()
            }
        }
    }
}

/// Mounting [`Health`] on a [`Router`].
pub trait HealthRouterExt {
    /// Serves `GET /healthz` and `GET /readyz`.
    fn tidings_health(self, health: Health) -> Self;
}

impl<S: Clone + Send + Sync + 'static> HealthRouterExt for Router<S> {
    fn tidings_health(self, health: Health) -> Self {
        self.route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(move || health.clone().readyz()))
    }
}
