//! Hostile clients against a real axum server with JWT auth: forged, expired and wrong-signature tokens, channels of other users, someone else's resume token or SSE session, foreign origins, a token that lapses mid-session.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tidings_axum::{JwtAuth, Origins, RouterExt, SseRoute, SseRouterExt, TidingsRoute};
use tidings_channels::{Hub, MemoryBroker};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

const SECRET: &[u8] = b"test secret, never used outside these tests";
const STEP: Duration = Duration::from_secs(10);
type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `sub`, valid `secs` from now (negative: already expired), that
/// may subscribe to `room:*` and its own `user:{sub}` and publish on `room:*`.
fn token_with(sub: &str, secs: i64, key: &EncodingKey, alg: Algorithm) -> String {
    let claims = json!({
        "sub": sub,
        "exp": (now_s() as i64 + secs) as u64,
        "channels": {"subscribe": ["room:*", "user:{sub}"], "publish": ["room:*"]},
    });
    encode(&Header::new(alg), &claims, key).unwrap()
}

fn token(sub: &str, secs: i64) -> String {
    token_with(
        sub,
        secs,
        &EncodingKey::from_secret(SECRET).unwrap(),
        Algorithm::HS256,
    )
}

async fn server() -> (std::net::SocketAddr, Hub) {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let auth = JwtAuth::hs256(SECRET).unwrap();
    let origins = Origins::only(["http://app.example"]);
    let app = Router::new()
        .tidings_route(
            "/ws",
            TidingsRoute::new(hub.clone())
                .auth(auth.clone())
                .origins(origins.clone()),
        )
        .tidings_sse_route(
            "/sse",
            SseRoute::new(hub.clone()).auth(auth).origins(origins),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hub)
}

/// Opens a WebSocket with `headers`; `Err(status)` when the upgrade is refused.
async fn open(addr: std::net::SocketAddr, headers: &[(&str, String)]) -> Result<Ws, u16> {
    let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("tidings.v1.json"),
    );
    for (k, v) in headers {
        let value = HeaderValue::from_str(v).unwrap();
        match request.headers_mut().get_mut(*k) {
            Some(old) if *k == "sec-websocket-protocol" => {
                let joined = format!("{}, {v}", old.to_str().unwrap());
                *old = HeaderValue::from_str(&joined).unwrap();
            }
            _ => {
                let name = HeaderName::from_bytes(k.as_bytes()).unwrap();
                request.headers_mut().insert(name, value);
            }
        }
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn bearer(t: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {t}"))
}

async fn send(ws: &mut Ws, frame: Value) {
    ws.send(WsMessage::text(frame.to_string())).await.unwrap();
}

/// The next JSON frame, or `{"ws_close": code}` when the socket closes.
async fn next(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(WsMessage::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(WsMessage::Close(c))) => {
                return json!({"ws_close": c.map(|c| u16::from(c.code))});
            }
            Some(Ok(_)) => continue,
            other => return json!({"ws_end": format!("{other:?}")}),
        }
    }
}

async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let f = next(ws).await;
        if f["type"] == kind || f.get("ws_close").is_some() || f.get("ws_end").is_some() {
            return f;
        }
    }
}

/// Connected and welcomed as `sub`: the socket and the welcome.
async fn session(addr: std::net::SocketAddr, sub: &str) -> (Ws, Value) {
    let mut ws = open(addr, &[bearer(&token(sub, 600))]).await.unwrap();
    send(&mut ws, json!({"type":"hello","version":1})).await;
    let welcome = next_of(&mut ws, "welcome").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome)
}

