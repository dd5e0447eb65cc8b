//! Hub behaviour over the in-memory transport pair: publishes the broker refuses, acks only after a durable broker stored a publish, and the synchronous publish path.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tidings_channels::{
    Broker, BrokerError, Delivery, Hub, HubConfig, MemoryBroker, PublishReceipt, SubscriberId,
    Subscription,
};
use tidings_codec::JsonCodec;
use tidings_protocol::ChannelName;
use tidings_runtime::{BoxFuture, TransportExt};
use tidings_test::memory::{MemoryTransport, pair};

/// A broker whose publishes always fail (its subscriptions work).
struct RefusingBroker(MemoryBroker);

impl Broker for RefusingBroker {
    fn publish(
        &self,
        _: &ChannelName,
        _: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        Box::pin(async { Err(BrokerError::Unavailable("backend down".into())) })
    }
    fn subscribe(
        &self,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        self.0.subscribe(channel, after, sink)
    }
    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        self.0.unsubscribe(channel, id);
    }
}

async fn next_json(client: &mut MemoryTransport) -> serde_json::Value {
    let frame = tokio::time::timeout(Duration::from_secs(5), client.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    serde_json::from_slice(&frame).unwrap()
}

async fn next_of(client: &mut MemoryTransport, kind: &str) -> serde_json::Value {
    loop {
        let v = next_json(client).await;
        if v["type"] == kind {
            return v;
        }
    }
}

async fn send(client: &mut MemoryTransport, json: &str) {
    client
        .send(Bytes::copy_from_slice(json.as_bytes()))
        .await
        .unwrap();
}

fn serve(hub: &Hub) -> MemoryTransport {
    let (client, server) = pair();
    let hub = hub.clone();
    tokio::spawn(async move { hub.serve(server, Arc::new(JsonCodec::new())).await });
    client
}

#[tokio::test]
async fn a_refused_publish_is_an_error_frame_and_the_subscription_stays() {
    let broker = Arc::new(RefusingBroker(MemoryBroker::default()));
    let hub = Hub::new(broker.clone());
    let mut client = serve(&hub);
    send(&mut client, r#"{"type":"hello","version":1}"#).await;
    next_of(&mut client, "welcome").await;
    send(&mut client, r#"{"type":"subscribe","channel":"a"}"#).await;
    next_of(&mut client, "subscribed").await;
    send(
        &mut client,
        r#"{"type":"publish","channel":"a","seq":1,"data":1}"#,
    )
    .await;
    let error = next_of(&mut client, "error").await;
    assert_eq!(error["code"], "unavailable");
    assert!(
        error["message"].as_str().unwrap().contains("backend down"),
        "{error}"
    );
    // Still subscribed: a message published behind the hub's back arrives.
    broker
        .0
        .publish_now(&ChannelName::new("a").unwrap(), Bytes::from_static(b"2"));
    let message = next_of(&mut client, "message").await;
    assert_eq!(message["data"], 2);
}

#[tokio::test]
async fn publishes_and_subscribes_keep_their_order_on_the_synchronous_path() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let mut client = serve(&hub);
    send(&mut client, r#"{"type":"hello","version":1}"#).await;
    next_of(&mut client, "welcome").await;
    // Subscribe and publish in one burst: the publish must not overtake the subscribe.
    let burst = [
        r#"{"type":"subscribe","channel":"a"}"#,
        r#"{"type":"publish","channel":"a","seq":1,"data":"first"}"#,
        r#"{"type":"publish","channel":"a","seq":2,"data":"second"}"#,
    ];
    for frame in burst {
        send(&mut client, frame).await;
    }
    let (mut messages, mut acked) = (Vec::new(), 0);
    while messages.len() < 2 || acked < 2 {
        let v = next_json(&mut client).await;
        match v["type"].as_str() {
            Some("message") => {
                messages.push((v["seq"].as_u64(), v["data"].as_str().map(str::to_owned)))
            }
            // Cumulative: one ack may cover both publishes.
            Some("publish_ack") => acked = v["seq"].as_u64().unwrap(),
            _ => {}
        }
    }
    assert_eq!(
        messages,
        [
            (Some(1), Some("first".to_owned())),
            (Some(2), Some("second".to_owned()))
        ]
    );
}

#[tokio::test]
async fn detached_sessions_expire_after_the_resume_window_and_live_ones_stay() {
    let window = Duration::from_millis(200);
    let mut config = HubConfig::default()
        .with_session(tidings_protocol::ServerConfig::default().with_resume_window(window));
    config.reap_interval = Duration::from_millis(50);
    let hub = Hub::with_config(Arc::new(MemoryBroker::default()), config);
    // One session stays connected; three lose their connection.
    let mut live = serve(&hub);
    send(&mut live, r#"{"type":"hello","version":1}"#).await;
    next_of(&mut live, "welcome").await;
    for _ in 0..3 {
        let mut gone = serve(&hub);
        send(&mut gone, r#"{"type":"hello","version":1}"#).await;
        next_of(&mut gone, "welcome").await;
        drop(gone);
    }
    // The reaper only visits sessions whose connection ended; the three expire.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while hub.stats().sessions > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions left: {:?}",
            hub.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hub.stats().sessions, 1);
    // The live one is untouched and still served.
    send(&mut live, r#"{"type":"ping","nonce":7}"#).await;
    assert_eq!(next_of(&mut live, "pong").await["nonce"], 7);
}

/// A broker that holds the publish of `"first"` until the test lets it go
/// (the connection publishing it stays inside the broker).
struct PausingBroker {
    inner: MemoryBroker,
    paused: std::sync::atomic::AtomicBool,
    entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl Broker for PausingBroker {
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        if &payload[..] == b"\"first\""
            && !self.paused.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            // Held inside the broker call itself, on this connection's task.
            tokio::task::block_in_place(|| {
                self.entered.lock().unwrap().send(()).unwrap();
                self.release.lock().unwrap().recv().unwrap();
            });
        }
        self.inner.publish(channel, payload)
    }
    fn subscribe(
        &self,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        self.inner.subscribe(channel, after, sink)
    }
    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        self.inner.unsubscribe(channel, id);
    }
}

/// What [`takeover_with_a_publish_in_hand`] leaves: a watcher of channel
/// `a`, the client's new connection, and the gate holding "first".
struct Takeover {
    watcher: MemoryTransport,
    new: MemoryTransport,
    release: std::sync::mpsc::Sender<()>,
}

/// A client publishes "first" and "second"; while its connection is inside
/// the broker with "first", the client resumes on a new connection ("second"
/// is then the new connection's to publish, queued in the session or re-sent
/// by the client). Checks that nothing reaches the channel meanwhile.
async fn takeover_with_a_publish_in_hand() -> Takeover {
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let hub = Hub::new(Arc::new(PausingBroker {
        inner: MemoryBroker::default(),
        paused: std::sync::atomic::AtomicBool::new(false),
        entered: std::sync::Mutex::new(entered_tx),
        release: std::sync::Mutex::new(release_rx),
    }));
    let mut watcher = serve(&hub);
    send(&mut watcher, r#"{"type":"hello","version":1}"#).await;
    next_of(&mut watcher, "welcome").await;
    send(&mut watcher, r#"{"type":"subscribe","channel":"a"}"#).await;
    next_of(&mut watcher, "subscribed").await;

    let mut old = serve(&hub);
    send(&mut old, r#"{"type":"hello","version":1}"#).await;
    let token = next_of(&mut old, "welcome").await["resume_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for frame in [
        r#"{"type":"publish","channel":"a","seq":1,"data":"first"}"#,
        r#"{"type":"publish","channel":"a","seq":2,"data":"second"}"#,
    ] {
        send(&mut old, frame).await;
    }
    // The old connection is inside the broker with "first".
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();

    let mut new = serve(&hub);
    send(
        &mut new,
        &format!(r#"{{"type":"hello","version":1,"resume":"{token}","positions":[]}}"#),
    )
    .await;
    let welcome = next_of(&mut new, "welcome").await;
    assert_eq!(welcome["resumed"], true);
    // As a client does: re-send what the session has not taken (the old
    // connection may not have read "second" before it went into the broker).
    if welcome["publish_acked"].as_u64() < Some(2) {
        send(
            &mut new,
            r#"{"type":"publish","channel":"a","seq":2,"data":"second"}"#,
        )
        .await;
    }
    Takeover {
        watcher,
        new,
        release: release_tx,
    }
}

/// Lets "first" go; both messages must reach the watcher, in order.
async fn release_and_expect_both_in_order(mut t: Takeover) {
    // Nothing may reach the channel while "first" is held: "second" waits.
    let early = tokio::time::timeout(
        Duration::from_millis(300),
        next_of(&mut t.watcher, "message"),
    )
    .await;
    assert!(
        early.is_err(),
        "a publish overtook the one in hand: {early:?}"
    );
    t.release.send(()).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let v = next_of(&mut t.watcher, "message").await;
        got.push((v["seq"].as_u64(), v["data"].as_str().map(str::to_owned)));
    }
    assert_eq!(
        got,
        [
            (Some(1), Some("first".to_owned())),
            (Some(2), Some("second".to_owned()))
        ]
    );
}

/// A client resumes on a new connection while the old one is inside the
/// broker with its first publish; the second publish is the new
/// connection's to make. It must reach the channel after the first, not
/// overtake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_takeover_does_not_let_a_queued_publish_overtake_one_in_hand() {
    let t = takeover_with_a_publish_in_hand().await;
    release_and_expect_both_in_order(t).await;
}

/// The same, but the new connection ends before "first" is let go: as it
/// ends it waits for the publish turn, then publishes "second".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_ending_while_another_has_a_publish_in_hand_publishes_after_it() {
    let mut t = takeover_with_a_publish_in_hand().await;
    let (_, ended) = pair();
    drop(std::mem::replace(&mut t.new, ended));
    release_and_expect_both_in_order(t).await;
}

/// A durable broker (acks wait for it) that can be switched down.
#[derive(Default)]
struct SwitchedBroker {
    inner: MemoryBroker,
    down: AtomicBool,
    keys: std::sync::Mutex<Vec<String>>,
}

impl Broker for SwitchedBroker {
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async { Err(BrokerError::Unavailable("backend down".into())) });
        }
        self.inner.publish(channel, payload)
    }
    fn publish_keyed(
        &self,
        channel: &ChannelName,
        payload: Bytes,
        key: &str,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
        self.keys.lock().unwrap().push(key.to_owned());
        self.publish(channel, payload)
    }
    fn is_durable(&self) -> bool {
        true
    }
    fn subscribe(
        &self,
        channel: &ChannelName,
        after: Option<u64>,
        sink: Arc<dyn Delivery>,
    ) -> BoxFuture<'_, Result<Subscription, BrokerError>> {
        self.inner.subscribe(channel, after, sink)
    }
    fn unsubscribe(&self, channel: &ChannelName, id: SubscriberId) {
        self.inner.unsubscribe(channel, id);
    }
}

