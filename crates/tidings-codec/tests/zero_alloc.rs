//! Counting-allocator proof: validating a received binary `message` frame with the view API and reading its payload performs zero heap allocations.
//!
//! This test binary installs a global allocator that counts allocations made
//! by the current thread while counting is switched on (other test threads and
//! the test harness are not counted).
#![cfg(feature = "binary")]
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use tidings_codec::{BinaryCodec, JsonCodec};
use tidings_protocol::{ChannelName, Frame, FrameCodec, Message, MessageId, Ping, PublishAck};

/// The system allocator, plus a per-thread count of allocations.
struct Counting;

thread_local! {
    // `const` initialisers without destructors: reading them never allocates
    // (no lazy registration), so the allocator may use them.
    static ON: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: during thread teardown the slots may be gone; never count then.
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the only addition is bumping a
// thread-local counter, which neither allocates nor touches the memory handed
// out. This is the one place in the workspace that implements `GlobalAlloc`;
// it exists only in this test binary.
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

/// Heap allocations made by `f` on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    COUNT.with(|c| c.set(0));
    ON.with(|on| on.set(true));
    let out = f();
    ON.with(|on| on.set(false));
    (COUNT.with(Cell::get), out)
}

fn message(payload_len: usize) -> Frame {
    Frame::Message(Message {
        channel: ChannelName::new("room:lobby").unwrap(),
        seq: 123_456,
        id: MessageId(0x9e37_79b9_0001_e240),
        payload: Bytes::from((0..payload_len).map(|i| i as u8).collect::<Vec<_>>()),
    })
}

/// Frames as a transport hands them over: split off a shared read buffer that
/// holds several frames back to back (so they start at odd addresses too).
fn received(frames: &[Frame]) -> Vec<Bytes> {
    let codec = BinaryCodec::new();
    let mut read_buffer = BytesMut::with_capacity(64 << 10);
    read_buffer.extend_from_slice(&[0xee; 3]); // a misaligning prefix
    let mut lens = Vec::new();
    for f in frames {
        let before = read_buffer.len();
        codec.encode(f, &mut read_buffer).unwrap();
        lens.push(read_buffer.len() - before);
    }
    let _ = read_buffer.split_to(3);
    lens.into_iter()
        .map(|n| read_buffer.split_to(n).freeze())
        .collect()
}

/// Everything an application reads from a message, through the view API.
fn read_message(input: &Bytes) -> (usize, u64, u64, u64, Bytes) {
    let view = BinaryCodec::view(input).unwrap();
    let m = view.as_message().unwrap();
    let checksum = m.payload().iter().map(|&b| u64::from(b)).sum::<u64>();
    (
        m.channel().len(),
        m.seq(),
        m.id().0,
        checksum,
        m.payload_bytes(),
    )
}

#[test]
fn viewing_a_received_binary_message_allocates_nothing() {
    let frames = [message(256), message(0), message(4096), message(256)];
    let inputs = received(&frames);

    // The very first decode on this thread included: no warm-up.
    for (input, frame) in inputs.iter().zip(&frames) {
        let (n, (channel_len, seq, id, checksum, payload)) =
            allocations(|| black_box(read_message(black_box(input))));
        assert_eq!(
            n, 0,
            "view + channel/seq/id/payload/payload_bytes allocated {n} times"
        );
        let Frame::Message(m) = frame else {
            unreachable!()
        };
        assert_eq!(
            (channel_len, seq, id),
            (m.channel.as_str().len(), m.seq, m.id.0)
        );
        assert_eq!(
            checksum,
            m.payload.iter().map(|&b| u64::from(b)).sum::<u64>()
        );
        assert_eq!(payload, m.payload);
        if !payload.is_empty() {
            assert!(
                input.as_ptr_range().contains(&payload.as_ptr()),
                "shared, not copied"
            );
        }
    }

    // Many times over, in a loop (the steady state of a connection).
    let (n, ()) = allocations(|| {
        for _ in 0..10_000 {
            black_box(read_message(black_box(&inputs[0])));
        }
    });
    assert_eq!(n, 0, "10,000 views allocated {n} times");
}

