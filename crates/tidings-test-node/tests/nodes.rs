//! Server processes on Redis, PostgreSQL and NATS: two nodes exchanging 10,000 messages through real clients, a node SIGKILLed and restarted mid-stream, a client moved from a killed node to another, a cut backend link, a store apart from the broker (`--store`), and a publish re-sent after its node died stored once (publisher ids).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tidings::protocol::ClientEvent;
use tidings::ws::Client;
use tidings_broker::{Broker, Retention};
use tidings_nats::{NatsBackend, NatsConfig};
use tidings_postgres::{PostgresBackend, PostgresConfig};
use tidings_protocol::ChannelName;
use tidings_redis::{RedisBackend, RedisConfig};
use tidings_test::services::{nats_url, postgres_url, redis_url, unique_name, unreachable};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running node and the address it serves.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    async fn start(listen: &str, broker: &str) -> Node {
        Self::start_with(listen, broker, None).await
    }

    /// A node whose history lives in the store at `store` (`--store`).
    async fn start_with(listen: &str, broker: &str, store: Option<&str>) -> Node {
        let mut args = vec!["--listen", listen, "--broker", broker];
        if let Some(store) = store {
            args.extend(["--store", store]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings-test-node"))
            .args(args)
            .env_remove("TIDINGS_STORE")
            .env_remove("TIDINGS_BROKER")
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("node started in time")
            .unwrap()
            .expect("node printed its address");
        let addr = line
            .trim_start_matches("listening ws://")
            .trim_end_matches("/ws")
            .parse()
            .unwrap();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node { child, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGKILL: no goodbye to anyone.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// A prefix of its own under the test's Redis, or `None` (skipped loudly).
async fn redis(test: &str) -> Option<(String, Arc<RedisBackend>)> {
    let url = redis_url();
    let prefix = unique_name("tidings_nodes");
    let config = RedisConfig::from_url(&url)
        .unwrap()
        .with_prefix(prefix.clone())
        .with_retention(Retention::default().with_max_len(100_000));
    match tokio::time::timeout(Duration::from_secs(5), RedisBackend::connect(config)).await {
        Ok(Ok(b)) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            Some((format!("{url}{sep}prefix={prefix}&max_len=100000"), b))
        }
        Ok(Err(e)) => {
            unreachable(test, "Redis", &url, &e);
            None
        }
        Err(e) => {
            unreachable(test, "Redis", &url, &e);
            None
        }
    }
}

async fn subscribed(c: &Client) {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), c.next_event()).await {
            Ok(Some(ClientEvent::Subscribed { .. })) => return,
            Ok(Some(_)) => {}
            other => panic!("no subscription: {other:?}"),
        }
    }
}

/// Reads messages until `n` arrived after seq `after`; panics on a gap, a
/// duplicate or an out-of-order seq. Returns `(seq, payload)`s.
async fn collect(c: &Client, after: u64, n: usize, secs: u64) -> Vec<(u64, Bytes)> {
    let mut got: Vec<(u64, Bytes)> = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while got.len() < n {
        let ev = tokio::time::timeout_at(deadline, c.next_event())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} messages in {secs} s", got.len()));
        match ev.expect("client open") {
            ClientEvent::Message(m) => {
                let expected = got.last().map_or(after + 1, |(s, _)| s + 1);
                assert_eq!(m.seq, expected, "in order, exactly once");
                got.push((m.seq, m.payload.clone()));
            }
            ClientEvent::Gap(g) => panic!("a gap: {g:?}"),
            _ => {}
        }
    }
    got
}

