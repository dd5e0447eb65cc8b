//! `GET /metrics` on a real server: clients on real WebSockets publish and receive known numbers of messages (and bytes, counted on the clients' side), one is rate limited, one resumes; the scraped Prometheus text shows exactly those counts.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tidings_axum::{Metrics, MetricsRouterExt, PUBLISH_LATENCY_METRIC, RouterExt};
use tidings_channels::{Hub, HubConfig, MemoryBroker};
use tidings_protocol::{ChannelRate, RateLimit, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const STEP: Duration = Duration::from_secs(10);
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw client that counts every frame and byte it sends and receives.
struct Client {
    ws: Ws,
    sent_bytes: u64,
    received_bytes: u64,
    received_frames: u64,
}

impl Client {
    async fn open(addr: std::net::SocketAddr) -> Self {
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("tidings.v1.json"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Self {
            ws,
            sent_bytes: 0,
            received_bytes: 0,
            received_frames: 0,
        }
    }

    async fn send(&mut self, frame: Value) {
        let text = frame.to_string();
        self.sent_bytes += text.len() as u64;
        self.ws.send(WsMessage::text(text)).await.unwrap();
    }

    async fn next(&mut self) -> Value {
        loop {
            match tokio::time::timeout(STEP, self.ws.next())
                .await
                .expect("a frame in time")
            {
                Some(Ok(WsMessage::Text(t))) => {
                    self.received_bytes += t.len() as u64;
                    self.received_frames += 1;
                    return serde_json::from_str(&t).unwrap();
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                other => panic!("unexpected: {other:?}"),
            }
        }
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let f = self.next().await;
            if f["type"] == kind {
                return f;
            }
        }
    }
}

async fn scrape(addr: std::net::SocketAddr) -> HashMap<String, f64> {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(STEP, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, name: &str) -> u64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("{name} missing from {m:#?}")) as u64
}

const CLIENTS: usize = 3;
const MESSAGES: u64 = 50;

#[tokio::test]
async fn scraped_metrics_show_exactly_what_the_clients_did() {
    let config = ServerConfig::default().with_channel_rate(
        ChannelRate::new("limited:*").per_session(RateLimit {
            per_second: 1,
            burst: 1,
        }),
    );
    let hub = Hub::with_config(
        Arc::new(MemoryBroker::default()),
        HubConfig::default().with_session(config),
    );
    let app = Router::new()
        .tidings("/ws", hub.clone())
        .tidings_metrics(Metrics::new(hub.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let before = scrape(addr).await;
    assert_eq!(get(&before, "tidings_connections"), 0);
    assert_eq!(get(&before, "tidings_messages_received_total"), 0);

    let mut clients = Vec::new();
    let mut tokens = Vec::new();
    for _ in 0..CLIENTS {
        let mut c = Client::open(addr).await;
        c.send(json!({"type":"hello","version":1,"positions":[]}))
            .await;
        let welcome = c.next_of("welcome").await;
        tokens.push(welcome["resume_token"].as_str().unwrap().to_string());
        c.send(json!({"type":"subscribe","channel":"room:metrics"}))
            .await;
        c.next_of("subscribed").await;
        clients.push(c);
    }
    for c in clients.iter_mut() {
        for seq in 1..=MESSAGES {
            c.send(json!({"type":"publish","channel":"room:metrics","seq":seq,"data":{"n":seq}}))
                .await;
        }
    }
    // The first client also publishes twice on a channel limited to one at once.
    let first = &mut clients[0];
    for seq in [MESSAGES + 1, MESSAGES + 2] {
        first
            .send(json!({"type":"publish","channel":"limited:x","seq":seq,"data":1}))
            .await;
    }
    // Every client reads all messages and its last publish_ack: the server
    // has then written everything it will write (it sends nothing unasked).
    let total = CLIENTS as u64 * MESSAGES;
    for (i, c) in clients.iter_mut().enumerate() {
        let last = if i == 0 { MESSAGES + 2 } else { MESSAGES };
        let (mut messages, mut acked, mut limited) = (0u64, 0u64, 0u64);
        while messages < total || acked < last || (i == 0 && limited == 0) {
            let f = c.next().await;
            match f["type"].as_str().unwrap() {
                "message" => messages += 1,
                "publish_ack" => acked = f["seq"].as_u64().unwrap(),
                "error" => {
                    assert_eq!(f["code"], "rate_limited", "{f}");
                    assert_eq!(f["seq"], MESSAGES + 2, "{f}");
                    limited += 1;
                }
                other => panic!("unexpected {other}: {f}"),
            }
        }
    }
    let m = scrape(addr).await;
    let sent: u64 = clients.iter().map(|c| c.sent_bytes).sum();
    let received: u64 = clients.iter().map(|c| c.received_bytes).sum();
    let frames: u64 = clients.iter().map(|c| c.received_frames).sum();
    assert_eq!(get(&m, "tidings_connections"), CLIENTS as u64);
    assert_eq!(get(&m, "tidings_connections_total"), CLIENTS as u64);
    assert_eq!(get(&m, "tidings_sessions"), CLIENTS as u64);
    assert_eq!(get(&m, "tidings_sessions_total"), CLIENTS as u64);
    assert_eq!(get(&m, "tidings_messages_received_total"), total + 1);
    assert_eq!(
        get(&m, "tidings_messages_sent_total"),
        CLIENTS as u64 * total
    );
    assert_eq!(get(&m, "tidings_received_bytes_total"), sent);
    assert_eq!(get(&m, "tidings_sent_bytes_total"), received);
    assert_eq!(get(&m, "tidings_frames_sent_total"), frames);
    assert_eq!(get(&m, "tidings_publishes_refused_total"), 1);
    assert_eq!(get(&m, "tidings_publishes_rate_limited_total"), 1);
    assert_eq!(get(&m, "tidings_resumes_total"), 0);
    assert_eq!(get(&m, "tidings_gaps_total"), 0);
    assert_eq!(get(&m, "tidings_messages_dropped_total"), 0);
    assert_eq!(get(&m, "tidings_slow_consumer_disconnects_total"), 0);
    // Every accepted publish was timed; the buckets are cumulative.
    let count = format!("{PUBLISH_LATENCY_METRIC}_count");
    assert_eq!(get(&m, &count), total + 1);
    let inf = format!("{PUBLISH_LATENCY_METRIC}_bucket{{le=\"+Inf\"}}");
    assert_eq!(get(&m, &inf), total + 1);
    assert!(m[&format!("{PUBLISH_LATENCY_METRIC}_sum")] > 0.0);

    // The last client's connection drops; it resumes on a new one.
    let last = clients.pop().unwrap();
    drop(last);
    while hub.stats().connections != CLIENTS as u64 - 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut again = Client::open(addr).await;
    let token = tokens.last().unwrap();
    again
        .send(json!({"type":"hello","version":1,"resume":token,
            "positions":[{"channel":"room:metrics","seq":total}]}))
        .await;
    let welcome = again.next_of("welcome").await;
    assert_eq!(welcome["resumed"], true, "{welcome}");
    let m = scrape(addr).await;
    assert_eq!(get(&m, "tidings_resumes_total"), 1);
    assert_eq!(get(&m, "tidings_connections"), CLIENTS as u64);
    assert_eq!(get(&m, "tidings_connections_total"), CLIENTS as u64 + 1);
    assert_eq!(get(&m, "tidings_sessions"), CLIENTS as u64);
    assert_eq!(get(&m, "tidings_sessions_total"), CLIENTS as u64);
    assert_eq!(get(&m, "tidings_messages_received_total"), total + 1);

    // Sessions that end keep their counts in the totals.
    for mut c in clients {
        c.send(json!({"type":"close","code":1000,"reason":"done"}))
            .await;
        c.next_of("close").await;
    }
    while hub.stats().sessions != 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let m = scrape(addr).await;
    assert_eq!(get(&m, "tidings_sessions"), 1);
    assert_eq!(get(&m, "tidings_messages_received_total"), total + 1);
    assert_eq!(
        get(&m, "tidings_messages_sent_total"),
        CLIENTS as u64 * total
    );
}

#[tokio::test]
async fn refused_requests_are_counted_by_code_once_the_recorder_is_global() {
    use tidings_axum::{Origins, Server, TidingsRoute};
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    // One process, one global recorder: nextest runs each test in its own.
    let metrics = Metrics::new(hub.clone()).install().unwrap();
    assert!(
        Metrics::new(hub.clone()).install().is_err(),
        "a second global recorder is a typed error"
    );
    let route = TidingsRoute::new(hub.clone()).origins(Origins::only(["http://app.example"]));
    let app = Router::new()
        .tidings_route("/ws", route)
        .tidings_metrics(metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Server::new().max_connections_per_ip(2).serve(
        listener,
        app,
        std::future::pending(),
    ));
    // A foreign Origin on the upgrade: 403.
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("tidings.v1.json"),
    );
    headers.insert("origin", HeaderValue::from_static("http://evil.example"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    // Two idle connections hold this IP's slots: the third is answered 429.
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(STEP, c.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    drop((_a, _b));
    // Scrape once the slots are free again.
    let m = loop {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        let _ = tokio::time::timeout(STEP, s.read_to_string(&mut out)).await;
        if out.starts_with("HTTP/1.1 200") {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let line = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from {m}"))
    };
    assert_eq!(
        line(r#"tidings_rejections_total{code="forbidden-origin"}"#),
        1.0
    );
    assert_eq!(
        line(r#"tidings_rejections_total{code="too-many-connections"}"#),
        1.0
    );
}