#[test]
fn payload_reads_allocate_nothing_even_on_a_vec_backed_frame() {
    // A `Bytes` made from a `Vec` (not split off a read buffer): reading the
    // view's fields and borrowing the payload still allocates nothing.
    let wire = BinaryCodec::new().encode_to_bytes(&message(256)).unwrap();
    let input = Bytes::from(wire.to_vec());
    let (n, len) = allocations(|| {
        let view = BinaryCodec::view(&input).unwrap();
        let m = view.as_message().unwrap();
        black_box((m.channel(), m.seq(), m.id()));
        black_box(m.payload()).len()
    });
    assert_eq!((n, len), (0, 256));
}

#[test]
fn owned_decode_allocates_nothing_for_a_short_channel_name() {
    let inputs = received(&[message(256)]);
    let codec = BinaryCodec::new();
    let (n, frame) = allocations(|| codec.decode(&inputs[0]).unwrap());
    assert_eq!(frame, message(256));
    // `ChannelName` keeps names up to 23 bytes inline; the payload is a slice of the input.
    assert_eq!(n, 0, "decode allocated {n} times");
}

#[test]
fn owned_decode_allocates_once_for_a_long_channel_name() {
    let long = Frame::Message(Message {
        channel: ChannelName::new("room:a-channel-name-longer-than-23-bytes").unwrap(),
        seq: 1,
        id: MessageId(2),
        payload: Bytes::from_static(b"payload"),
    });
    let inputs = received(std::slice::from_ref(&long));
    let codec = BinaryCodec::new();
    let (n, frame) = allocations(|| codec.decode(&inputs[0]).unwrap());
    assert_eq!(frame, long);
    // The name goes to one shared `Arc<str>`.
    assert_eq!(n, 1, "decode allocated {n} times");
}

#[test]
fn encoding_into_a_reused_buffer_allocates_nothing() {
    let codec = BinaryCodec::new();
    let frame = message(256);
    let mut buf = BytesMut::with_capacity(4096);
    codec.encode(&frame, &mut buf).unwrap(); // warms rkyv's per-thread arena
    let (n, ()) = allocations(|| {
        for _ in 0..1_000 {
            buf.clear();
            codec.encode(black_box(&frame), &mut buf).unwrap();
        }
    });
    assert_eq!(n, 0, "1,000 encodes into one buffer allocated {n} times");
}

#[test]
fn the_counter_counts() {
    // Guards against a vacuous proof: an allocation on this thread is seen.
    let (n, v) = allocations(|| black_box(vec![1u8; 64]));
    assert_eq!((n, v.len()), (1, 64));
    let (n, s) = allocations(|| black_box(Bytes::from(vec![1u8; 64])).clone());
    assert!(
        n >= 2,
        "a Vec plus the shared header of the promoted Bytes: {n}"
    );
    drop(s);
}

#[test]
fn encode_to_bytes_allocates_once() {
    // The buffer is sized exactly, so freezing it needs no shared header.
    let codec = BinaryCodec::new();
    let frame = message(256);
    let _ = codec.encode_to_bytes(&frame).unwrap(); // warms rkyv's per-thread arena
    let (n, bytes) = allocations(|| codec.encode_to_bytes(black_box(&frame)).unwrap());
    assert_eq!((n, bytes.len()), (1, BinaryCodec::encoded_len(&frame)));
}

#[test]
fn json_encode_of_hot_frames_into_a_reused_buffer_allocates_nothing() {
    // The hand-written fast path writes straight into the buffer: no `WireOut`,
    // no base64 `String` for a binary payload. (The payload check allocates
    // only for payloads nested more than 64 levels deep.)
    let codec = JsonCodec::new();
    let json = Frame::Message(Message {
        channel: ChannelName::new("room:lobby").unwrap(),
        seq: 123_456,
        id: MessageId(0x9e37_79b9_0001_e240),
        payload: Bytes::from_static(br#"{"text":"hi","n":123}"#),
    });
    let frames = [
        json,
        message(256), // not JSON: `data_b64`
        Frame::PublishAck(PublishAck { seq: 9 }),
        Frame::Ping(Ping { nonce: 7 }),
    ];
    let mut buf = BytesMut::with_capacity(4096);
    for f in &frames {
        let (n, ()) = allocations(|| {
            for _ in 0..1_000 {
                buf.clear();
                codec.encode(black_box(f), &mut buf).unwrap();
            }
        });
        assert_eq!(n, 0, "1,000 JSON encodes of {f:?} allocated {n} times");
    }
}
