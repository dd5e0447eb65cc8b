//! Presence across server processes on Redis and on NATS (the same scenario, parametrized by broker URL): 1,000 members joining and leaving over two `tidings-test-node` processes, every watching client's view converging, and a SIGKILLed node's members leaving after the node timeout.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidings::presence::PresenceView;
use tidings::protocol::ClientEvent;
use tidings::ws::Client;
use tidings_test::services::{nats_url, redis_url, unique_name, unreachable};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ROOM: &str = "room:big";
/// Every wait is bounded by this (a busy shared machine, generous).
const DEADLINE: Duration = Duration::from_secs(120);

/// A running node and the address it serves.
struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    async fn start(broker: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidings-test-node"))
            .args(["--listen", "127.0.0.1:0", "--broker", broker, "--presence"])
            .args(["--grace-ms", "500", "--heartbeat-ms", "300"])
            .args(["--node-timeout-ms", "2000"])
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

    /// SIGKILL: no leave message, no more heartbeats.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

/// `url` with `prefix=PREFIX` added, once `connect` shows the service is
/// reachable; `None` (skipped loudly) when it is not. Also returns the
/// connected backend (to clean up with).
async fn reachable<B, E: std::fmt::Display>(
    test: &str,
    service: &str,
    url: String,
    prefix: &str,
    connect: impl std::future::Future<Output = Result<B, E>>,
) -> Option<(String, B)> {
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(b)) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            Some((format!("{url}{sep}prefix={prefix}"), b))
        }
        Ok(Err(e)) => {
            unreachable(test, service, &url, &e);
            None
        }
        Err(e) => {
            unreachable(test, service, &url, &e);
            None
        }
    }
}

/// A Redis broker URL with a key prefix of its own, or `None` (skipped loudly).
async fn redis_broker(test: &str) -> Option<String> {
    let url = redis_url();
    let prefix = unique_name("tidings_presence");
    let config = tidings_redis::RedisConfig::from_url(&url)
        .unwrap()
        .with_prefix(prefix.clone());
    let connect = tidings_redis::RedisBackend::connect(config);
    Some(reachable(test, "Redis", url, &prefix, connect).await?.0)
}

/// A NATS broker URL with a stream prefix of its own and the backend to
/// purge it with afterwards, or `None` (skipped loudly).
async fn nats_broker(test: &str) -> Option<(String, Arc<tidings_nats::NatsBackend>)> {
    let url = nats_url();
    let prefix = unique_name("tidings_presence");
    let config = tidings_nats::NatsConfig::from_url(&url)
        .unwrap()
        .with_prefix(prefix.clone());
    let connect = tidings_nats::NatsBackend::connect(config);
    reachable(test, "NATS", url, &prefix, connect).await
}

fn member(addr: SocketAddr, user: &str) -> Client {
    let c = Client::builder(format!("ws://{addr}/ws?user={user}"))
        .connect()
        .unwrap();
    c.subscribe(ROOM).unwrap();
    c
}

/// A member that also watches the room's presence: a task applies every
/// presence message to its view.
struct Watcher {
    client: Arc<Client>,
    view: Arc<Mutex<PresenceView>>,
}

impl Watcher {
    fn new(addr: SocketAddr, user: &str) -> Self {
        let client = Arc::new(member(addr, user));
        client.subscribe(&format!("presence:{ROOM}")).unwrap();
        let view = Arc::new(Mutex::new(PresenceView::new()));
        let (c, v) = (client.clone(), view.clone());
        tokio::spawn(async move {
            while let Some(ev) = c.next_event().await {
                match ev {
                    ClientEvent::Message(m) if m.channel.as_str().starts_with("presence:") => {
                        v.lock().unwrap().apply(&m.payload).unwrap();
                    }
                    ClientEvent::Gap(g) => panic!("gap on {}: {g:?}", g.channel),
                    _ => {}
                }
            }
        });
        Self { client, view }
    }

    fn keys(&self) -> BTreeSet<String> {
        let v = self.view.lock().unwrap();
        if !v.is_synced() {
            return BTreeSet::new();
        }
        v.members().keys().cloned().collect()
    }
}

