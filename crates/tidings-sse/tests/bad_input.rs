//! Misbehaving SSE clients: bad POSTs get typed status codes and change nothing, POSTs to ended or closed sessions are refused, a reader that never reads is cut off with memory bounded — other clients are served throughout.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use tidings_axum::SseRoute;
use tidings_channels::{Hub, HubConfig, MemoryBroker, MemoryBrokerConfig};
use tidings_protocol::{ChannelName, ClientEvent, Limits, ServerConfig};
use tidings_sse::{Client, SseConfig};
use tidings_test::suite::{
    SLOW_BATCH as BATCH, SLOW_PAYLOAD_BYTES as PAYLOAD_BYTES, SLOW_QUEUE_LIMIT as QUEUE_LIMIT,
    SLOW_TOTAL_BYTES as TOTAL_BYTES, memory, padded_payload,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const MAX_POST: usize = 4096;

struct Fixture {
    hub: Hub,
    url: String,
    /// A well-behaved client subscribed to "room", and one publishing to it.
    good: Client,
    publisher: Client,
    next_seq: u64,
}

impl Fixture {
    async fn start() -> Self {
        // The frame limit of the hub's sessions is checked on POSTs too.
        let session =
            ServerConfig::default().with_limits(Limits::default().with_max_frame_bytes(1024));
        let (hub, _) = hub_with(HubConfig::default().with_session(session));
        let route =
            SseRoute::new(hub.clone()).config(SseConfig::default().with_max_post_bytes(MAX_POST));
        let (_, url) = serve_route(route).await;
        let good = Client::builder(&url).connect().unwrap();
        good.subscribe("room").unwrap();
        wait_subscribed(&good).await;
        let publisher = Client::builder(&url).connect().unwrap();
        Self {
            hub,
            url,
            good,
            publisher,
            next_seq: 1,
        }
    }

    /// Another message from the publisher reaches the good client, in order.
    async fn still_served(&mut self) {
        let payload = json!({"n": self.next_seq}).to_string();
        self.publisher.publish("room", payload.clone()).unwrap();
        let m = next_message(&self.good).await;
        assert_eq!(
            (m.seq, String::from_utf8(m.payload.to_vec()).unwrap()),
            (self.next_seq, payload)
        );
        self.next_seq += 1;
    }
}

/// A raw stream and its POST address and token.
async fn raw(url: &str) -> (RawStream, String, String) {
    let mut s = RawStream::open(url, &[]).await;
    let (welcome, _) = s.next_frame().await;
    let post_url = format!("{url}/{}", welcome["session"].as_str().unwrap());
    (
        s,
        post_url,
        welcome["resume_token"].as_str().unwrap().to_string(),
    )
}

fn check(
    what: &str,
    got: &(u16, String, reqwest::header::HeaderMap),
    status: u16,
    error: &str,
    text: &str,
) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert_eq!(
        got.2.get("x-tidings-error").and_then(|v| v.to_str().ok()),
        Some(error),
        "{what}: {}",
        got.1
    );
    assert!(
        got.1.contains(text),
        "{what}: body {:?} should mention {text:?}",
        got.1
    );
}

