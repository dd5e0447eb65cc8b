//! End to end on real sockets: the SSE endpoint on axum with Rust clients, raw event streams (ids, retry, keep-alives), resume by `Last-Event-ID`, auth.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use axum::Router;
use common::*;
use serde_json::json;
use tidings_axum::{AuthError, RouterExt, UpgradeRequest};
use tidings_axum::{SseRoute, SseRouterExt};
use tidings_channels::HubConfig;
use tidings_protocol::{ClientConfig, ClientEvent, ServerConfig};
use tidings_sse::{Client, EventId, SseConfig};

fn quick_client(url: &str) -> Client {
    let config =
        ClientConfig::default().with_backoff(Duration::from_millis(10), Duration::from_millis(200));
    Client::builder(url)
        .session_config(config)
        .connect()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_chat_over_sse() {
    let (hub, _) = hub_with(HubConfig::default());
    let (_, url) = serve_route(SseRoute::new(hub.clone())).await;
    let alice = quick_client(&url);
    let bob = quick_client(&url);
    alice.subscribe("room").unwrap();
    bob.subscribe("room").unwrap();
    wait_subscribed(&alice).await;
    wait_subscribed(&bob).await;
    alice.publish("room", r#"{"text":"hi bob"}"#).unwrap();
    let m = next_message(&bob).await;
    assert_eq!((m.seq, &m.payload[..]), (1, &br#"{"text":"hi bob"}"#[..]));
    assert_eq!(next_message(&alice).await.seq, 1);
    // Many publishes in a row travel in batched POSTs, in order.
    for i in 0..200 {
        bob.publish("room", format!(r#"{{"i":{i}}}"#)).unwrap();
    }
    for i in 0..200u64 {
        let m = next_message(&alice).await;
        assert_eq!(m.seq, i + 2);
        assert_eq!(m.payload, format!(r#"{{"i":{i}}}"#));
    }
    hub.publish("room", r#"{"from":"server"}"#).await.unwrap();
    loop {
        let m = next_message(&bob).await;
        if m.seq == 202 {
            assert_eq!(&m.payload[..], br#"{"from":"server"}"#);
            break;
        }
    }
    alice.close();
    bob.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_and_sse_clients_share_a_room() {
    let (hub, _) = hub_with(HubConfig::default());
    let app = Router::new()
        .tidings("/ws", hub.clone())
        .tidings_sse("/sse", hub.clone());
    let addr = serve(app).await;
    let sse = quick_client(&format!("http://{addr}/sse"));
    let ws = tidings_ws::Client::builder(format!("ws://{addr}/ws"))
        .connect()
        .unwrap();
    sse.subscribe("mixed").unwrap();
    ws.subscribe("mixed").unwrap();
    wait_subscribed(&sse).await;
    loop {
        if let ClientEvent::Subscribed { .. } = tokio::time::timeout(STEP, ws.next_event())
            .await
            .unwrap()
            .unwrap()
        {
            break;
        }
    }
    ws.publish("mixed", r#""from ws""#).unwrap();
    sse.publish("mixed", r#""from sse""#).unwrap();
    let mut got = [next_message(&sse).await, next_message(&sse).await];
    got.sort_by_key(|m| m.seq);
    let payloads: Vec<&[u8]> = got.iter().map(|m| &m.payload[..]).collect();
    assert!(payloads.contains(&&b"\"from ws\""[..]) && payloads.contains(&&b"\"from sse\""[..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_raw_stream_has_retry_ids_and_keep_alives() {
    let (hub, _) = hub_with(HubConfig::default());
    let config = SseConfig::default()
        .with_retry(Duration::from_millis(1234))
        .with_keep_alive(Duration::from_millis(200));
    let (_, url) = serve_route(SseRoute::new(hub).config(config)).await;
    let mut s = RawStream::open(&url, &[]).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.headers["content-type"], "text/event-stream");
    assert_eq!(s.headers["cache-control"], "no-cache, no-transform");
    let (welcome, id) = s.next_frame().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["resumed"], false);
    let token = welcome["resume_token"].as_str().unwrap();
    assert_eq!(
        id,
        format!("{token}.1"),
        "the welcome is frame 1 of the session"
    );
    assert_eq!(
        s.parser.reconnection_time(),
        Some(Duration::from_millis(1234))
    );
    assert!(
        s.raw.starts_with(b"retry: 1234\n\n"),
        "{:?}",
        String::from_utf8_lossy(&s.raw)
    );
    // Quiet: keep-alive comments arrive, no events.
    assert!(s.try_next_event(Duration::from_millis(700)).await.is_none());
    let text = String::from_utf8_lossy(&s.raw).to_string();
    assert!(text.matches(": ka\n\n").count() >= 2, "{text:?}");
}

/// Subscribes a raw stream to `channel` by POST; returns (session, token, post URL).
async fn raw_session(url: &str, s: &mut RawStream, channel: &str) -> (String, String, String) {
    let (welcome, _) = s.next_frame().await;
    let session = welcome["session"].as_str().unwrap().to_string();
    let token = welcome["resume_token"].as_str().unwrap().to_string();
    let post_url = format!("{url}/{session}");
    let body = json!({"type":"subscribe","channel":channel}).to_string();
    let (status, text, _) = post(&post_url, Some(&token), body).await;
    assert_eq!(status, 202, "{text}");
    let (sub, _) = s.frame_of("subscribed", &mut Vec::new()).await;
    assert_eq!(sub["channel"], channel);
    (session, token, post_url)
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_resumes_exactly_after_the_last_event() {
    let (hub, _) = hub_with(HubConfig::default());
    let (_, url) = serve_route(SseRoute::new(hub.clone())).await;
    let mut s = RawStream::open(&url, &[]).await;
    let (session, token, _) = raw_session(&url, &mut s, "room").await;
    for i in 1..=5 {
        hub.publish("room", format!("{i}")).await.unwrap();
    }
    let mut last_id = String::new();
    for i in 1..=3u64 {
        let (m, id) = s.frame_of("message", &mut Vec::new()).await;
        assert_eq!(m["seq"], i);
        last_id = id;
    }
    drop(s); // the client leaves after message 3 (4 and 5 were sent, maybe read, never handled)
    let frame = EventId::parse(&last_id).unwrap().frame();
    for i in 6..=7 {
        hub.publish("room", format!("{i}")).await.unwrap();
    }
    // A reconnecting EventSource: same URL, Last-Event-ID header.
    let mut s = RawStream::open(&url, &[("last-event-id", &last_id)]).await;
    let (welcome, id) = s.next_frame().await;
    assert_eq!(welcome["resumed"], true);
    assert_eq!(welcome["session"], session.as_str());
    let resumed_at = EventId::parse(&id).unwrap().frame();
    assert!(
        resumed_at > frame,
        "frame numbers go on: {resumed_at} after {frame}"
    );
    for i in 4..=7u64 {
        let (m, _) = s.next_frame().await;
        assert_eq!(
            (m["type"].as_str(), m["seq"].as_u64()),
            (Some("message"), Some(i)),
            "{m}"
        );
        assert_eq!(m["data"], i);
    }
    // Nothing else: no duplicate, no stray frame.
    assert!(s.try_next_event(Duration::from_millis(300)).await.is_none());

    // The same through the query parameter (a new EventSource cannot set headers),
    // here with a stale id from before the resume (message 2): the resume above
    // confirmed message 3, so the replay buffer let it go; it is reported as an
    // explicit gap, then 4..=7 follow. Never a silent hole.
    drop(s);
    let older = format!("{token}.{}", frame - 1);
    let mut s = RawStream::open(&format!("{url}?last_event_id={older}"), &[]).await;
    let (welcome, _) = s.next_frame().await;
    assert_eq!(welcome["resumed"], true);
    let (gap, _) = s.next_frame().await;
    assert_eq!(gap, json!({"type":"gap","channel":"room","from":3,"to":3}));
    for i in 4..=7u64 {
        let (m, _) = s.next_frame().await;
        assert_eq!(m["seq"], i, "{m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_or_unknown_last_event_ids_start_a_new_session() {
    let (hub, _) = hub_with(HubConfig::default());
    let (_, url) = serve_route(SseRoute::new(hub.clone())).await;
    let mut s = RawStream::open(&url, &[]).await;
    let (welcome, _) = s.next_frame().await;
    let token = welcome["resume_token"].as_str().unwrap().to_string();
    drop(s);
    for bad in [
        "garbage".to_string(),
        "no-dot-number.".to_string(),
        format!("{token}.notanumber"),
        format!("{token}.99999999999999999999999"),
        "unknowntoken0000.1".to_string(),
        format!("{token}.999"), // a frame this session never sent
        "\u{1F600}.1".to_string(),
    ] {
        let encoded: String = bad.bytes().map(|b| format!("%{b:02X}")).collect();
        let mut s = RawStream::open(&format!("{url}?last_event_id={encoded}"), &[]).await;
        assert_eq!(s.status, 200, "{bad}");
        let (w, _) = s.next_frame().await;
        assert_eq!(w["type"], "welcome", "{bad}");
        assert_eq!(w["resumed"], false, "{bad}");
        assert_ne!(w["resume_token"], token.as_str());
    }
    // The original session is still resumable.
    let mut s = RawStream::open(&url, &[("last-event-id", &format!("{token}.1"))]).await;
    assert_eq!(s.next_frame().await.0["resumed"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_protocol_is_refused_over_sse() {
    let (hub, _) = hub_with(HubConfig::default());
    let (_, url) = serve_route(SseRoute::new(hub)).await;
    let s = RawStream::open(&format!("{url}?protocol=tidings.v1.bin"), &[]).await;
    assert_eq!(s.status, 400);
    assert_eq!(s.headers["x-tidings-error"], "unsupported-protocol");
    let s = RawStream::open(&format!("{url}?protocol=tidings.v1.json"), &[]).await;
    assert_eq!(s.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_hook_runs_before_the_stream() {
    let (hub, _) = hub_with(HubConfig::default());
    let route = SseRoute::new(hub).auth(|req: UpgradeRequest| async move {
        match req.headers.get("authorization") {
            Some(v) if v == "Bearer good" => Ok(()),
            Some(_) => Err(AuthError::Forbidden("wrong token".into())),
            None => Err(AuthError::Unauthorized("missing token".into())),
        }
    });
    let (_, url) = serve_route(route).await;
    assert_eq!(RawStream::open(&url, &[]).await.status, 401);
    assert_eq!(
        RawStream::open(&url, &[("authorization", "Bearer bad")])
            .await
            .status,
        403
    );
    let mut s = RawStream::open(&url, &[("authorization", "Bearer good")]).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.next_frame().await.0["type"], "welcome");
    // The native client sends its headers with every request.
    let client = Client::builder(&url)
        .header("authorization", "Bearer good")
        .connect()
        .unwrap();
    client.subscribe("x").unwrap();
    wait_subscribed(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_honours_retry_and_resumes_with_last_event_id() {
    let session = ServerConfig::default();
    let (hub, _) = hub_with(HubConfig::default().with_session(session));
    let retry = Duration::from_millis(700);
    let (addr, _) =
        serve_route(SseRoute::new(hub.clone()).config(SseConfig::default().with_retry(retry)))
            .await;
    let proxy = tidings_test::FaultProxy::start(addr).await.unwrap();
    let url = format!("http://{}/sse", proxy.addr());
    let client = quick_client(&url);
    client.subscribe("r").unwrap();
    wait_subscribed(&client).await;
    hub.publish("r", "1").await.unwrap();
    assert_eq!(next_message(&client).await.seq, 1);
    proxy.cut_all();
    let down = loop {
        if let ClientEvent::Disconnected { .. } = next(&client).await {
            break tokio::time::Instant::now();
        }
    };
    hub.publish("r", "2").await.unwrap();
    loop {
        match next(&client).await {
            ClientEvent::Connected { resumed, .. } => {
                assert!(resumed, "Last-Event-ID resumed the session");
                break;
            }
            ClientEvent::Disconnected { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let waited = down.elapsed();
    assert!(
        waited >= retry,
        "reconnected after {waited:?}, before the server's retry of {retry:?}"
    );
    let m = next_message(&client).await;
    assert_eq!(
        (m.seq, &m.payload[..]),
        (2, &b"2"[..]),
        "missed while away, re-sent once"
    );
    hub.publish("r", "3").await.unwrap();
    assert_eq!(next_message(&client).await.seq, 3);
}

/// An `EventSource` that reconnects while the server has not noticed its old
/// stream is gone: the new stream supersedes the old one (which ends with
/// `close 4006`) and gets every later message at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_resume_while_the_old_stream_is_open_supersedes_it() {
    let (hub, _) = hub_with(HubConfig::default());
    let (_, url) = serve_route(SseRoute::new(hub.clone())).await;
    let mut old = RawStream::open(&url, &[]).await;
    raw_session(&url, &mut old, "room").await;
    hub.publish("room", "1").await.unwrap();
    let (_, id) = old.frame_of("message", &mut Vec::new()).await;
    let mut new = RawStream::open(&url, &[("last-event-id", &id)]).await;
    assert_eq!(new.next_frame().await.0["resumed"], true);
    assert!(old.ends_within(STEP).await, "the old stream ends");
    assert!(
        String::from_utf8_lossy(&old.raw).contains(": close 4006 "),
        "{}",
        String::from_utf8_lossy(&old.raw)
    );
    for i in 2..=4u64 {
        hub.publish("room", format!("{i}")).await.unwrap();
        let e = new
            .try_next_event(Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("message {i} stalled on the new stream"));
        let m: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(m["seq"], i);
    }
}