/// Publishes `n` messages tagged `tag`, waiting when the client's queue is full.
async fn publish_all(c: &Client, tag: &str, n: usize) {
    for i in 0..n {
        loop {
            match c.publish("room", format!("{tag}{i}")) {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

/// Two server processes on `broker` (history in `store`, else the
/// broker's), a client on each; `each` messages published from both sides
/// arrive at both clients exactly once, in one agreed order.
async fn two_nodes_exchange(broker: &str, store: Option<&str>, each: usize, secs: u64) {
    let (a, b) = (
        Node::start_with("127.0.0.1:0", broker, store).await,
        Node::start_with("127.0.0.1:0", broker, store).await,
    );
    let ca = Client::builder(a.url()).connect().unwrap();
    let cb = Client::builder(b.url()).connect().unwrap();
    ca.subscribe("room").unwrap();
    cb.subscribe("room").unwrap();
    subscribed(&ca).await;
    subscribed(&cb).await;
    let (ca, cb) = (Arc::new(ca), Arc::new(cb));
    let (pa, pb) = (ca.clone(), cb.clone());
    let ta = tokio::spawn(async move { publish_all(&pa, "a", each).await });
    let tb = tokio::spawn(async move { publish_all(&pb, "b", each).await });
    let (ra, rb) = tokio::join!(
        collect(&ca, 0, 2 * each, secs),
        collect(&cb, 0, 2 * each, secs)
    );
    ta.await.unwrap();
    tb.await.unwrap();
    assert_eq!(ra, rb, "one agreed order");
    let mut payloads: Vec<_> = ra.into_iter().map(|(_, p)| p).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 2 * each, "every publish exactly once");
    a.kill().await;
    b.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_redis_deliver_10000_messages_from_both_sides_to_both_clients_once_in_one_order()
 {
    let test = "two_nodes_on_redis_deliver_10000_messages_from_both_sides_to_both_clients_once_in_one_order";
    let Some((broker, backend)) = redis(test).await else {
        return;
    };
    two_nodes_exchange(&broker, None, 5_000, 120).await;
    backend.purge().await.unwrap();
}

/// Publishes `n` messages from the test process (another node, in effect).
fn publisher<B: Broker>(backend: Arc<B>, n: usize) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let room = ChannelName::new("room").unwrap();
        for i in 0..n {
            backend
                .publish(&room, Bytes::from(format!("m{i}")))
                .await
                .unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
}

/// A node on `broker` (history in `store`) SIGKILLed mid-stream while
/// `backend` (another node, in effect) publishes `n` messages, and restarted
/// on the same port: its client recovers every message once, in order.
async fn sigkill_and_restart<B: Broker>(
    broker: &str,
    store: Option<&str>,
    backend: Arc<B>,
    n: usize,
    first: usize,
    secs: u64,
) {
    let node = Node::start_with("127.0.0.1:0", broker, store).await;
    let addr = node.addr;
    let client = Client::builder(node.url()).connect().unwrap();
    client.subscribe("room").unwrap();
    subscribed(&client).await;
    let publishing = publisher(backend, n);
    let before = collect(&client, 0, first, secs).await;
    node.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = Node::start_with(&addr.to_string(), broker, store).await;
    // The client reconnects by itself (a fresh session on the new process)
    // and subscribes after its last seq: history fills in the rest.
    let rest = collect(&client, first as u64, n - first, secs).await;
    publishing.await.unwrap();
    assert_eq!(
        before.last().unwrap().0 + 1,
        rest[0].0,
        "continues where it was"
    );
    let all: Vec<Bytes> = before.into_iter().chain(rest).map(|(_, p)| p).collect();
    let expected: Vec<Bytes> = (0..n).map(|i| Bytes::from(format!("m{i}"))).collect();
    assert_eq!(all, expected, "every message once, in order");
    node.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sigkilled_mid_stream_and_restarted_on_redis_lets_its_client_recover_every_message()
{
    let test =
        "a_node_sigkilled_mid_stream_and_restarted_on_redis_lets_its_client_recover_every_message";
    let Some((broker, backend)) = redis(test).await else {
        return;
    };
    sigkill_and_restart(&broker, None, backend.clone(), 3_000, 500, 60).await;
    backend.purge().await.unwrap();
}

/// A TCP forwarder whose upstream port can be switched (a load balancer
/// sending the client to another node).
async fn switchable(upstream: u16) -> (SocketAddr, Arc<AtomicU16>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let port = Arc::new(AtomicU16::new(upstream));
    let current = port.clone();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let to = current.load(Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    (addr, port)
}

/// A client behind a switchable front, moved from node A to node B (A
/// SIGKILLed) while `backend` publishes `n` messages: exactly once, in order.
async fn moved_client<B: Broker>(broker: &str, backend: Arc<B>, n: usize) {
    let (a, b) = (
        Node::start("127.0.0.1:0", broker).await,
        Node::start("127.0.0.1:0", broker).await,
    );
    let (front, upstream) = switchable(a.addr.port()).await;
    let client = Client::builder(format!("ws://{front}/ws"))
        .connect()
        .unwrap();
    client.subscribe("room").unwrap();
    subscribed(&client).await;
    let publishing = publisher(backend, n);
    let first = collect(&client, 0, 700, 30).await;
    upstream.store(b.addr.port(), Ordering::SeqCst);
    a.kill().await;
    let rest = collect(&client, 700, n - 700, 60).await;
    publishing.await.unwrap();
    let all: Vec<Bytes> = first.into_iter().chain(rest).map(|(_, p)| p).collect();
    let expected: Vec<Bytes> = (0..n).map(|i| Bytes::from(format!("m{i}"))).collect();
    assert_eq!(all, expected, "every message once, in order");
    b.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moved_from_a_killed_node_to_another_gets_every_message_once_in_order() {
    let test = "a_client_moved_from_a_killed_node_to_another_gets_every_message_once_in_order";
    let Some((broker, backend)) = redis(test).await else {
        return;
    };
    moved_client(&broker, backend.clone(), 3_000).await;
    backend.purge().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_redis_link_refuses_unstored_publishes_by_name_loses_nothing_acked_and_recovers() {
    let test =
        "a_cut_redis_link_refuses_unstored_publishes_by_name_loses_nothing_acked_and_recovers";
    let Some((_, direct)) = redis(test).await else {
        return;
    };
    let redis_addr: SocketAddr = {
        let url = redis_url();
        let hostport = url
            .trim_start_matches("redis://")
            .split(['/', '?'])
            .next()
            .unwrap()
            .to_owned();
        let hostport = if hostport.contains(':') {
            hostport
        } else {
            format!("{hostport}:6379")
        };
        tokio::net::lookup_host(hostport)
            .await
            .unwrap()
            .next()
            .unwrap()
    };
    let proxy = tidings_test::FaultProxy::start(redis_addr).await.unwrap();
    let config = RedisConfig::from_url(&format!("redis://{}", proxy.addr()))
        .unwrap()
        .with_prefix(direct.config().prefix.clone())
        .with_publish_timeout(Duration::from_millis(300));
    let backend = RedisBackend::connect(config).await.unwrap();
    // The node in this process: a hub on the Redis link the proxy can cut.
    let hub = tidings::channels::Hub::new(backend);
    assert!(hub.config().session.ack_after_store);
    use tidings::axum::RouterExt;
    let app = axum::Router::new().tidings("/ws", hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    let mut acked = 0u64;
    let mut refused = Vec::new();
    let mut sent = Vec::new();
    let events = |acked: &mut u64, refused: &mut Vec<u64>, ev: ClientEvent| match ev {
        ClientEvent::PublishAcked { seq } => *acked = (*acked).max(seq),
        ClientEvent::PublishRefused { seq, code, .. } => {
            assert_eq!(code.as_str(), "unavailable", "refused as retryable");
            refused.push(seq);
        }
        _ => {}
    };
    for i in 0..200u64 {
        if i == 100 {
            // Redis goes away for this node mid-stream.
            proxy.set_refuse(true);
            proxy.cut_all();
        }
        if i == 150 {
            proxy.set_refuse(false);
        }
        let seq = client.publish("room", format!("p{i}")).unwrap();
        sent.push((seq, format!("p{i}")));
        tokio::time::sleep(Duration::from_millis(if (100..150).contains(&i) {
            20
        } else {
            2
        }))
        .await;
        while let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(1), client.next_event()).await
        {
            events(&mut acked, &mut refused, ev);
        }
    }
    // Every publish is settled: acknowledged or refused by name.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.unacked() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} publishes never settled",
            client.unacked()
        );
        if let Ok(Some(ev)) =
            tokio::time::timeout(Duration::from_millis(100), client.next_event()).await
        {
            events(&mut acked, &mut refused, ev);
        }
    }
    assert!(!refused.is_empty(), "the cut refused some publishes");
    assert_eq!(acked, 200, "the ack after recovery covers the rest");
    // What Redis has: exactly the publishes not refused, once each, in order.
    let stored: Vec<Bytes> =
        tidings_broker::Store::read_after(&*direct, &ChannelName::new("room").unwrap(), 0, 1000)
            .await
            .unwrap()
            .messages
            .into_iter()
            .map(|m| m.payload)
            .collect();
    let expected: Vec<Bytes> = sent
        .iter()
        .filter(|(seq, _)| !refused.contains(seq))
        .map(|(_, p)| Bytes::from(p.clone()))
        .collect();
    assert_eq!(
        stored, expected,
        "nothing acknowledged lost, nothing refused stored"
    );
    direct.purge().await.unwrap();
}

/// A schema of its own on the test's PostgreSQL, or `None` (skipped loudly).
async fn postgres(test: &str) -> Option<(String, Arc<PostgresBackend>)> {
    let url = postgres_url();
    let schema = unique_name("tidings_nodes");
    let config = PostgresConfig::from_url(&url)
        .unwrap()
        .with_schema(schema.clone())
        .with_retention(Retention::default().with_max_len(100_000));
    match tokio::time::timeout(Duration::from_secs(10), PostgresBackend::connect(config)).await {
        Ok(Ok(b)) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            Some((format!("{url}{sep}schema={schema}&max_len=100000"), b))
        }
        Ok(Err(e)) => {
            unreachable(test, "PostgreSQL", &url, &e);
            None
        }
        Err(e) => {
            unreachable(test, "PostgreSQL", &url, &e);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sigkilled_mid_stream_and_restarted_on_postgres_lets_its_client_recover_every_message()
 {
    let test = "a_node_sigkilled_mid_stream_and_restarted_on_postgres_lets_its_client_recover_every_message";
    let Some((broker, backend)) = postgres(test).await else {
        return;
    };
    sigkill_and_restart(&broker, None, backend.clone(), 1_500, 300, 120).await;
    backend.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_deliver_messages_from_both_sides_to_both_clients_once_in_one_order()
{
    let test =
        "two_nodes_on_postgres_deliver_messages_from_both_sides_to_both_clients_once_in_one_order";
    let Some((broker, backend)) = postgres(test).await else {
        return;
    };
    // Fewer than on Redis: each append is a PostgreSQL transaction.
    two_nodes_exchange(&broker, None, 1_000, 120).await;
    backend.drop_schema().await.unwrap();
}

/// A stream prefix of its own on the test's NATS, or `None` (skipped loudly).
async fn nats(test: &str) -> Option<(String, Arc<NatsBackend>)> {
    let url = nats_url();
    let prefix = unique_name("tidings_nodes");
    let config = NatsConfig::from_url(&url)
        .unwrap()
        .with_prefix(prefix.clone())
        .with_retention(Retention::default().with_max_len(100_000));
    match tokio::time::timeout(Duration::from_secs(5), NatsBackend::connect(config)).await {
        Ok(Ok(b)) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            Some((format!("{url}{sep}prefix={prefix}&max_len=100000"), b))
        }
        Ok(Err(e)) => {
            unreachable(test, "NATS", &url, &e);
            None
        }
        Err(e) => {
            unreachable(test, "NATS", &url, &e);
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_nats_deliver_10000_messages_from_both_sides_to_both_clients_once_in_one_order()
 {
    let test = "two_nodes_on_nats_deliver_10000_messages_from_both_sides_to_both_clients_once_in_one_order";
    let Some((broker, backend)) = nats(test).await else {
        return;
    };
    two_nodes_exchange(&broker, None, 5_000, 120).await;
    backend.purge().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sigkilled_mid_stream_and_restarted_on_nats_lets_its_client_recover_every_message() {
    let test =
        "a_node_sigkilled_mid_stream_and_restarted_on_nats_lets_its_client_recover_every_message";
    let Some((broker, backend)) = nats(test).await else {
        return;
    };
    sigkill_and_restart(&broker, None, backend.clone(), 3_000, 500, 60).await;
    backend.purge().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moved_from_a_killed_node_to_another_on_nats_gets_every_message_once_in_order() {
    let test =
        "a_client_moved_from_a_killed_node_to_another_on_nats_gets_every_message_once_in_order";
    let Some((broker, backend)) = nats(test).await else {
        return;
    };
    moved_client(&broker, backend.clone(), 3_000).await;
    backend.purge().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_with_fan_out_on_nats_and_history_in_postgres_deliver_once_in_one_order_and_postgres_keeps_it()
 {
    let test = "two_nodes_with_fan_out_on_nats_and_history_in_postgres_deliver_once_in_one_order_and_postgres_keeps_it";
    let Some((broker, wake)) = nats(test).await else {
        return;
    };
    let Some((store, history)) = postgres(test).await else {
        return;
    };
    const EACH: usize = 1_000;
    two_nodes_exchange(&broker, Some(&store), EACH, 120).await;
    // PostgreSQL numbered and kept every message; NATS carried only wake-ups.
    let room = ChannelName::new("room").unwrap();
    let kept = tidings_broker::Store::read_after(&*history, &room, 0, 10_000)
        .await
        .unwrap();
    assert_eq!(kept.last_seq, 2 * EACH as u64);
    assert_eq!(kept.messages.len(), 2 * EACH);
    let wakes = tidings_broker::Store::read_after(&*wake, &room, 0, 10_000)
        .await
        .unwrap();
    assert!(
        wakes.messages.iter().all(|m| m.payload.is_empty()),
        "the broker carries empty wake-ups only"
    );
    history.drop_schema().await.unwrap();
    wake.purge().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_memory_fan_out_with_history_in_postgres_sigkilled_and_restarted_lets_its_client_recover_every_message()
 {
    let test = "a_node_on_memory_fan_out_with_history_in_postgres_sigkilled_and_restarted_lets_its_client_recover_every_message";
    let Some((store, backend)) = postgres(test).await else {
        return;
    };
    // No wake-ups across processes: the node reads the store every second.
    sigkill_and_restart("memory://", Some(&store), backend.clone(), 600, 150, 120).await;
    backend.drop_schema().await.unwrap();
}

/// A TCP forwarder like [`switchable`] that can also swallow everything the
/// server sends (`mute`): the client's publish reaches the node, its ack never
/// comes back.
async fn mutable_front(upstream: u16) -> (SocketAddr, Arc<AtomicU16>, Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let port = Arc::new(AtomicU16::new(upstream));
    let mute = Arc::new(AtomicBool::new(false));
    let (current, muted) = (port.clone(), mute.clone());
    tokio::spawn(async move {
        while let Ok((down, _)) = listener.accept().await {
            let to = current.load(Ordering::SeqCst);
            let muted = muted.clone();
            tokio::spawn(async move {
                let Ok(up) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    return;
                };
                let (mut dr, mut dw) = down.into_split();
                let (mut ur, mut uw) = up.into_split();
                let upward = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut dr, &mut uw).await;
                });
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = ur.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if !muted.load(Ordering::SeqCst) && dw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                // The node is gone: so is this connection (the client notices).
                upward.abort();
                let _ = dw.shutdown().await;
            });
        }
    });
    (addr, port, mute)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_stored_by_a_node_killed_before_its_ack_and_resent_to_another_node_is_stored_once()
 {
    let test = "a_publish_stored_by_a_node_killed_before_its_ack_and_resent_to_another_node_is_stored_once";
    let Some((broker, backend)) = nats(test).await else {
        return;
    };
    let (a, b) = (
        Node::start("127.0.0.1:0", &broker).await,
        Node::start("127.0.0.1:0", &broker).await,
    );
    let (front, upstream, mute) = mutable_front(a.addr.port()).await;
    let client = Client::builder(format!("ws://{front}/ws"))
        .connect()
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), client.next_event()).await {
            Ok(Some(ClientEvent::Connected { .. })) => break,
            Ok(Some(_)) => {}
            other => panic!("not connected: {other:?}"),
        }
    }
    // The ack of this publish never reaches the client...
    mute.store(true, Ordering::SeqCst);
    client.publish("room", "once").unwrap();
    let room = ChannelName::new("room").unwrap();
    let stored = || async {
        tidings_broker::Store::read_after(&*backend, &room, 0, 100)
            .await
            .map(|r| r.messages)
            .unwrap_or_default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while stored().await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node A never stored it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...though node A stored it; A dies, the client lands on B.
    upstream.store(b.addr.port(), Ordering::SeqCst);
    a.kill().await;
    mute.store(false, Ordering::SeqCst);
    assert_eq!(client.unacked(), 1, "the client still holds its publish");
    // B opens a fresh session (A's token means nothing to it); the client
    // re-sends the publish there under its publisher id and number.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.unacked() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "never acknowledged");
        match tokio::time::timeout(Duration::from_millis(200), client.next_event()).await {
            Ok(Some(ClientEvent::PublishRefused { message, .. })) => panic!("refused: {message}"),
            Ok(None) => panic!("client closed"),
            _ => {}
        }
    }
    client.publish("room", "then this").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.unacked() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "second publish never acknowledged"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), client.next_event()).await;
    }
    let payloads: Vec<Bytes> = stored().await.into_iter().map(|m| m.payload).collect();
    assert_eq!(
        payloads,
        [
            Bytes::from_static(b"once"),
            Bytes::from_static(b"then this")
        ],
        "the re-sent publish is stored once"
    );
    b.kill().await;
    backend.purge().await.unwrap();
}
