//! The binary codec end to end: a Rust client and `WsServer` agree on `tidings.v1.bin` and exchange binary WebSocket messages; `tidings.v9.bin` is refused with the reason; JSON and binary clients share channels.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tidings_channels::{Hub, MemoryBroker};
use tidings_codec::{BinaryCodec, SUBPROTOCOL_BIN, SUBPROTOCOL_JSON};
use tidings_protocol::{ClientEvent, CodecKind, Frame, FrameCodec, Hello, PROTOCOL_VERSION, Ping};
use tidings_ws::{Accepted, Client, ServerConfig, ServerHandle, WsServer};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

const STEP: Duration = Duration::from_secs(10);

/// A hub behind `WsServer`, recording the codec of every accepted connection.
struct Fixture {
    hub: Hub,
    server: ServerHandle,
    url: String,
    codecs: Arc<Mutex<Vec<CodecKind>>>,
}

impl Fixture {
    async fn start() -> Self {
        let hub = Hub::new(Arc::new(MemoryBroker::default()));
        let codecs = Arc::new(Mutex::new(Vec::new()));
        let (served, seen) = (hub.clone(), codecs.clone());
        let server = WsServer::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
            .await
            .unwrap()
            .serve(move |conn: Accepted| {
                seen.lock().unwrap().push(conn.codec.kind());
                let hub = served.clone();
                async move {
                    let (t, codec, _shutdown) = conn.into_transport();
                    hub.serve(t, codec).await
                }
            });
        let url = format!("ws://{}/", server.local_addr());
        Self {
            hub,
            server,
            url,
            codecs,
        }
    }

    fn binary_client(&self) -> Client {
        Client::builder(&self.url)
            .subprotocols([SUBPROTOCOL_BIN, SUBPROTOCOL_JSON])
            .connect()
            .unwrap()
    }

    async fn stop(self) {
        self.hub.shutdown("test over");
        self.server.shutdown().await;
    }
}

async fn next_event(c: &Client) -> ClientEvent {
    tokio::time::timeout(STEP, c.next_event())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_and_server_agree_on_binary() {
    let fx = Fixture::start().await;
    let alice = fx.binary_client();
    let bob = fx.binary_client();
    alice.subscribe("room").unwrap();
    bob.subscribe("room").unwrap();
    wait_subscribed(&alice).await;
    wait_subscribed(&bob).await;
    assert_eq!(
        *fx.codecs.lock().unwrap(),
        [CodecKind::Binary, CodecKind::Binary],
        "the server chose the binary codec for both clients"
    );

    // Arbitrary bytes travel as they are (no base64 on the binary codec).
    let payload: Vec<u8> = (0..=255u8).chain([0, 0xff, 0xfe]).collect();
    alice.publish("room", payload.clone()).unwrap();
    let m = next_message(&bob).await;
    assert_eq!((m.seq, &m.payload[..]), (1, &payload[..]));
    assert_eq!(next_message(&alice).await.payload, payload);

    // Many messages, in order, from the server side too.
    for i in 0..200u32 {
        fx.hub
            .publish("room", Bytes::from(i.to_le_bytes().to_vec()))
            .await
            .unwrap();
    }
    for i in 0..200u32 {
        let m = next_message(&bob).await;
        assert_eq!(
            (m.seq, &m.payload[..]),
            (u64::from(i) + 2, &i.to_le_bytes()[..])
        );
    }
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_binary_clients_share_a_channel() {
    let fx = Fixture::start().await;
    let binary = fx.binary_client();
    let json = Client::builder(&fx.url).connect().unwrap(); // default: tidings.v1.json
    binary.subscribe("mixed").unwrap();
    json.subscribe("mixed").unwrap();
    wait_subscribed(&binary).await;
    wait_subscribed(&json).await;
    let mut kinds = fx.codecs.lock().unwrap().clone();
    kinds.sort_by_key(|k| k.index());
    assert_eq!(kinds, [CodecKind::Json, CodecKind::Binary]);

    json.publish("mixed", r#"{"from":"json"}"#).unwrap();
    assert_eq!(
        &next_message(&binary).await.payload[..],
        br#"{"from":"json"}"#
    );
    binary.publish("mixed", &b"\x00\x01not json"[..]).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(next_message(&json).await.payload);
    }
    assert_eq!(seen[0], &br#"{"from":"json"}"#[..]);
    assert_eq!(
        seen[1],
        &b"\x00\x01not json"[..],
        "base64 on the JSON side, same bytes"
    );
    fx.stop().await;
}

/// A raw WebSocket client offering `tidings.v1.bin`: the server answers with
/// that subprotocol and binary (not text) messages in the binary format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_binary_messages_on_the_wire() {
    let fx = Fixture::start().await;
    let mut req = fx.url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("tidings.v1.bin"),
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], SUBPROTOCOL_BIN);
    let codec = BinaryCodec::new();
    let hello = Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        resume: None,
        positions: vec![],
        publisher: None,
    });
    ws.send(WsMessage::Binary(codec.encode_to_bytes(&hello).unwrap()))
        .await
        .unwrap();
    ws.send(WsMessage::Binary(
        codec
            .encode_to_bytes(&Frame::Ping(Ping { nonce: 99 }))
            .unwrap(),
    ))
    .await
    .unwrap();
    let mut frames = Vec::new();
    while frames.len() < 2 {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match msg {
            WsMessage::Binary(b) => frames.push(codec.decode(&b).unwrap()),
            other => panic!("expected a binary message, got {other:?}"),
        }
    }
    assert!(matches!(frames[0], Frame::Welcome(_)), "{frames:?}");
    assert_eq!(frames[1], Frame::Pong(Ping { nonce: 99 }));
    fx.stop().await;
}

