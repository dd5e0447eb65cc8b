//! End-to-end: an axum server with tidings mounted, native clients publishing and receiving over real sockets.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tidings_axum::{AuthError, RouterExt, TidingsRoute, UpgradeRequest};
use tidings_channels::{Hub, MemoryBroker};
use tidings_protocol::ClientEvent;
use tidings_ws::Client;

async fn start(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn next_message(c: &Client) -> tidings_protocol::Message {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), c.next_event())
            .await
            .expect("event in time");
        match ev.expect("client open") {
            ClientEvent::Message(m) => return m,
            _ => continue,
        }
    }
}

async fn wait_subscribed(c: &Client) {
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), c.next_event())
            .await
            .expect("event in time");
        if let Some(ClientEvent::Subscribed { .. }) = ev {
            return;
        }
    }
}

#[tokio::test]
async fn two_clients_chat_through_axum() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let addr = start(Router::new().tidings("/ws", hub.clone())).await;
    let url = format!("ws://{addr}/ws");
    let alice = Client::builder(&url).connect().unwrap();
    let bob = Client::builder(&url).connect().unwrap();
    alice.subscribe("room").unwrap();
    bob.subscribe("room").unwrap();
    wait_subscribed(&alice).await;
    wait_subscribed(&bob).await;
    alice.publish("room", r#"{"text":"hi bob"}"#).unwrap();
    let m = next_message(&bob).await;
    assert_eq!(&m.payload[..], br#"{"text":"hi bob"}"#);
    assert_eq!(m.seq, 1);
    let m = next_message(&alice).await;
    assert_eq!(m.seq, 1);
    hub.publish("room", "42").await.unwrap();
    assert_eq!(next_message(&bob).await.seq, 2);
}

#[tokio::test]
async fn auth_hook_refuses_before_upgrade() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let route = TidingsRoute::new(hub).auth(|req: UpgradeRequest| async move {
        match req.headers.get("authorization") {
            Some(v) if v == "Bearer good" => Ok(()),
            Some(_) => Err(AuthError::Forbidden("wrong token".into())),
            None => Err(AuthError::Unauthorized("missing token".into())),
        }
    });
    let addr = start(Router::new().tidings_route("/ws", route)).await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = format!("ws://{addr}/ws");
    let err = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other}"),
    }
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer bad".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), 403);
            let body =
                String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("wrong token"), "{body}");
        }
        other => panic!("expected 403, got {other}"),
    }
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", "Bearer good".parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .expect("authorized upgrade");
}

#[tokio::test]
async fn graceful_shutdown_sends_going_away_and_drains() {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let addr = start(Router::new().tidings("/ws", hub.clone())).await;
    let client = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    client.subscribe("room").unwrap();
    wait_subscribed(&client).await;
    hub.shutdown("server stopping");
    let reason = loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), client.next_event())
            .await
            .expect("event in time")
            .expect("client open");
        if let ClientEvent::Disconnected { reason, .. } = ev {
            break reason;
        }
    };
    assert!(
        reason.contains("1001") && reason.contains("server stopping"),
        "{reason}"
    );
    tokio::time::timeout(Duration::from_secs(10), hub.idle())
        .await
        .expect("every connection closed after shutdown");
    assert_eq!(hub.stats().connections, 0);
    // New connections are turned away while shutting down.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    use futures_util::StreamExt;
    match tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
    {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), 1001)
        }
        other => panic!("expected close 1001, got {other:?}"),
    }
}
