//! The backend suite: the six scenarios every `Broker` + `Store` backend (Redis, PostgreSQL, NATS) must pass against its real service, written once.
//!
//! A backend's test file implements [`BackendKit`] (how to connect under a
//! fresh name, how to clean up, which URL goes through a proxy) and calls
//! each scenario from a `#[tokio::test]`. A scenario returns early (skipped
//! loudly, or failing under `TIDINGS_REQUIRE_SERVICES=1`) when the service
//! is unreachable, and panics with the reason when a promise is broken.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tidings_broker::{Broker, Delivery, NewMessage, Retention, Store, StoreError};
use tidings_protocol::{ChannelName, MessageId, SharedMessage};

use crate::proxy::FaultProxy;
use crate::services::{unique_name, unreachable};

/// What a backend's tests tell the suite.
#[allow(async_fn_in_trait)]
pub trait BackendKit {
    /// The backend.
    type Backend: Broker + Store;
    /// The service's name, for skip messages (`"Redis"`).
    const SERVICE: &'static str;
    /// The service's URL (from its `TIDINGS_*_URL`).
    fn url(&self) -> String;
    /// The service's default port, for URLs that name none.
    fn default_port(&self) -> u16;
    /// Connects to `url` under the key prefix / schema / stream prefix
    /// `name`, keeping `retention`.
    async fn connect(
        &self,
        url: &str,
        name: &str,
        retention: Retention,
    ) -> Result<Arc<Self::Backend>, StoreError>;
    /// Deletes everything stored under the backend's name.
    async fn cleanup(&self, backend: &Self::Backend);
}

/// `kit`'s backend under `name`, or `None` (skipped loudly) without the service.
pub async fn connect<K: BackendKit>(
    kit: &K,
    test: &str,
    url: &str,
    name: &str,
    retention: Retention,
) -> Option<Arc<K::Backend>> {
    match tokio::time::timeout(Duration::from_secs(10), kit.connect(url, name, retention)).await {
        Ok(Ok(b)) => Some(b),
        Ok(Err(e)) => {
            unreachable(test, K::SERVICE, url, &e);
            None
        }
        Err(e) => {
            unreachable(test, K::SERVICE, url, &e);
            None
        }
    }
}

/// The `host:port` of a `scheme://[user[:pass]@]host[:port][/path][?query]` URL.
pub fn host_port(url: &str, default_port: u16) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap();
    let hostport = hostport.rsplit('@').next().unwrap();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    };
    hostport.replace("localhost", "127.0.0.1").parse().unwrap()
}

/// `url` with its host and port replaced by `addr` (user, path and query kept).
pub fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, rest) = match rest.split_once('@') {
        Some((u, r)) => (format!("{u}@"), r),
        None => (String::new(), rest),
    };
    let tail = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    format!("{scheme}://{user}{addr}{tail}")
}

