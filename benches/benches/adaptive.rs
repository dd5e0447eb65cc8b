//! Adaptive transport benches on loopback, each beside its plain-transport baseline in the same run: time to a usable session (adaptive vs a plain WebSocket client), and the cost of a run-time switch (a round trip across a switch vs a plain round trip).
//!
//! Groups (the first function of each group is its baseline):
//!
//! * `connect` — from `connect()` to the session's `Connected` event.
//!   `websocket`: a plain `tidings_ws::Client`. `adaptive-ws-only`: the
//!   adaptive client with only WebSocket configured (the layer's own cost).
//!   `adaptive-wt-ws-sse`: the default order with every transport up (it
//!   lands on WebTransport). `adaptive-wt-blocked`: WebTransport's UDP
//!   blackholed by a fault proxy, so happy eyeballs lands on WebSocket after
//!   the stagger (250 ms by default, 50 ms here).
//! * `switch` — one publish → its message back. `websocket-round-trip`: on a
//!   plain WebSocket client. `adaptive-no-switch`: the adaptive client, no
//!   switch. `adaptive-switch-ws-wt`: a forced switch (WebSocket ↔
//!   WebTransport alternately) and then the round trip: the pause a switch
//!   costs the application.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use tidings_adaptive::{AdaptiveEvent, Client as Adaptive};
use tidings_axum::{RouterExt, SseRouterExt};
use tidings_channels::{Hub, MemoryBroker};
use tidings_protocol::ClientEvent;
use tidings_runtime::TransportKind;
use tidings_test::UdpFaultProxy;
use tidings_webtransport::{Accepted, Certificate, ServerConfig, ServerHandle, WtServer};

struct Servers {
    http: std::net::SocketAddr,
    wt: ServerHandle,
    blackhole: UdpFaultProxy,
}

async fn servers() -> Servers {
    let hub = Hub::new(Arc::new(MemoryBroker::default()));
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).expect("certificate");
    let server = WtServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        ServerConfig::default(),
        cert,
    )
    .expect("bind WebTransport");
    let h = hub.clone();
    let wt = server.serve(move |s: Accepted| {
        let hub = h.clone();
        async move { hub.serve(s.transport, s.codec).await }
    });
    let app = Router::new()
        .tidings("/ws", hub.clone())
        .tidings_sse("/sse", hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let blackhole = UdpFaultProxy::start(wt.local_addr()).await.expect("proxy");
    blackhole.set_blackhole(true);
    Servers {
        http,
        wt,
        blackhole,
    }
}

fn adaptive(s: &Servers, wt: Option<std::net::SocketAddr>, order: &[TransportKind]) -> Adaptive {
    let mut b = Adaptive::builder()
        .websocket(format!("ws://{}/ws", s.http))
        .sse(format!("http://{}/sse", s.http))
        .order(order.iter().copied())
        .stagger(Duration::from_millis(50))
        .attempt_timeout(Duration::from_secs(2));
    if let Some(addr) = wt {
        b = b.webtransport(format!("https://{addr}/"), &[s.wt.certificate_hash()]);
    }
    b.connect().expect("adaptive client")
}

async fn session_open<T>(c: &tidings_runtime::Client<T>) {
    loop {
        match c.next_event().await {
            Some(ClientEvent::Connected { .. }) => return,
            Some(_) => continue,
            None => panic!("client closed"),
        }
    }
}

async fn message_back<T>(c: &tidings_runtime::Client<T>) {
    loop {
        match c.next_event().await {
            Some(ClientEvent::Message(m)) => {
                black_box(m);
                return;
            }
            Some(_) => continue,
            None => panic!("client closed"),
        }
    }
}

async fn subscribed<T>(c: &tidings_runtime::Client<T>, channel: &str) {
    c.subscribe(channel).expect("subscribe");
    loop {
        match c.next_event().await {
            Some(ClientEvent::Subscribed { .. }) => return,
            Some(_) => continue,
            None => panic!("client closed"),
        }
    }
}

const ALL: [TransportKind; 3] = [
    TransportKind::WebTransport,
    TransportKind::WebSocket,
    TransportKind::Sse,
];

fn connect(c: &mut Criterion) {
    let rt = tidings_benches::runtime();
    let _in_runtime = rt.enter();
    let s = rt.block_on(servers());
    let mut g = c.benchmark_group("connect");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    g.bench_function("websocket", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let c = tidings_ws::Client::builder(format!("ws://{}/ws", s.http))
                        .connect()
                        .expect("client");
                    session_open(&c).await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    let cases: [(&str, Option<std::net::SocketAddr>, &[TransportKind]); 3] = [
        ("adaptive-ws-only", None, &[TransportKind::WebSocket]),
        ("adaptive-wt-ws-sse", Some(s.wt.local_addr()), &ALL),
        ("adaptive-wt-blocked", Some(s.blackhole.addr()), &ALL),
    ];
    for (name, wt, order) in cases {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let c = adaptive(&s, wt, order);
                        session_open(&c).await;
                        total += start.elapsed();
                    }
                    total
                })
            })
        });
    }
    g.finish();
}

fn switch(c: &mut Criterion) {
    let rt = tidings_benches::runtime();
    let _in_runtime = rt.enter();
    let s = rt.block_on(servers());
    let mut g = c.benchmark_group("switch");
    g.sampling_mode(SamplingMode::Flat).sample_size(10);
    let ws = tidings_ws::Client::builder(format!("ws://{}/ws", s.http))
        .connect()
        .expect("client");
    rt.block_on(subscribed(&ws, "bench"));
    g.bench_function("websocket-round-trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    ws.publish("bench", "x").expect("publish");
                    message_back(&ws).await;
                }
                start.elapsed()
            })
        })
    });
    let a = adaptive(&s, Some(s.wt.local_addr()), &ALL);
    rt.block_on(subscribed(&a, "bench"));
    g.bench_function("adaptive-no-switch", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    a.publish("bench", "x").expect("publish");
                    message_back(&a).await;
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("adaptive-switch-ws-wt", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let to = match a.transport() {
                        Some(TransportKind::WebTransport) => TransportKind::WebSocket,
                        _ => TransportKind::WebTransport,
                    };
                    a.switch_to(to).expect("switch");
                    loop {
                        if let AdaptiveEvent::Switched { to: t, .. } = a.next_adaptive_event().await
                            && t == to
                        {
                            break;
                        }
                    }
                    a.publish("bench", "x").expect("publish");
                    message_back(&a).await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, connect, switch);
criterion_main!(benches);
