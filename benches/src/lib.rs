//! Shared fixtures of the tidings benchmarks: the runtime, loopback servers (raw tokio-tungstenite, tidings-ws raw echo, a full tidings hub), clients and a counting delivery sink.
//!
//! Every server listens on `127.0.0.1:0` inside the bench process, so client
//! and server share the machine (2 cores here), as they do under `cargo xtask load`. Both
//! the raw tokio-tungstenite baseline and tidings use the same WebSocket buffer
//! sizes ([`READ_BUFFER_BYTES`], [`WRITE_BUFFER_BYTES`]) and `TCP_NODELAY` on
//! both ends, so a ratio between them measures the framework, not a setting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tidings_channels::{Delivery, Hub, MemoryBroker};
use tidings_protocol::{ClientEvent, SharedMessage};
use tidings_ws::{Accepted, Client, ServerConfig, ServerHandle, WsConfig, WsServer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The "small message" of every network bench: 32 bytes of JSON (a valid JSON
/// value, so tidings' JSON codec embeds it inline rather than as base64).
pub const SMALL_PAYLOAD: &str = r#"{"n":1,"text":"0123456789abcde"}"#;

const _: () = assert!(SMALL_PAYLOAD.len() == 32);

/// WebSocket read buffer of every connection, baseline and tidings alike
/// (tidings' default: tungstenite's 128 KiB default zero-fills on every read).
pub const READ_BUFFER_BYTES: usize = 4 << 10;

/// WebSocket write buffer of every connection (tidings' default).
pub const WRITE_BUFFER_BYTES: usize = 16 << 10;

/// Largest message accepted (tidings' default).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Time allowed for any set-up step (connect, subscribe) before a bench panics.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A raw tokio-tungstenite client connection.
pub type RawClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The runtime every network bench runs on: two worker threads (one per core).
///
/// The bench routine runs on the calling thread through `Runtime::block_on`,
/// the servers' connection tasks (and a tidings client's driver task) on the
/// workers, so each round trip crosses threads as it does in a real deployment.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A single-threaded runtime: client, client driver and server tasks all run
/// on the bench thread, so a round trip costs CPU and syscalls but no
/// cross-thread wake-up (whose latency depends on how idle the CPUs are).
pub fn runtime_single_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The tungstenite configuration of the raw baseline (client and server).
pub fn tungstenite_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// The tidings WebSocket configuration (server and client), with the same buffers.
pub fn tidings_ws_config() -> WsConfig {
    WsConfig::default()
        .with_buffers(READ_BUFFER_BYTES, WRITE_BUFFER_BYTES)
        .with_max_message_bytes(MAX_MESSAGE_BYTES)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// What a raw tokio-tungstenite server does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum RawMode {
    /// Sends every text or binary message back (one `send`, i.e. one flush, per message).
    Echo,
    /// Counts text and binary messages and replies once, with the count as
    /// text, after every `n`-th one.
    CountReplyEvery(u64),
}

/// Starts a raw tokio-tungstenite server (the baseline) and returns its address.
pub async fn raw_server(mode: RawMode) -> SocketAddr {
    let listener = TcpListener::bind(loopback())
        .await
        .expect("bind raw server");
    let addr = listener.local_addr().expect("raw server address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let config = Some(tungstenite_config());
                let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, config).await
                else {
                    return;
                };
                match mode {
                    RawMode::Echo => raw_echo_connection(ws).await,
                    RawMode::CountReplyEvery(n) => raw_count_connection(ws, n).await,
                }
            });
        }
    });
    addr
}

async fn raw_echo_connection(mut ws: WebSocketStream<TcpStream>) {
    while let Some(Ok(m)) = ws.next().await {
        if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
            return;
        }
    }
}

async fn raw_count_connection(mut ws: WebSocketStream<TcpStream>, n: u64) {
    let mut count = 0u64;
    while let Some(Ok(m)) = ws.next().await {
        if m.is_text() || m.is_binary() {
            count += 1;
            if count.is_multiple_of(n) && ws.send(WsMessage::text(count.to_string())).await.is_err()
            {
                return;
            }
        }
    }
}

