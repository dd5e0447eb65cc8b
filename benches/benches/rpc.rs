//! Loopback RPC benches: a tidings RPC call round trip beside a raw tokio-tungstenite echo round trip and a jsonrpsee call in the same run, and 64 calls in flight on one connection, tidings beside jsonrpsee.
//!
//! Groups (`tokio-tungstenite` is the baseline of `rpc_roundtrip`, `jsonrpsee`
//! the same-job peer of both):
//!
//! * `rpc_roundtrip` — `tokio-tungstenite`: a 32-byte text frame out to a raw
//!   echo server and back, one at a time. `tidings-rpc`: `RpcClient::call`
//!   of `bench.echo` (the same 32-byte string as params, echoed as the
//!   result) through the hub's RPC service, one at a time. `jsonrpsee`: the
//!   same method on a jsonrpsee server (`RpcModule::register_method`), called
//!   by its WebSocket client (`ClientT::request`), one at a time.
//! * `rpc_pipelined_64` — 64 calls in flight at once on one connection
//!   (elements = calls), `tidings-rpc` and `jsonrpsee`.
//!
//! Every server and client runs on the same 2-worker tokio runtime.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ArrayParams;
use jsonrpsee_ws_client::{WsClient, WsClientBuilder};
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

fn echo_params() -> ArrayParams {
    let mut p = ArrayParams::new();
    p.insert(SMALL_PAYLOAD).expect("params");
    p
}

async fn jsonrpsee_round_trips(client: &WsClient, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let r: String = client
            .request("bench.echo", echo_params())
            .await
            .expect("call");
        black_box(r);
    }
    start.elapsed()
}

async fn jsonrpsee_pipelined(client: &WsClient, iters: u64) -> Duration {
    let start = Instant::now();
    let mut done = 0u64;
    while done < iters {
        let n = IN_FLIGHT.min((iters - done) as usize);
        let calls = (0..n).map(|_| client.request::<String, _>("bench.echo", echo_params()));
        for r in futures_util::future::join_all(calls).await {
            black_box(r.expect("call"));
        }
        done += n as u64;
    }
    start.elapsed()
}

/// A jsonrpsee server with `bench.echo` and its WebSocket client.
async fn jsonrpsee_pair() -> (jsonrpsee::server::ServerHandle, WsClient) {
    let server = jsonrpsee::server::Server::builder()
        .build("127.0.0.1:0")
        .await
        .expect("jsonrpsee server");
    let addr = server.local_addr().expect("address");
    let mut module = jsonrpsee::RpcModule::new(());
    module
        .register_method("bench.echo", |params, _ctx, _ext| params.one::<String>())
        .expect("register");
    let handle = server.start(module);
    let client = WsClientBuilder::default()
        .build(format!("ws://{addr}"))
        .await
        .expect("jsonrpsee client");
    (handle, client)
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
    let (jsonrpsee_server, jsonrpsee_client) = rt.block_on(jsonrpsee_pair());

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
    group.bench_function("jsonrpsee", |b| {
        b.iter_custom(|iters| rt.block_on(jsonrpsee_round_trips(&jsonrpsee_client, iters)));
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
    group.bench_function("jsonrpsee", |b| {
        b.iter_custom(|iters| rt.block_on(jsonrpsee_pipelined(&jsonrpsee_client, iters)));
    });
    group.finish();
    client.close();
    drop(jsonrpsee_client);
    let _ = jsonrpsee_server.stop();
    drop((hub, server, ws));
}

criterion_group!(benches, rpc_benches);
criterion_main!(benches);
