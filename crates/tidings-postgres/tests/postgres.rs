//! The PostgreSQL backend against the machine's PostgreSQL (migrations run on each connect): the shared backend suite (`tidings_test::backends`): store semantics, two nodes fanning out 10,000 messages in one order, resume on another node, and a connection cut through the fault proxy.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use tidings_broker::{Retention, StoreError};
use tidings_postgres::{PostgresBackend, PostgresConfig};
use tidings_test::backends::{self as suite, BackendKit};
use tidings_test::services::postgres_url;

struct Kit;

impl BackendKit for Kit {
    type Backend = PostgresBackend;
    const SERVICE: &'static str = "PostgreSQL";
    fn url(&self) -> String {
        postgres_url()
    }
    fn default_port(&self) -> u16 {
        5432
    }
    async fn connect(
        &self,
        url: &str,
        name: &str,
        retention: Retention,
    ) -> Result<Arc<PostgresBackend>, StoreError> {
        let config = PostgresConfig::from_url(url)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .with_schema(name)
            .with_retention(retention);
        PostgresBackend::connect(config).await
    }
    async fn cleanup(&self, backend: &PostgresBackend) {
        backend.drop_schema().await.unwrap();
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
async fn ping_answers_fails_while_the_proxy_cuts_the_link_and_answers_again() {
    use std::time::Duration;
    use tidings_broker::Broker;
    use tidings_test::backends::{host_port, through};
    let test = "ping_answers_fails_while_the_proxy_cuts_the_link_and_answers_again";
    let url = Kit.url();
    let proxy = tidings_test::FaultProxy::start(host_port(&url, 5432))
        .await
        .unwrap();
    let name = tidings_test::services::unique_name("tidings_ping");
    let Some(b) = suite::connect(
        &Kit,
        test,
        &through(&url, proxy.addr()),
        &name,
        Retention::default(),
    )
    .await
    else {
        return;
    };
    b.ping().await.unwrap();
    proxy.set_refuse(true);
    assert!(
        proxy.cut_all() >= 1,
        "the backend's connections go through the proxy"
    );
    let err = b.ping().await.unwrap_err();
    assert!(err.is_unavailable(), "typed: {err}");
    proxy.set_refuse(false);
    // The shared connection is re-opened on next use (after its backoff).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Err(e) = b.ping().await {
        assert!(tokio::time::Instant::now() < deadline, "no recovery: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.drop_schema().await.unwrap();
}

#[tokio::test]
async fn trim_through_drops_a_prefix_by_position_and_the_numbering_goes_on() {
    suite::trim_through_drops_a_prefix_by_position_and_the_numbering_goes_on(
        &Kit,
        "trim_through_drops_a_prefix_by_position_and_the_numbering_goes_on",
    )
    .await;
}
