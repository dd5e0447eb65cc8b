//! Backends chosen by URL: `connect_broker`, `connect_store`, `connect_hub` and `connect_hub_with_store` (a store apart from the broker) for `memory://`, `redis://`, `postgres://` and `nats://`, each behind its feature.

use std::sync::Arc;

use tidings_broker::{Broker, MemoryStore, Store, StoreError};
use tidings_channels::{Hub, HubConfig, MemoryBroker, StoreBroker};

#[cfg(feature = "redis")]
#[doc(inline)]
pub use tidings_redis as redis;

#[cfg(feature = "postgres")]
#[doc(inline)]
pub use tidings_postgres as postgres;

#[cfg(feature = "nats")]
#[doc(inline)]
pub use tidings_nats as nats;

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

#[allow(dead_code)] // unused when every backend feature is on
fn disabled(url: &str, feature: &'static str) -> ConnectError {
    ConnectError::Disabled {
        scheme: scheme(url).to_owned(),
        feature,
    }
}

/// Connects a broker by URL: `memory://` (the in-process [`MemoryBroker`]),
/// `redis://…` (feature `redis`), `postgres://…` (feature `postgres`),
/// `nats://…` (feature `nats`).
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
        #[cfg(feature = "nats")]
        "nats" | "tls" => Ok(tidings_nats::NatsBackend::connect_url(url).await?),
        #[cfg(not(feature = "nats"))]
        "nats" | "tls" => Err(disabled(url, "nats")),
        _ => Err(ConnectError::UnknownScheme(url.to_owned())),
    }
}

/// Connects a store by URL: `memory://` ([`MemoryStore`]), `redis://…`
/// (feature `redis`), `postgres://…` (feature `postgres`),
/// `nats://…` (feature `nats`).
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
        #[cfg(feature = "nats")]
        "nats" | "tls" => Ok(tidings_nats::NatsBackend::connect_url(url).await?),
        #[cfg(not(feature = "nats"))]
        "nats" | "tls" => Err(disabled(url, "nats")),
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

/// A [`Hub`] whose history lives in the store at `store_url` (what
/// `TIDINGS_STORE` names) and whose nodes tell each other through the
/// broker at `broker_url` (`TIDINGS_BROKER`).
///
/// * `store_url` `None`, or equal to `broker_url`: [`connect_hub`] — a
///   networked broker (Redis, PostgreSQL, NATS) keeps the history itself.
/// * Otherwise a [`StoreBroker`]: the store numbers each channel's messages
///   and keeps them (so seqs stay gap-free across nodes); `broker_url`
///   carries only wake-ups between nodes, or nothing with `memory://` (one
///   node whose history survives a restart, e.g. `TIDINGS_STORE=postgres://…`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use tidings::backend::connect_hub_with_store;
/// let hub = connect_hub_with_store("memory://", Some("memory://"), Default::default()).await.unwrap();
/// # drop(hub); }
/// ```
pub async fn connect_hub_with_store(
    broker_url: &str,
    store_url: Option<&str>,
    config: HubConfig,
) -> Result<Hub, ConnectError> {
    let Some(store_url) = store_url.filter(|s| *s != broker_url) else {
        return connect_hub(broker_url, config).await;
    };
    let store = connect_store(store_url).await?;
    let wake = match scheme(broker_url) {
        "memory" => None,
        _ => Some(connect_broker(broker_url).await?),
    };
    Ok(Hub::with_dyn_broker(
        Arc::new(StoreBroker::new(store, wake)),
        config,
    ))
}
