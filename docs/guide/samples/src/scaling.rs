//! Scaling out: the broker and the store chosen by URL, from `TIDINGS_BROKER` / `TIDINGS_STORE`.

use tidings::prelude::*;

// ANCHOR: from_env
/// A hub on the broker and store the environment names: `memory://` (default), `redis://…`,
/// `postgres://…`, `nats://…`; the store defaults to the broker.
pub async fn hub_from_env() -> Result<Hub, Box<dyn std::error::Error>> {
    let broker = std::env::var("TIDINGS_BROKER").unwrap_or_else(|_| "memory://".into());
    let store = std::env::var("TIDINGS_STORE").ok();
    let hub =
        tidings::backend::connect_hub_with_store(&broker, store.as_deref(), HubConfig::default())
            .await?;
    Ok(hub)
}
// ANCHOR_END: from_env

// ANCHOR: split
/// Fan-out on NATS, history (and numbering) in PostgreSQL.
pub async fn nats_fanout_postgres_history() -> Result<Hub, Box<dyn std::error::Error>> {
    Ok(tidings::backend::connect_hub_with_store(
        "nats://127.0.0.1:4222?prefix=chat",
        Some("postgres://postgres@127.0.0.1/test?schema=chat"),
        HubConfig::default(),
    )
    .await?)
}
// ANCHOR_END: split
