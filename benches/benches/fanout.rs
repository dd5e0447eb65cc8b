//! Broker fan-out benches: one publish on a `MemoryBroker` delivered to 1,000 or 10,000 in-memory subscribers (no hub, no sockets).
//!
//! Throughput is reported in deliveries (receivers) per second, so the time
//! per receiver is the mean divided by the receiver count.
//!
//! * `counter/N` — each subscriber increments its own counter: the cost of the
//!   broker's fan-out loop itself (one dynamic call per receiver).
//! * `vec/N` — each subscriber pushes the shared message into its own `Vec`
//!   (cleared every 64 messages): adds a lock and an `Arc` clone per receiver.
//! * `session/N` — each subscriber is a real `ServerSession` behind a mutex and
//!   an `AtomicWaker`, exactly like the hub's per-session entry: `deliver`
//!   checks the subscription, records the message for resume and queues the
//!   encoded frame. The frame is encoded once (first receiver) and shared by
//!   every other one — compare the per-receiver time with `json_codec`
//!   `encode/*`. Between publishes, outside the measured time, every session's
//!   transmit queue is drained (as its writer task would) and, every 64
//!   messages, an `Ack` is fed in (as the client would), so queues and replay
//!   buffers stay at their steady-state size.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use futures_util::task::AtomicWaker;
use tidings_benches::SMALL_PAYLOAD;
use tidings_channels::{Broker, Delivery, MemoryBroker};
use tidings_codec::JsonCodec;
use tidings_protocol::{
    Ack, ChannelName, Frame, FrameCodec, ResumeToken, ServerConfig, ServerEvent, ServerSession,
    SessionId, SharedMessage, Subscribe,
};

const RECEIVERS: [usize; 2] = [1_000, 10_000];

/// Clients acknowledge every 64 messages (the default `ack_every`).
const ACK_EVERY: u64 = 64;

struct CounterSink(AtomicU64);

impl Delivery for CounterSink {
    fn deliver(&self, _message: &Arc<SharedMessage>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

struct VecSink(Mutex<Vec<Arc<SharedMessage>>>);

impl Delivery for VecSink {
    fn deliver(&self, message: &Arc<SharedMessage>) {
        let mut v = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if v.len() == 64 {
            v.clear();
        }
        v.push(message.clone());
    }
}

/// The hub's per-session entry, minus what `deliver` does not touch.
struct SessionSink {
    session: Mutex<ServerSession>,
    waker: AtomicWaker,
}

impl SessionSink {
    fn lock(&self) -> MutexGuard<'_, ServerSession> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Delivery for SessionSink {
    fn deliver(&self, message: &Arc<SharedMessage>) {
        self.lock().deliver(message);
        self.waker.wake();
    }
}

fn channel() -> ChannelName {
    ChannelName::new("room:fanout").expect("channel name")
}

fn payload() -> Bytes {
    Bytes::from_static(SMALL_PAYLOAD.as_bytes())
}

fn subscribe(broker: &MemoryBroker, sink: Arc<dyn Delivery>) -> tidings_channels::Subscription {
    broker
        .subscribe(&channel(), None, sink)
        .now_or_never()
        .expect("the memory broker subscribes at once")
        .expect("subscribe")
}

fn broker_with(n: usize, sink: impl Fn() -> Arc<dyn Delivery>) -> MemoryBroker {
    let broker = MemoryBroker::default();
    for _ in 0..n {
        subscribe(&broker, sink());
    }
    assert_eq!(broker.subscriber_count(&channel()), n);
    broker
}

/// `n` open server sessions (JSON codec) subscribed to the channel, set up the
/// way the hub does it: `Subscribe` frame in, `ServerEvent::Subscribe` out,
/// broker subscription, `subscribed`.
fn sessions(n: usize) -> (MemoryBroker, Vec<Arc<SessionSink>>) {
    let broker = MemoryBroker::default();
    let codec: Arc<dyn FrameCodec> = Arc::new(JsonCodec::new());
    let now = tidings_protocol::Instant::now();
    let channel = channel();
    let subscribe_frame = codec
        .encode_to_bytes(&Frame::Subscribe(Subscribe {
            channel: channel.clone(),
            after: None,
        }))
        .expect("encode subscribe");
    let mut sinks = Vec::with_capacity(n);
    for i in 0..n {
        let id = SessionId(format!("s{i}"));
        let token = ResumeToken(format!("{i:032x}"));
        let mut session =
            ServerSession::accept(ServerConfig::default(), id, token, codec.clone(), now);
        session
            .handle_input(now, subscribe_frame.clone())
            .expect("subscribe frame");
        match session.poll_event() {
            Some(ServerEvent::Subscribe { .. }) => {}
            other => panic!("expected a subscribe event, got {other:?}"),
        }
        let sink = Arc::new(SessionSink {
            session: Mutex::new(session),
            waker: AtomicWaker::new(),
        });
        let sub = subscribe(&broker, sink.clone());
        let mut s = sink.lock();
        s.subscribed(&channel, sub.start);
        while s.poll_transmit().is_some() {} // Welcome, Subscribed
        drop(s);
        sinks.push(sink);
    }
    // Every session queues exactly one frame per publish.
    broker.publish_now(&channel, payload());
    for sink in &sinks {
        let mut s = sink.lock();
        assert!(s.poll_transmit().is_some() && s.poll_transmit().is_none());
    }
    (broker, sinks)
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let channel = channel();
    for n in RECEIVERS {
        group.throughput(Throughput::Elements(n as u64));

        let broker = broker_with(n, || Arc::new(CounterSink(AtomicU64::new(0))));
        group.bench_with_input(BenchmarkId::new("counter", n), &n, |b, _| {
            b.iter(|| broker.publish_now(&channel, payload()));
        });
        drop(broker);

        let broker = broker_with(n, || Arc::new(VecSink(Mutex::new(Vec::with_capacity(64)))));
        group.bench_with_input(BenchmarkId::new("vec", n), &n, |b, _| {
            b.iter(|| broker.publish_now(&channel, payload()));
        });
        drop(broker);

        let (broker, sinks) = sessions(n);
        let codec = JsonCodec::new();
        group.bench_with_input(BenchmarkId::new("session", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut measured = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let receipt = broker.publish_now(&channel, payload());
                    measured += start.elapsed();
                    // The writers' and clients' part, not measured.
                    let ack = receipt.seq.is_multiple_of(ACK_EVERY).then(|| {
                        let frame = Frame::Ack(Ack {
                            channel: channel.clone(),
                            seq: receipt.seq,
                        });
                        codec.encode_to_bytes(&frame).expect("encode ack")
                    });
                    let now = tidings_protocol::Instant::now();
                    for sink in &sinks {
                        let mut s = sink.lock();
                        while let Some(frame) = s.poll_transmit() {
                            black_box(frame);
                        }
                        if let Some(ack) = &ack {
                            s.handle_input(now, ack.clone()).expect("ack frame");
                        }
                    }
                }
                measured
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
