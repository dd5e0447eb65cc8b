//! The chat app on a real socket: `GET /` serves the server-rendered Leptos page and `/pkg/` its bundle, `/plain` the JS page, two native clients chat through `/ws`.

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

/// A raw HTTP/1.1 GET; the whole response, head and body, as bytes.
async fn http_get_bytes(addr: SocketAddr, path: &str) -> Vec<u8> {
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
    raw
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

/// `/` is the Leptos front end rendered on the server: the app idle (rendering connects
/// nothing: the hub counts no connection), hydrated by the bundle the page loads from `/pkg/`.
#[tokio::test]
async fn index_serves_the_server_rendered_leptos_chat() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let addr = start(hub.clone()).await;
    let (head, body) = http_get(addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(body.contains("<title>tidings chat</title>"), "{body}");
    assert!(body.contains(r#"<body><main id="chat""#), "{body}");
    assert!(body.contains(">idle<"), "{body}");
    for room in tidings_examples::ROOMS {
        assert!(body.contains(&format!(r#"data-room="{room}""#)), "{body}");
    }
    assert!(
        body.contains(r#"import init, { hydrate } from "/pkg/tidings_chat_web.js""#),
        "{body}"
    );
    assert_eq!(hub.stats().connections, 0, "rendering opened a connection");
}

/// The bundle the page loads: the wasm-bindgen JavaScript and the wasm module, with the types
/// `WebAssembly.instantiateStreaming` needs.
#[tokio::test]
async fn the_leptos_bundle_is_served() {
    let addr = start(Hub::new(Arc::new(MemoryBroker::default()))).await;
    let (head, js) = http_get(addr, "/pkg/tidings_chat_web.js").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/javascript"),
        "{head}"
    );
    assert!(js.contains("export function hydrate"), "{js}");
    assert_eq!(js, tidings_examples::CHAT_WEB_JS);
    let wasm = http_get_bytes(addr, "/pkg/tidings_chat_web_bg.wasm").await;
    let (head, body) = wasm.split_at(
        wasm.windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("head")
            + 4,
    );
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert_eq!(&body[..4], b"\0asm", "not a wasm module");
    assert_eq!(body, tidings_examples::CHAT_WEB_WASM);
}

/// `/plain` keeps the protocol's plain-JS reference client.
#[tokio::test]
async fn plain_serves_the_reference_js_page() {
    let addr = start(Hub::new(Arc::new(MemoryBroker::default()))).await;
    let (head, body) = http_get(addr, "/plain").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
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
    // And the metrics endpoint.
    let (head, body) = http_get(addr, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("\ntidings_connections 0\n"), "{body}");
    // The page itself is still there.
    let (head, _) = http_get(addr, "/").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
