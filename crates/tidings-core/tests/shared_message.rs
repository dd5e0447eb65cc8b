//! `SharedMessage`: one encoding per codec shared by every receiver, released when the broker's fan-out is done.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use tidings_core::{Frame, MessageId, SharedMessage};

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
