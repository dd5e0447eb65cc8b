//! Loopback RPC benches: a tidings RPC call round trip beside a raw tokio-tungstenite echo round trip in the same run, and 64 calls in flight on one connection.
//!
//! Groups (`tokio-tungstenite` is the baseline of `rpc_roundtrip`):
//!
//! * `rpc_roundtrip` — `tokio-tungstenite`: a 32-byte text frame out to a raw
//!   echo server and back, one at a time. `tidings-rpc`: `RpcClient::call`
//!   of `bench.echo` (the same 32-byte string as params, echoed as the
//!   result) through the hub's RPC service, one at a time.
//! * `rpc_pipelined_64` — `tidings-rpc`: 64 calls in flight at once on one
//!   connection (elements = calls). jsonrpsee is not in this harness yet
//!   (see ROADMAP.md).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use tidings_benches::{
    RawClient, RawMode, SMALL_PAYLOAD, raw_client, raw_server, runtime, tidings_client,
    tidings_server,
};
use tidings_rpc::RpcError;
use tidings_rpc::client::RpcClient;
use tidings_rpc::server::{Router, RpcServer};
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn raw_round_trips(ws: &mut RawClient, iters: u64) -> Duration {
    let msg = WsMessage::text(SMALL_PAYLOAD);
    let start = Instant::now();
    for _ in 0..iters {
        ws.send(msg.clone()).await.expect("send");
        black_box(ws.next().await.expect("echo").expect("echo"));
    }
    start.elapsed()
}

async fn rpc_round_trips(rpc: &RpcClient, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let r: String = rpc.call("bench.echo", &SMALL_PAYLOAD).await.expect("call");
        black_box(r);
    }
    start.elapsed()
}

const IN_FLIGHT: usize = 64;

async fn rpc_pipelined(rpc: &RpcClient, iters: u64) -> Duration {
    let start = Instant::now();
    let mut done = 0u64;
    while done < iters {
        let n = IN_FLIGHT.min((iters - done) as usize);
        let calls = (0..n).map(|_| rpc.call::<_, String>("bench.echo", &SMALL_PAYLOAD));
        for r in futures_util::future::join_all(calls).await {
            black_box(r.expect("call"));
        }
        done += n as u64;
    }
    start.elapsed()
}

fn rpc_benches(c: &mut Criterion) {
    let rt = runtime();
    let addr = rt.block_on(raw_server(RawMode::Echo));
    let mut ws = rt.block_on(raw_client(addr));

    let (hub, server) = rt.block_on(tidings_server());
    let router = Router::new().unary("bench.echo", |_ctx, s: String| async move {
        Ok::<_, RpcError>(s)
    });
    hub.set_rpc(Arc::new(RpcServer::new(router)));
    let client = rt.block_on(tidings_client(server.local_addr(), None));
    let rpc = RpcClient::new(&client);

    let mut group = c.benchmark_group("rpc_roundtrip");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group.bench_function("tokio-tungstenite", |b| {
        b.iter_custom(|iters| rt.block_on(raw_round_trips(&mut ws, iters)));
    });
    group.bench_function("tidings-rpc", |b| {
        b.iter_custom(|iters| rt.block_on(rpc_round_trips(&rpc, iters)));
    });
    group.finish();

    let mut group = c.benchmark_group("rpc_pipelined_64");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group.bench_function("tidings-rpc", |b| {
        b.iter_custom(|iters| rt.block_on(rpc_pipelined(&rpc, iters)));
    });
    group.finish();
    client.close();
    drop((hub, server, ws));
}

criterion_group!(benches, rpc_benches);
criterion_main!(benches);
