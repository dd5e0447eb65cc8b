//! `#[tidings_rpc::rpc]` over a real WebSocket: the generated client and server for a call, a server stream, a typed application error, an unknown method (a client newer than the server), the call context, bidirectional streams with credits both ways and cancellation from either side, and the schema.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tidings_protocol::RpcCode;
use tidings_rpc::client::{CallOptions, RpcClient};
use tidings_rpc::server::{CallContext, Inbound, RpcServer, ServerOptions};
use tidings_rpc::{CallError, MethodKind, RpcError};
use tidings_ws::Client;

use common::{STEP, Served, eventually};
/// The server's window of client items on bidirectional calls.
const INBOUND_WINDOW: u32 = 8;

/// A chat message.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
struct Msg {
    /// The room it is for.
    room: String,
    /// What it says.
    text: String,
}

/// The server's receipt.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
struct Ack {
    /// Position of the message in its room.
    seq: u64,
}

/// Why a message was refused.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, thiserror::Error)]
enum ChatError {
    /// The room does not take messages.
    #[error("room {0} is closed")]
    Closed(String),
    /// The text is too long.
    #[error("the text is longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
}

/// The chat service of the test.
#[tidings_rpc::rpc]
trait Chat {
    /// Sends a message to its room.
    async fn send(&self, m: Msg) -> Result<Ack, ChatError>;
    /// Adds two numbers.
    async fn add(&self, a: i64, b: i64) -> i64;
    /// Who the caller is (the context is not a parameter on the wire).
    async fn whoami(&self, ctx: CallContext) -> String;
    /// The last `n` messages of `room`, oldest first.
    fn history(&self, room: String, n: u64) -> impl Stream<Item = Msg>;
    /// Echoes every item upper-cased; the server reads them slowly.
    fn shout(&self, input: Inbound<String>) -> impl Stream<Item = Result<String, RpcError>>;
    /// Counts up forever from `from`, one item per credit; takes items it ignores.
    fn count(&self, from: u64, input: Inbound<u64>) -> impl Stream<Item = u64>;
    /// Ends the call with `cancelled` after reading `n` items.
    fn hang_up(&self, n: u64, input: Inbound<u64>) -> impl Stream<Item = Result<u64, RpcError>>;
}

/// A newer client's view of the same service: one method the server does not have.
#[tidings_rpc::rpc(namespace = "chat")]
trait ChatV2 {
    /// Edits a message (not served by this server).
    async fn edit(&self, seq: u64, text: String) -> Result<Ack, ChatError>;
}

#[derive(Default)]
struct Probe {
    /// Client items the server took from `shout`'s and `count`'s inbound streams.
    consumed: AtomicU64,
    /// Items `count` produced.
    produced: AtomicU64,
    /// `count`'s stream was dropped (the call was aborted).
    count_dropped: AtomicBool,
    /// Most client items queued on the server at once.
    max_queued: AtomicU64,
}

struct SetOnDrop(Arc<Probe>);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.count_dropped.store(true, Ordering::SeqCst);
    }
}

struct ChatImpl {
    probe: Arc<Probe>,
}

impl Chat for ChatImpl {
    async fn send(&self, m: Msg) -> Result<Ack, ChatError> {
        if m.room == "closed" {
            return Err(ChatError::Closed(m.room));
        }
        if m.text.len() > 10 {
            return Err(ChatError::TooLong { max: 10 });
        }
        Ok(Ack {
            seq: m.text.len() as u64,
        })
    }

    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }

    async fn whoami(&self, ctx: CallContext) -> String {
        format!("{} as call {}", ctx.method, ctx.call)
    }

    fn history(&self, room: String, n: u64) -> impl Stream<Item = Msg> + Send + use<> {
        futures_util::stream::iter((1..=n).map(move |i| Msg {
            room: room.clone(),
            text: format!("message {i}"),
        }))
    }

    fn shout(
        &self,
        input: Inbound<String>,
    ) -> impl Stream<Item = Result<String, RpcError>> + Send + use<> {
        let probe = self.probe.clone();
        futures_util::stream::unfold(input, move |mut input| {
            let probe = probe.clone();
            async move {
                // A slow consumer: the client keeps sending meanwhile.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let queued = input.queued() as u64;
                probe.max_queued.fetch_max(queued, Ordering::SeqCst);
                let item = input.next().await?;
                probe.consumed.fetch_add(1, Ordering::SeqCst);
                Some((item.map(|s| s.to_uppercase()), input))
            }
        })
    }

    fn count(&self, from: u64, input: Inbound<u64>) -> impl Stream<Item = u64> + Send + use<> {
        let probe = self.probe.clone();
        let guard = SetOnDrop(probe.clone());
        futures_util::stream::unfold((from, input, guard), move |(i, input, guard)| {
            let probe = probe.clone();
            async move {
                probe.produced.fetch_add(1, Ordering::SeqCst);
                Some((i, (i + 1, input, guard)))
            }
        })
    }

    fn hang_up(
        &self,
        n: u64,
        input: Inbound<u64>,
    ) -> impl Stream<Item = Result<u64, RpcError>> + Send + use<> {
        futures_util::stream::unfold((0u64, Some(input)), move |(read, input)| async move {
            let mut input = input?;
            if read == n {
                let e = RpcError::cancelled("the server hung up");
                return Some((Err(e), (read, None)));
            }
            let item = input.next().await?.ok()?;
            Some((Ok(item), (read + 1, Some(input))))
        })
    }
}

