//! `FrameEncoder`: every frame is its own exactly sized buffer, unchanged by the frames encoded after it, large or small, with either codec.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use std::sync::Arc;

use tidings_codec::BinaryCodec;
use tidings_protocol::{Frame, FrameCodec, FrameEncoder, Message, MessageId, Ping};

fn message(seq: u64, payload: Bytes) -> Message {
    Message {
        channel: ch("room"),
        seq,
        id: MessageId(seq),
        payload,
    }
}

#[test]
fn frames_are_independent_exactly_sized_and_match_the_codec() {
    let codecs: [Arc<dyn FrameCodec>; 2] = [codec(), Arc::new(BinaryCodec)];
    for codec in codecs {
        let mut encoder = FrameEncoder::default();
        let small = message(1, Bytes::from_static(b"{\"a\":1}"));
        // Larger than the scratch buffer is kept at: it is dropped after use.
        let large = message(2, Bytes::from(format!("\"{}\"", "x".repeat(100_000))));
        let first = encoder.encode_message(&*codec, &small).unwrap();
        let second = encoder.encode_message(&*codec, &large).unwrap();
        let third = encoder
            .encode(&*codec, &Frame::Ping(Ping { nonce: 3 }))
            .unwrap();
        let fourth = encoder.encode_message(&*codec, &small).unwrap();
        assert_eq!(
            first,
            codec
                .encode_to_bytes(&Frame::Message(small.clone()))
                .unwrap()
        );
        assert_eq!(
            second,
            codec.encode_to_bytes(&Frame::Message(large)).unwrap()
        );
        assert_eq!(
            third,
            codec
                .encode_to_bytes(&Frame::Ping(Ping { nonce: 3 }))
                .unwrap()
        );
        assert_eq!(fourth, first, "the same frame again");
        assert_ne!(fourth.as_ptr(), first.as_ptr(), "a buffer of its own");
        assert!(matches!(codec.decode(&first).unwrap(), Frame::Message(m) if m == small));
    }
}
