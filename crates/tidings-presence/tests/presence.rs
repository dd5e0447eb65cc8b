//! Presence against real servers: WebSocket clients with identities, one node and two nodes sharing a broker — snapshots, diffs, one count per identity, grace on drops, a dead node's members leaving, authorization of presence channels.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tidings_axum::{AuthError, RouterExt, TidingsRoute, UpgradeRequest};
use tidings_channels::{ChannelGrants, Hub, Identity, MemoryBroker};
use tidings_presence::{Presence, PresenceConfig, PresenceView};
use tidings_protocol::{ClientEvent, ErrorCode};
use tidings_test::proxy::FaultProxy;
use tidings_ws::Client;

const STEP: Duration = Duration::from_secs(30);

/// `?user=NAME` is the identity; `eve` may only see `room:other`.
async fn who(request: UpgradeRequest) -> Result<Identity, AuthError> {
    let query = request.uri.query().unwrap_or_default();
    let user = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("user="))
        .ok_or_else(|| AuthError::Unauthorized("no user".into()))?;
    let grants = if user == "eve" {
        ChannelGrants::none().subscribe("room:other")
    } else {
        ChannelGrants::all()
    };
    Ok(Identity::new(user).with_grants(grants))
}

struct Node {
    addr: std::net::SocketAddr,
    presence: Presence,
    hub: Hub,
    server: tokio::task::JoinHandle<()>,
}

async fn node(broker: Arc<MemoryBroker>, config: PresenceConfig) -> Node {
    let hub = Hub::new(broker);
    let presence = Presence::attach(&hub, config).await.unwrap();
    let app = Router::new().tidings_route("/ws", TidingsRoute::new(hub.clone()).auth(who));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Node {
        addr,
        presence,
        hub,
        server,
    }
}

fn fast() -> PresenceConfig {
    let mut c = PresenceConfig::default();
    c.flush_interval = Duration::from_millis(20);
    c.heartbeat = Duration::from_millis(200);
    c.node_timeout = Duration::from_secs(1);
    c.grace = Duration::from_millis(300);
    c
}

fn client(addr: std::net::SocketAddr, user: &str) -> Client {
    Client::builder(format!("ws://{addr}/ws?user={user}"))
        .connect()
        .unwrap()
}

/// A client in `room` that also watches the room's presence.
struct Watcher {
    client: Client,
    view: PresenceView,
}

impl Watcher {
    fn new(addr: std::net::SocketAddr, user: &str, room: &str) -> Self {
        let client = client(addr, user);
        client.subscribe(room).unwrap();
        client.subscribe(&format!("presence:{room}")).unwrap();
        Self {
            client,
            view: PresenceView::new(),
        }
    }

    /// Applies presence messages until `done(view)` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&PresenceView) -> bool) {
        let wait = async {
            while !(self.view.is_synced() && done(&self.view)) {
                match self.client.next_event().await {
                    Some(ClientEvent::Message(m))
                        if m.channel.as_str().starts_with("presence:") =>
                    {
                        self.view.apply(&m.payload).unwrap();
                    }
                    Some(ClientEvent::Gap(g)) => panic!("gap on {}: {g:?}", g.channel),
                    Some(_) => {}
                    None => panic!("client ended"),
                }
            }
        };
        tokio::time::timeout(STEP, wait)
            .await
            .unwrap_or_else(|_| panic!("{what}: the view has {} members", self.view.len()));
    }
}

