//! Loopback WebSocket benches of tidings against raw tokio-tungstenite (same run, same buffers): echo round trip and one-connection throughput of 32-byte messages.
//!
//! Groups (the function `tokio-tungstenite` is the baseline of each group):
//!
//! * `echo_roundtrip` — one message out, the same message back, one at a time.
//!   `tokio-tungstenite`: raw client ↔ raw tokio-tungstenite echo server.
//!   `tidings-ws-raw`: raw client ↔ tidings' `WsServer` in `raw_echo` mode.
//!   `tidings`: a tidings `Client` subscribed to its own channel publishes and
//!   waits for its message to come back through the `Hub` and the broker.
//! * `echo_roundtrip_1thread` — the same on a single-threaded runtime: no
//!   cross-thread wake-ups, so it shows the CPU cost of a round trip. On the
//!   2-vCPU machine, waking an idle vCPU costs tens of µs and dominates
//!   `echo_roundtrip` when the machine is otherwise idle (raw ≈ 60–70 µs),
//!   while a busy machine gives ≈ 10 µs: compare ratios within one run only.
//! * `throughput_one_conn` — 10,000 messages one way on one connection.
//! * `throughput_echo_one_conn` — 10,000 messages pipelined out and back.

use std::future::poll_fn;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tidings_benches::{
    CountingSink, RawClient, RawMode, SMALL_PAYLOAD, drain_events, next_message, raw_client,
    raw_server, runtime, runtime_single_thread, tidings_client, tidings_server, ws_raw_echo_server,
};
use tidings_channels::Delivery;
use tidings_protocol::ChannelName;
use tidings_ws::Client;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Messages per iteration of the throughput groups.
const BATCH: u64 = 10_000;

fn small_message() -> WsMessage {
    WsMessage::text(SMALL_PAYLOAD)
}

fn small_payload() -> Bytes {
    Bytes::from_static(SMALL_PAYLOAD.as_bytes())
}

/// Round trips of the raw client: `send` (write + flush), then read the echo.
async fn raw_round_trips(ws: &mut RawClient, iters: u64) -> Duration {
    let msg = small_message();
    let start = Instant::now();
    for _ in 0..iters {
        ws.send(msg.clone()).await.expect("send");
        match ws.next().await {
            Some(Ok(m @ WsMessage::Text(_))) => {
                black_box(m);
            }
            other => panic!("echo ended: {other:?}"),
        }
    }
    start.elapsed()
}

/// Round trips through tidings: publish on the client's own channel, wait for
/// that message to be delivered back (client → hub → broker → the same session
/// → client). `PublishAcked` events met on the way are skipped.
async fn tidings_round_trips(client: &Client, channel: &str, iters: u64) -> Duration {
    let payload = small_payload();
    let start = Instant::now();
    for _ in 0..iters {
        client.publish(channel, payload.clone()).expect("publish");
        black_box(next_message(client).await);
    }
    start.elapsed()
}

fn echo_roundtrip(c: &mut Criterion) {
    echo_group(c, "echo_roundtrip", runtime());
}

fn echo_roundtrip_1thread(c: &mut Criterion) {
    echo_group(c, "echo_roundtrip_1thread", runtime_single_thread());
}

fn echo_group(c: &mut Criterion, name: &str, rt: Runtime) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    let addr = rt.block_on(raw_server(RawMode::Echo));
    let mut ws = rt.block_on(raw_client(addr));
    group.bench_function("tokio-tungstenite", |b| {
        b.iter_custom(|iters| rt.block_on(raw_round_trips(&mut ws, iters)));
    });
    drop(ws);

    let server = rt.block_on(ws_raw_echo_server());
    let mut ws = rt.block_on(raw_client(server.local_addr()));
    group.bench_function("tidings-ws-raw", |b| {
        b.iter_custom(|iters| rt.block_on(raw_round_trips(&mut ws, iters)));
    });
    drop(ws);

    let (hub, server) = rt.block_on(tidings_server());
    let channel = "bench:echo";
    let client = rt.block_on(tidings_client(server.local_addr(), Some(channel)));
    group.bench_function("tidings", |b| {
        b.iter_custom(|iters| rt.block_on(tidings_round_trips(&client, channel, iters)));
    });
    client.close();
    group.finish();
    // Servers stop when their handles drop; the runtime (dropped last) ends every task.
    drop((hub, server));
}

/// One way, raw: the client writes `BATCH` text frames (buffered, tungstenite
/// writes when its 16 KiB buffer fills, one flush at the end); the server
/// counts them and replies once with the count.
async fn raw_one_way(ws: &mut RawClient, iters: u64) -> Duration {
    let msg = small_message();
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..BATCH {
            ws.feed(msg.clone()).await.expect("feed");
        }
        ws.flush().await.expect("flush");
        match ws.next().await {
            Some(Ok(WsMessage::Text(count))) => {
                black_box(count);
            }
            other => panic!("count reply missing: {other:?}"),
        }
    }
    start.elapsed()
}

