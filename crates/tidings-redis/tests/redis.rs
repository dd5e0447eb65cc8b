//! The Redis backend against the machine's Redis: the shared backend suite (`tidings_test::backends`): store semantics, two nodes fanning out 10,000 messages in one order, resume on another node, and a connection cut through the fault proxy.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tidings_broker::{Retention, StoreError};
use tidings_redis::{RedisBackend, RedisConfig};
use tidings_test::backends::{self as suite, BackendKit};
use tidings_test::services::redis_url;

struct Kit;

impl BackendKit for Kit {
    type Backend = RedisBackend;
    const SERVICE: &'static str = "Redis";
    fn url(&self) -> String {
        redis_url()
    }
    fn default_port(&self) -> u16 {
        6379
    }
    async fn connect(
        &self,
        url: &str,
        name: &str,
        retention: Retention,
    ) -> Result<Arc<RedisBackend>, StoreError> {
        let config = RedisConfig::from_url(url)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .with_prefix(name)
            .with_retention(retention);
        RedisBackend::connect(config).await
    }
    async fn cleanup(&self, backend: &RedisBackend) {
        backend.purge().await.unwrap();
    }
}

#[tokio::test]
async fn appends_are_numbered_once_per_key_and_retention_leaves_explicit_gaps() {
    suite::appends_are_numbered_once_per_key_and_retention_leaves_explicit_gaps(
        &Kit,
        "appends_are_numbered_once_per_key_and_retention_leaves_explicit_gaps",
    )
    .await;
}

#[tokio::test]
async fn retention_by_age_drops_old_messages() {
    suite::retention_by_age_drops_old_messages(&Kit, "retention_by_age_drops_old_messages").await;
}

#[tokio::test]
async fn two_nodes_publishing_10000_messages_deliver_them_to_both_exactly_once_in_one_order() {
    suite::two_nodes_publishing_10000_messages_deliver_them_to_both_exactly_once_in_one_order(
        &Kit,
        "two_nodes_publishing_10000_messages_deliver_them_to_both_exactly_once_in_one_order",
        5_000,
    )
    .await;
}

#[tokio::test]
async fn a_subscriber_resuming_on_another_node_gets_exactly_what_it_missed_or_a_gap() {
    suite::a_subscriber_resuming_on_another_node_gets_exactly_what_it_missed_or_a_gap(
        &Kit,
        "a_subscriber_resuming_on_another_node_gets_exactly_what_it_missed_or_a_gap",
    )
    .await;
}

#[tokio::test]
async fn a_cut_connection_gives_typed_errors_loses_nothing_stored_and_recovers_by_itself() {
    suite::a_cut_connection_gives_typed_errors_loses_nothing_stored_and_recovers_by_itself(
        &Kit,
        "a_cut_connection_gives_typed_errors_loses_nothing_stored_and_recovers_by_itself",
    )
    .await;
}

#[tokio::test]
async fn trim_through_drops_a_prefix_by_position_and_the_numbering_goes_on() {
    suite::trim_through_drops_a_prefix_by_position_and_the_numbering_goes_on(
        &Kit,
        "trim_through_drops_a_prefix_by_position_and_the_numbering_goes_on",
    )
    .await;
}