struct Fixture {
    served: Served,
    probe: Arc<Probe>,
}

impl Fixture {
    async fn start() -> Self {
        let probe = Arc::new(Probe::default());
        let router = ChatImpl {
            probe: probe.clone(),
        }
        .into_router();
        let options = ServerOptions::default().inbound_window(INBOUND_WINDOW);
        let served = Served::ws(RpcServer::with_options(router, options)).await;
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
async fn generated_client_calls_streams_and_gets_typed_errors() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;
    let chat = ChatClient::new(&rpc);

    assert_eq!(chat.add(40, 2).await.unwrap(), 42);
    let ack = chat
        .send(Msg {
            room: "lobby".into(),
            text: "hello".into(),
        })
        .await
        .unwrap();
    assert_eq!(ack, Ack { seq: 5 });
    assert_eq!(chat.whoami().await.unwrap(), "chat.whoami as call 3");

    // The method's own error comes back typed.
    let e = chat
        .send(Msg {
            room: "closed".into(),
            text: "x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.application(), Some(&ChatError::Closed("closed".into())));
    let e = chat
        .send(Msg {
            room: "lobby".into(),
            text: "far too long a text".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, CallError::Application(ChatError::TooLong { max: 10 })),
        "{e}"
    );

    // A server stream, read to its end.
    let items: Vec<Msg> = chat
        .history_with(CallOptions::default().credit(4), "lobby".into(), 50)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(items.len(), 50);
    assert_eq!(items[49].text, "message 50");
    assert!(items.iter().all(|m| m.room == "lobby"));

    // A client newer than the server: a typed `unknown_method`, not a hang.
    let v2 = ChatV2Client::new(&rpc);
    let e = v2.edit(1, "x".into()).await.unwrap_err();
    let rpc_err = e.rpc().unwrap();
    assert!(rpc_err.is_unknown_method(), "{rpc_err}");
    assert_eq!(rpc_err.code, RpcCode::UnknownMethod);
    assert_eq!(rpc.open_calls(), 0);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_server_consumer_keeps_the_client_within_the_window() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;
    let chat = ChatClient::new(&rpc);
    let (mut sink, mut shouts) = chat.shout().unwrap();
    const N: u64 = 200;
    let probe = fx.probe.clone();
    let sender = tokio::spawn(async move {
        let mut max_ahead = 0;
        for i in 0..N {
            sink.send(&format!("item {i}")).await.unwrap();
            let ahead = sink.sent() - probe.consumed.load(Ordering::SeqCst);
            max_ahead = max_ahead.max(ahead);
        }
        sink.finish();
        max_ahead
    });
    let mut n = 0;
    while let Some(item) = tokio::time::timeout(STEP, shouts.next()).await.unwrap() {
        assert_eq!(item.unwrap(), format!("ITEM {n}"));
        n += 1;
    }
    assert_eq!(
        n, N,
        "every item came back, in order, then the stream ended"
    );
    let max_ahead = sender.await.unwrap();
    let max_queued = fx.probe.max_queued.load(Ordering::SeqCst);
    eprintln!(
        "slow server consumer: {N} items sent, at most {max_ahead} sent ahead of the server's reads, \
         at most {max_queued} queued on the server (window {INBOUND_WINDOW})"
    );
    assert!(
        max_ahead <= u64::from(INBOUND_WINDOW),
        "the client ran {max_ahead} items ahead of a window of {INBOUND_WINDOW}"
    );
    assert!(max_queued <= u64::from(INBOUND_WINDOW), "{max_queued}");
    assert_eq!(rpc.open_calls(), 0);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_client_reader_keeps_a_bidi_server_bounded_and_dropping_the_stream_cancels() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;
    let chat = ChatClient::new(&rpc);
    const WINDOW: u32 = 4;
    let (mut sink, mut counts) = chat
        .count_with(CallOptions::default().credit(WINDOW), 100)
        .unwrap();
    sink.send(&1).await.unwrap();
    let mut max_ahead = 0;
    for i in 0..30u64 {
        let item = tokio::time::timeout(STEP, counts.next()).await.unwrap();
        assert_eq!(item.unwrap().unwrap(), 100 + i);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let produced = fx.probe.produced.load(Ordering::SeqCst);
        max_ahead = max_ahead.max(produced - (i + 1));
    }
    assert!(
        max_ahead <= u64::from(WINDOW),
        "the server ran {max_ahead} items ahead of a window of {WINDOW}"
    );
    // Dropping the stream cancels the call on the server; the sink sees the call is over.
    drop(counts);
    let probe = fx.probe.clone();
    eventually("the server stream is aborted", || {
        probe.count_dropped.load(Ordering::SeqCst)
    })
    .await;
    let e = sink.send(&2).await.unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert_eq!(rpc.open_calls(), 0);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_hangs_up_ends_both_sides_of_a_bidi_call() {
    let fx = Fixture::start().await;
    let (_client, rpc) = fx.client().await;
    let chat = ChatClient::new(&rpc);
    let (mut sink, mut items) = chat.hang_up(3).unwrap();
    for i in 1..=3u64 {
        sink.send(&i).await.unwrap();
        assert_eq!(items.next().await.unwrap().unwrap(), i);
    }
    let e = tokio::time::timeout(STEP, items.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert!(items.next().await.is_none());
    let e = sink.send(&4).await.unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    assert_eq!(rpc.open_calls(), 0);
    fx.stop().await;
}

#[test]
fn the_schema_names_every_method_with_its_types() {
    assert_eq!(ChatApi::NAMESPACE, "chat");
    assert_eq!(
        ChatApi::METHODS,
        &[
            ("chat.send", MethodKind::Unary),
            ("chat.add", MethodKind::Unary),
            ("chat.whoami", MethodKind::Unary),
            ("chat.history", MethodKind::ServerStream),
            ("chat.shout", MethodKind::BidiStream),
            ("chat.count", MethodKind::BidiStream),
            ("chat.hang_up", MethodKind::BidiStream),
        ]
    );
    let schema = ChatApi::schema();
    let methods = schema["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 7);
    let send = &methods[0];
    assert_eq!(send["name"], "chat.send");
    assert_eq!(send["description"], "Sends a message to its room.");
    assert_eq!(send["params"]["$ref"], "#/$defs/Msg");
    assert_eq!(send["result"]["$ref"], "#/$defs/Ack");
    assert_eq!(send["error"]["$ref"], "#/$defs/ChatError");
    let add = &methods[1];
    assert_eq!(add["param_names"], serde_json::json!(["a", "b"]));
    assert_eq!(add["params"]["prefixItems"].as_array().unwrap().len(), 2);
    assert_eq!(methods[2]["param_names"], serde_json::json!([]));
    assert_eq!(methods[3]["item"]["$ref"], "#/$defs/Msg");
    assert_eq!(methods[4]["input"]["type"], "string");
    let msg = &schema["$defs"]["Msg"];
    assert_eq!(msg["properties"]["text"]["type"], "string");
    assert_eq!(
        msg["properties"]["room"]["description"],
        "The room it is for."
    );
    let md = tidings_rpc::schema::markdown(&schema);
    assert!(md.contains("| `chat.send` | unary | `m`: [`Msg`](#msg) | [`Ack`](#ack) | [`ChatError`](#chaterror) |"), "{md}");
    assert!(md.contains("### `ChatError`"), "{md}");
}
