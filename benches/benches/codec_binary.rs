//! Codec benches, JSON against binary (rkyv): encode and decode of every frame type, the zero-copy view, heap allocations per message (counting allocator) and fan-out of one binary message to 10,000 sessions.
//!
//! Group `codec` (function / frame):
//!
//! * `json-encode`, `binary-encode` — `FrameCodec::encode` into one reused
//!   `BytesMut` (cleared each time), the way a writer encodes.
//! * `json-decode`, `binary-decode` — `FrameCodec::decode` of a received
//!   frame into an owned `Frame` (payloads are `Bytes` slices of the input in
//!   both codecs; the JSON codec embeds JSON payloads raw, so every payload
//!   here is valid JSON to give JSON its best case).
//! * `binary-view` — `BinaryCodec::view` + reading channel, seq, id and
//!   payload of a `message`: validation included, nothing allocated.
//! * `fanout-binary/10000`, `fanout-json/10000` — one publish on a
//!   `MemoryBroker` delivered to 10,000 real `ServerSession`s (as in the
//!   `fanout` bench, but on the binary codec): the frame is encoded once and
//!   its `Bytes` shared; throughput is in receivers, so the time per receiver
//!   is the mean / 10,000.
//!
//! Before measuring, the bench prints the encoded size of every frame in both
//! codecs and a table of heap allocations per operation, counted by a global
//! allocator installed in this bench binary.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt;
use futures_util::task::AtomicWaker;
use tidings_channels::{Broker, Delivery, MemoryBroker};
use tidings_codec::{BinaryCodec, JsonCodec};
use tidings_protocol::{
    Ack, ChannelName, ChannelPosition, Close, ErrorCode, ErrorFrame, Frame, FrameCodec, Gap, Hello,
    Message, MessageId, Ping, Publish, PublishAck, ResumeToken, ServerConfig, ServerEvent,
    ServerSession, SessionId, SharedMessage, Subscribe, Subscribed, Unsubscribe, Welcome,
};

// ---------------------------------------------------------------------------
// Counting allocator

/// The system allocator plus a per-thread allocation count, on while `ON` is.
struct Counting;