#[tokio::test]
async fn bad_tokens_are_refused_before_any_channel_data() {
    let (addr, hub) = server().await;
    let wrong_key = token_with(
        "alice",
        600,
        &EncodingKey::from_secret(b"another secret").unwrap(),
        Algorithm::HS256,
    );
    let mut forged = token("alice", 600);
    forged.replace_range(forged.len() - 4.., "AAAA"); // signature changed
    let cases = [
        ("no token", vec![]),
        ("garbage", vec![bearer("not.a.jwt")]),
        ("wrong signature key", vec![bearer(&wrong_key)]),
        ("forged signature", vec![bearer(&forged)]),
        ("expired", vec![bearer(&token("alice", -5))]),
    ];
    for (what, headers) in cases {
        assert_eq!(open(addr, &headers).await.err(), Some(401), "{what}");
    }
    // An ES256 token presented to the HS256 server: refused (no algorithm confusion).
    let es = EncodingKey::from_ec_pem(include_bytes!("fixtures/es256-private.pem")).unwrap();
    let es_token = token_with("alice", 600, &es, Algorithm::ES256);
    assert_eq!(open(addr, &[bearer(&es_token)]).await.err(), Some(401));
    // SSE streams too.
    let http = {
        tidings_runtime::install_tls_provider();
        reqwest::Client::new()
    };
    for auth in ["", "Bearer not.a.jwt"] {
        let mut req = http.get(format!("http://{addr}/sse"));
        if !auth.is_empty() {
            req = req.header("authorization", auth);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), 401, "{auth:?}");
    }
    assert_eq!(hub.stats().sessions, 0, "no session was opened");
}

#[tokio::test]
async fn tokens_travel_where_browsers_can_put_them_and_es256_verifies() {
    let (addr, _) = server().await;
    let t = token("alice", 600);
    for headers in [
        vec![("sec-websocket-protocol", format!("tidings.token.{t}"))],
        vec![("cookie", format!("theme=dark; tidings_token={t}"))],
    ] {
        let mut ws = open(addr, &headers).await.unwrap();
        send(&mut ws, json!({"type":"hello","version":1})).await;
        assert_eq!(next_of(&mut ws, "welcome").await["type"], "welcome");
    }
    // The query parameter (what a cross-origin EventSource can send).
    let mut request = format!("ws://{addr}/ws?access_token={t}")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("tidings.v1.json"),
    );
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());

    // ES256 keys verify their own tokens.
    let auth = JwtAuth::es256_pem(include_bytes!("fixtures/es256-public.pem")).unwrap();
    let es = EncodingKey::from_ec_pem(include_bytes!("fixtures/es256-private.pem")).unwrap();
    let identity = auth
        .verify(&token_with("carol", 600, &es, Algorithm::ES256))
        .unwrap();
    assert_eq!(identity.subject(), "carol");
    assert!(
        auth.verify(&token("carol", 600)).is_err(),
        "HS256 under an ES256 key"
    );
}

#[tokio::test]
async fn a_user_cannot_subscribe_or_publish_outside_their_grants() {
    let (addr, hub) = server().await;
    let (mut bob, _) = session(addr, "bob").await;
    // bob may have user:bob, not user:alice.
    send(&mut bob, json!({"type":"subscribe","channel":"user:alice"})).await;
    let e = next_of(&mut bob, "error").await;
    assert_eq!(e["code"], "forbidden", "{e}");
    send(&mut bob, json!({"type":"subscribe","channel":"user:bob"})).await;
    assert_eq!(next_of(&mut bob, "subscribed").await["channel"], "user:bob");
    // A publish outside `room:*` is refused by name; the next one goes through.
    send(
        &mut bob,
        json!({"type":"publish","channel":"user:alice","seq":1,"data":"hi"}),
    )
    .await;
    let e = next_of(&mut bob, "error").await;
    assert_eq!(
        (e["code"].clone(), e["seq"].clone()),
        (json!("forbidden"), json!(1))
    );
    send(
        &mut bob,
        json!({"type":"publish","channel":"room:lobby","seq":2,"data":"ok"}),
    )
    .await;
    assert_eq!(next_of(&mut bob, "publish_ack").await["seq"], 2);
    // Nothing reached alice's channel.
    let receipt = hub.publish("user:alice", "1").await.unwrap();
    assert_eq!(receipt.seq, 1, "bob's publish never reached user:alice");
}

