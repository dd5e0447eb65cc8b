//! The chat app on a real socket: `GET /` serves the page, two native clients chat through `/ws`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tidings::prelude::*;
use tidings_examples::chat_app;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn start(hub: Hub) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    // The chat binary's server: tidings_axum::Server (handshake timeout, per-IP cap).
    tokio::spawn(async move {
        tidings::axum::Server::new()
            .serve(listener, chat_app(hub), std::future::pending())
            .await
    });
    addr
}

/// A raw HTTP/1.1 GET (the server closes the connection after the response).
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    (head.to_owned(), body.to_owned())
}

async fn next_event(c: &Client) -> ClientEvent {
    tokio::time::timeout(TIMEOUT, c.next_event())
        .await
        .expect("event in time")
        .expect("client still open")
}

async fn wait_subscribed(c: &Client) {
    while !matches!(next_event(c).await, ClientEvent::Subscribed { .. }) {}
}

async fn next_message(c: &Client) -> Message {
    loop {
        if let ClientEvent::Message(m) = next_event(c).await {
            return m;
        }
    }
}

#[tokio::test]
async fn index_serves_the_chat_page() {
    let addr = start(Hub::new(Arc::new(MemoryBroker::default()))).await;
    let (head, body) = http_get(addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.contains("<title>tidings chat</title>"), "{body}");
    assert!(body.contains(r#"new WebSocket(this.url, ["tidings.v1.json"])"#));
    assert!(body.contains(r#"location.host + "/ws""#));
    assert_eq!(body, tidings_examples::CHAT_HTML);
}

#[tokio::test]
async fn ws_path_without_upgrade_explains_itself() {
    let addr = start(Hub::new(Arc::new(MemoryBroker::default()))).await;
    let (head, body) = http_get(addr, "/ws").await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(body.contains("tidings.v1.json"), "{body}");
}

#[tokio::test]
async fn two_clients_chat_in_a_room() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let addr = start(hub.clone()).await;
    let url = format!("ws://{addr}/ws");
    let alice = Client::builder(&url).connect().expect("alice connects");
    let bob = Client::builder(&url).connect().expect("bob connects");
    alice.subscribe("room:lobby").expect("alice subscribes");
    bob.subscribe("room:lobby").expect("bob subscribes");
    wait_subscribed(&alice).await;
    wait_subscribed(&bob).await;

    let hello = r#"{"text":"hi bob","from":"alice"}"#;
    alice.publish("room:lobby", hello).expect("alice publishes");
    let m = next_message(&bob).await;
    assert_eq!(m.channel.as_str(), "room:lobby");
    assert_eq!(&m.payload[..], hello.as_bytes());
    assert_eq!(m.seq, 1);
    // The sender gets its own message back, in the same order as everyone else.
    assert_eq!(&next_message(&alice).await.payload[..], hello.as_bytes());

    let reply = r#"{"text":"hi alice","from":"bob"}"#;
    bob.publish("room:lobby", reply).expect("bob publishes");
    let m = next_message(&alice).await;
    assert_eq!((m.seq, &m.payload[..]), (2, reply.as_bytes()));

    // Server code publishes into the same room.
    hub.publish("room:lobby", r#"{"text":"welcome","from":"server"}"#)
        .await
        .expect("hub publishes");
    assert_eq!(next_message(&bob).await.seq, 2, "bob's own reply");
    let m = next_message(&bob).await;
    assert_eq!(
        (m.seq, &m.payload[..]),
        (3, &br#"{"text":"welcome","from":"server"}"#[..])
    );
}

/// The chat serves its room list over RPC on the same connection as the rooms.
#[tokio::test(flavor = "multi_thread")]
async fn the_room_list_comes_over_rpc() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let addr = start(hub).await;
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .expect("client");
    let rpc = tidings::rpc::client::RpcClient::new(&client);
    loop {
        let event = tokio::time::timeout(TIMEOUT, client.next_event()).await;
        if let Ok(Some(ClientEvent::Connected { .. })) = event {
            break;
        }
        assert!(matches!(event, Ok(Some(_))), "no connection: {event:?}");
    }
    let rooms: Vec<String> = tokio::time::timeout(TIMEOUT, rpc.call("chat.rooms", &()))
        .await
        .expect("reply in time")
        .expect("rooms");
    assert_eq!(rooms, tidings_examples::ROOMS);
    let online: u64 = rpc.call("chat.online", &()).await.expect("online");
    assert!(online >= 1, "{online}");
    // The same methods through the client that `#[tidings::rpc]` generates.
    let chat = tidings_examples::ChatClient::new(&rpc);
    assert_eq!(chat.rooms().await.expect("rooms"), tidings_examples::ROOMS);
    assert!(chat.online().await.expect("online") >= 1);
}

/// Request targets that try to climb out of the served tree: none may reach a file.
#[tokio::test]
async fn path_traversal_gets_404() {
    let addr = start(Hub::new(Arc::new(MemoryBroker::default()))).await;
    for path in [
        "/../Cargo.toml",
        "/../../../../etc/passwd",
        "/static/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/..%5c..%5cCargo.toml",
        "/./../examples/static/chat.html",
        "//etc/passwd",
    ] {
        let (head, body) = http_get(addr, path).await;
        assert!(
            head.starts_with("HTTP/1.1 404"),
            "{path}: expected 404, got {head}"
        );
        assert!(!body.contains("root:"), "{path} leaked a file: {body}");
        assert!(!body.contains("[package]"), "{path} leaked a file: {body}");
    }
    // The health endpoints are mounted.
    let (head, body) = http_get(addr, "/readyz").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "ready");
    // The page itself is still there.
    let (head, _) = http_get(addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
