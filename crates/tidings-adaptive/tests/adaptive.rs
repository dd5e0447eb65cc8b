//! The adaptive client on real sockets: WebTransport blocked → WebSocket, WebSocket upgrades refused → SSE, 10,000 messages across forced switches WT→WS→SSE→WT, and the upgrade back once the WebTransport path recovers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Servers, WAIT, connected, next_message, subscribed, switched_to};
use tidings_adaptive::{AdaptiveEvent, Client, SwitchReason};
use tidings_protocol::Discovery;
use tidings_runtime::TransportKind::{self, Sse, WebSocket, WebTransport};
use tidings_test::suite;

/// Publishes `from..=to` on `channel`, keeping at most 256 unacknowledged.
async fn publish_range(c: &Client, channel: &str, from: u64, to: u64) {
    for i in from..=to {
        loop {
            match c.publish(channel, i.to_string()) {
                Ok(_) => break,
                Err(e) if e.is_queue_full() => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) => panic!("publish {i}: {e}"),
            }
        }
        while c.unacked() > 256 {
            // Pacing, not synchronisation: the receiver checks every message.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Reads messages until `to`, checking they are exactly `from..=to` in order.
async fn expect_range(c: &Client, from: u64, to: u64) {
    for want in from..=to {
        let m = next_message(c).await;
        let got: u64 = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        assert_eq!(got, want, "message {want} lost, repeated or out of order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_webtransport_udp_lands_on_websocket_within_the_attempt_timeout() {
    let s = Servers::start().await;
    let udp = s.wt_proxy().await;
    udp.set_blackhole(true);
    let timeout = Duration::from_secs(1);
    let c = s
        .builder(udp.addr(), s.http)
        .attempt_timeout(timeout)
        .connect()
        .unwrap();
    let (kind, after, _) = tokio::time::timeout(timeout, connected(&c))
        .await
        .expect("on a transport within the configured attempt timeout");
    assert_eq!(kind, WebSocket);
    assert!(after <= timeout, "connected after {after:?}");
    assert_eq!(c.transport(), Some(WebSocket));
    c.subscribe("room").unwrap();
    subscribed(&c).await;
    c.publish("room", "1").unwrap();
    expect_range(&c, 1, 1).await;
    let stats = c.stats();
    assert_eq!(stats.connections.websocket, 1);
    assert_eq!(stats.attempts.webtransport, 1);
    assert!(
        udp.stats().dropped > 0,
        "the proxy dropped the QUIC handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_websocket_upgrade_lands_on_sse() {
    let s = Servers::start().await;
    let proxy = s.refusing_proxy().await;
    let p = proxy.addr();
    let c = Client::builder()
        .session_config(suite::client_session_config())
        .websocket(format!("ws://{p}/ws"))
        .sse(format!("http://{p}/sse"))
        .connect()
        .unwrap();
    let (kind, _, failed) = connected(&c).await;
    assert_eq!(kind, Sse);
    assert!(
        failed
            .iter()
            .any(|(k, e)| *k == WebSocket && e.contains("403")),
        "the WebSocket attempt failed with the proxy's 403: {failed:?}"
    );
    assert!(proxy.refused() >= 1);
    c.subscribe("room").unwrap();
    subscribed(&c).await;
    publish_range(&c, "room", 1, 20).await;
    expect_range(&c, 1, 20).await;
    assert_eq!(c.transport(), Some(Sse));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_across_forced_switches_wt_ws_sse_wt() {
    const N: u64 = 10_000;
    let s = Servers::start().await;
    let c = Arc::new(s.builder(s.wt.local_addr(), s.http).connect().unwrap());
    let (kind, _, _) = connected(&c).await;
    assert_eq!(kind, WebTransport);
    c.subscribe("load").unwrap();
    subscribed(&c).await;
    // Switch after 2,500, 5,000 and 7,500 messages were read, with 500 more
    // published and in flight each time (and publishes not yet acknowledged).
    let plan: [(u64, TransportKind); 3] = [(2_500, WebSocket), (5_000, Sse), (7_500, WebTransport)];
    let (switched_tx, mut switched_rx) = tokio::sync::watch::channel(0usize);
    let publisher = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut from = 1;
            for (stage, (at, _)) in plan.iter().enumerate() {
                let to = at + 500;
                publish_range(&c, "load", from, to).await;
                from = to + 1;
                switched_rx
                    .wait_for(|n| *n > stage)
                    .await
                    .expect("receiver alive");
            }
            publish_range(&c, "load", from, N).await;
        })
    };
    let mut from = 1;
    for (stage, (at, kind)) in plan.iter().enumerate() {
        expect_range(&c, from, *at).await;
        from = at + 1;
        c.switch_to(*kind).unwrap();
        let e = switched_to(&c, *kind).await;
        assert!(
            matches!(
                e,
                AdaptiveEvent::Switched {
                    reason: SwitchReason::Forced,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(c.transport(), Some(*kind));
        switched_tx.send(stage + 1).unwrap();
    }
    expect_range(&c, from, N).await;
    tokio::time::timeout(WAIT, publisher)
        .await
        .unwrap()
        .unwrap();
    let stats = c.stats();
    assert_eq!(stats.switches, 3);
    assert_eq!(stats.forced, 3);
    assert_eq!(stats.connections.webtransport, 2);
    assert_eq!(stats.connections.websocket, 1);
    assert_eq!(stats.connections.sse, 1);
    assert_eq!(
        s.hub.counters().sessions_total,
        1,
        "one server session carried all four connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_webtransport_path_is_upgraded_to_without_loss() {
    const N: u64 = 1_500;
    let s = Servers::start().await;
    let udp = s.wt_proxy().await;
    udp.set_blackhole(true);
    let c = Arc::new(
        s.builder(udp.addr(), s.http)
            .probe_every(Duration::from_millis(300))
            .connect()
            .unwrap(),
    );
    let (kind, _, _) = connected(&c).await;
    assert_eq!(kind, WebSocket);
    c.subscribe("up").unwrap();
    subscribed(&c).await;
    let publisher = {
        let c = c.clone();
        tokio::spawn(async move { publish_range(&c, "up", 1, N).await })
    };
    expect_range(&c, 1, 500).await;
    udp.set_blackhole(false);
    // Keep reading while the probe finds the path again.
    let reader = {
        let c = c.clone();
        tokio::spawn(async move { expect_range(&c, 501, N).await })
    };
    let e = switched_to(&c, WebTransport).await;
    assert_eq!(
        e,
        AdaptiveEvent::Switched {
            from: WebSocket,
            to: WebTransport,
            reason: SwitchReason::Upgrade
        }
    );
    tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, publisher)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.transport(), Some(WebTransport));
    assert_eq!(c.stats().upgrades, 1);
    assert_eq!(s.hub.counters().sessions_total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discovery_document_is_served_and_drives_the_client() {
    // reqwest is built without a provider of its own when the workspace unifies features.
    let _ = tidings_runtime::install_tls_provider();
    let s = Servers::start().await;
    let origin = format!("http://{}", s.http);
    let response = reqwest::get(format!("{origin}/.well-known/tidings"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let doc: Discovery = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(doc, s.doc);
    let wt = doc.transport("webtransport").unwrap();
    assert_eq!(wt.port, Some(s.wt.local_addr().port()));
    assert_eq!(wt.cert_hashes.len(), 1);
    let c = Client::builder()
        .session_config(suite::client_session_config())
        .discovery(&doc, &origin)
        .unwrap()
        .connect()
        .unwrap();
    let (kind, _, _) = connected(&c).await;
    assert_eq!(kind, WebTransport);
    c.subscribe("d").unwrap();
    subscribed(&c).await;
    c.publish("d", "1").unwrap();
    expect_range(&c, 1, 1).await;
}