#[tokio::test]
async fn a_resume_token_presented_by_another_identity_is_refused() {
    let (addr, _) = server().await;
    let (mut alice, welcome) = session(addr, "alice").await;
    let stolen = welcome["resume_token"].as_str().unwrap().to_string();
    let mut mallory = open(addr, &[bearer(&token("mallory", 600))]).await.unwrap();
    send(
        &mut mallory,
        json!({"type":"hello","version":1,"resume":stolen}),
    )
    .await;
    let e = next(&mut mallory).await;
    assert_eq!(e["code"], "unauthorized", "{e}");
    assert_eq!(next(&mut mallory).await["ws_close"], 1008);
    // Alice's connection is untouched (not superseded).
    send(&mut alice, json!({"type":"ping","nonce":9})).await;
    assert_eq!(next_of(&mut alice, "pong").await["nonce"], 9);
    // Alice herself resumes it.
    drop(alice);
    let mut again = open(addr, &[bearer(&token("alice", 600))]).await.unwrap();
    send(
        &mut again,
        json!({"type":"hello","version":1,"resume":stolen}),
    )
    .await;
    assert_eq!(next_of(&mut again, "welcome").await["resumed"], true);
}

#[tokio::test]
async fn a_post_into_another_identitys_sse_session_is_refused() {
    let (addr, _) = server().await;
    let http = {
        tidings_runtime::install_tls_provider();
        reqwest::Client::new()
    };
    let mut stream = http
        .get(format!("http://{addr}/sse"))
        .header("authorization", format!("Bearer {}", token("alice", 600)))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let mut text = String::new();
    let welcome = loop {
        let chunk = tokio::time::timeout(STEP, stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("data: {\"type\":\"welcome\""))
        {
            break serde_json::from_str::<Value>(&line[6..]).unwrap();
        }
    };
    let post_url = format!("http://{addr}/sse/{}", welcome["session"].as_str().unwrap());
    let token_header = welcome["resume_token"].as_str().unwrap().to_string();
    let ping = json!({"type":"ping","nonce":1}).to_string();
    let as_mallory = http
        .post(&post_url)
        .header("x-tidings-token", &token_header)
        .header("authorization", format!("Bearer {}", token("mallory", 600)))
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(as_mallory.status().as_u16(), 403);
    assert_eq!(as_mallory.headers()["x-tidings-error"], "forbidden");
    let as_nobody = http
        .post(&post_url)
        .header("x-tidings-token", &token_header)
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        as_nobody.status().as_u16(),
        401,
        "a POST needs credentials too"
    );
    let as_alice = http
        .post(&post_url)
        .header("x-tidings-token", &token_header)
        .header("authorization", format!("Bearer {}", token("alice", 600)))
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(as_alice.status().as_u16(), 202);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_with_403() {
    let (addr, _) = server().await;
    let t = token("alice", 600);
    let foreign = open(
        addr,
        &[bearer(&t), ("origin", "http://evil.example".into())],
    )
    .await;
    assert_eq!(foreign.err(), Some(403));
    let own = open(addr, &[bearer(&t), ("origin", "http://app.example".into())]).await;
    assert!(own.is_ok(), "the allowed origin connects");
    let sse = {
        tidings_runtime::install_tls_provider();
        reqwest::Client::new()
    }
    .get(format!("http://{addr}/sse"))
    .header("authorization", format!("Bearer {t}"))
    .header("origin", "http://evil.example")
    .send()
    .await
    .unwrap();
    assert_eq!(sse.status().as_u16(), 403);
    assert_eq!(sse.headers()["x-tidings-error"], "forbidden-origin");
}

