//! Binary codec (`tidings.v1.bin`): round trips of every frame, the pinned byte layout, garbage in → typed error out (never a panic), zero-copy views and fan-out sharing.
#![cfg(feature = "binary")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use tidings_codec::{BinaryCodec, JsonCodec};
use tidings_protocol::{
    ChannelName, CodecError, ErrorCode, Frame, FrameCodec, FrameType, Gap, Instant, Message,
    MessageId, Ping, Publish, ResumeToken, ServerConfig, ServerEvent, ServerSession, SessionId,
    SharedMessage, Subscribe, SubscriptionStart, Welcome,
};

fn codec() -> BinaryCodec {
    BinaryCodec::new()
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn assert_within(part: &Bytes, input: &Bytes) {
    if part.is_empty() {
        return;
    }
    let (outer, inner) = (input.as_ptr_range(), part.as_ptr_range());
    assert!(
        outer.start <= inner.start && inner.end <= outer.end,
        "payload is not a slice of the input"
    );
}

/// Replaces the only occurrence of `find` in `bytes` with `with`.
fn patch(bytes: &Bytes, find: &[u8], with: &[u8]) -> Bytes {
    assert_eq!(find.len(), with.len());
    let hits: Vec<usize> = (0..=bytes.len() - find.len())
        .filter(|&i| &bytes[i..i + find.len()] == find)
        .collect();
    assert_eq!(hits.len(), 1, "{find:?} must occur once in {}", hex(bytes));
    let mut v = bytes.to_vec();
    v[hits[0]..hits[0] + with.len()].copy_from_slice(with);
    Bytes::from(v)
}

fn malformed_reason(r: Result<Frame, CodecError>) -> String {
    match r {
        Err(CodecError::Malformed { reason }) => reason,
        other => panic!("expected a malformed-frame error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Round trips and layout

#[test]
fn every_frame_type_round_trips() {
    let mut types = HashSet::new();
    for (i, f) in samples().into_iter().enumerate() {
        let bytes = codec().encode_to_bytes(&f).unwrap();
        assert_eq!(bytes.len(), BinaryCodec::encoded_len(&f), "{f:?}");
        assert_eq!(bytes[0], BinaryCodec::FORMAT, "format byte");
        let tag = match &f {
            Frame::Hello(h) if h.publisher.is_some() => 16,
            _ => i + 1,
        };
        assert_eq!(usize::from(bytes[1]), tag, "frame type byte of {f:?}");
        assert_eq!(codec().decode(&bytes).unwrap(), f);
        let view = BinaryCodec::view(&bytes).unwrap();
        assert_eq!(view.frame_type(), f.frame_type());
        assert_eq!(view.to_frame().unwrap(), f);
        types.insert(f.frame_type());
    }
    assert_eq!(types.len(), 14, "one sample per frame type");
    assert!(
        !codec().is_text(),
        "binary frames travel as binary WebSocket messages"
    );
}

/// The bytes of format 1 are pinned: any change of rkyv features, field
/// order or types fails here (and is a protocol change, see docs/protocol.md).
#[test]
fn layout_is_pinned() {
    let ping = Frame::Ping(Ping {
        nonce: 0x0102_0304_0506_0708,
    });
    assert_eq!(
        hex(&codec().encode_to_bytes(&ping).unwrap()),
        "01 0b 08 07 06 05 04 03 02 01"
    );
    let message = Frame::Message(Message {
        channel: ch("room:lobby"),
        seq: 42,
        id: MessageId(7),
        payload: Bytes::from_static(b"hi"),
    });
    // header | "room:lobby" | "hi" | root (last 32 bytes): channel (length 10
    // with the out-of-line flag 0x80, offset -12 from the string), seq, id,
    // payload (offset -26 from the field, length 2).
    assert_eq!(
        hex(&codec().encode_to_bytes(&message).unwrap()),
        "01 04 \
         72 6f 6f 6d 3a 6c 6f 62 62 79 \
         68 69 \
         8a 00 00 00 f4 ff ff ff \
         2a 00 00 00 00 00 00 00 \
         07 00 00 00 00 00 00 00 \
         e6 ff ff ff 02 00 00 00"
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    );
}

#[test]
fn small_frames_are_small() {
    let ping = codec()
        .encode_to_bytes(&Frame::Ping(Ping { nonce: 1 }))
        .unwrap();
    assert_eq!(ping.len(), 10, "2-byte header + u64");
    let m = Frame::Message(Message {
        channel: ch("room:lobby"),
        seq: 1,
        id: MessageId(1),
        payload: Bytes::from(vec![b'x'; 256]),
    });
    let bin = codec().encode_to_bytes(&m).unwrap();
    assert!(bin.len() <= 256 + 2 + 10 + 32, "{} bytes", bin.len());
}

#[test]
fn encode_appends_to_the_callers_buffer_and_reuses_it() {
    let f = Frame::Message(Message {
        channel: ch("c"),
        seq: 1,
        id: MessageId(2),
        payload: Bytes::from(vec![7u8; 100]),
    });
    let mut buf = BytesMut::with_capacity(1024);
    buf.extend_from_slice(b"prefix");
    codec().encode(&f, &mut buf).unwrap();
    assert_eq!(&buf[..6], b"prefix");
    let frame = buf.split_off(6).freeze();
    assert_eq!(codec().decode(&frame).unwrap(), f);
    // A cleared buffer is reused: no reallocation for the same frame.
    let mut buf = BytesMut::with_capacity(1024);
    let ptr = buf.as_ptr();
    for _ in 0..100 {
        buf.clear();
        codec().encode(&f, &mut buf).unwrap();
    }
    assert_eq!(buf.as_ptr(), ptr);
    // `encode_to_bytes` sizes its buffer up front: one allocation, no regrowth.
    let b = codec().encode_to_bytes(&f).unwrap();
    assert_eq!(b, frame);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_round_trip(f in frame()) {
        let bytes = codec().encode_to_bytes(&f).unwrap();
        let back = codec().decode(&bytes);
        prop_assert_eq!(back.as_ref(), Ok(&f));
        prop_assert_eq!(bytes.len(), BinaryCodec::encoded_len(&f), "encoded_len is exact");
        let view = BinaryCodec::view(&bytes).unwrap();
        prop_assert_eq!(view.frame_type(), f.frame_type());
        prop_assert_eq!(view.to_frame(), Ok(f.clone()));
        // Payloads come back as slices of the received frame, never copies.
        if let Ok(Frame::Message(m)) = &back {
            assert_within(&m.payload, &bytes);
            let v = view.as_message().unwrap();
            prop_assert_eq!(v.channel(), m.channel.as_str());
            prop_assert_eq!((v.seq(), v.id()), (m.seq, m.id));
            prop_assert_eq!(v.payload(), &m.payload[..]);
            assert_within(&v.payload_bytes(), &bytes);
        }
        if let Ok(Frame::Publish(p)) = &back {
            assert_within(&p.payload, &bytes);
            let v = view.as_publish().unwrap();
            prop_assert_eq!((v.channel(), v.seq(), v.payload()), (p.channel.as_str(), p.seq, &p.payload[..]));
        }
    }

    #[test]
    fn both_codecs_agree(f in frame()) {
        let json = JsonCodec::new();
        let via_json = json.decode(&json.encode_to_bytes(&f).unwrap()).unwrap();
        let via_bin = codec().decode(&codec().encode_to_bytes(&f).unwrap()).unwrap();
        prop_assert_eq!(via_json, via_bin);
    }

    /// Transports hand the codec slices of their read buffers, at any address:
    /// the archive must read at any alignment.
    #[test]
    fn frames_decode_at_any_offset(f in frame(), pre in 0usize..17, post in 0usize..17) {
        let encoded = codec().encode_to_bytes(&f).unwrap();
        let mut buf = BytesMut::with_capacity(pre + encoded.len() + post);
        buf.extend_from_slice(&vec![0xa5; pre]);
        buf.extend_from_slice(&encoded);
        buf.extend_from_slice(&vec![0x5a; post]);
        let buf = buf.freeze();
        let input = buf.slice(pre..pre + encoded.len());
        prop_assert_eq!(codec().decode(&input), Ok(f));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let input = Bytes::from(bytes);
        let _ = codec().decode(&input);
        let _ = BinaryCodec::view(&input);
    }

    /// Garbage behind a valid header reaches the archive validation of every frame type.
    #[test]
    fn arbitrary_archives_never_panic(tag in 0u8..16, body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut v = vec![BinaryCodec::FORMAT, tag];
        v.extend(body);
        let input = Bytes::from(v);
        match codec().decode(&input) {
            Ok(f) => {
                // Whatever decodes is a valid frame that encodes again.
                let again = codec().encode_to_bytes(&f).unwrap();
                prop_assert_eq!(codec().decode(&again), Ok(f));
            }
            Err(CodecError::Malformed { .. }) => {}
            Err(CodecError::UnknownFrameType { name }) => prop_assert!(tag == 0 || tag > 14, "{}", name),
            Err(e) => prop_assert!(false, "unexpected error {:?}", e),
        }
    }

    #[test]
    fn mutated_frames_never_panic(f in frame(), edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8)) {
        let mut bytes = codec().encode_to_bytes(&f).unwrap().to_vec();
        for (at, byte, op) in edits {
            let at = if bytes.is_empty() { 0 } else { at % bytes.len() };
            match op {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 if !bytes.is_empty() => { bytes.remove(at); }
                _ => bytes.truncate(at),
            }
        }
        let input = Bytes::from(bytes);
        let _ = codec().decode(&input);
        if let Ok(v) = BinaryCodec::view(&input) {
            let _ = v.to_frame();
            if let Some(m) = v.as_message() {
                let _ = (m.channel(), m.payload_bytes());
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error(f in frame()) {
        let bytes = codec().encode_to_bytes(&f).unwrap();
        for len in 0..bytes.len() {
            // Cutting the root off the end can never leave a valid frame of the same type...
            if let Ok(g) = codec().decode(&bytes.slice(..len)) {
                // ...except by accident of layout; it must then still be a valid frame.
                prop_assert_eq!(g.frame_type(), f.frame_type());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Typed errors

#[test]
fn header_errors_are_typed_and_explained() {
    let r = codec().decode(&Bytes::new());
    assert!(malformed_reason(r).contains("empty"));
    let r = codec().decode(&Bytes::from_static(&[1]));
    assert!(malformed_reason(r).contains("header"));
    let r = codec().decode(&Bytes::from_static(&[7, 11, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert!(malformed_reason(r).contains("format 7"));
    let r = codec().decode(&Bytes::from_static(br#"{"type":"ping","nonce":1}"#));
    assert!(malformed_reason(r).contains("JSON"));
    for tag in [0u8, 17, 200, 255] {
        let err = codec()
            .decode(&Bytes::from(vec![1, tag, 0, 0, 0, 0, 0, 0, 0, 0]))
            .unwrap_err();
        assert_eq!(
            err,
            CodecError::UnknownFrameType {
                name: format!("binary frame type {tag}")
            }
        );
        assert_eq!(err.code(), ErrorCode::UnknownFrameType);
    }
}

#[test]
fn short_and_invalid_archives_are_malformed() {
    // A ping body is a u64: 7 bytes are too few.
    let r = codec().decode(&Bytes::from_static(&[1, 11, 0, 0, 0, 0, 0, 0, 0]));
    assert!(malformed_reason(r).contains("ping"));
    // A message root pointing outside the frame.
    let m = codec()
        .encode_to_bytes(&Frame::Message(Message {
            channel: ch("room:lobby"),
            seq: 1,
            id: MessageId(1),
            payload: Bytes::from_static(b"hi"),
        }))
        .unwrap();
    let mut v = m.to_vec();
    let n = v.len();
    v[n - 8..n - 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes()); // payload offset
    malformed_reason(codec().decode(&Bytes::from(v)));
    let mut v = m.to_vec();
    v[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes()); // payload length
    malformed_reason(codec().decode(&Bytes::from(v)));
}

#[test]
fn invalid_content_is_malformed() {
    let channel_frame = |name: &str| {
        codec()
            .encode_to_bytes(&Frame::Subscribe(Subscribe {
                channel: ch(name),
                after: Some(3),
            }))
            .unwrap()
    };
    // Not UTF-8 (bytecheck checks every string).
    let bad = patch(&channel_frame("room:αβ"), "β".as_bytes(), &[0xff, 0xfe]);
    malformed_reason(codec().decode(&bad));
    assert!(BinaryCodec::view(&bad).is_err());
    // UTF-8 but not a channel name (a control character).
    let bad = patch(&channel_frame("room:x"), b"x", &[0x07]);
    let reason = malformed_reason(codec().decode(&bad));
    assert!(reason.contains("channel"), "{reason}");
    // An option tag that is neither 0 nor 1.
    let f = channel_frame("c");
    let mut v = f.to_vec();
    let tag_at = v.len() - 9; // root: channel (8) | option tag (1) | u64 (8), unaligned
    assert_eq!(v[tag_at], 1);
    v[tag_at] = 2;
    malformed_reason(codec().decode(&Bytes::from(v)));
    // A bool that is neither 0 nor 1.
    let w = codec()
        .encode_to_bytes(&Frame::Welcome(Welcome {
            version: 1,
            session: SessionId("s".into()),
            resume_token: ResumeToken("t".into()),
            resumed: true,
            heartbeat_ms: 0x1111_2222_3333_4444,
            max_frame: 5,
            publish_acked: 6,
        }))
        .unwrap();
    let bad = patch(
        &w,
        &[0x01, 0x44, 0x44, 0x33, 0x33],
        &[0x02, 0x44, 0x44, 0x33, 0x33],
    );
    malformed_reason(codec().decode(&bad));
    // Gap ranges follow the protocol rules, as in JSON.
    let g = codec()
        .encode_to_bytes(&Frame::Gap(Gap {
            channel: ch("c"),
            from: 0x0a0b_0c0d_0e0f_1011,
            to: 0x0a0b_0c0d_0e0f_1012,
        }))
        .unwrap();
    let from = 0x0a0b_0c0d_0e0f_1011u64.to_le_bytes();
    for bad_from in [0u64, 0x0a0b_0c0d_0e0f_1013] {
        let bad = patch(&g, &from, &bad_from.to_le_bytes());
        let reason = malformed_reason(codec().decode(&bad));
        assert!(reason.contains("gap range"), "{reason}");
    }
}

#[test]
fn unknown_error_codes_survive_as_unknown() {
    let f = Frame::Error(tidings_protocol::ErrorFrame::new(ErrorCode::QueueFull, "m"));
    let b = codec().encode_to_bytes(&f).unwrap();
    let renamed = patch(&b, b"queue_full", b"queue_fool");
    let Frame::Error(e) = codec().decode(&renamed).unwrap() else {
        panic!()
    };
    assert_eq!(e.code, ErrorCode::Unknown);
}

// ---------------------------------------------------------------------------
// Zero copy and sharing

#[test]
fn views_read_in_place() {
    let payload = Bytes::from(vec![0xabu8; 256]);
    let wire = codec()
        .encode_to_bytes(&Frame::Message(Message {
            channel: ch("room:lobby"),
            seq: 9,
            id: MessageId(u64::MAX),
            payload: payload.clone(),
        }))
        .unwrap();
    let view = BinaryCodec::view(&wire).unwrap();
    assert_eq!(view.frame_type(), FrameType::Message);
    assert_eq!(view.channel(), Some("room:lobby"));
    assert!(view.as_publish().is_none());
    let m = view.as_message().unwrap();
    assert_eq!(m.payload(), &payload[..]);
    let range = wire.as_ptr_range();
    assert!(range.contains(&m.payload().as_ptr()) && range.contains(&m.channel().as_ptr()));
    assert_eq!(m.payload_bytes(), payload);
    assert_within(&m.payload_bytes(), &wire);
    assert_eq!(m.to_message().unwrap().payload, payload);
    assert!(format!("{view:?}").contains("room:lobby"));
}

/// Fan-out: 1,000 sessions on the binary codec all queue the very same
/// encoded bytes for one message (encoded once, shared by reference count).
#[test]
fn fan_out_shares_one_encoding_among_1000_binary_sessions() {
    let codec: Arc<dyn FrameCodec> = Arc::new(BinaryCodec::new());
    let now = Instant::now();
    let channel = ch("room:fanout");
    let subscribe = codec
        .encode_to_bytes(&Frame::Subscribe(Subscribe {
            channel: channel.clone(),
            after: None,
        }))
        .unwrap();
    let mut sessions: Vec<ServerSession> = (0..1_000)
        .map(|i| {
            let mut s = ServerSession::accept(
                ServerConfig::default(),
                SessionId(format!("s{i}")),
                ResumeToken(format!("t{i}")),
                codec.clone(),
                now,
            );
            s.handle_input(now, subscribe.clone()).unwrap();
            assert!(matches!(
                s.poll_event(),
                Some(ServerEvent::Subscribe { .. })
            ));
            s.subscribed(&channel, SubscriptionStart::default());
            while s.poll_transmit().is_some() {} // welcome, subscribed
            s
        })
        .collect();
    let message = Arc::new(SharedMessage::new(
        channel.clone(),
        1,
        MessageId(77),
        Bytes::from(vec![1u8; 256]),
    ));
    for s in &mut sessions {
        s.deliver(&message);
    }
    let frames: Vec<Bytes> = sessions
        .iter_mut()
        .map(|s| s.poll_transmit().unwrap())
        .collect();
    let first = &frames[0];
    assert!(
        frames
            .iter()
            .all(|f| f.as_ptr() == first.as_ptr() && f.len() == first.len()),
        "every session shares one buffer"
    );
    assert_eq!(first.as_ptr(), message.encoded(&*codec).unwrap().as_ptr());
    let m = BinaryCodec::view(first).unwrap();
    let m = m.as_message().unwrap();
    assert_eq!(
        (m.channel(), m.seq(), m.id(), m.payload()),
        ("room:fanout", 1, MessageId(77), &[1u8; 256][..])
    );
    // A JSON session gets its own (single) encoding, never the binary one.
    let json: Arc<dyn FrameCodec> = Arc::new(JsonCodec::new());
    assert_ne!(message.encoded(&*json).unwrap().as_ptr(), first.as_ptr());
}

#[test]
fn publish_payloads_are_zero_copy() {
    let wire = codec()
        .encode_to_bytes(&Frame::Publish(Publish {
            channel: ChannelName::new("c").unwrap(),
            seq: 1,
            payload: Bytes::from_static(b"\x00\xff binary"),
        }))
        .unwrap();
    let Frame::Publish(p) = codec().decode(&wire).unwrap() else {
        panic!()
    };
    assert_eq!(&p.payload[..], b"\x00\xff binary");
    assert_within(&p.payload, &wire);
}
