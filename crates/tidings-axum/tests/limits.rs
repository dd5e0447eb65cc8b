//! Connection limits of `Server` against a real server: slowloris (hundreds of half-open upgrade requests) does not keep a fresh client out, the handshake timeout closes them, the per-IP cap answers 429 and frees its slots, graceful shutdown drains.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use tidings_axum::{RouterExt, Server, SseRouterExt};
use tidings_channels::{Hub, MemoryBroker};
use tidings_protocol::ClientEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HALF_OPEN: usize = 300;

async fn start(
    server: Server,
) -> (
    SocketAddr,
    Hub,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let app = Router::new()
        .tidings("/ws", hub.clone())
        .tidings_sse("/sse", hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server
            .serve(listener, app, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, hub, stop, task)
}

/// A TCP connection to `addr` from the loopback address `from`.
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Half an upgrade request: the request line and some headers, never the blank line.
async fn half_open(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let mut s = connect_from(from, addr).await;
    let head = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// A complete WebSocket session from `from` (connect, hello, welcome); how long it took.
async fn fresh_session(from: [u8; 4], addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let _ws = open_session(from, addr).await;
    started.elapsed()
}

/// Opens a WebSocket session from `from` and reads its welcome.
async fn open_session(from: [u8; 4], addr: SocketAddr) -> Ws {
    let tcp = connect_from(from, addr).await;
    let request = tokio_tungstenite::tungstenite::http::Request::builder()
        .uri(format!("ws://{addr}/ws"))
        .header("host", addr.to_string())
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-version", "13")
        .header(
            "sec-websocket-key",
            tokio_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .header("sec-websocket-protocol", "tidings.v1.json")
        .body(())
        .unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(response.status(), 101);
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(r#"{"type":"hello","version":1}"#))
        .await
        .unwrap();
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(
        welcome.to_text().unwrap().contains("welcome"),
        "{welcome:?}"
    );
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_half_open_upgrades_do_not_keep_a_fresh_client_out_and_time_out() {
    let timeout = Duration::from_secs(2);
    let (addr, _hub, _stop, _task) = start(
        Server::new()
            .handshake_timeout(timeout)
            .max_connections_per_ip(1000),
    )
    .await;
    // From before the first one: none may be closed before its own timeout.
    let opened = Instant::now();
    let mut stalled = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        stalled.push(half_open([127, 0, 0, 1], addr).await);
    }
    // A fresh client, from the same address, while all of them hang.
    let took = tokio::time::timeout(Duration::from_secs(10), fresh_session([127, 0, 0, 1], addr))
        .await
        .expect("a fresh client connects while 300 upgrades hang");
    println!(
        "slowloris: {HALF_OPEN} half-open upgrade requests held; a fresh client connected and got its welcome in {:.1} ms",
        took.as_secs_f64() * 1e3
    );
    assert!(took < Duration::from_secs(5), "fresh connect took {took:?}");
    // The tidings Client too (connect + hello + subscribe).
    let client = tidings_ws::Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    client.subscribe("room").unwrap();
    let started = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next_event())
            .await
            .unwrap()
        {
            Some(ClientEvent::Subscribed { .. }) => break,
            Some(_) => {}
            None => panic!("client closed"),
        }
    }
    println!(
        "slowloris: tidings Client subscribed in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    // The handshake timeout closes every half-open request: EOF (or a reset).
    let mut closed = 0;
    for mut s in stalled {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(timeout + Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        if read.is_ok() {
            closed += 1;
        }
    }
    let after = opened.elapsed();
    println!(
        "slowloris: {closed} of {HALF_OPEN} half-open requests closed by the server after {after:?} (handshake timeout {timeout:?})"
    );
    assert_eq!(closed, HALF_OPEN);
    assert!(
        after >= timeout - Duration::from_millis(500),
        "closed too early: {after:?}"
    );
}

#[tokio::test]
async fn the_per_ip_cap_answers_429_and_frees_slots_when_connections_end() {
    let (addr, _hub, _stop, _task) = start(
        Server::new()
            .handshake_timeout(Duration::from_secs(30))
            .max_connections_per_ip(4),
    )
    .await;
    let held: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(half_open([127, 0, 0, 1], addr).await);
        }
        v
    };
    // The fifth from the same address: 429 with the typed code, then closed.
    let mut fifth = connect_from([127, 0, 0, 1], addr).await;
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), fifth.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
    assert!(
        reply.contains("x-tidings-error: too-many-connections"),
        "{reply}"
    );
    // Another address is not affected.
    fresh_session([127, 0, 0, 2], addr).await;
    // Once the held ones go, the address may connect again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect_from([127, 0, 0, 1], addr).await;
        s.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply).await;
        if reply.starts_with("HTTP/1.1 404") {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed: {reply}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn upgraded_websockets_keep_their_slot_until_they_close() {
    let (addr, hub, _stop, _task) = start(Server::new().max_connections_per_ip(2)).await;
    let a = open_session([127, 0, 0, 1], addr).await;
    let _b = open_session([127, 0, 0, 1], addr).await;
    // Both upgraded and served by the hub: the HTTP side is done with them,
    // yet they still count.
    let mut third = connect_from([127, 0, 0, 1], addr).await;
    let mut reply = String::new();
    tokio::time::timeout(Duration::from_secs(10), third.read_to_string(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
    assert_eq!(hub.stats().connections, 2);
    // One closes: its slot comes back.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    while hub.stats().connections > 1 {
        assert!(Instant::now() < deadline, "the closed session never ended");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _c = open_session([127, 0, 0, 1], addr).await;
}

#[tokio::test]
async fn graceful_shutdown_stops_accepting_and_drains() {
    let (addr, hub, stop, task) = start(Server::new()).await;
    let client = tidings_ws::Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    client.subscribe("room").unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next_event())
            .await
            .unwrap()
        {
            Some(ClientEvent::Subscribed { .. }) => break,
            Some(_) => {}
            None => panic!("client closed"),
        }
    }
    assert_eq!(hub.stats().connections, 1);
    stop.send(()).unwrap();
    hub.shutdown("server stopping");
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("serve returns once connections are drained")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), hub.idle())
        .await
        .expect("the hub drains");
    assert_eq!(hub.stats().connections, 0);
    // No longer accepting.
    assert!(TcpStream::connect(addr).await.is_err());
}