fn ch(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

/// Collects what a subscription delivers.
#[derive(Default)]
pub struct Sink(pub Mutex<Vec<(u64, Bytes)>>);

impl Delivery for Sink {
    fn deliver(&self, m: &Arc<SharedMessage>) {
        let msg = m.message();
        self.0.lock().unwrap().push((msg.seq, msg.payload.clone()));
    }
}

impl Sink {
    /// Messages received so far.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Whether nothing arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until `n` messages arrived; panics after `secs` seconds.
    pub async fn wait_for(&self, n: usize, secs: u64) {
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

/// Appends are numbered 1, 2, 3, ..., a re-sent key stores nothing and
/// answers with the first seq and id, and a count limit leaves an explicit gap.
pub async fn appends_are_numbered_once_per_key_and_retention_leaves_explicit_gaps<K: BackendKit>(
    kit: &K,
    test: &str,
) {
    let name = unique_name("tidings_test");
    let retention = Retention::default().with_max_len(3);
    let Some(b) = connect(kit, test, &kit.url(), &name, retention).await else {
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
    kit.cleanup(&b).await;
}

/// Messages older than the age limit go (by `trim`, or by the backend on
/// its own), leaving an explicit gap; the numbering goes on.
pub async fn retention_by_age_drops_old_messages<K: BackendKit>(kit: &K, test: &str) {
    let name = unique_name("tidings_test");
    let retention = Retention::default().with_max_age(Duration::from_millis(300));
    let Some(b) = connect(kit, test, &kit.url(), &name, retention).await else {
        return;
    };
    let c = ch("room");
    for n in 1..=3 {
        b.append(&c, msg(n, None)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Redis and PostgreSQL drop them now; JetStream may have done it itself.
    assert!(b.trim(&c).await.unwrap() <= 3);
    b.append(&c, msg(4, None)).await.unwrap();
    let r = b.read_after(&c, 0, 10).await.unwrap();
    assert_eq!((r.gap, r.messages.len(), r.last_seq), (Some((1, 3)), 1, 4));
    kit.cleanup(&b).await;
}

/// Two backends (two nodes) publish 5,000 messages each on one channel under
/// idempotency keys; both nodes' subscribers get all 10,000, gap-free, once,
/// in the same order.
pub async fn two_nodes_publishing_10000_messages_deliver_them_to_both_exactly_once_in_one_order<
    K: BackendKit,
>(
    kit: &K,
    test: &str,
    each: usize,
) {
    let name = unique_name("tidings_test");
    let url = kit.url();
    let retention = Retention::default().with_max_len(100_000);
    let Some(a) = connect(kit, test, &url, &name, retention).await else {
        return;
    };
    let b = connect(kit, test, &url, &name, retention).await.unwrap();
    let c = ch("room");
    let (sa, sb) = (Arc::new(Sink::default()), Arc::new(Sink::default()));
    a.subscribe(&c, None, sa.clone()).await.unwrap();
    b.subscribe(&c, None, sb.clone()).await.unwrap();
    let publish = |node: Arc<K::Backend>, tag: &'static str| {
        let c = c.clone();
        tokio::spawn(async move {
            for i in 0..each {
                node.publish_keyed(&c, Bytes::from(format!("{tag}{i}")), &format!("{tag}:{i}"))
                    .await
                    .unwrap();
            }
        })
    };
    let (pa, pb) = (publish(a.clone(), "a"), publish(b.clone(), "b"));
    pa.await.unwrap();
    pb.await.unwrap();
    sa.wait_for(2 * each, 60).await;
    sb.wait_for(2 * each, 60).await;
    let (ra, rb) = (sa.0.lock().unwrap().clone(), sb.0.lock().unwrap().clone());
    assert_eq!(ra, rb, "one agreed order on both nodes");
    assert_eq!(
        ra.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=2 * each as u64).collect::<Vec<_>>(),
        "gap-free, exactly once"
    );
    let mut payloads: Vec<_> = ra.iter().map(|(_, p)| p.clone()).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 2 * each, "every publish once");
    kit.cleanup(&a).await;
}

/// A subscriber on node B resuming after seq 30 of messages node A
/// published gets 31.. then live ones; after retention, a resume from an
/// old seq sees the gap; a position beyond the channel's end starts over.
pub async fn a_subscriber_resuming_on_another_node_gets_exactly_what_it_missed_or_a_gap<
    K: BackendKit,
>(
    kit: &K,
    test: &str,
) {
    let name = unique_name("tidings_test");
    let url = kit.url();
    let retention = Retention::default().with_max_len(50);
    let Some(a) = connect(kit, test, &url, &name, retention).await else {
        return;
    };
    let b = connect(kit, test, &url, &name, retention).await.unwrap();
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
    // A position beyond the channel's end: the channel restarted, start over.
    let start = b
        .subscribe(&ch("fresh"), Some(7), Arc::new(Sink::default()))
        .await
        .unwrap()
        .start;
    assert_eq!(start.position, 0);
    kit.cleanup(&a).await;
}

/// The proxy cuts one node's link to the service (and refuses new
/// connections) mid-stream: its publish fails typed (`Unavailable`), another
/// node keeps publishing, and once the link is back the node's subscriber
/// gets every stored message once in order and its publishes work again,
/// without a new connect. A publish refused during the cut and re-sent
/// under its key is stored exactly once.
pub async fn a_cut_connection_gives_typed_errors_loses_nothing_stored_and_recovers_by_itself<
    K: BackendKit,
>(
    kit: &K,
    test: &str,
) {
    let name = unique_name("tidings_test");
    let url = kit.url();
    let retention = Retention::default().with_max_len(100_000);
    let Some(direct) = connect(kit, test, &url, &name, retention).await else {
        return;
    };
    let proxy = FaultProxy::start(host_port(&url, kit.default_port()))
        .await
        .unwrap();
    let cut = connect(kit, test, &through(&url, proxy.addr()), &name, retention)
        .await
        .unwrap();
    let c = ch("room");
    let sink = Arc::new(Sink::default());
    cut.subscribe(&c, None, sink.clone()).await.unwrap();
    let mut published = 0;
    for i in 0..100 {
        direct
            .publish(&c, Bytes::from(format!("{i}")))
            .await
            .unwrap();
        published += 1;
    }
    sink.wait_for(100, 10).await;
    // The service goes away (for this node): refuse new connections, cut live ones.
    proxy.set_refuse(true);
    proxy.cut_all();
    let err = cut
        .publish_keyed(&c, Bytes::from_static(b"lost?"), "k:1")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "typed: {err}");
    // Meanwhile another node keeps publishing.
    for i in 100..300 {
        direct
            .publish(&c, Bytes::from(format!("{i}")))
            .await
            .unwrap();
        published += 1;
    }
    proxy.set_refuse(false);
    // Publishing works again through the same backend, without a new connect;
    // the refused publish, re-sent under its key, is stored once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match cut
            .publish_keyed(&c, Bytes::from_static(b"lost?"), "k:1")
            .await
        {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() < deadline => {
                assert!(e.is_unavailable(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery: {e}"),
        }
    }
    let back = cut
        .publish_keyed(&c, Bytes::from_static(b"back"), "k:2")
        .await
        .unwrap();
    assert_eq!(back.seq, published + 2, "the refused one once, then this");
    // The feed reconnected by itself and read on from its last seq.
    sink.wait_for(published as usize + 2, 30).await;
    let log = direct.read_after(&c, 0, 1000).await.unwrap().messages;
    let log: Vec<(u64, Bytes)> = log.into_iter().map(|m| (m.seq, m.payload)).collect();
    assert_eq!(
        log.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=published + 2).collect::<Vec<_>>(),
        "gap-free"
    );
    let lost = log.iter().filter(|(_, p)| p.as_ref() == b"lost?").count();
    assert_eq!(
        lost, 1,
        "a refused publish re-sent under its key is stored once"
    );
    assert_eq!(
        *sink.0.lock().unwrap(),
        log,
        "every stored message delivered once, in order"
    );
    kit.cleanup(&direct).await;
}

/// `trim_through` drops a prefix by position (what document compaction
/// does after a snapshot): the dropped range reads as a gap, the rest is
/// untouched, the numbering goes on, and a position past the end drops
/// everything without moving the numbering.
pub async fn trim_through_drops_a_prefix_by_position_and_the_numbering_goes_on<K: BackendKit>(
    kit: &K,
    test: &str,
) {
    let name = unique_name("tidings_test");
    let retention = Retention::default().with_max_len(1000);
    let Some(b) = connect(kit, test, &kit.url(), &name, retention).await else {
        return;
    };
    let c = ch("doc");
    assert_eq!(
        b.trim_through(&c, 5).await.unwrap(),
        0,
        "nothing stored yet"
    );
    for n in 1..=10 {
        b.append(&c, msg(n, None)).await.unwrap();
    }
    assert_eq!(b.trim_through(&c, 4).await.unwrap(), 4);
    assert_eq!(b.trim_through(&c, 4).await.unwrap(), 0, "idempotent");
    let r = b.read_after(&c, 0, 100).await.unwrap();
    assert_eq!((r.gap, r.last_seq), (Some((1, 4)), 10));
    assert_eq!(
        r.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (5..=10).collect::<Vec<_>>()
    );
    assert_eq!(r.messages[0].payload.as_ref(), b"m5");
    let r = b.read_after(&c, 4, 100).await.unwrap();
    assert_eq!(
        (r.gap, r.messages.len()),
        (None, 6),
        "no gap after the trim point"
    );
    assert_eq!(
        b.trim_through(&c, 1_000).await.unwrap(),
        6,
        "past the end: all"
    );
    assert_eq!(b.last_seq(&c).await.unwrap(), 10, "the numbering stays");
    let a = b.append(&c, msg(11, None)).await.unwrap();
    assert_eq!(a.seq, 11, "and goes on");
    let r = b.read_after(&c, 0, 100).await.unwrap();
    assert_eq!(
        (r.gap, r.messages.iter().map(|m| m.seq).collect::<Vec<_>>()),
        (Some((1, 10)), vec![11])
    );
    kit.cleanup(&b).await;
}