/// Waits until every watcher's view is exactly `expected` (polled; bounded
/// by [`DEADLINE`]; the failure names the first watcher still off).
async fn converge(what: &str, watchers: &[&Watcher], expected: &BTreeSet<String>) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let off = watchers.iter().position(|w| w.keys() != *expected);
        let Some(i) = off else { return };
        if tokio::time::Instant::now() > deadline {
            let got = watchers[i].keys();
            panic!(
                "{what}: watcher {i} sees {} members, {} expected; missing {:?}, extra {:?}",
                got.len(),
                expected.len(),
                expected.difference(&got).take(5).collect::<Vec<_>>(),
                got.difference(expected).take(5).collect::<Vec<_>>(),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two node processes share a broker (`broker`: its URL). 1,000 members join (even users on
/// node A, odd on B; ten of them connected to both nodes, counted once);
/// 100 of them watch the room's presence, 50 on each node. Every view
/// converges on the same 1,000 names; 500 leave and every view converges
/// again; then B is SIGKILLed, and its members (all but those also connected
/// to A) leave every view on A once the node timeout has passed; a watcher
/// joining A afterwards starts from the same snapshot.
async fn a_thousand_members_converge_and_a_sigkilled_nodes_members_leave(broker: &str) {
    let (a, b) = tokio::join!(Node::start(broker), Node::start(broker));
    let name = |i: usize| format!("user{i}");
    let on_a = |i: usize| i.is_multiple_of(2);

    let mut members: Vec<(usize, Client)> = Vec::new();
    let mut watchers: Vec<(usize, Watcher)> = Vec::new();
    for i in 0..1000 {
        let addr = if on_a(i) { a.addr } else { b.addr };
        if i.is_multiple_of(20) || i % 20 == 15 {
            watchers.push((i, Watcher::new(addr, &name(i))));
        } else {
            members.push((i, member(addr, &name(i))));
        }
    }
    // Users 700..710 are on both nodes as well: one member each.
    let twins: Vec<(usize, Client)> = (700..710)
        .map(|i| {
            let other = if on_a(i) { b.addr } else { a.addr };
            (i, member(other, &name(i)))
        })
        .collect();
    let all: Vec<&Watcher> = watchers.iter().map(|(_, w)| w).collect();
    let mut expected: BTreeSet<String> = (0..1000).map(name).collect();
    converge("1,000 joined", &all, &expected).await;

    // Users 0..500 leave (250 on each node), watchers among them too.
    for (i, c) in &members {
        if *i < 500 {
            c.close();
        }
    }
    for (i, w) in &watchers {
        if *i < 500 {
            w.client.close();
        }
    }
    expected.retain(|k| k[4..].parse::<usize>().unwrap() >= 500);
    assert_eq!(expected.len(), 500);
    let staying: Vec<&Watcher> = watchers
        .iter()
        .filter(|(i, _)| *i >= 500)
        .map(|(_, w)| w)
        .collect();
    assert_eq!(staying.len(), 50);
    converge("500 left", &staying, &expected).await;

    // B dies without a word. Its members leave, except the twins, who are
    // still connected to A.
    b.kill().await;
    expected.retain(|k| {
        let i: usize = k[4..].parse().unwrap();
        on_a(i) || (700..710).contains(&i)
    });
    assert_eq!(expected.len(), 250 + 5);
    let on_a_watchers: Vec<&Watcher> = watchers
        .iter()
        .filter(|(i, _)| *i >= 500 && on_a(*i))
        .map(|(_, w)| w)
        .collect();
    assert_eq!(on_a_watchers.len(), 25);
    converge("B's members gone", &on_a_watchers, &expected).await;

    let late = Watcher::new(a.addr, "late");
    expected.insert("late".into());
    let mut after: Vec<&Watcher> = on_a_watchers.clone();
    after.push(&late);
    converge("a late watcher on A", &after, &expected).await;

    drop((members, twins, watchers, late));
    a.kill().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_members_on_two_node_processes_on_redis_converge_and_a_sigkilled_nodes_members_leave()
 {
    let test = "a_thousand_members_on_two_node_processes_on_redis_converge";
    let Some(broker) = redis_broker(test).await else {
        return;
    };
    a_thousand_members_converge_and_a_sigkilled_nodes_members_leave(&broker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_members_on_two_node_processes_on_nats_converge_and_a_sigkilled_nodes_members_leave()
 {
    let test = "a_thousand_members_on_two_node_processes_on_nats_converge";
    let Some((broker, backend)) = nats_broker(test).await else {
        return;
    };
    a_thousand_members_converge_and_a_sigkilled_nodes_members_leave(&broker).await;
    backend.purge().await.unwrap();
}
