//! Server processes on Redis and PostgreSQL: two nodes exchanging 10,000 messages through real clients, a node SIGKILLed and restarted mid-stream, a client moved from a killed node to another, and a cut backend link.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tidings::protocol::ClientEvent;
use tidings::ws::Client;
use tidings_broker::{Broker, Retention};
use tidings_postgres::{PostgresBackend, PostgresConfig};
use tidings_protocol::ChannelName;
use tidings_redis::{RedisBackend, RedisConfig};
use tidings_test::services::{postgres_url, redis_url, unique_name, unreachable};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running node and the address it serves.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    async fn start(listen: &str, broker: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings-test-node"))
            .args(["--listen", listen, "--broker", broker])
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_redis_deliver_10000_messages_from_both_sides_to_both_clients_once_in_one_order()
 {
    let test = "two_nodes_on_redis_deliver_10000_messages_from_both_sides_to_both_clients_once_in_one_order";
    let Some((broker, backend)) = redis(test).await else {
        return;
    };
    let (a, b) = (
        Node::start("127.0.0.1:0", &broker).await,
        Node::start("127.0.0.1:0", &broker).await,
    );
    let ca = Client::builder(a.url()).connect().unwrap();
    let cb = Client::builder(b.url()).connect().unwrap();
    ca.subscribe("room").unwrap();
    cb.subscribe("room").unwrap();
    subscribed(&ca).await;
    subscribed(&cb).await;
    const EACH: usize = 5_000;
    let (ca, cb) = (Arc::new(ca), Arc::new(cb));
    let (pa, pb) = (ca.clone(), cb.clone());
    let ta = tokio::spawn(async move { publish_all(&pa, "a", EACH).await });
    let tb = tokio::spawn(async move { publish_all(&pb, "b", EACH).await });
    let (ra, rb) = tokio::join!(
        collect(&ca, 0, 2 * EACH, 120),
        collect(&cb, 0, 2 * EACH, 120)
    );
    ta.await.unwrap();
    tb.await.unwrap();
    assert_eq!(ra, rb, "one agreed order");
    let mut payloads: Vec<_> = ra.into_iter().map(|(_, p)| p).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 2 * EACH, "every publish exactly once");
    a.kill().await;
    b.kill().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_sigkilled_mid_stream_and_restarted_on_redis_lets_its_client_recover_every_message()
{
    let test =
        "a_node_sigkilled_mid_stream_and_restarted_on_redis_lets_its_client_recover_every_message";
    let Some((broker, backend)) = redis(test).await else {
        return;
    };
    let node = Node::start("127.0.0.1:0", &broker).await;
    let addr = node.addr;
    let client = Client::builder(node.url()).connect().unwrap();
    client.subscribe("room").unwrap();
    subscribed(&client).await;
    const N: usize = 3_000;
    let publishing = publisher(backend.clone(), N);
    let first = collect(&client, 0, 500, 30).await;
    node.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = Node::start(&addr.to_string(), &broker).await;
    // The client reconnects by itself (a fresh session on the new process)
    // and subscribes after its last seq: history fills in the rest.
    let rest = collect(&client, 500, N - 500, 60).await;
    publishing.await.unwrap();
    assert_eq!(
        first.last().unwrap().0 + 1,
        rest[0].0,
        "continues where it was"
    );
    let all: Vec<Bytes> = first.into_iter().chain(rest).map(|(_, p)| p).collect();
    let expected: Vec<Bytes> = (0..N).map(|i| Bytes::from(format!("m{i}"))).collect();
    assert_eq!(all, expected, "every message once, in order");
    node.kill().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moved_from_a_killed_node_to_another_gets_every_message_once_in_order() {
    let test = "a_client_moved_from_a_killed_node_to_another_gets_every_message_once_in_order";
    let Some((broker, backend)) = redis(test).await else {
        return;
    };
    let (a, b) = (
        Node::start("127.0.0.1:0", &broker).await,
        Node::start("127.0.0.1:0", &broker).await,
    );
    let (front, upstream) = switchable(a.addr.port()).await;
    let client = Client::builder(format!("ws://{front}/ws"))
        .connect()
        .unwrap();
    client.subscribe("room").unwrap();
    subscribed(&client).await;
    const N: usize = 3_000;
    let publishing = publisher(backend.clone(), N);
    let first = collect(&client, 0, 700, 30).await;
    upstream.store(b.addr.port(), Ordering::SeqCst);
    a.kill().await;
    let rest = collect(&client, 700, N - 700, 60).await;
    publishing.await.unwrap();
    let all: Vec<Bytes> = first.into_iter().chain(rest).map(|(_, p)| p).collect();
    let expected: Vec<Bytes> = (0..N).map(|i| Bytes::from(format!("m{i}"))).collect();
    assert_eq!(all, expected, "every message once, in order");
    b.kill().await;
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
    let node = Node::start("127.0.0.1:0", &broker).await;
    let addr = node.addr;
    let client = Client::builder(node.url()).connect().unwrap();
    client.subscribe("room").unwrap();
    subscribed(&client).await;
    const N: usize = 1_500;
    let publishing = publisher(backend.clone(), N);
    let first = collect(&client, 0, 300, 60).await;
    node.kill().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node = Node::start(&addr.to_string(), &broker).await;
    let rest = collect(&client, 300, N - 300, 120).await;
    publishing.await.unwrap();
    let all: Vec<Bytes> = first.into_iter().chain(rest).map(|(_, p)| p).collect();
    let expected: Vec<Bytes> = (0..N).map(|i| Bytes::from(format!("m{i}"))).collect();
    assert_eq!(all, expected, "every message once, in order");
    node.kill().await;
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
    let (a, b) = (
        Node::start("127.0.0.1:0", &broker).await,
        Node::start("127.0.0.1:0", &broker).await,
    );
    let ca = Client::builder(a.url()).connect().unwrap();
    let cb = Client::builder(b.url()).connect().unwrap();
    ca.subscribe("room").unwrap();
    cb.subscribe("room").unwrap();
    subscribed(&ca).await;
    subscribed(&cb).await;
    // Fewer than on Redis: each append is a PostgreSQL transaction.
    const EACH: usize = 1_000;
    let (ca, cb) = (Arc::new(ca), Arc::new(cb));
    let (pa, pb) = (ca.clone(), cb.clone());
    let ta = tokio::spawn(async move { publish_all(&pa, "a", EACH).await });
    let tb = tokio::spawn(async move { publish_all(&pb, "b", EACH).await });
    let (ra, rb) = tokio::join!(
        collect(&ca, 0, 2 * EACH, 120),
        collect(&cb, 0, 2 * EACH, 120)
    );
    ta.await.unwrap();
    tb.await.unwrap();
    assert_eq!(ra, rb, "one agreed order");
    let mut payloads: Vec<_> = ra.into_iter().map(|(_, p)| p).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 2 * EACH, "every publish exactly once");
    a.kill().await;
    b.kill().await;
    backend.drop_schema().await.unwrap();
}