#[tokio::test]
async fn on_a_durable_broker_publishes_are_acked_once_stored_and_refused_by_name_when_it_is_down() {
    let broker = Arc::new(SwitchedBroker::default());
    let hub = Hub::new(broker.clone());
    assert!(
        hub.config().session.ack_after_store,
        "set for a durable broker"
    );
    let mut client = serve(&hub);
    send(&mut client, r#"{"type":"hello","version":1}"#).await;
    next_of(&mut client, "welcome").await;
    send(
        &mut client,
        r#"{"type":"publish","channel":"a","seq":1,"data":1}"#,
    )
    .await;
    assert_eq!(next_of(&mut client, "publish_ack").await["seq"], 1);
    broker.down.store(true, Ordering::SeqCst);
    send(
        &mut client,
        r#"{"type":"publish","channel":"a","seq":2,"data":2}"#,
    )
    .await;
    // Refused by name, never acknowledged on its own.
    let mut frames = Vec::new();
    let error = loop {
        let v = next_json(&mut client).await;
        if v["type"] == "error" {
            break v;
        }
        frames.push(v);
    };
    assert!(
        frames.iter().all(|f| f["type"] != "publish_ack"),
        "{frames:?}"
    );
    assert_eq!(
        (error["code"].as_str(), error["seq"].as_u64()),
        (Some("unavailable"), Some(2))
    );
    broker.down.store(false, Ordering::SeqCst);
    send(
        &mut client,
        r#"{"type":"publish","channel":"a","seq":3,"data":3}"#,
    )
    .await;
    assert_eq!(next_of(&mut client, "publish_ack").await["seq"], 3);
    // Stored: 1 and 3, each under its own idempotency key.
    let keys = broker.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys[0].ends_with(":1") && keys[2].ends_with(":3"),
        "{keys:?}"
    );
    let history = broker
        .inner
        .subscribe(&ChannelName::new("a").unwrap(), Some(0), Arc::new(Nobody))
        .await
        .unwrap()
        .start
        .backlog;
    assert_eq!(history.len(), 2);
}

struct Nobody;
impl Delivery for Nobody {
    fn deliver(&self, _: &Arc<tidings_protocol::SharedMessage>) {}
}
