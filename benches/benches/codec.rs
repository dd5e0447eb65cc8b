//! JSON codec benches: encode and decode of a `Message` frame with a 256-byte JSON payload, and of a `Ping`.
//!
//! `encode/*` goes through `FrameCodec::encode_to_bytes`, the call every
//! session makes (a fresh 64-byte buffer grown as needed, then frozen);
//! `encode-reuse/*` encodes into one cleared buffer, to show what the
//! allocation and growth cost; `encode-serde-reuse/*` is the same with the
//! generic serde encoder that the hand-written fast path of `encode` replaces
//! for hot frames (same bytes). `decode/*` is `FrameCodec::decode` of a
//! received frame (payloads are borrowed from the input, not copied).
//!
//! `json_validate/*` is the payload check of both directions (inline
//! `"data"` or base64): the codec's validator (`JsonCodec::whole_json_value`)
//! against what it replaces, `serde_json::from_slice::<&RawValue>` plus the
//! length check, on a 32-byte object and on the 256-byte payload above.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tidings_codec::JsonCodec;
use tidings_protocol::{ChannelName, Frame, FrameCodec, Message, MessageId, Ping};

/// A JSON object of exactly `len` bytes: `{"text":"xxx…"}`.
fn json_payload(len: usize) -> Bytes {
    let overhead = r#"{"text":""}"#.len();
    let text = "x".repeat(len - overhead);
    let json = format!(r#"{{"text":"{text}"}}"#);
    assert_eq!(json.len(), len);
    Bytes::from(json)
}

fn message_frame() -> Frame {
    Frame::Message(Message {
        channel: ChannelName::new("room:lobby").expect("channel name"),
        seq: 123_456,
        id: MessageId(0x9e37_79b9_0001_e240),
        payload: json_payload(256),
    })
}

fn json_codec(c: &mut Criterion) {
    let codec = JsonCodec::new();
    let mut group = c.benchmark_group("json_codec");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));

    let cases = [
        ("message-256", message_frame()),
        ("ping", Frame::Ping(Ping { nonce: 42 })),
    ];
    for (name, frame) in &cases {
        let encoded = codec.encode_to_bytes(frame).expect("encode");
        assert_eq!(&codec.decode(&encoded).expect("decode"), frame);
        let mut by_serde = BytesMut::new();
        codec.encode_serde(frame, &mut by_serde).expect("encode");
        assert_eq!(&by_serde[..], &encoded[..], "fast path and serde disagree");

        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| codec.encode_to_bytes(black_box(frame)).expect("encode"));
        });
        let mut buf = BytesMut::with_capacity(1024);
        group.bench_function(format!("encode-reuse/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                codec.encode(black_box(frame), &mut buf).expect("encode");
                black_box(buf.len())
            });
        });
        // The generic serde encoder, which `encode` bypasses for hot frames:
        // compare with `encode-reuse/*` (same bytes, same buffer handling).
        let mut buf = BytesMut::with_capacity(1024);
        group.bench_function(format!("encode-serde-reuse/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                codec
                    .encode_serde(black_box(frame), &mut buf)
                    .expect("encode");
                black_box(buf.len())
            });
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| codec.decode(black_box(&encoded)).expect("decode"));
        });
    }
    group.finish();
}

/// serde_json's answer to "is this payload one JSON value, nothing around it".
fn serde_whole_json_value(payload: &[u8]) -> Option<&str> {
    match serde_json::from_slice::<&serde_json::value::RawValue>(payload) {
        Ok(raw) if raw.get().len() == payload.len() => Some(raw.get()),
        _ => None,
    }
}

fn json_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("json_validate");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let cases = [
        (
            "payload-32",
            Bytes::from_static(br#"{"t":"0000000123456","p":"abcd"}"#),
        ),
        ("payload-256", json_payload(256)),
    ];
    for (name, payload) in &cases {
        assert!(JsonCodec::whole_json_value(payload).is_some());
        assert_eq!(
            JsonCodec::whole_json_value(payload),
            serde_whole_json_value(payload)
        );
        group.bench_function(format!("validator/{name}"), |b| {
            b.iter(|| JsonCodec::whole_json_value(black_box(payload)).is_some());
        });
        group.bench_function(format!("serde-rawvalue/{name}"), |b| {
            b.iter(|| serde_whole_json_value(black_box(payload)).is_some());
        });
    }
    group.finish();
}

criterion_group!(benches, json_codec, json_validate);
criterion_main!(benches);
