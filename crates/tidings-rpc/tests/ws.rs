//! RPC over a real WebSocket connection: calls, typed errors with distinct codes, server streams with credits (a slow reader keeps the server bounded), cancellation both ways, and a Node `ws` client speaking plain JSON frames.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tidings_channels::Identity;
use tidings_protocol::RpcCode;
use tidings_rpc::RpcError;
use tidings_rpc::client::{CallOptions, RpcClient};
use tidings_rpc::server::layers::{AuthorizeLayer, MetricsLayer, RateLimitLayer, TraceLayer};
use tidings_rpc::server::{Router, RpcServer};
use tidings_test::peers;
use tidings_test::require_peer;
use tidings_ws::Client;
use tower::ServiceBuilder;

use common::{STEP, Served, connected, eventually};

/// A chat message.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Debug, PartialEq, Clone)]
struct Msg {
    /// Its room.
    room: String,
    /// What it says.
    text: String,
}

/// What the Node peer calls, knowing only the schema this exports (`DemoApi::schema()`).
#[tidings_rpc::rpc(namespace = "demo")]
trait Demo {
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// The first `n` messages of the lobby.
    fn history(&self, n: u64) -> impl futures_util::Stream<Item = Msg>;
}

struct DemoImpl;

impl Demo for DemoImpl {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    fn history(&self, n: u64) -> impl futures_util::Stream<Item = Msg> + Send + use<> {
        futures_util::stream::iter((1..=n).map(|i| Msg {
            room: "lobby".into(),
            text: format!("message {i}"),
        }))
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq, thiserror::Error)]
#[error("room {0} is closed")]
struct RoomClosed(String);

/// What the handlers report to the test.
#[derive(Default)]
struct Probe {
    /// Items the endless stream produced (pulled from the handler).
    produced: AtomicU64,
    /// The slow handler's future was dropped (aborted).
    slow_dropped: AtomicBool,
    /// The endless stream was dropped (aborted).
    stream_dropped: AtomicBool,
}

struct SetOnDrop(Arc<Probe>, fn(&Probe) -> &AtomicBool);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        (self.1)(&self.0).store(true, Ordering::SeqCst);
    }
}

fn router(probe: Arc<Probe>) -> Router {
    let p1 = probe.clone();
    let p2 = probe.clone();
    Router::new()
        .unary("math.add", |_ctx, (a, b): (i64, i64)| async move {
            Ok::<_, RpcError>(a + b)
        })
        .unary("chat.send", |_ctx, m: Msg| async move {
            if m.room == "closed" {
                return Err(RpcError::application(&RoomClosed(m.room)));
            }
            Ok(m.text.len())
        })
        .unary("admin.reset", |_ctx, (): ()| async move {
            Ok::<_, RpcError>(true)
        })
        .unary("slow.wait", move |_ctx, ms: u64| {
            let probe = p1.clone();
            async move {
                let _guard = SetOnDrop(probe, |p| &p.slow_dropped);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, RpcError>(ms)
            }
        })
        .stream("chat.history", |_ctx, n: u64| {
            futures_util::stream::iter((1..=n).map(|i| {
                Ok::<_, RpcError>(Msg {
                    room: "lobby".into(),
                    text: format!("message {i}"),
                })
            }))
        })
        .stream("feed.endless", move |_ctx, (): ()| {
            let probe = p2.clone();
            let guard = SetOnDrop(probe.clone(), |p| &p.stream_dropped);
            futures_util::stream::unfold((0u64, guard), move |(i, guard)| {
                let probe = probe.clone();
                async move {
                    probe.produced.fetch_add(1, Ordering::SeqCst);
                    Some((Ok::<_, RpcError>(vec![0u8; 1024]), (i + 1, guard)))
                }
            })
        })
        .stream("feed.cancelled_after", |_ctx, n: u64| {
            futures_util::stream::iter((1..=n + 1).map(move |i| {
                if i > n {
                    Err(RpcError::cancelled("the server ended this stream"))
                } else {
                    Ok(i)
                }
            }))
        })
}

struct Fixture {
    served: Served,
    probe: Arc<Probe>,
}

