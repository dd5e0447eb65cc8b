//! The binary codec through the axum route: clients preferring `tidings.v1.bin` chat through `Router::tidings`; `tidings.v9.bin` is refused with HTTP 400 and the reason.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tidings_axum::RouterExt;
use tidings_channels::{Hub, MemoryBroker};
use tidings_protocol::ClientEvent;
use tidings_ws::Client;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

async fn start(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn next_event(c: &Client) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(10), c.next_event())
        .await
        .expect("event in time")
        .expect("client open")
}

async fn next_message(c: &Client) -> tidings_protocol::Message {
    loop {
        if let ClientEvent::Message(m) = next_event(c).await {
            return m;
        }
    }
}

async fn wait_subscribed(c: &Client) {
    while !matches!(next_event(c).await, ClientEvent::Subscribed { .. }) {}
}

#[tokio::test]
async fn binary_clients_chat_through_axum() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let addr = start(Router::new().tidings("/ws", hub.clone())).await;
    let url = format!("ws://{addr}/ws");

    // The answer names the binary subprotocol.
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("tidings.v1.bin, tidings.v1.json"),
    );
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "tidings.v1.bin");

    let binary = |url: &str| {
        Client::builder(url)
            .subprotocols(["tidings.v1.bin", "tidings.v1.json"])
            .connect()
            .unwrap()
    };
    let alice = binary(&url);
    let bob = binary(&url);
    let carol = Client::builder(&url).connect().unwrap(); // JSON
    for c in [&alice, &bob, &carol] {
        c.subscribe("room").unwrap();
        wait_subscribed(c).await;
    }
    alice.publish("room", &b"\x00\xffbinary"[..]).unwrap();
    assert_eq!(&next_message(&bob).await.payload[..], b"\x00\xffbinary");
    assert_eq!(&next_message(&carol).await.payload[..], b"\x00\xffbinary");
    hub.publish("room", "42").await.unwrap();
    let m = next_message(&bob).await;
    assert_eq!((m.seq, &m.payload[..]), (2, &b"42"[..]));
}

#[tokio::test]
async fn v9_is_refused_with_the_reason() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let addr = start(Router::new().tidings("/ws", hub)).await;
    let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("tidings.v9.bin"),
    );
    match tokio_tungstenite::connect_async(req).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), 400);
            assert!(resp.headers().contains_key("x-tidings-error"));
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
            for name in ["tidings.v9.bin", "tidings.v1.json", "tidings.v1.bin"] {
                assert!(body.contains(name), "body must name {name}: {body}");
            }
        }
        other => panic!("expected 400, got {other}"),
    }
}
