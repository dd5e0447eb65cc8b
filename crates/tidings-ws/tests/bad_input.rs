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