#[tokio::test]
async fn a_session_ends_with_4007_when_its_token_lapses() {
    let (addr, _) = server().await;
    let mut ws = open(addr, &[bearer(&token("alice", 2))]).await.unwrap();
    send(&mut ws, json!({"type":"hello","version":1})).await;
    let welcome = next_of(&mut ws, "welcome").await;
    let e = next_of(&mut ws, "error").await;
    assert_eq!(e["code"], "unauthorized", "{e}");
    assert_eq!(next(&mut ws).await["type"], "close");
    assert_eq!(next(&mut ws).await["ws_close"], 4007);
    // Its session cannot be resumed, even by its owner with a fresh token.
    let mut again = open(addr, &[bearer(&token("alice", 600))]).await.unwrap();
    let resume = welcome["resume_token"].clone();
    send(
        &mut again,
        json!({"type":"hello","version":1,"resume":resume}),
    )
    .await;
    assert_eq!(next_of(&mut again, "welcome").await["resumed"], false);
}

#[tokio::test]
async fn a_flood_over_the_rate_limit_gets_error_frames_and_others_are_served() {
    use tidings_channels::HubConfig;
    use tidings_protocol::{RateLimit, ServerConfig};
    let session = ServerConfig::default().with_publish_rate(RateLimit {
        per_second: 50,
        burst: 20,
    });
    let hub = Hub::with_config(
        Arc::new(MemoryBroker::default()),
        HubConfig::default().with_session(session),
    );
    let app = Router::new().tidings("/ws", hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut flooder = open(addr, &[]).await.unwrap();
    send(&mut flooder, json!({"type":"hello","version":1})).await;
    next_of(&mut flooder, "welcome").await;
    let mut other = open(addr, &[]).await.unwrap();
    send(&mut other, json!({"type":"hello","version":1})).await;
    next_of(&mut other, "welcome").await;
    for seq in 1..=1000u64 {
        let frame = json!({"type":"publish","channel":"room:flood","seq":seq,"data":seq});
        flooder
            .feed(WsMessage::text(frame.to_string()))
            .await
            .unwrap();
    }
    flooder.flush().await.unwrap();
    // The other client is answered at once, flood or not.
    send(&mut other, json!({"type":"ping","nonce":5})).await;
    assert_eq!(next_of(&mut other, "pong").await["nonce"], 5);
    let mut limited = 0;
    while limited < 900 {
        let f = next(&mut flooder).await;
        assert!(
            f.get("ws_close").is_none(),
            "the flooder is not cut off: {f}"
        );
        if f["type"] == "error" && f["code"] == "rate_limited" {
            limited += 1;
        }
    }
    let published = hub.publish("room:flood", "0").await.unwrap().seq - 1;
    assert!(
        published < 100,
        "{published} of 1000 got through a 20 + 50/s limit"
    );
}

/// Publishes `count` frames (`seqs` from `first`) on `channel` in one write.
async fn flood(ws: &mut Ws, channel: &str, first: u64, count: u64) {
    for seq in first..first + count {
        let frame = json!({"type":"publish","channel":channel,"seq":seq,"data":seq});
        ws.feed(WsMessage::text(frame.to_string())).await.unwrap();
    }
    ws.flush().await.unwrap();
}

/// Reads frames until the `publish_ack` reaches `last`: the refusals seen, by message.
async fn refusals_until_acked(ws: &mut Ws, last: u64) -> Vec<String> {
    let mut refused = Vec::new();
    loop {
        let f = next(ws).await;
        assert!(
            f.get("ws_close").is_none() && f.get("ws_end").is_none(),
            "the session lives on: {f}"
        );
        match f["type"].as_str() {
            Some("error") => {
                assert_eq!(f["code"], "rate_limited", "{f}");
                assert!(f["seq"].as_u64().is_some(), "refused by name: {f}");
                refused.push(f["message"].as_str().unwrap().to_string());
            }
            Some("publish_ack") if f["seq"].as_u64().unwrap() >= last => return refused,
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_flood_into_one_channel_is_refused_by_name_while_other_channels_and_clients_flow() {
    use tidings_channels::HubConfig;
    use tidings_protocol::{ChannelRate, RateLimit, ServerConfig};
    // Each session: 10 at once on a `flood:` channel; all publishers of one
    // such channel together: 5 at once; both refill at 1/s.
    let session = ServerConfig::default().with_channel_rate(
        ChannelRate::new("flood:*")
            .per_session(RateLimit {
                per_second: 1,
                burst: 10,
            })
            .per_channel(RateLimit {
                per_second: 1,
                burst: 5,
            }),
    );
    let hub = Hub::with_config(
        Arc::new(MemoryBroker::default()),
        HubConfig::default().with_session(session),
    );
    let app = Router::new().tidings("/ws", hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut clients = Vec::new();
    for channel in ["flood:a", "flood:a", "room:calm", "flood:a"] {
        let mut ws = open(addr, &[]).await.unwrap();
        send(&mut ws, json!({"type":"hello","version":1})).await;
        next_of(&mut ws, "welcome").await;
        send(&mut ws, json!({"type":"subscribe","channel":channel})).await;
        next_of(&mut ws, "subscribed").await;
        clients.push(ws);
    }
    let [flooder, second, calm, watcher] = &mut clients[..] else {
        unreachable!()
    };
    let started = std::time::Instant::now();
    // The flooder: 100 into flood:a, then one on room:calm.
    flood(flooder, "flood:a", 1, 100).await;
    send(
        flooder,
        json!({"type":"publish","channel":"room:calm","seq":101,"data":"calm"}),
    )
    .await;
    // Meanwhile the calm client publishes 50 on its channel and is answered at once.
    flood(calm, "room:calm", 1, 50).await;
    send(calm, json!({"type":"ping","nonce":7})).await;
    let mut calm_messages = 0;
    let mut ponged = false;
    while calm_messages < 51 || !ponged {
        let f = next(calm).await;
        match f["type"].as_str() {
            Some("message") => calm_messages += 1,
            Some("pong") => ponged = true,
            Some("error") => panic!("nothing refused on room:calm: {f}"),
            _ => {}
        }
    }
    let flooder_refused = refusals_until_acked(flooder, 101).await;
    // A second publisher on the same channel: within its own 10, but the
    // channel's 5 are used up.
    flood(second, "flood:a", 1, 8).await;
    let second_refused = refusals_until_acked(second, 8).await;
    let elapsed = started.elapsed().as_secs_f64();

    let session_refusals =
        |r: &[String]| r.iter().filter(|m| m.starts_with("this session's")).count();
    let channel_refusals = |r: &[String]| {
        r.iter()
            .filter(|m| m.starts_with("all publishers'"))
            .count()
    };
    assert!(
        session_refusals(&flooder_refused) >= 80,
        "{flooder_refused:?}"
    );
    assert!(
        channel_refusals(&flooder_refused) >= 1,
        "{flooder_refused:?}"
    );
    assert_eq!(session_refusals(&second_refused), 0, "{second_refused:?}");
    assert!(
        channel_refusals(&second_refused) >= 1,
        "the channel-wide bucket refuses the second publisher: {second_refused:?}"
    );
    // What got through reached the channel's subscribers, and no more than
    // the channel's limit allows (5 at once + 1/s since).
    let accepted = (100 - flooder_refused.len()) + (8 - second_refused.len());
    // Every accepted publish was fanned out before its ack: a ping answered
    // after them finds them all queued ahead of its pong.
    let mut delivered = 0;
    send(watcher, json!({"type":"ping","nonce":9})).await;
    loop {
        let f = next(watcher).await;
        match f["type"].as_str() {
            Some("message") => delivered += 1,
            Some("pong") => break,
            _ => {}
        }
    }
    assert_eq!(
        delivered, accepted,
        "every accepted publish, and only those"
    );
    let bound = 5 + elapsed.ceil() as usize + 1;
    assert!(
        accepted <= bound,
        "{accepted} accepted, limit {bound} after {elapsed:.1} s"
    );
    // The flooder's session lives on: a later publish on a calm channel is taken.
    send(
        flooder,
        json!({"type":"publish","channel":"room:calm","seq":102,"data":"still here"}),
    )
    .await;
    assert!(refusals_until_acked(flooder, 102).await.is_empty());
}
