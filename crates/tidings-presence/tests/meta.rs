//! Client-set presence metas against a real server: a member publishes its meta on the room's presence channel and every watcher sees it as an update; a bad meta, an oversized one, and one for a room the session is not in are refused by name.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tidings_axum::{RouterExt, TidingsRoute};
use tidings_channels::{Hub, HubConfig, MemoryBroker};
use tidings_presence::{MAX_CLIENT_META, Presence, PresenceConfig, PresenceView};
use tidings_protocol::{ClientEvent, ErrorCode};
use tidings_ws::Client;

const STEP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread")]
async fn a_member_sets_its_own_meta_and_bad_metas_are_refused_by_name() {
    let mut config = HubConfig::default();
    config.session.ack_after_store = true;
    let hub = Hub::with_config(Arc::new(MemoryBroker::default()), config);
    let mut presence = PresenceConfig::default();
    presence.flush_interval = Duration::from_millis(20);
    Presence::attach(&hub, presence).await.unwrap();
    let app = Router::new().tidings_route("/ws", TidingsRoute::new(hub));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let ann = Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    ann.subscribe("room:lobby").unwrap();
    ann.subscribe("presence:room:lobby").unwrap();
    ann.publish("presence:room:lobby", r#"{"name":"ann","typing":true}"#)
        .unwrap();
    let bad = vec![
        ("not JSON", "{nope".to_owned(), ErrorCode::MalformedFrame),
        (
            "too large",
            format!("\"{}\"", "x".repeat(MAX_CLIENT_META)),
            ErrorCode::FrameTooLarge,
        ),
    ];
    for (_, payload, _) in &bad {
        ann.publish("presence:room:lobby", payload.clone()).unwrap();
    }
    // Not in room:other.
    ann.publish("presence:room:other", r#"{"name":"ann"}"#)
        .unwrap();
    let mut view = PresenceView::new();
    let mut refused = Vec::new();
    tokio::time::timeout(STEP, async {
        loop {
            let meta_seen = view.members().values().any(|metas| {
                metas
                    .iter()
                    .any(|m| m["name"] == "ann" && m["typing"] == true)
            });
            if meta_seen && refused.len() == 3 {
                return;
            }
            match ann.next_event().await.unwrap() {
                ClientEvent::Message(m) if m.channel.as_str() == "presence:room:lobby" => {
                    view.apply(&m.payload).unwrap();
                }
                ClientEvent::PublishRefused {
                    channel,
                    code,
                    message,
                    ..
                } => {
                    assert!(!message.is_empty());
                    refused.push((channel.as_str().to_owned(), code));
                }
                _ => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("view {:?}, refused {refused:?}", view.members()));
    assert_eq!(
        refused,
        vec![
            ("presence:room:lobby".to_owned(), bad[0].2),
            ("presence:room:lobby".to_owned(), bad[1].2),
            ("presence:room:other".to_owned(), ErrorCode::Forbidden),
        ]
    );
    assert_eq!(view.len(), 1, "one member, with the meta it set");
}