/// Connects a raw tokio-tungstenite client (`TCP_NODELAY`, baseline buffers).
pub async fn raw_client(addr: SocketAddr) -> RawClient {
    let url = format!("ws://{addr}/");
    let connect =
        tokio_tungstenite::connect_async_with_config(url, Some(tungstenite_config()), true);
    let (ws, _) = tokio::time::timeout(SETUP_TIMEOUT, connect)
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

fn tidings_server_config() -> ServerConfig {
    ServerConfig::default().with_ws(tidings_ws_config())
}

/// Starts tidings' `WsServer` in raw echo mode ([`tidings_ws::raw_echo`]).
pub async fn ws_raw_echo_server() -> ServerHandle {
    let server = WsServer::bind(loopback(), tidings_server_config())
        .await
        .expect("bind WsServer");
    server.serve(tidings_ws::raw_echo)
}

/// Starts a full tidings server: a [`Hub`] on a [`MemoryBroker`] behind `WsServer`.
pub async fn tidings_server() -> (Hub, ServerHandle) {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let server = WsServer::bind(loopback(), tidings_server_config())
        .await
        .expect("bind WsServer");
    let for_conns = hub.clone();
    let handle = server.serve(move |conn: Accepted| {
        let hub = for_conns.clone();
        async move {
            let (transport, codec, _shutdown) = conn.into_transport();
            hub.serve(transport, codec).await;
        }
    });
    (hub, handle)
}

/// Connects a tidings [`Client`] (JSON codec, same buffers as the baseline),
/// waits until its session is open and, with `subscribe`, until that
/// subscription is confirmed.
pub async fn tidings_client(addr: SocketAddr, subscribe: Option<&str>) -> Client {
    let url = format!("ws://{addr}/");
    let client = Client::builder(url)
        .ws_config(tidings_ws_config())
        .connect()
        .expect("tidings client");
    wait_event(&client, |e| matches!(e, ClientEvent::Connected { .. })).await;
    if let Some(channel) = subscribe {
        client.subscribe(channel).expect("subscribe");
        wait_event(&client, |e| matches!(e, ClientEvent::Subscribed { .. })).await;
    }
    client
}

async fn wait_event(client: &Client, want: impl Fn(&ClientEvent) -> bool) {
    let wait = async {
        loop {
            match client.next_event().await {
                Some(e) if want(&e) => return,
                Some(_) => {}
                None => panic!("tidings client closed during set-up"),
            }
        }
    };
    tokio::time::timeout(SETUP_TIMEOUT, wait)
        .await
        .expect("tidings client set-up in time");
}

/// The next `Message` event of `client` (other events are skipped).
///
/// No timeout: it is called in measured loops, where a timer would be part of
/// the measurement.
pub async fn next_message(client: &Client) -> tidings_protocol::Message {
    loop {
        match client.next_event().await {
            Some(ClientEvent::Message(m)) => return m,
            Some(_) => {}
            None => panic!("tidings client closed"),
        }
    }
}

/// Takes every event already queued on `client` without waiting; returns how many.
///
/// A client that publishes without reading its events (`PublishAcked`) would
/// stop reading its socket once 4096 events are pending.
pub fn drain_events(client: &Client) -> usize {
    let mut n = 0;
    while let Some(Some(_)) = client.next_event().now_or_never() {
        n += 1;
    }
    n
}

/// A broker subscriber that counts deliveries and signals when a target count
/// is reached (the server side of the one-way throughput bench).
#[derive(Debug, Default)]
pub struct CountingSink {
    count: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl CountingSink {
    /// A sink that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deliveries so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Arms the signal for `more` deliveries from now. Call it only while no
    /// delivery is in flight (before publishing them).
    pub fn expect(&self, more: u64) {
        self.target.store(self.count() + more, Ordering::SeqCst);
    }

    /// Resolves once the count armed by [`CountingSink::expect`] is reached.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }
}

impl Delivery for CountingSink {
    fn deliver(&self, _message: &Arc<SharedMessage>) {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.target.load(Ordering::SeqCst) {
            // `notify_one` keeps a permit when nobody waits yet: no lost wake-up.
            self.reached.notify_one();
        }
    }
}

/// Runs `one` `iters` times on `rt` and sums the durations it measured
/// (for `Bencher::iter_custom`, when an iteration times only part of what
/// it does).
pub fn sum_measured<F>(rt: &Runtime, iters: u64, mut one: impl FnMut() -> F) -> Duration
where
    F: std::future::Future<Output = Duration>,
{
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            total += one().await;
        }
        total
    })
}