/// A publish over the sessions' frame limit (1024) but within the POST's
/// (twice that) is refused by name on the event stream: an `error` naming its
/// seq, no close; the next publish is taken and acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_publish_is_refused_by_name_on_the_stream() {
    let mut fx = Fixture::start().await;
    let (mut s, post_url, token) = raw(&fx.url).await;
    let big = json!({"type":"publish","channel":"room","seq":1,"data":"x".repeat(1500)});
    let got = post(&post_url, Some(&token), big.to_string()).await;
    assert_eq!(got.0, 202, "{}", got.1);
    let (error, _) = s.next_frame().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "frame_too_large", "{error}");
    assert_eq!(error["seq"], 1, "the error names the publish: {error}");
    let small = json!({"type":"publish","channel":"room","seq":2,"data":{"ok":true}});
    let got = post(&post_url, Some(&token), small.to_string()).await;
    assert_eq!(got.0, 202, "{}", got.1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no publish_ack for seq 2"
        );
        let (frame, _) = s.next_frame().await;
        assert_ne!(frame["type"], "close", "the stream must stay open: {frame}");
        if frame["type"] == "publish_ack" && frame["seq"] == 2 {
            break;
        }
    }
    // The good client got the small one (published by the raw client), in order.
    let m = next_message(&fx.good).await;
    assert_eq!(&m.payload[..], br#"{"ok":true}"#);
    fx.next_seq += 1;
    fx.still_served().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_posts_get_typed_refusals_and_change_nothing() {
    let mut fx = Fixture::start().await;
    let (mut s, post_url, token) = raw(&fx.url).await;
    let sub = json!({"type":"subscribe","channel":"room"}).to_string();
    fx.still_served().await;

    let got = post(&post_url, None, sub.clone()).await;
    check("no token", &got, 401, "unauthorized", "x-tidings-token");
    let got = post(&post_url, Some("0123456789abcdef"), sub.clone()).await;
    check(
        "unknown token",
        &got,
        404,
        "unknown-session",
        "unknown or expired",
    );
    let got = post(
        &format!("{}/not-my-session", fx.url),
        Some(&token),
        sub.clone(),
    )
    .await;
    check(
        "someone else's session",
        &got,
        404,
        "unknown-session",
        "does not belong",
    );
    let got = post(&post_url, Some(&token), "{\"type\":\"subscribe\",").await;
    check(
        "malformed JSON",
        &got,
        400,
        "malformed_frame",
        "malformed body",
    );
    let got = post(&post_url, Some(&token), "").await;
    check("empty body", &got, 400, "malformed_frame", "empty body");
    let got = post(
        &post_url,
        Some(&token),
        format!("{sub}\n{{\"type\":\"teleport\"}}"),
    )
    .await;
    check(
        "unknown frame type",
        &got,
        400,
        "unknown_frame_type",
        "teleport",
    );
    let got = post(
        &post_url,
        Some(&token),
        json!({"type":"subscribe","channel":""}).to_string(),
    )
    .await;
    check(
        "invalid channel",
        &got,
        400,
        "malformed_frame",
        "invalid channel name",
    );
    let got = post(&post_url, Some(&token), r#"{"type":"hello","version":1}"#).await;
    check(
        "a server-side frame",
        &got,
        400,
        "unexpected_frame",
        "not by clients",
    );
    // Past twice the sessions' frame limit a frame is refused with the POST;
    // below that a publish reaches the session and is refused by name
    // (`an_oversized_publish_is_refused_by_name_on_the_stream`).
    let big_frame =
        json!({"type":"publish","channel":"room","seq":1,"data":"x".repeat(2100)}).to_string();
    let got = post(&post_url, Some(&token), big_frame).await;
    check(
        "a frame over twice max_frame",
        &got,
        413,
        "frame_too_large",
        "limit of 2048",
    );
    let got = post(&post_url, Some(&token), "x".repeat(MAX_POST + 1)).await;
    check(
        "a body over max_post_bytes",
        &got,
        413,
        "body-too-large",
        "larger than 4096",
    );
    // Without Content-Length (chunked), the limit still holds.
    let (status, text) = chunked_post(&post_url, &token, 8, 1024).await;
    assert_eq!(status, 413, "a chunked body over max_post_bytes: {text}");
    assert!(text.contains("larger than 4096"), "{text}");

    // None of it reached the session: it is subscribed to nothing, and the good
    // clients went on undisturbed.
    assert!(
        s.try_next_event(Duration::from_millis(200)).await.is_none(),
        "refused POSTs must not be applied"
    );
    fx.still_served().await;

    // The same session, well-behaved now, works.
    let got = post(&post_url, Some(&token), format!("{sub}\n")).await;
    assert_eq!(got.0, 202, "{}", got.1);
    let (subscribed, _) = s.next_frame().await;
    assert_eq!(
        subscribed,
        json!({"type":"subscribed","channel":"room","seq":fx.next_seq - 1})
    );
    fx.still_served().await;
    let (m, _) = s.frame_of("message", &mut Vec::new()).await;
    assert_eq!(m["seq"], fx.next_seq - 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn posts_to_ended_and_closed_sessions() {
    let mut fx = Fixture::start().await;
    let ping = r#"{"type":"ping","nonce":7}"#;

    // The client leaves: its session waits for a resume, POSTs are told to reconnect first.
    let (s, post_url, token) = raw(&fx.url).await;
    assert_eq!(post(&post_url, Some(&token), ping).await.0, 202);
    drop(s);
    let deadline = tokio::time::Instant::now() + STEP;
    let got = loop {
        let got = post(&post_url, Some(&token), ping).await;
        if got.0 != 202 || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    check(
        "POST after the stream ended",
        &got,
        409,
        "no-stream",
        "Last-Event-ID",
    );
    // Resuming the stream makes the session take POSTs again.
    let mut s = RawStream::open(&fx.url, &[("last-event-id", &format!("{token}.1"))]).await;
    assert_eq!(s.next_frame().await.0["resumed"], true);
    assert_eq!(post(&post_url, Some(&token), ping).await.0, 202);
    let (pong, _) = s.frame_of("pong", &mut Vec::new()).await;
    assert_eq!(pong["nonce"], 7);

    // The client ends its session: the server answers `close`, ends the
    // stream, and later POSTs are told the session is gone.
    let close = r#"{"type":"close","code":1000,"reason":"bye"}"#;
    assert_eq!(post(&post_url, Some(&token), close).await.0, 202);
    let (reply, _) = s.frame_of("close", &mut Vec::new()).await;
    assert_eq!(reply["code"], 1000);
    assert!(s.ends_within(STEP).await, "the stream ends after close");
    let got = post(&post_url, Some(&token), ping).await;
    check(
        "POST to a closed session",
        &got,
        410,
        "session-closed",
        "closed",
    );
    // Its id does not resume anything any more.
    let mut s = RawStream::open(&fx.url, &[("last-event-id", &format!("{token}.1"))]).await;
    assert_eq!(s.next_frame().await.0["resumed"], false);

    // A protocol error the POST check cannot see (a publish sequence jump)
    // ends that session only.
    let (mut s, post_url, token) = raw(&fx.url).await;
    let jump = json!({"type":"publish","channel":"room","seq":5,"data":1}).to_string();
    assert_eq!(post(&post_url, Some(&token), jump).await.0, 202);
    let (err, _) = s.frame_of("error", &mut Vec::new()).await;
    assert_eq!(err["code"], "unexpected_frame");
    let (close, _) = s.frame_of("close", &mut Vec::new()).await;
    assert_eq!(close["code"], 1002);
    assert!(s.ends_within(STEP).await);
    let got = post(&post_url, Some(&token), ping).await;
    check(
        "POST after a protocol error",
        &got,
        410,
        "session-closed",
        "1002",
    );
    fx.still_served().await;
    assert!(fx.hub.stats().sessions >= 2);
}

/// POSTs `chunks` chunks of `size` spaces with chunked transfer encoding
/// (no Content-Length) over a raw socket; returns the status and the whole response.
async fn chunked_post(url: &str, token: &str, chunks: usize, size: usize) -> (u16, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nx-tidings-token: {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..chunks {
        // The server may answer and close before taking everything.
        if stream
            .write_all(format!("{size:x}\r\n{}\r\n", " ".repeat(size)).as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(STEP, stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

fn payload(seq: u64) -> Vec<u8> {
    padded_payload(seq, PAYLOAD_BYTES)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_never_reads_is_cut_off_while_others_are_served() {
    let mut broker_config = MemoryBrokerConfig::default();
    broker_config.history_len = 64;
    let broker = Arc::new(MemoryBroker::new(broker_config));
    let session =
        ServerConfig::default().with_limits(Limits::default().with_max_queued_bytes(QUEUE_LIMIT));
    let hub = Hub::with_config(broker.clone(), HubConfig::default().with_session(session));
    let (addr, url) = serve_route(SseRoute::new(hub.clone())).await;

    // The slow consumer: a raw HTTP client with a small receive buffer that
    // reads the welcome, subscribes by POST, then never reads again.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut slow = socket.connect(addr).await.unwrap();
    slow.write_all(format!("GET /sse HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let welcome = loop {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(STEP, slow.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "stream ended early");
        head.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&head);
        if let Some(start) = text.find("data: {\"type\":\"welcome\"")
            && let Some(end) = text[start..].find('\n')
        {
            break serde_json::from_str::<serde_json::Value>(&text[start + 6..start + end])
                .unwrap();
        }
    };
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
    let post_url = format!("{url}/{}", welcome["session"].as_str().unwrap());
    let token = welcome["resume_token"].as_str().unwrap().to_string();
    let sub = json!({"type":"subscribe","channel":"firehose"}).to_string();
    assert_eq!(post(&post_url, Some(&token), sub).await.0, 202);

    let good = Client::builder(&url).connect().unwrap();
    good.subscribe("firehose").unwrap();
    let channel = ChannelName::new("firehose").unwrap();
    wait_until("both subscriptions", || {
        broker.subscriber_count(&channel) == 2
    })
    .await;

    let before = memory();
    let total = (TOTAL_BYTES / PAYLOAD_BYTES) as u64;
    let (mut next, mut published) = (1u64, 0u64);
    while published < total {
        for _ in 0..BATCH.min(total - published) {
            published += 1;
            assert_eq!(
                hub.publish("firehose", payload(published))
                    .await
                    .unwrap()
                    .seq,
                published
            );
        }
        while next <= published {
            match tokio::time::timeout(STEP, good.next_event())
                .await
                .expect("good client fell behind")
                .unwrap()
            {
                ClientEvent::Message(m) => {
                    assert_eq!(m.seq, next, "good client: out of order");
                    assert_eq!(&m.payload[..], &payload(next)[..]);
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

    // The slow consumer's stream was closed with 4002 (after the close grace
    // period): its session waits for a resume, so its POSTs are told to reconnect.
    let deadline = tokio::time::Instant::now() + STEP;
    let got = loop {
        let got = post(&post_url, Some(&token), r#"{"type":"ping","nonce":1}"#).await;
        if got.0 != 202 || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    check("POST of the slow consumer", &got, 409, "no-stream", "4002");
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
    // When it reads at last it gets an in-order prefix, then the close comment
    // and the end of the stream.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(STEP, slow.read_to_end(&mut rest)).await;
    let mut parser = tidings_sse::parser::EventParser::new();
    let body_start = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut all = head[body_start..].to_vec();
    all.extend_from_slice(&rest);
    // Chunked transfer encoding: strip the chunk size lines crudely by parsing
    // events out of the raw bytes; chunk-size lines are ignored as unknown fields.
    let _ = parser.feed(&all);
    let mut last = 0;
    while let Some(e) = parser.next_event() {
        if let Ok(f) = serde_json::from_str::<serde_json::Value>(&e.data)
            && f["type"] == "message"
        {
            let seq = f["seq"].as_u64().unwrap();
            assert!(seq > last, "slow consumer: out of order");
            last = seq;
        }
    }
    assert!(
        last < total,
        "the slow consumer must have been cut off, yet it got all {total} messages"
    );
    let raw = String::from_utf8_lossy(&all);
    assert!(
        raw.contains(": close 4002 slow consumer"),
        "the stream ends with the close code"
    );
    eprintln!("slow consumer received up to message {last} of {total} before the cut");
    good.close();
}
