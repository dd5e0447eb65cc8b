//! Backends chosen by URL: `connect_broker`, `connect_store` and `connect_hub` for `memory://`, `redis://`, `postgres://` and `nats://`, each behind its feature.

use std::sync::Arc;

use tidings_broker::{Broker, MemoryStore, Store, StoreError};
use tidings_channels::{Hub, HubConfig, MemoryBroker};

#[cfg(feature = "redis")]
#[doc(inline)]
pub use tidings_redis as redis;

#[cfg(feature = "postgres")]
#[doc(inline)]
pub use tidings_postgres as postgres;

/// A backend URL could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL's scheme names no backend tidings knows.
    #[error("unknown backend URL scheme in {0:?}: use memory://, redis://, postgres:// or nats://")]
    UnknownScheme(String),
    /// The backend exists but this build left it out.
    #[error(
        "the {scheme}:// backend is not compiled in: enable the `{feature}` feature of tidings"
    )]
    Disabled {
        /// The URL's scheme.
        scheme: String,
        /// The feature that enables it.
        feature: &'static str,
    },
    /// The backend is configured wrongly or unreachable.
    #[error(transparent)]
    Backend(#[from] StoreError),
}

impl ConnectError {
    /// Whether the backend was unreachable (retrying later may work).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Backend(e) if e.is_unavailable())
    }
}

fn scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(s, _)| s)
}

fn disabled(url: &str, feature: &'static str) -> ConnectError {
    ConnectError::Disabled {
        scheme: scheme(url).to_owned(),
        feature,
    }
}

/// Connects a broker by URL: `memory://` (the in-process [`MemoryBroker`]),
/// `redis://…` (feature `redis`), `postgres://…` (feature `postgres`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let broker = tidings::backend::connect_broker("memory://").await.unwrap();
/// let Err(err) = tidings::backend::connect_broker("smtp://x").await else { panic!() };
/// assert!(err.to_string().contains("unknown backend URL scheme"));
/// # drop(broker); }
/// ```
pub async fn connect_broker(url: &str) -> Result<Arc<dyn Broker>, ConnectError> {
    match scheme(url) {
        "memory" => Ok(Arc::new(MemoryBroker::default())),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(tidings_redis::RedisBackend::connect_url(url).await?),
        #[cfg(not(feature = "redis"))]
        "redis" | "rediss" => Err(disabled(url, "redis")),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(tidings_postgres::PostgresBackend::connect_url(url).await?),
        #[cfg(not(feature = "postgres"))]
        "postgres" | "postgresql" => Err(disabled(url, "postgres")),
        "nats" => Err(disabled(url, "nats")),
        _ => Err(ConnectError::UnknownScheme(url.to_owned())),
    }
}

/// Connects a store by URL: `memory://` ([`MemoryStore`]), `redis://…`
/// (feature `redis`), `postgres://…` (feature `postgres`).
pub async fn connect_store(url: &str) -> Result<Arc<dyn Store>, ConnectError> {
    match scheme(url) {
        "memory" => Ok(Arc::new(MemoryStore::default())),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => Ok(tidings_redis::RedisBackend::connect_url(url).await?),
        #[cfg(not(feature = "redis"))]
        "redis" | "rediss" => Err(disabled(url, "redis")),
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => Ok(tidings_postgres::PostgresBackend::connect_url(url).await?),
        #[cfg(not(feature = "postgres"))]
        "postgres" | "postgresql" => Err(disabled(url, "postgres")),
        "nats" => Err(disabled(url, "nats")),
        _ => Err(ConnectError::UnknownScheme(url.to_owned())),
    }
}

/// A [`Hub`] on the broker at `url`. With `memory://` the hub gets the
/// [`MemoryBroker`] by type, so it keeps its synchronous publish path (what
/// [`connect_broker`]'s `Arc<dyn Broker>` would lose); with a durable
/// backend the hub acknowledges client publishes once stored.
pub async fn connect_hub(url: &str, config: HubConfig) -> Result<Hub, ConnectError> {
    if scheme(url) == "memory" {
        return Ok(Hub::with_config(Arc::new(MemoryBroker::default()), config));
    }
    Ok(Hub::with_dyn_broker(connect_broker(url).await?, config))
}