/// One way, tidings: `Client::publish` × `BATCH` (each is queued, encoded and
/// written by the client's driver task); the hub decodes each `Publish`,
/// deduplicates it, hands it to the broker, which delivers it to a counting
/// subscriber on the server; the count reaching `BATCH` ends the iteration.
///
/// Compared with the raw baseline, tidings also does per message: JSON encode
/// and decode of the `Publish` envelope (~90 bytes on the wire instead of 38),
/// sequence/dedup bookkeeping, a broker publish (sequence number, id, shared
/// message, history entry) and one delivery; and per 64 messages one
/// `PublishAck` frame back to the client (156 small frames per batch, instead
/// of the baseline's single reply). The final 16 publishes are acknowledged by
/// the 20 ms ack timer, after the iteration ended; acks are not waited for.
async fn tidings_one_way(
    client: &Client,
    sink: &CountingSink,
    channel: &str,
    iters: u64,
) -> Duration {
    let payload = small_payload();
    let start = Instant::now();
    for _ in 0..iters {
        sink.expect(BATCH);
        for _ in 0..BATCH {
            client.publish(channel, payload.clone()).expect("publish");
        }
        sink.reached().await;
        // Read the `PublishAcked` events, as an application would, so the
        // client never stops reading its socket.
        drain_events(client);
    }
    start.elapsed()
}

fn throughput_one_conn(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("throughput_one_conn");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(BATCH));

    let addr = rt.block_on(raw_server(RawMode::CountReplyEvery(BATCH)));
    let mut ws = rt.block_on(raw_client(addr));
    group.bench_function("tokio-tungstenite", |b| {
        b.iter_custom(|iters| rt.block_on(raw_one_way(&mut ws, iters)));
    });
    drop(ws);

    let (hub, server) = rt.block_on(tidings_server());
    let channel = "bench:one-way";
    let sink = Arc::new(CountingSink::new());
    let name = ChannelName::new(channel).expect("channel name");
    let subscriber: Arc<dyn Delivery> = sink.clone();
    rt.block_on(hub.broker().subscribe(&name, None, subscriber))
        .expect("server-side subscriber");
    let client = rt.block_on(tidings_client(server.local_addr(), None));
    group.bench_function("tidings", |b| {
        b.iter_custom(|iters| rt.block_on(tidings_one_way(&client, &sink, channel, iters)));
    });
    client.close();
    group.finish();
    // Servers stop when their handles drop; the runtime (dropped last) ends every task.
    drop((hub, server));
}

/// Pipelined echo, raw: writes `BATCH` frames while reading the echoes on the
/// same connection (one task, no split lock), until all came back.
async fn raw_pipelined(ws: &mut RawClient, iters: u64) -> Duration {
    let msg = small_message();
    let start = Instant::now();
    for _ in 0..iters {
        let (mut sent, mut received, mut flushed) = (0u64, 0u64, true);
        poll_fn(|cx| {
            while sent < BATCH {
                match Pin::new(&mut *ws).poll_ready(cx) {
                    Poll::Ready(r) => r.expect("poll_ready"),
                    Poll::Pending => break,
                }
                Pin::new(&mut *ws)
                    .start_send(msg.clone())
                    .expect("start_send");
                sent += 1;
                flushed = false;
            }
            if !flushed && Pin::new(&mut *ws).poll_flush(cx).is_ready() {
                flushed = true;
            }
            loop {
                match Pin::new(&mut *ws).poll_next(cx) {
                    Poll::Ready(Some(Ok(m))) => {
                        black_box(m);
                        received += 1;
                        if received == BATCH {
                            return Poll::Ready(());
                        }
                    }
                    Poll::Ready(other) => panic!("echo ended: {other:?}"),
                    Poll::Pending => return Poll::Pending,
                }
            }
        })
        .await;
    }
    start.elapsed()
}

/// Pipelined echo, tidings: publish `BATCH` messages on the client's own
/// channel, then read until all `BATCH` came back through the hub.
async fn tidings_pipelined(client: &Client, channel: &str, iters: u64) -> Duration {
    let payload = small_payload();
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..BATCH {
            client.publish(channel, payload.clone()).expect("publish");
        }
        for _ in 0..BATCH {
            black_box(next_message(client).await);
        }
    }
    start.elapsed()
}

fn throughput_echo_one_conn(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("throughput_echo_one_conn");
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(BATCH));

    let addr = rt.block_on(raw_server(RawMode::Echo));
    let mut ws = rt.block_on(raw_client(addr));
    group.bench_function("tokio-tungstenite", |b| {
        b.iter_custom(|iters| rt.block_on(raw_pipelined(&mut ws, iters)));
    });
    drop(ws);

    let server = rt.block_on(ws_raw_echo_server());
    let mut ws = rt.block_on(raw_client(server.local_addr()));
    group.bench_function("tidings-ws-raw", |b| {
        b.iter_custom(|iters| rt.block_on(raw_pipelined(&mut ws, iters)));
    });
    drop(ws);

    let (hub, server) = rt.block_on(tidings_server());
    let channel = "bench:pipelined";
    let client = rt.block_on(tidings_client(server.local_addr(), Some(channel)));
    group.bench_function("tidings", |b| {
        b.iter_custom(|iters| rt.block_on(tidings_pipelined(&client, channel, iters)));
    });
    client.close();
    group.finish();
    // Servers stop when their handles drop; the runtime (dropped last) ends every task.
    drop((hub, server));
}

criterion_group!(
    benches,
    echo_roundtrip,
    echo_roundtrip_1thread,
    throughput_one_conn,
    throughput_echo_one_conn
);
criterion_main!(benches);