/// A raw server standing in for tidings: the Rust client preferring binary
/// sends its `hello` as a binary WebSocket message in the binary format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_sends_binary_messages_on_the_wire() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let offered = Arc::new(Mutex::new(String::new()));
        let seen = offered.clone();
        // The callback's error type is fixed by tungstenite's handshake API.
        #[allow(clippy::result_large_err)]
        let callback = move |req: &Request, mut resp: Response| {
            let offer = req.headers()["sec-websocket-protocol"]
                .to_str()
                .unwrap()
                .to_owned();
            *seen.lock().unwrap() = offer;
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("tidings.v1.bin"),
            );
            Ok(resp)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
            .await
            .unwrap();
        let first = ws.next().await.unwrap().unwrap();
        let offered = offered.lock().unwrap().clone();
        (offered, first)
    });
    let client = Client::builder(&url)
        .subprotocols([SUBPROTOCOL_BIN, SUBPROTOCOL_JSON])
        .connect()
        .unwrap();
    let (offered, first) = tokio::time::timeout(STEP, server).await.unwrap().unwrap();
    assert_eq!(offered, "tidings.v1.bin, tidings.v1.json");
    let WsMessage::Binary(bytes) = first else {
        panic!("expected a binary hello, got {first:?}")
    };
    let Frame::Hello(h) = BinaryCodec::new().decode(&bytes).unwrap() else {
        panic!("expected hello")
    };
    assert_eq!(h.version, PROTOCOL_VERSION);
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asking_for_v9_is_refused_with_the_reason() {
    let fx = Fixture::start().await;

    // On the wire: HTTP 400, the reason in the body and a header.
    let mut req = fx.url.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("tidings.v9.bin"),
    );
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
        panic!("expected an HTTP refusal, got {err}")
    };
    assert_eq!(resp.status(), 400);
    let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
    for name in ["tidings.v9.bin", "tidings.v1.json", "tidings.v1.bin"] {
        assert!(body.contains(name), "body must name {name}: {body}");
    }
    let header = resp.headers()["x-tidings-error"].to_str().unwrap();
    assert!(header.contains("tidings.v9.bin"), "{header}");

    // Through the Rust client: the refusal reaches the application as the
    // reason of `Disconnected` (and the client keeps backing off).
    let client = Client::builder(&fx.url)
        .subprotocols(["tidings.v9.bin"])
        .connect()
        .unwrap();
    let ClientEvent::Disconnected { reason, .. } = next_event(&client).await else {
        panic!("expected a disconnect")
    };
    assert!(reason.contains("400"), "{reason}");
    assert!(reason.contains("tidings.v9.bin"), "{reason}");
    assert!(reason.contains("tidings.v1.bin"), "{reason}");
    assert!(
        fx.codecs.lock().unwrap().is_empty(),
        "no connection was accepted"
    );
    client.close();
    fx.stop().await;
}