async fn subscribed(c: &Client, channel: &str) {
    tokio::time::timeout(STEP, async {
        loop {
            match c.next_event().await {
                Some(ClientEvent::Subscribed { channel: ch, .. }) if ch.as_str() == channel => {
                    return;
                }
                Some(_) => {}
                None => panic!("client ended"),
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_then_diffs_and_one_identity_counts_once() {
    let n = node(Arc::new(MemoryBroker::default()), fast()).await;
    let mut w = Watcher::new(n.addr, "watcher", "room:lobby");
    w.until("watcher sees itself", |v| v.contains("watcher"))
        .await;

    let ann1 = client(n.addr, "ann");
    let ann2 = client(n.addr, "ann");
    let bob = client(n.addr, "bob");
    for c in [&ann1, &ann2, &bob] {
        c.subscribe("room:lobby").unwrap();
    }
    w.until("ann (twice) and bob", |v| {
        v.len() == 3 && v.members().get("ann").is_some_and(|m| m.len() == 2)
    })
    .await;
    assert_eq!(n.presence.len("room:lobby"), 3, "ann counts once");

    // A late watcher starts from a snapshot with everyone.
    let mut late = Watcher::new(n.addr, "late", "room:lobby");
    late.until("late sees all four", |v| v.len() == 4).await;

    ann1.close();
    w.until("ann still here on her other connection", |v| {
        v.members().get("ann").is_some_and(|m| m.len() == 1)
    })
    .await;
    assert!(w.view.contains("ann"));
    bob.unsubscribe("room:lobby").unwrap();
    w.until("bob left", |v| !v.contains("bob")).await;
    late.until("late saw bob leave too", |v| {
        !v.contains("bob") && v.len() == 3
    })
    .await;
    drop(ann2);
}

#[tokio::test(flavor = "multi_thread")]
async fn presence_channels_follow_room_permissions_and_refuse_publishes() {
    let n = node(Arc::new(MemoryBroker::default()), fast()).await;
    let eve = client(n.addr, "eve");
    eve.subscribe("presence:room:lobby").unwrap();
    eve.subscribe("tidings:presence-sync").unwrap();
    eve.subscribe("presence:room:other").unwrap();
    let mut forbidden = 0;
    tokio::time::timeout(STEP, async {
        loop {
            match eve.next_event().await.unwrap() {
                ClientEvent::Error { code, message } => {
                    assert_eq!(code, ErrorCode::Forbidden, "{message}");
                    forbidden += 1;
                }
                ClientEvent::Subscribed { channel, .. } => {
                    assert_eq!(channel.as_str(), "presence:room:other");
                    break;
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        forbidden, 2,
        "the lobby's presence and the sync channel are refused"
    );

    let ann = client(n.addr, "ann");
    ann.publish("presence:room:lobby", r#"{"type":"snapshot","members":{}}"#)
        .unwrap();
    tokio::time::timeout(STEP, async {
        loop {
            match ann.next_event().await.unwrap() {
                // Presence channels take only a member's own meta (docs/protocol.md §11):
                // ann is not in the room. Without acknowledgement after store the refusal
                // is an error report naming the channel.
                ClientEvent::PublishRefused { code, .. } => {
                    assert_eq!(code, ErrorCode::Forbidden);
                    return;
                }
                ClientEvent::Error { code, message } => {
                    assert_eq!(code, ErrorCode::Forbidden, "{message}");
                    assert!(message.starts_with("presence:room:lobby:"), "{message}");
                    return;
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_connection_stays_for_the_grace_period_and_a_resume_keeps_it() {
    let mut config = fast();
    config.grace = Duration::from_secs(3600);
    let n = node(Arc::new(MemoryBroker::default()), config).await;
    let mut w = Watcher::new(n.addr, "watcher", "room:lobby");
    let proxy = FaultProxy::start(n.addr).await.unwrap();
    let bob = client(proxy.addr(), "bob");
    bob.subscribe("room:lobby").unwrap();
    subscribed(&bob, "room:lobby").await;
    w.until("bob joined", |v| v.contains("bob")).await;

    // Cut bob's connection and keep him out: his session waits to be resumed.
    proxy.set_refuse(true);
    proxy.cut_all();
    tokio::time::timeout(STEP, async {
        while n.hub.stats().connections > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    // Dave joins after the detach: once the watcher sees him, a flush has
    // passed with bob detached, and bob is still there.
    let dave = client(n.addr, "dave");
    dave.subscribe("room:lobby").unwrap();
    w.until("dave joined", |v| v.contains("dave")).await;
    assert!(
        w.view.contains("bob"),
        "bob left at once instead of after the grace period"
    );
    assert!(n.presence.members("room:lobby").contains_key("bob"));
    proxy.set_refuse(false);
    tokio::time::timeout(STEP, async {
        loop {
            if let Some(ClientEvent::Connected { resumed: true, .. }) = bob.next_event().await {
                return;
            }
        }
    })
    .await
    .unwrap();
    // A marker after the resume: the watcher must see carl join with bob
    // never having left in between.
    let carl = client(n.addr, "carl");
    carl.subscribe("room:lobby").unwrap();
    let mut saw_bob_leave = false;
    tokio::time::timeout(STEP, async {
        loop {
            if let Some(ClientEvent::Message(m)) = w.client.next_event().await {
                let changes = w.view.apply(&m.payload).unwrap();
                saw_bob_leave |= changes
                    .iter()
                    .any(|c| *c == tidings_presence::PresenceChange::Left("bob".into()));
                if w.view.contains("carl") {
                    return;
                }
            }
        }
    })
    .await
    .unwrap();
    assert!(!saw_bob_leave, "a resumed session never left");
    assert!(w.view.contains("bob"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_not_resumed_leaves_after_the_grace_period() {
    let n = node(Arc::new(MemoryBroker::default()), fast()).await;
    let mut w = Watcher::new(n.addr, "watcher", "room:lobby");
    let proxy = FaultProxy::start(n.addr).await.unwrap();
    let bob = client(proxy.addr(), "bob");
    bob.subscribe("room:lobby").unwrap();
    w.until("bob joined", |v| v.contains("bob")).await;
    proxy.set_refuse(true);
    proxy.cut_all();
    w.until("bob left after the grace period", |v| !v.contains("bob"))
        .await;
    drop(bob);
}

/// 1,000 members over two nodes sharing a broker: every watcher converges,
/// half leave, and a node that dies takes its members with it.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_members_on_two_nodes_converge_and_a_dead_node_leaves() {
    let broker = Arc::new(MemoryBroker::default());
    let a = node(broker.clone(), fast()).await;
    let b = node(broker.clone(), fast()).await;
    let room = "room:big";
    let mut wa = Watcher::new(a.addr, "watcher-a", room);
    let mut wb = Watcher::new(b.addr, "watcher-b", room);
    let mut members = Vec::new();
    for i in 0..1000 {
        let at = if i % 2 == 0 { a.addr } else { b.addr };
        let c = client(at, &format!("user{i}"));
        c.subscribe(room).unwrap();
        members.push(c);
    }
    wa.until("1,002 on A", |v| v.len() == 1002).await;
    wb.until("1,002 on B", |v| v.len() == 1002).await;

    // Half the members leave, 250 on each node (users 0..500).
    for c in members.iter().step_by(2).take(250) {
        c.close();
    }
    for c in members.iter().skip(1).step_by(2).take(250) {
        c.close();
    }
    wa.until("502 on A", |v| v.len() == 502).await;
    wb.until("502 on B", |v| v.len() == 502).await;
    assert_eq!(wa.view.members(), wb.view.members(), "both nodes agree");

    // Node B dies: no leave messages, no heartbeats; A drops its members
    // after the node timeout.
    b.presence.halt();
    b.server.abort();
    wa.until("B's members gone", |v| v.len() == 251).await;
    assert!(!wa.view.contains("watcher-b"));
    assert!(wa.view.contains("user500"));
    assert!(!wa.view.contains("user501"));
    drop(members);
}
