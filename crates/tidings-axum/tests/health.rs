//! `/healthz` and `/readyz` on a real server: ready while the broker and the added checks answer, unready when the broker stops answering, a check fails or the hub drains; live throughout.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use tidings_axum::{Health, HealthRouterExt, RouterExt, Server};
use tidings_channels::{
    Broker, BrokerError, Delivery, Hub, MemoryBroker, PublishReceipt, ReadinessCheck, SubscriberId,
    Subscription,
};
use tidings_protocol::ChannelName;
use tidings_runtime::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A memory broker whose backend can be "cut": its ping then fails or hangs.
struct CuttableBroker {
    inner: MemoryBroker,
    down: AtomicBool,
    hang: AtomicBool,
}

impl Broker for CuttableBroker {
    fn publish(
        &self,
        channel: &ChannelName,
        payload: Bytes,
    ) -> BoxFuture<'_, Result<PublishReceipt, BrokerError>> {
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
    fn ping(&self) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async {
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            if self.down.load(Ordering::SeqCst) {
                return Err(BrokerError::Unavailable("connection refused".into()));
            }
            Ok(())
        })
    }
}

struct Flag(Arc<AtomicBool>);

impl ReadinessCheck for Flag {
    fn name(&self) -> &str {
        "store"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let ok = self.0.load(Ordering::SeqCst);
        Box::pin(async move { if ok { Ok(()) } else { Err("store down".into()) } })
    }
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[tokio::test]
async fn readyz_follows_the_broker_the_checks_and_shutdown_and_healthz_stays_live() {
    let broker = Arc::new(CuttableBroker {
        inner: MemoryBroker::default(),
        down: AtomicBool::new(false),
        hang: AtomicBool::new(false),
    });
    let hub = Hub::new(broker.clone());
    let store_ok = Arc::new(AtomicBool::new(true));
    let health = Health::new(hub.clone())
        .check(Flag(store_ok.clone()))
        .timeout(Duration::from_millis(200));
    let app = Router::new()
        .tidings("/ws", hub.clone())
        .tidings_health(health);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::new().serve(listener, app, std::future::pending()));

    assert_eq!(get(addr, "/healthz").await, (200, "ok".into()));
    assert_eq!(get(addr, "/readyz").await, (200, "ready".into()));

    broker.down.store(true, Ordering::SeqCst);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(
        body.contains("broker: broker backend unavailable: connection refused"),
        "{body}"
    );
    assert_eq!(get(addr, "/healthz").await.0, 200);

    broker.down.store(false, Ordering::SeqCst);
    broker.hang.store(true, Ordering::SeqCst);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("broker: no answer within 200ms"), "{body}");

    broker.hang.store(false, Ordering::SeqCst);
    assert_eq!(get(addr, "/readyz").await.0, 200);

    store_ok.store(false, Ordering::SeqCst);
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "store: store down"));
    store_ok.store(true, Ordering::SeqCst);
    assert_eq!(get(addr, "/readyz").await.0, 200);

    hub.shutdown("draining");
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "hub: shutting down"));
    assert_eq!(get(addr, "/healthz").await.0, 200);
}

/// `host:port` of a `redis://` URL, for the fault proxy.
fn redis_addr(url: &str) -> std::net::SocketAddr {
    let rest = url.trim_start_matches("redis://");
    let hostport = rest.split(['/', '?']).next().unwrap();
    let hostport = hostport.rsplit('@').next().unwrap();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:6379")
    };
    hostport.replace("localhost", "127.0.0.1").parse().unwrap()
}

/// Polls `/readyz` until it answers `status` (the backend's reconnect takes
/// its backoff; nothing here is timed, the deadline only bounds a failure).
async fn readyz_until(addr: std::net::SocketAddr, status: u16) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (s, body) = get(addr, "/readyz").await;
        if s == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {s} ({body}), waiting for {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn readyz_goes_unready_when_the_proxy_cuts_redis_and_ready_again_after() {
    use tidings_redis::{RedisBackend, RedisConfig};
    use tidings_test::FaultProxy;
    use tidings_test::services::{redis_url, unique_name, unreachable};
    let test = "readyz_goes_unready_when_the_proxy_cuts_redis_and_ready_again_after";
    let url = redis_url();
    let proxy = FaultProxy::start(redis_addr(&url)).await.unwrap();
    let config = RedisConfig::from_url(&format!("redis://{}", proxy.addr()))
        .unwrap()
        .with_prefix(unique_name("tidings_readyz"));
    let backend =
        match tokio::time::timeout(Duration::from_secs(5), RedisBackend::connect(config)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return unreachable(test, "Redis", &url, &e),
            Err(e) => return unreachable(test, "Redis", &url, &e),
        };
    let hub = Hub::with_dyn_broker(backend, tidings_channels::HubConfig::default());
    let app = Router::new().tidings_health(Health::new(hub).timeout(Duration::from_secs(1)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::new().serve(listener, app, std::future::pending()));

    assert_eq!(get(addr, "/readyz").await, (200, "ready".into()));
    // The backend goes away for this node: new connections refused, live ones cut.
    proxy.set_refuse(true);
    assert!(
        proxy.cut_all() >= 1,
        "the backend's connection went through the proxy"
    );
    let body = readyz_until(addr, 503).await;
    assert!(body.starts_with("broker: "), "{body}");
    assert_eq!(get(addr, "/healthz").await.0, 200, "still live");
    // Back: the connection manager reconnects by itself.
    proxy.set_refuse(false);
    assert_eq!(readyz_until(addr, 200).await, "ready");
}
