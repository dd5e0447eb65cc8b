//! The PostgreSQL backend against the machine's PostgreSQL: store semantics and migrations, two nodes fanning out 10,000 messages in one order, resume on another node, and a connection cut through the fault proxy.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tidings_broker::{Broker, Delivery, NewMessage, Retention, Store};
use tidings_postgres::{PostgresBackend, PostgresConfig};
use tidings_protocol::{ChannelName, MessageId, SharedMessage};
use tidings_test::FaultProxy;
use tidings_test::services::{postgres_url, unique_name, unreachable};

/// A backend under a fresh prefix, or `None` (skipped loudly) without PostgreSQL.
async fn backend(
    test: &str,
    url: &str,
    prefix: &str,
    retention: Retention,
) -> Option<Arc<PostgresBackend>> {
    let config = PostgresConfig::from_url(url)
        .unwrap()
        .with_schema(prefix)
        .with_retention(retention);
    match tokio::time::timeout(Duration::from_secs(5), PostgresBackend::connect(config)).await {
        Ok(Ok(b)) => Some(b),
        Ok(Err(e)) => {
            unreachable(test, "PostgreSQL", url, &e);
            None
        }
        Err(e) => {
            unreachable(test, "PostgreSQL", url, &e);
            None
        }
    }
}

fn ch(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

/// Collects what a subscription delivers.
#[derive(Default)]
struct Sink(Mutex<Vec<(u64, Bytes)>>);

impl Delivery for Sink {
    fn deliver(&self, m: &Arc<SharedMessage>) {
        let msg = m.message();
        self.0.lock().unwrap().push((msg.seq, msg.payload.clone()));
    }
}

impl Sink {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    async fn wait_for(&self, n: usize, secs: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while self.len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} messages after {secs} s",
                self.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn msg(id: u64, key: Option<&str>) -> NewMessage {
    NewMessage {
        id: MessageId(id),
        dedup: key.map(Arc::from),
        payload: Bytes::from(format!("m{id}")),
    }
}

#[tokio::test]
async fn appends_are_numbered_once_per_key_and_retention_leaves_explicit_gaps() {
    let test = "appends_are_numbered_once_per_key_and_retention_leaves_explicit_gaps";
    let prefix = unique_name("tidings_test");
    let Some(b) = backend(
        test,
        &postgres_url(),
        &prefix,
        Retention::default().with_max_len(3),
    )
    .await
    else {
        return;
    };
    let c = ch("room");
    for n in 1..=5 {
        let a = b.append(&c, msg(n, Some(&format!("k{n}")))).await.unwrap();
        assert_eq!((a.seq, a.duplicate), (n, false));
    }
    let again = b.append(&c, msg(99, Some("k5"))).await.unwrap();
    assert_eq!(
        (again.seq, again.id, again.duplicate),
        (5, MessageId(5), true)
    );
    let r = b.read_after(&c, 0, 100).await.unwrap();
    assert_eq!(r.gap, Some((1, 2)));
    assert_eq!(
        r.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!(
        (r.messages[0].payload.as_ref(), r.messages[0].id),
        (&b"m3"[..], MessageId(3))
    );
    assert_eq!(r.last_seq, 5);
    let r = b.read_after(&c, 4, 10).await.unwrap();
    assert_eq!((r.gap, r.messages.len()), (None, 1));
    assert_eq!(b.read_after(&c, 5, 10).await.unwrap().messages.len(), 0);
    assert_eq!(b.last_seq(&c).await.unwrap(), 5);
    assert_eq!(
        b.read_after(&ch("never"), 0, 10).await.unwrap(),
        Default::default()
    );
    b.drop_schema().await.unwrap();
}

#[tokio::test]
async fn retention_by_age_drops_old_messages() {
    let test = "retention_by_age_drops_old_messages";
    let prefix = unique_name("tidings_test");
    let retention = Retention::default().with_max_age(Duration::from_millis(300));
    let Some(b) = backend(test, &postgres_url(), &prefix, retention).await else {
        return;
    };
    let c = ch("room");
    for n in 1..=3 {
        b.append(&c, msg(n, None)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.trim(&c).await.unwrap(), 3);
    b.append(&c, msg(4, None)).await.unwrap();
    let r = b.read_after(&c, 0, 10).await.unwrap();
    assert_eq!((r.gap, r.messages.len(), r.last_seq), (Some((1, 3)), 1, 4));
    b.drop_schema().await.unwrap();
}

#[tokio::test]
async fn two_nodes_publishing_10000_messages_deliver_them_to_both_exactly_once_in_one_order() {
    let test = "two_nodes_publishing_10000_messages_deliver_them_to_both_exactly_once_in_one_order";
    let prefix = unique_name("tidings_test");
    let url = postgres_url();
    let retention = Retention::default().with_max_len(100_000);
    let Some(a) = backend(test, &url, &prefix, retention).await else {
        return;
    };
    let b = backend(test, &url, &prefix, retention).await.unwrap();
    let c = ch("room");
    let (sa, sb) = (Arc::new(Sink::default()), Arc::new(Sink::default()));
    a.subscribe(&c, None, sa.clone()).await.unwrap();
    b.subscribe(&c, None, sb.clone()).await.unwrap();
    const EACH: usize = 5_000;
    let publish = |node: Arc<PostgresBackend>, tag: &'static str| {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..EACH {
                // A few publishes in flight per node, as a hub with many sessions has.
                node.publish_keyed(&c, Bytes::from(format!("{tag}{i}")), &format!("{tag}:{i}"))
                    .await
                    .unwrap();
            }
        })
    };
    let (pa, pb) = (publish(a.clone(), "a"), publish(b.clone(), "b"));
    pa.await.unwrap();
    pb.await.unwrap();
    sa.wait_for(2 * EACH, 60).await;
    sb.wait_for(2 * EACH, 60).await;
    let (ra, rb) = (sa.0.lock().unwrap().clone(), sb.0.lock().unwrap().clone());
    assert_eq!(ra, rb, "one agreed order on both nodes");
    assert_eq!(
        ra.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=2 * EACH as u64).collect::<Vec<_>>(),
        "gap-free, exactly once"
    );
    let mut payloads: Vec<_> = ra.iter().map(|(_, p)| p.clone()).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 2 * EACH, "every publish once");
    a.drop_schema().await.unwrap();
}

