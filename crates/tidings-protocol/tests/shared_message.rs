//! `SharedMessage`: one encoding per codec shared by every receiver, released when the broker's fan-out is done.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use std::sync::Arc;

use tidings_protocol::{Frame, MessageId, SharedMessage, SubscriptionStart};

#[test]
fn receivers_share_one_encoding_until_it_is_released() {
    let m = SharedMessage::new(ch("c"), 7, MessageId(9), Bytes::from_static(b"{\"a\":1}"));
    let codec = codec();
    let first = m.encoded(&*codec).unwrap();
    let second = m.encoded(&*codec).unwrap();
    assert_eq!(
        first.as_ptr(),
        second.as_ptr(),
        "the same buffer, not a copy"
    );
    // Fan-out done: the cache lets go; receivers keep what they took.
    m.release_encoded();
    let again = m.encoded(&*codec).unwrap();
    assert_ne!(
        again.as_ptr(),
        first.as_ptr(),
        "encoded anew (e.g. for a replay)"
    );
    assert_eq!(again, first);
    assert!(
        matches!(dec(&first), Frame::Message(msg) if msg.seq == 7 && msg.payload == Bytes::from_static(b"{\"a\":1}"))
    );
}

#[test]
fn a_retained_message_stays_small() {
    // History and replay buffers keep many of these: the encodings are boxed
    // (and released after fan-out), so the message itself stays small.
    assert!(
        std::mem::size_of::<SharedMessage>() <= 96,
        "{} bytes",
        std::mem::size_of::<SharedMessage>()
    );
}

fn message(seq: u64) -> Arc<SharedMessage> {
    Arc::new(SharedMessage::new(
        ch("c"),
        seq,
        MessageId(seq),
        Bytes::from_static(b"{\"a\":1}"),
    ))
}

#[test]
fn an_unshared_encoding_is_the_same_frame_and_fills_no_cache() {
    let m = message(3);
    let codec = codec();
    let alone = m
        .encode_unshared(&*codec, &mut tidings_protocol::FrameEncoder::default())
        .unwrap();
    assert!(!m.is_encoded());
    let shared = m.encoded(&*codec).unwrap();
    assert!(m.is_encoded());
    assert_eq!(alone, shared);
    assert_ne!(alone.as_ptr(), shared.as_ptr());
}

/// A session subscribed to `c` from position 0, its queue drained.
fn subscribed_session(backlog: Vec<Arc<SharedMessage>>) -> tidings_protocol::ServerSession {
    let t0 = tidings_protocol::Instant::now();
    let mut s = accepted_server(t0);
    s.handle_input(
        t0,
        enc(&Frame::Subscribe(tidings_protocol::Subscribe {
            channel: ch("c"),
            after: Some(0),
        })),
    )
    .unwrap();
    while s.poll_event().is_some() {}
    s.subscribed(
        &ch("c"),
        SubscriptionStart {
            position: 0,
            gap: None,
            backlog,
        },
    );
    s
}

fn sent_seqs(s: &mut tidings_protocol::ServerSession) -> Vec<u64> {
    std::iter::from_fn(|| s.poll_transmit())
        .filter_map(|b| match dec(&b) {
            Frame::Message(m) => Some(m.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn only_fan_out_to_several_receivers_fills_the_cache() {
    // The backlog comes from history: encoded for this session alone, so the
    // history's messages stay without encodings.
    let backlog = vec![message(1), message(2)];
    let mut s = subscribed_session(backlog.clone());
    assert!(backlog.iter().all(|m| !m.is_encoded()));
    // The only receiver of a live message: no cache either.
    let alone = message(3);
    s.deliver_alone(&alone);
    assert!(!alone.is_encoded());
    // One of several receivers: the cache is what they share.
    let shared = message(4);
    s.deliver(&shared);
    assert!(shared.is_encoded());
    assert_eq!(sent_seqs(&mut s), [1, 2, 3, 4]);
}