impl Fixture {
    async fn start() -> Self {
        let probe = Arc::new(Probe::default());
        let stack = ServiceBuilder::new()
            .layer(MetricsLayer)
            .layer(TraceLayer)
            .layer(AuthorizeLayer::new(
                |identity: Option<&Identity>, method| {
                    !method.starts_with("admin.") || identity.is_some_and(|i| i.subject() == "root")
                },
            ))
            .layer(RateLimitLayer::new().per_method("math.add", 0.001, 50.0))
            .service(router(probe.clone()).merge(DemoImpl.into_router()));
        let served = Served::ws(RpcServer::new(stack)).await;
        Self { served, probe }
    }

    async fn client(&self) -> (Client, RpcClient) {
        self.served.client().await
    }

    async fn stop(self) {
        self.served.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unary_calls_and_typed_errors_have_distinct_codes() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;

    let sum: i64 = rpc.call("math.add", &(2, 40)).await.unwrap();
    assert_eq!(sum, 42);
    let len: usize = rpc
        .call(
            "chat.send",
            &Msg {
                room: "a".into(),
                text: "hello".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(len, 5);

    let mut codes = Vec::new();
    let e = rpc.call::<_, i64>("math.nope", &()).await.unwrap_err();
    assert!(e.is_unknown_method(), "{e}");
    codes.push(e.code);
    let e = rpc
        .call::<_, i64>("math.add", &"not a pair")
        .await
        .unwrap_err();
    assert_eq!(e.code, RpcCode::InvalidParams, "{e}");
    codes.push(e.code);
    let e = rpc
        .call_with::<_, u64>(
            "slow.wait",
            &5_000u64,
            CallOptions::default().deadline(Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    assert!(e.is_deadline_exceeded(), "{e}");
    codes.push(e.code);
    let e = rpc.call::<_, bool>("admin.reset", &()).await.unwrap_err();
    assert_eq!(e.code, RpcCode::Unauthorized, "{e}");
    codes.push(e.code);
    let e = rpc
        .call::<_, usize>(
            "chat.send",
            &Msg {
                room: "closed".into(),
                text: "x".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, RpcCode::Application, "{e}");
    assert_eq!(
        e.application_error::<RoomClosed>(),
        Some(RoomClosed("closed".into()))
    );
    codes.push(e.code);
    // The per-method bucket holds 50 calls (two were spent above).
    let mut limited = None;
    for _ in 0..60 {
        if let Err(e) = rpc.call::<_, i64>("math.add", &(1, 1)).await {
            limited = Some(e);
            break;
        }
    }
    let e = limited.expect("the rate limit never hit");
    assert!(e.is_rate_limited(), "{e}");
    codes.push(e.code);
    let wire: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
    let mut unique = wire.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), wire.len(), "codes are not distinct: {wire:?}");
    assert_eq!(rpc.open_calls(), 0);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_stream_with_small_credit_delivers_everything_in_order() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;
    let items: Vec<Msg> = rpc
        .server_stream("chat.history", &500u64, CallOptions::default().credit(4))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(items.len(), 500);
    for (i, m) in items.iter().enumerate() {
        assert_eq!(m.text, format!("message {}", i + 1));
    }
    assert_eq!(rpc.open_calls(), 0);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slowly_read_stream_keeps_the_server_bounded_and_dropping_it_cancels() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;
    const WINDOW: u32 = 8;
    let mut stream = rpc
        .server_stream::<_, Vec<u8>>("feed.endless", &(), CallOptions::default().credit(WINDOW))
        .unwrap();
    let mut read = 0u64;
    let mut max_ahead = 0u64;
    for _ in 0..40 {
        let item = tokio::time::timeout(STEP, stream.next()).await.unwrap();
        assert_eq!(item.unwrap().unwrap().len(), 1024);
        read += 1;
        // A slow reader: the server could produce thousands of items meanwhile.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let produced = fx.probe.produced.load(Ordering::SeqCst);
        max_ahead = max_ahead.max(produced - read);
    }
    eprintln!(
        "slow reader: read {read} items of 1 KiB, server produced {} in all, at most {max_ahead} ahead of the reader (window {WINDOW})",
        fx.probe.produced.load(Ordering::SeqCst)
    );
    assert!(
        max_ahead <= u64::from(WINDOW),
        "server ran {max_ahead} items ahead of a window of {WINDOW}"
    );
    drop(stream);
    let probe = fx.probe.clone();
    eventually("the server stream is aborted", || {
        probe.stream_dropped.load(Ordering::SeqCst)
    })
    .await;
    let produced = fx.probe.produced.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fx.probe.produced.load(Ordering::SeqCst), produced);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_call_cancels_the_server_task() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        rpc.call::<_, u64>("slow.wait", &10_000u64),
    )
    .await;
    assert!(r.is_err(), "the call should still be running");
    assert_eq!(rpc.open_calls(), 0);
    let probe = fx.probe.clone();
    eventually("the server task is aborted", || {
        probe.slow_dropped.load(Ordering::SeqCst)
    })
    .await;
    // The connection still serves calls.
    let sum: i64 = rpc.call("math.add", &(1, 2)).await.unwrap();
    assert_eq!(sum, 3);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_cancel_ends_the_client_stream_with_a_typed_error() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;
    let mut stream = rpc
        .server_stream::<_, u64>("feed.cancelled_after", &3u64, CallOptions::default())
        .unwrap();
    for i in 1..=3 {
        assert_eq!(stream.next().await.unwrap().unwrap(), i);
    }
    let e = stream.next().await.unwrap().unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert!(stream.next().await.is_none());
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_fail_with_unavailable_when_the_connection_drops() {
    let fx = Fixture::start().await;
    let (client, rpc) = fx.client().await;
    let pending = tokio::spawn({
        let rpc = rpc.clone();
        async move { rpc.call::<_, u64>("slow.wait", &10_000u64).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.close();
    let e = tokio::time::timeout(STEP, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    let probe = fx.probe.clone();
    eventually("the server task is aborted", || {
        probe.slow_dropped.load(Ordering::SeqCst)
    })
    .await;
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_codec_carries_calls_and_streams() {
    let fx = Fixture::start().await;
    let client = Client::builder(&fx.served.url)
        .subprotocols(["tidings.v1.bin", "tidings.v1.json"])
        .connect()
        .unwrap();
    let rpc = RpcClient::new(&client);
    connected(&client).await;
    let sum: i64 = rpc.call("math.add", &(20, 22)).await.unwrap();
    assert_eq!(sum, 42);
    let n = rpc
        .server_stream::<_, Msg>("chat.history", &10u64, CallOptions::default())
        .unwrap()
        .count()
        .await;
    assert_eq!(n, 10);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_client_with_plain_json_frames_calls_and_streams() {
    let node = require_peer!(peers::node());
    let modules = require_peer!(peers::node_modules());
    let fx = Fixture::start().await;
    let script = peers::workspace_root().join("tests/peers/node/rpc_client.mjs");
    // The peer knows the methods from their exported schema only.
    let schema = std::env::temp_dir().join(format!("tidings-rpc-demo-{}.json", std::process::id()));
    std::fs::write(&schema, DemoApi::schema().to_string()).unwrap();
    let out = peers::run_script(
        &node,
        &script,
        [fx.served.url.clone(), schema.display().to_string()],
        [("TIDINGS_NODE_MODULES", modules.display().to_string())],
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |e: &str| {
        lines
            .iter()
            .find(|l| l["event"] == e)
            .unwrap_or_else(|| panic!("no {e} in {stdout}"))
    };
    assert_eq!(find("reply")["frame"]["data"], 42, "{stdout}");
    assert_eq!(
        find("unknown")["frame"]["code"],
        "unknown_method",
        "{stdout}"
    );
    let stream = find("stream");
    assert_eq!(stream["items"], 20, "{stdout}");
    assert_eq!(stream["last"]["text"], "message 20", "{stdout}");
    assert!(stream["credits_sent"].as_u64().unwrap() >= 1, "{stdout}");
    assert_eq!(stream["checked_against_schema"], 20, "{stdout}");
    let _ = std::fs::remove_file(&schema);
    fx.stop().await;
}