#[tokio::test]
async fn a_subscriber_resuming_on_another_node_gets_exactly_what_it_missed_or_a_gap() {
    let test = "a_subscriber_resuming_on_another_node_gets_exactly_what_it_missed_or_a_gap";
    let prefix = unique_name("tidings_test");
    let url = postgres_url();
    let retention = Retention::default().with_max_len(50);
    let Some(a) = backend(test, &url, &prefix, retention).await else {
        return;
    };
    let b = backend(test, &url, &prefix, retention).await.unwrap();
    let c = ch("room");
    for i in 0..40 {
        a.publish(&c, Bytes::from(format!("{i}"))).await.unwrap();
    }
    let sink = Arc::new(Sink::default());
    let start = b.subscribe(&c, Some(30), sink.clone()).await.unwrap().start;
    assert_eq!((start.position, start.gap), (30, None));
    assert_eq!(
        start.backlog.iter().map(|m| m.seq()).collect::<Vec<_>>(),
        (31..=40).collect::<Vec<_>>()
    );
    a.publish(&c, Bytes::from_static(b"live")).await.unwrap();
    sink.wait_for(1, 10).await;
    assert_eq!(sink.0.lock().unwrap()[0].0, 41);
    for i in 0..60 {
        a.publish(&c, Bytes::from(format!("{i}"))).await.unwrap();
    }
    // Retention kept the last 50 (seqs 52..=101): a resume from 10 sees the gap.
    let start = b
        .subscribe(&c, Some(10), Arc::new(Sink::default()))
        .await
        .unwrap()
        .start;
    assert_eq!(start.gap, Some((11, 51)));
    assert_eq!(start.backlog.first().map(|m| m.seq()), Some(52));
    // A position beyond the store's count: the channel restarted, start over.
    let start = b
        .subscribe(&ch("fresh"), Some(7), Arc::new(Sink::default()))
        .await
        .unwrap()
        .start;
    assert_eq!(start.position, 0);
    a.drop_schema().await.unwrap();
}

/// The `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let rest = rest.rsplit('@').next().unwrap();
    let hostport = rest.split(['/', '?']).next().unwrap();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    hostport.replace("localhost", "127.0.0.1").parse().unwrap()
}

/// `url` with its host and port replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, rest) = match rest.split_once('@') {
        Some((u, r)) => (format!("{u}@"), r),
        None => (String::new(), rest),
    };
    let tail = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    format!("{scheme}://{user}{addr}{tail}")
}

#[tokio::test]
async fn a_cut_connection_gives_typed_errors_loses_nothing_stored_and_recovers_by_itself() {
    let test = "a_cut_connection_gives_typed_errors_loses_nothing_stored_and_recovers_by_itself";
    let prefix = unique_name("tidings_test");
    let url = postgres_url();
    let retention = Retention::default().with_max_len(100_000);
    let Some(direct) = backend(test, &url, &prefix, retention).await else {
        return;
    };
    let proxy = FaultProxy::start(host_port(&url)).await.unwrap();
    let cut_url = through(&url, proxy.addr());
    let cut = backend(test, &cut_url, &prefix, retention).await.unwrap();
    let c = ch("room");
    let sink = Arc::new(Sink::default());
    cut.subscribe(&c, None, sink.clone()).await.unwrap();
    let mut published = Vec::new();
    for i in 0..100 {
        published.push(
            direct
                .publish(&c, Bytes::from(format!("{i}")))
                .await
                .unwrap()
                .seq,
        );
    }
    sink.wait_for(100, 10).await;
    // The backend goes away (for this node): refuse new connections, cut live ones.
    proxy.set_refuse(true);
    proxy.cut_all();
    let err = cut
        .publish_keyed(&c, Bytes::from_static(b"lost?"), "k:1")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "typed: {err}");
    // Meanwhile another node keeps publishing.
    for i in 100..300 {
        published.push(
            direct
                .publish(&c, Bytes::from(format!("{i}")))
                .await
                .unwrap()
                .seq,
        );
    }
    proxy.set_refuse(false);
    // The connection is re-opened on next use; the feed reads on from its last seq.
    sink.wait_for(300, 30).await;
    let got: Vec<u64> = sink.0.lock().unwrap().iter().map(|(s, _)| *s).collect();
    assert_eq!(got, published, "every stored message once, in order");
    // Publishing works again through the same backend, without a new connect.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let receipt = loop {
        match cut
            .publish_keyed(&c, Bytes::from_static(b"back"), "k:2")
            .await
        {
            Ok(r) => break r,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert!(e.is_unavailable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery: {e}"),
        }
    };
    assert_eq!(receipt.seq, 301);
    direct.drop_schema().await.unwrap();
}

#[tokio::test]
async fn ping_answers_fails_while_the_proxy_cuts_the_link_and_answers_again() {
    let test = "ping_answers_fails_while_the_proxy_cuts_the_link_and_answers_again";
    let prefix = unique_name("tidings_ping");
    let url = postgres_url();
    let proxy = FaultProxy::start(host_port(&url)).await.unwrap();
    let Some(b) = backend(
        test,
        &through(&url, proxy.addr()),
        &prefix,
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
