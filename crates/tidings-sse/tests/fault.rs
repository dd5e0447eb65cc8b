//! Fault test through the real TCP fault proxy: 10,000 messages while every SSE stream (and POST) is cut mid-frame 5 times arrive exactly once, in order.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use tidings_axum::SseRoute;
use tidings_channels::HubConfig;
use tidings_protocol::{ClientConfig, ClientEvent, Limits, ServerConfig};
use tidings_sse::{Client, SseConfig};
use tidings_test::proxy::{FaultProxy, MidFrameCut};

const MESSAGES: usize = 10_000;
const CUTS: usize = 5;

fn client(url: &str) -> Client {
    let config = ClientConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .with_limits(Limits::default().with_max_queued_bytes(16 << 20));
    Client::builder(url)
        .session_config(config)
        .connect()
        .unwrap()
}

async fn next30(c: &Client) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(30), c.next_event())
        .await
        .expect("no event within 30 s: delivery stalled")
        .expect("client closed unexpectedly")
}

/// 10,000 messages published by one SSE client and received by another, both
/// through a proxy that adds delay and cuts every link (the event streams and
/// the POSTs) mid-frame 5 times: the receiver gets every message exactly once,
/// in order, with no gap; every reconnect resumes its session by `Last-Event-ID`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_survive_five_mid_frame_cuts() {
    let limits = Limits::default()
        .with_replay_buffer_bytes(16 << 20)
        .with_max_queued_bytes(16 << 20);
    let session = ServerConfig::default()
        .with_limits(limits)
        .with_heartbeat(Duration::from_secs(2));
    let (hub, _) = hub_with(HubConfig::default().with_session(session));
    // A short retry keeps the test quick; the clients still wait for it.
    let sse = SseConfig::default().with_retry(Duration::from_millis(50));
    let (addr, _) = serve_route(SseRoute::new(hub.clone()).config(sse)).await;
    let proxy = FaultProxy::start(addr).await.unwrap();
    proxy.set_delay(Duration::from_millis(1));
    let url = format!("http://{}/sse", proxy.addr());

    let receiver = client(&url);
    let sender = client(&url);
    receiver.subscribe("fault").unwrap();
    loop {
        if let ClientEvent::Subscribed { .. } = next30(&receiver).await {
            break;
        }
    }

    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let recv_task = tokio::spawn(async move {
        let mut got = Vec::with_capacity(MESSAGES);
        let mut gaps = Vec::new();
        let mut reconnects = 0;
        while got.len() < MESSAGES || reconnects < CUTS {
            match next30(&receiver).await {
                ClientEvent::Message(m) => {
                    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                    got.push((m.seq, v["i"].as_u64().unwrap()));
                    let _ = progress_tx.send(got.len());
                }
                ClientEvent::Gap(g) => gaps.push(g),
                ClientEvent::Connected { resumed, .. } => {
                    assert!(resumed, "the receiver's session must resume, not restart");
                    reconnects += 1;
                }
                _ => {}
            }
        }
        (got, gaps, reconnects)
    });

    let per_slice = MESSAGES / CUTS;
    let mut cuts = Vec::new();
    for slice in 0..CUTS {
        for i in slice * per_slice..(slice + 1) * per_slice {
            sender.publish("fault", format!(r#"{{"i":{i}}}"#)).unwrap();
        }
        let target = slice * per_slice + per_slice / 4;
        progress.wait_for(|n| *n >= target).await.unwrap();
        cuts.push(proxy.cut_mid_frame().await);
    }

    let (got, gaps, reconnects) = tokio::time::timeout(Duration::from_secs(120), recv_task)
        .await
        .unwrap()
        .unwrap();
    assert!(gaps.is_empty(), "no gap may be reported: {gaps:?}");
    assert_eq!(got.len(), MESSAGES);
    for (k, (seq, i)) in got.iter().enumerate() {
        assert_eq!(
            *seq,
            k as u64 + 1,
            "per-channel sequence must be gap-free and ordered"
        );
        assert_eq!(
            *i, k as u64,
            "payloads must arrive exactly once, in publish order"
        );
    }
    let mid_frame = cuts
        .iter()
        .filter(|c| matches!(c, MidFrameCut::MidFrame { .. }))
        .count();
    assert_eq!(cuts.len(), CUTS);
    assert!(
        mid_frame >= 1,
        "at least one cut must land inside a frame: {cuts:?}"
    );
    assert!(
        reconnects >= CUTS,
        "the receiver reconnected {reconnects} times for {CUTS} cuts"
    );
    let stats = proxy.stats();
    assert!(stats.connections_cut >= CUTS as u64);
    println!(
        "sse fault test: {MESSAGES} messages, cuts {cuts:?}, receiver reconnects {reconnects}, proxy {stats:?}"
    );
    sender.close();
}