thread_local! {
    // `const` initialisers without destructors: using them never allocates.
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the only addition is a thread-local counter increment, which
// neither allocates nor touches the memory handed out. Installed in this
// bench binary only, to count allocations per operation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (see above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Mean heap allocations of one call of `f` (over `n` calls, after one warm-up).
fn allocations_per_call(n: u64, mut f: impl FnMut()) -> f64 {
    f();
    COUNT.with(|c| c.set(0));
    ON.with(|on| on.set(true));
    for _ in 0..n {
        f();
    }
    ON.with(|on| on.set(false));
    COUNT.with(Cell::get) as f64 / n as f64
}

// ---------------------------------------------------------------------------
// Frames

fn channel() -> ChannelName {
    ChannelName::new("room:lobby").expect("channel name")
}

/// A JSON object of exactly `len` bytes: `{"text":"xxx…"}`.
fn json_payload(len: usize) -> Bytes {
    let overhead = r#"{"text":""}"#.len();
    let json = format!(r#"{{"text":"{}"}}"#, "x".repeat(len - overhead));
    assert_eq!(json.len(), len);
    Bytes::from(json)
}

fn message(len: usize) -> Frame {
    Frame::Message(Message {
        channel: channel(),
        seq: 123_456,
        id: MessageId(0x9e37_79b9_0001_e240),
        payload: json_payload(len),
    })
}

/// One realistic frame of every type, plus `message` with a 32-byte and a 4 KiB payload.
fn frames() -> Vec<(&'static str, Frame)> {
    let c = channel();
    vec![
        (
            "hello",
            Frame::Hello(Hello {
                version: 1,
                resume: Some(ResumeToken("9f2c01ab9f2c01ab9f2c01ab9f2c01ab".into())),
                positions: vec![
                    ChannelPosition {
                        channel: c.clone(),
                        seq: 41,
                    },
                    ChannelPosition {
                        channel: ChannelName::new("news").expect("name"),
                        seq: 7,
                    },
                ],
                publisher: None,
            }),
        ),
        (
            "welcome",
            Frame::Welcome(Welcome {
                version: 1,
                session: SessionId("s1-9f2c01ab".into()),
                resume_token: ResumeToken("9f2c01ab9f2c01ab9f2c01ab9f2c01ab".into()),
                resumed: false,
                heartbeat_ms: 15_000,
                max_frame: 1 << 20,
                publish_acked: 0,
            }),
        ),
        (
            "publish-32",
            Frame::Publish(Publish {
                channel: c.clone(),
                seq: 1,
                payload: json_payload(32),
            }),
        ),
        ("message-32", message(32)),
        ("message-256", message(256)),
        ("message-4096", message(4096)),
        (
            "ack",
            Frame::Ack(Ack {
                channel: c.clone(),
                seq: 42,
            }),
        ),
        ("publish_ack", Frame::PublishAck(PublishAck { seq: 42 })),
        (
            "subscribe",
            Frame::Subscribe(Subscribe {
                channel: c.clone(),
                after: Some(41),
            }),
        ),
        (
            "subscribed",
            Frame::Subscribed(Subscribed {
                channel: c.clone(),
                seq: 41,
            }),
        ),
        (
            "unsubscribe",
            Frame::Unsubscribe(Unsubscribe { channel: c.clone() }),
        ),
        (
            "gap",
            Frame::Gap(Gap {
                channel: c,
                from: 5,
                to: 9,
            }),
        ),
        ("ping", Frame::Ping(Ping { nonce: 3 })),
        ("pong", Frame::Pong(Ping { nonce: 3 })),
        (
            "error",
            Frame::Error(ErrorFrame::new(
                ErrorCode::UnknownFrameType,
                "unknown frame type `bogus`",
            )),
        ),
        (
            "close",
            Frame::Close(Close {
                code: 1000,
                reason: "bye".into(),
            }),
        ),
    ]
}

/// A received frame as a transport hands it over: split off a read buffer.
fn received(codec: &dyn FrameCodec, frame: &Frame) -> Bytes {
    let mut read_buffer = BytesMut::with_capacity(8 << 10);
    codec.encode(frame, &mut read_buffer).expect("encode");
    let n = read_buffer.len();
    read_buffer.split_to(n).freeze()
}

/// Reads everything of a `message` through the zero-copy view.
fn view_message(input: &Bytes) -> (usize, u64, MessageId, usize) {
    let view = BinaryCodec::view(input).expect("valid frame");
    let m = view.as_message().expect("a message");
    (
        m.channel().len(),
        m.seq(),
        m.id(),
        black_box(m.payload()).len(),
    )
}

// ---------------------------------------------------------------------------
// Tables printed once

fn print_sizes(json: &JsonCodec, binary: &BinaryCodec) {
    println!();
    println!("encoded sizes (bytes)");
    println!("{:<14} {:>8} {:>8}", "frame", "json", "binary");
    for (name, frame) in frames() {
        let j = json.encode_to_bytes(&frame).expect("json").len();
        let b = binary.encode_to_bytes(&frame).expect("binary").len();
        println!("{name:<14} {j:>8} {b:>8}");
    }
}

fn print_allocations(json: &JsonCodec, binary: &BinaryCodec) {
    const N: u64 = 10_000;
    println!();
    println!("heap allocations per operation (mean of {N})");
    println!(
        "{:<14} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "frame", "json enc", "bin enc", "json enc*", "bin enc*", "json dec", "bin dec"
    );
    for (name, frame) in frames() {
        let mut buf = BytesMut::with_capacity(16 << 10);
        let mut reuse = |codec: &dyn FrameCodec| {
            allocations_per_call(N, || {
                buf.clear();
                codec.encode(black_box(&frame), &mut buf).expect("encode");
            })
        };
        let (je, be) = (reuse(json), reuse(binary));
        let fresh = |codec: &dyn FrameCodec| {
            allocations_per_call(N, || {
                black_box(codec.encode_to_bytes(black_box(&frame)).expect("encode"));
            })
        };
        let (jf, bf) = (fresh(json), fresh(binary));
        let (jin, bin) = (received(json, &frame), received(binary, &frame));
        let jd = allocations_per_call(N, || {
            black_box(json.decode(black_box(&jin)).expect("decode"));
        });
        let bd = allocations_per_call(N, || {
            black_box(binary.decode(black_box(&bin)).expect("decode"));
        });
        println!("{name:<14} {je:>11.2} {be:>11.2} {jf:>11.2} {bf:>11.2} {jd:>11.2} {bd:>11.2}");
    }
    let input = received(binary, &message(256));
    let v = allocations_per_call(N, || {
        black_box(view_message(black_box(&input)));
    });
    println!("enc: into a reused BytesMut; enc*: encode_to_bytes (fresh buffer); dec: owned Frame");
    println!("binary view of message-256 (validate + channel, seq, id, payload): {v:.2}");
    println!();
}

// ---------------------------------------------------------------------------
// Fan-out

const RECEIVERS: usize = 10_000;

/// The hub's per-session entry (as in the `fanout` bench).
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

fn fanout_channel() -> ChannelName {
    ChannelName::new("room:fanout").expect("channel name")
}

/// `n` sessions on `codec` subscribed to the fan-out channel, set up like the hub does.
fn sessions(n: usize, codec: Arc<dyn FrameCodec>) -> (MemoryBroker, Vec<Arc<SessionSink>>) {
    let broker = MemoryBroker::default();
    let now = tidings_protocol::Instant::now();
    let channel = fanout_channel();
    let subscribe = codec
        .encode_to_bytes(&Frame::Subscribe(Subscribe {
            channel: channel.clone(),
            after: None,
        }))
        .expect("encode subscribe");
    let mut sinks = Vec::with_capacity(n);
    for i in 0..n {
        let mut session = ServerSession::accept(
            ServerConfig::default(),
            SessionId(format!("s{i}")),
            ResumeToken(format!("{i:032x}")),
            codec.clone(),
            now,
        );
        session
            .handle_input(now, subscribe.clone())
            .expect("subscribe frame");
        match session.poll_event() {
            Some(ServerEvent::Subscribe { .. }) => {}
            other => panic!("expected a subscribe event, got {other:?}"),
        }
        let sink = Arc::new(SessionSink {
            session: Mutex::new(session),
            waker: AtomicWaker::new(),
        });
        let sub = broker
            .subscribe(&channel, None, sink.clone())
            .now_or_never()
            .expect("the memory broker subscribes at once")
            .expect("subscribe");
        let mut s = sink.lock();
        s.subscribed(&channel, sub.start);
        while s.poll_transmit().is_some() {}
        drop(s);
        sinks.push(sink);
    }
    // Every session queues the same encoded frame.
    broker.publish_now(&channel, json_payload(32));
    let first = sinks[0].lock().poll_transmit().expect("a frame");
    for sink in &sinks[1..] {
        let mut s = sink.lock();
        assert_eq!(
            s.poll_transmit().expect("a frame").as_ptr(),
            first.as_ptr(),
            "one shared encoding"
        );
        assert!(s.poll_transmit().is_none());
    }
    (broker, sinks)
}

fn bench_fanout(c: &mut Criterion, name: &str, codec: Arc<dyn FrameCodec>) {
    let mut group = c.benchmark_group("codec");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(RECEIVERS as u64));
    let (broker, sinks) = sessions(RECEIVERS, codec.clone());
    let channel = fanout_channel();
    group.bench_with_input(BenchmarkId::new(name, RECEIVERS), &RECEIVERS, |b, _| {
        b.iter_custom(|iters| {
            let mut measured = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let receipt = broker.publish_now(&channel, json_payload(32));
                measured += start.elapsed();
                // The writers' and clients' part, not measured: drain, ack every 64.
                let ack = receipt.seq.is_multiple_of(64).then(|| {
                    codec
                        .encode_to_bytes(&Frame::Ack(Ack {
                            channel: channel.clone(),
                            seq: receipt.seq,
                        }))
                        .expect("encode ack")
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
    group.finish();
}

// ---------------------------------------------------------------------------
// Benches

fn codec(c: &mut Criterion) {
    let json = JsonCodec::new();
    let binary = BinaryCodec::new();
    print_sizes(&json, &binary);
    print_allocations(&json, &binary);

    let mut group = c.benchmark_group("codec");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
    let codecs: [(&str, &dyn FrameCodec); 2] = [("json", &json), ("binary", &binary)];
    for (name, frame) in frames() {
        for (codec_name, codec) in codecs {
            let input = received(codec, &frame);
            assert_eq!(codec.decode(&input).expect("decode"), frame);
            let mut buf = BytesMut::with_capacity(16 << 10);
            group.bench_function(
                BenchmarkId::new(format!("{codec_name}-encode"), name),
                |b| {
                    b.iter(|| {
                        buf.clear();
                        codec.encode(black_box(&frame), &mut buf).expect("encode");
                        black_box(buf.len())
                    });
                },
            );
            group.bench_function(
                BenchmarkId::new(format!("{codec_name}-decode"), name),
                |b| {
                    b.iter(|| codec.decode(black_box(&input)).expect("decode"));
                },
            );
        }
        if matches!(frame, Frame::Message(_)) {
            let input = received(&binary, &frame);
            group.bench_function(BenchmarkId::new("binary-view", name), |b| {
                b.iter(|| view_message(black_box(&input)));
            });
        }
    }
    group.finish();

    bench_fanout(c, "fanout-binary", Arc::new(BinaryCodec::new()));
    bench_fanout(c, "fanout-json", Arc::new(JsonCodec::new()));
}

criterion_group!(benches, codec);
criterion_main!(benches);
