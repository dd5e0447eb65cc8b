//! Misbehaving clients, Rust only: a subscriber that never reads is cut off with 4002 while the others are served in order, with server memory bounded.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tidings_channels::{Hub, HubConfig, MemoryBroker, MemoryBrokerConfig};
use tidings_protocol::{ChannelName, ClientEvent, Limits, ServerConfig as SessionConfig};
use tidings_test::suite::{
    SLOW_BATCH as BATCH, SLOW_PAYLOAD_BYTES as PAYLOAD_BYTES, SLOW_QUEUE_LIMIT as QUEUE_LIMIT,
    SLOW_TOTAL_BYTES as TOTAL_BYTES, memory, padded_payload,
};
use tidings_ws::{Accepted, Client, ServerConfig, WsServer};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;

const STEP: Duration = Duration::from_secs(20);

fn payload(seq: u64) -> Vec<u8> {
    padded_payload(seq, PAYLOAD_BYTES)
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_consumer_is_cut_off_while_others_are_served() {
    let mut broker_config = MemoryBrokerConfig::default();
    broker_config.history_len = 64; // the broker's history is not what this test measures
    let broker = Arc::new(MemoryBroker::new(broker_config));
    let session =
        SessionConfig::default().with_limits(Limits::default().with_max_queued_bytes(QUEUE_LIMIT));
    let hub = Hub::with_config(broker.clone(), HubConfig::default().with_session(session));
    let served = hub.clone();
    let server = WsServer::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .await
        .unwrap()
        .serve(move |conn: Accepted| {
            let hub = served.clone();
            async move {
                let (t, codec, _shutdown) = conn.into_transport();
                hub.serve(t, codec).await
            }
        });
    let addr = server.local_addr();
    let url = format!("ws://{addr}/");

    // The slow consumer: a raw WebSocket with a small receive buffer (no
    // autotuning: loopback receive buffers may otherwise grow to tens of MiB),
    // which subscribes and then never reads.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("tidings.v1.json"),
    );
    let (mut slow, response) = tokio_tungstenite::client_async(request, stream)
        .await
        .unwrap();
    assert_eq!(
        response.headers()[SEC_WEBSOCKET_PROTOCOL],
        "tidings.v1.json"
    );
    slow.send(WsMessage::text(r#"{"type":"hello","version":1}"#))
        .await
        .unwrap();
    slow.send(WsMessage::text(
        r#"{"type":"subscribe","channel":"firehose"}"#,
    ))
    .await
    .unwrap();

    // The well-behaved client.
    let good = Client::builder(&url).connect().unwrap();
    good.subscribe("firehose").unwrap();
    let channel = ChannelName::new("firehose").unwrap();
    let deadline = tokio::time::Instant::now() + STEP;
    while broker.subscriber_count(&channel) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriptions not active in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let before = memory();
    let total = (TOTAL_BYTES / PAYLOAD_BYTES) as u64;
    let mut next = 1u64;
    let mut published = 0u64;
    while published < total {
        for _ in 0..BATCH.min(total - published) {
            published += 1;
            let receipt = hub.publish("firehose", payload(published)).await.unwrap();
            assert_eq!(receipt.seq, published);
        }
        while next <= published {
            let event = tokio::time::timeout(STEP, good.next_event())
                .await
                .expect("good client fell behind");
            match event.expect("good client closed") {
                ClientEvent::Message(m) => {
                    assert_eq!(m.seq, next, "good client: out of order");
                    assert_eq!(
                        &m.payload[..],
                        &payload(next)[..],
                        "good client: wrong payload"
                    );
                    next += 1;
                }
                ClientEvent::Subscribed { .. }
                | ClientEvent::Connected { .. }
                | ClientEvent::PublishAcked { .. } => {}
                other => panic!("good client must be served without interruption, got {other:?}"),
            }
        }
    }
    let after = memory();

    // The slow consumer finally reads: what it gets is an in-order prefix of
    // the stream, then a close with 4002.
    let mut last_seq = 0u64;
    let close = loop {
        let msg = tokio::time::timeout(STEP, slow.next())
            .await
            .expect("slow consumer: nothing in time");
        match msg {
            Some(Ok(WsMessage::Text(t))) => {
                let frame: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if frame["type"] == "message" {
                    let seq = frame["seq"].as_u64().unwrap();
                    assert_eq!(seq, last_seq + 1, "slow consumer: out of order");
                    last_seq = seq;
                } else {
                    assert!(
                        ["welcome", "subscribed"].contains(&frame["type"].as_str().unwrap()),
                        "slow consumer: unexpected {frame}"
                    );
                }
            }
            Some(Ok(WsMessage::Close(frame))) => break frame.expect("close frame with a code"),
            Some(Ok(other)) => panic!("slow consumer: unexpected {other:?}"),
            Some(Err(e)) => panic!("slow consumer: connection failed without a close frame: {e}"),
            None => panic!("slow consumer: connection ended without a close frame"),
        }
    };
    assert_eq!(u16::from(close.code), 4002, "{close:?}");
    assert!(close.reason.contains("slow consumer"), "{close:?}");
    assert!(
        last_seq < total,
        "the slow consumer must have been cut off, yet it got all {total} messages"
    );
    eprintln!("slow consumer received {last_seq} of {total} messages before 4002");

    // Memory: what was queued for the slow consumer is bounded (queue limit,
    // WebSocket write buffer, replay buffer), far below the 20 MiB published.
    if let (Some((_, rss_before)), Some((peak_after, rss_after))) = (before, after) {
        let growth = peak_after.saturating_sub(rss_before);
        eprintln!(
            "RSS before {rss_before}, after {rss_after}, peak {peak_after}: peak growth {growth} bytes"
        );
        assert!(
            growth < (TOTAL_BYTES / 2) as u64,
            "peak RSS grew by {growth} bytes while publishing {TOTAL_BYTES} bytes: the slow consumer's queue is not bounded"
        );
    }

    good.close();
    hub.shutdown("test over");
    server.shutdown().await;
}

/// A raw tidings client over WebSocket (JSON codec): the `welcome`, then frames by hand.
async fn raw_client(
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    request.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("tidings.v1.json"),
    );
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), false)
        .await
        .unwrap();
    ws.send(WsMessage::text(r#"{"type":"hello","version":1}"#))
        .await
        .unwrap();
    let welcome = next_json(&mut ws).await;
    assert_eq!(welcome["type"], "welcome");
    ws
}

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> serde_json::Value {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("no frame within the step")
        {
            Some(Ok(WsMessage::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(WsMessage::Close(c))) => {
                return serde_json::json!({"ws_close": c.map(|c| u16::from(c.code))});
            }
            Some(Ok(_)) => continue,
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    }
}

async fn hub_server() -> tidings_ws::ServerHandle {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    WsServer::bind("127.0.0.1:0".parse().unwrap(), ServerConfig::default())
        .await
        .unwrap()
        .serve(move |conn: Accepted| {
            let hub = hub.clone();
            async move {
                let (t, codec, _shutdown) = conn.into_transport();
                hub.serve(t, codec).await
            }
        })
}

/// A publish over the session's frame limit (1 MiB) but within the WebSocket
/// message limit (2 MiB) is refused by name, once: an `error` naming its
/// seq, no close; the next publish is taken and acknowledged. A message past
/// the WebSocket limit closes the connection with 1009 (a close frame, not a
/// bare reset).
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_publish_is_refused_by_name_and_a_huge_message_closes_with_1009() {
    let server = hub_server().await;
    let mut ws = raw_client(server.local_addr()).await;
    let big = format!(
        r#"{{"type":"publish","channel":"room","seq":1,"data":"{}"}}"#,
        "x".repeat(1_500_000)
    );
    ws.send(WsMessage::text(big)).await.unwrap();
    let error = next_json(&mut ws).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "frame_too_large", "{error}");
    assert_eq!(error["seq"], 1, "the error names the publish: {error}");
    ws.send(WsMessage::text(
        r#"{"type":"publish","channel":"room","seq":2,"data":{"ok":true}}"#,
    ))
    .await
    .unwrap();
    loop {
        let f = next_json(&mut ws).await;
        assert!(f.get("ws_close").is_none(), "the session must go on: {f}");
        if f["type"] == "publish_ack" {
            assert_eq!(f["seq"], 2, "{f}");
            break;
        }
    }

    let mut ws = raw_client(server.local_addr()).await;
    let huge = format!(
        r#"{{"type":"publish","channel":"room","seq":1,"data":"{}"}}"#,
        "x".repeat(3 << 20)
    );
    // The server may stop reading mid-message: the write can fail.
    let _ = ws.send(WsMessage::text(huge)).await;
    let close = next_json(&mut ws).await;
    assert_eq!(close["ws_close"], 1009, "{close}");
    server.shutdown().await;
}
