//! Fault tests through the real TCP fault proxy: messages survive links cut mid-frame, exactly once and in order.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tidings_channels::{Hub, HubConfig, MemoryBroker};
use tidings_protocol::{ClientConfig, ClientEvent, Limits, ServerConfig};
use tidings_test::proxy::{FaultProxy, MidFrameCut};
use tidings_ws::{Accepted, Client, ServerHandle, WsServer};

const MESSAGES: usize = 10_000;
const CUTS: usize = 5;

async fn server(hub: Hub) -> ServerHandle {
    let server = WsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        tidings_ws::ServerConfig::default(),
    )
    .await
    .unwrap();
    server.serve(move |conn: Accepted| {
        let hub = hub.clone();
        async move {
            let (transport, codec, _shutdown) = conn.into_transport();
            hub.serve(transport, codec).await;
        }
    })
}

fn hub() -> Hub {
    let limits = Limits::default()
        .with_replay_buffer_bytes(16 << 20)
        .with_max_queued_bytes(16 << 20);
    let session = ServerConfig::default()
        .with_limits(limits)
        .with_heartbeat(Duration::from_secs(2));
    Hub::with_config(
        Arc::new(MemoryBroker::default()),
        HubConfig::default().with_session(session),
    )
}

fn client(url: &str) -> Client {
    let config = ClientConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .with_limits(Limits::default().with_max_queued_bytes(16 << 20));
    Client::builder(url)
        .session_config(config)
        .connect()
        .unwrap()
}

async fn next(c: &Client) -> ClientEvent {
    tokio::time::timeout(Duration::from_secs(30), c.next_event())
        .await
        .expect("no event within 30 s: delivery stalled")
        .expect("client closed unexpectedly")
}

/// 10,000 messages published by one client and received by another, both
/// through a proxy that adds delay and cuts every link mid-frame 5 times: the
/// receiver gets every message exactly once, in order, with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_survive_five_mid_frame_cuts() {
    let hub = hub();
    let handle = server(hub.clone()).await;
    let proxy = FaultProxy::start(handle.local_addr()).await.unwrap();
    proxy.set_delay(Duration::from_millis(1));
    let url = format!("ws://{}/", proxy.addr());

    let receiver = client(&url);
    let sender = client(&url);
    receiver.subscribe("fault").unwrap();
    loop {
        if let ClientEvent::Subscribed { .. } = next(&receiver).await {
            break;
        }
    }

    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let recv_task = tokio::spawn(async move {
        let mut got = Vec::with_capacity(MESSAGES);
        let mut gaps = Vec::new();
        let mut reconnects = 0;
        // Every cut resets the receiver's link too: wait for all messages and all resumes.
        while got.len() < MESSAGES || reconnects < CUTS {
            match next(&receiver).await {
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

    // Publish in 5 slices; after each slice, cut every link mid-frame while data flows.
    let per_slice = MESSAGES / CUTS;
    let mut cuts = Vec::new();
    for slice in 0..CUTS {
        for i in slice * per_slice..(slice + 1) * per_slice {
            sender.publish("fault", format!(r#"{{"i":{i}}}"#)).unwrap();
        }
        // Wait until part of this slice has arrived so the cut lands mid-stream.
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
        "fault test: {MESSAGES} messages, cuts {cuts:?}, receiver reconnects {reconnects}, proxy {stats:?}"
    );
    sender.close();
    handle.shutdown().await;
}
