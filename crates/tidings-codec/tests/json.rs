//! JSON codec: round trips of every frame, garbage in → error out (never a panic), typed errors, zero-copy payloads.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use tidings_codec::JsonCodec;
use tidings_protocol::{
    Ack, Close, CodecError, ErrorCode, ErrorFrame, Frame, FrameCodec, FrameType, Hello,
    MAX_CHANNEL_LEN, Message, MessageId, Ping, Publish, Subscribe,
};

fn codec() -> JsonCodec {
    JsonCodec::new()
}

fn decode_str(s: &str) -> Result<Frame, CodecError> {
    codec().decode(&Bytes::copy_from_slice(s.as_bytes()))
}

fn is_inline_json(p: &[u8]) -> bool {
    serde_json::from_slice::<&serde_json::value::RawValue>(p)
        .is_ok_and(|raw| raw.get().len() == p.len())
}

// ---------------------------------------------------------------------------
// Round trips

#[test]
fn every_frame_type_round_trips() {
    let mut types = HashSet::new();
    for f in samples() {
        let bytes = codec().encode_to_bytes(&f).unwrap();
        assert!(std::str::from_utf8(&bytes).is_ok(), "JSON frames are text");
        assert_eq!(codec().decode(&bytes).unwrap(), f);
        types.insert(f.frame_type());
    }
    assert_eq!(types.len(), 14, "one sample per frame type");
    assert!(types.contains(&FrameType::Close));
}

#[test]
fn wire_format_is_flat_and_readable() {
    let m = Frame::Message(Message {
        channel: ch("c"),
        seq: 1,
        id: MessageId(42),
        payload: Bytes::from_static(b"{\"x\":[1, 2]}"),
    });
    let bytes = codec().encode_to_bytes(&m).unwrap();
    assert_eq!(
        &bytes[..],
        br#"{"type":"message","channel":"c","seq":1,"id":"42","data":{"x":[1, 2]}}"#
    );
    let e = Frame::Error(ErrorFrame::new(ErrorCode::SlowConsumer, "m"));
    assert_eq!(
        &codec().encode_to_bytes(&e).unwrap()[..],
        br#"{"type":"error","code":"slow_consumer","message":"m"}"#
    );
    let b = Frame::Publish(Publish {
        channel: ch("c"),
        seq: 1,
        payload: Bytes::from_static(b"\xff"),
    });
    assert_eq!(
        &codec().encode_to_bytes(&b).unwrap()[..],
        br#"{"type":"publish","channel":"c","seq":1,"data_b64":"/w=="}"#
    );
}

#[test]
fn null_and_whitespace_payloads_keep_their_bytes() {
    for p in [&b"null"[..], b" 1", b"1 ", b"\t{}\n", b"", b"  "] {
        let f = Frame::Publish(Publish {
            channel: ch("c"),
            seq: 1,
            payload: Bytes::copy_from_slice(p),
        });
        let bytes = codec().encode_to_bytes(&f).unwrap();
        assert_eq!(
            codec().decode(&bytes).unwrap(),
            f,
            "payload {:?}",
            String::from_utf8_lossy(p)
        );
    }
    // A peer writing `"data":null` sends the payload `null`, not "no payload".
    let f = decode_str(r#"{"type":"publish","channel":"c","seq":1,"data":null}"#).unwrap();
    assert_eq!(payload_of(&f).unwrap(), &Bytes::from_static(b"null"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_frames_round_trip(f in frame()) {
        let bytes = codec().encode_to_bytes(&f).unwrap();
        prop_assert!(std::str::from_utf8(&bytes).is_ok());
        let back = codec().decode(&bytes);
        prop_assert_eq!(back.as_ref(), Ok(&f));
        if let Some(p) = payload_of(&f) {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            if is_inline_json(p) {
                prop_assert!(v.get("data").is_some() && v.get("data_b64").is_none(), "{}", v);
            } else {
                prop_assert!(v.get("data").is_none() && v.get("data_b64").is_some(), "{}", v);
            }
        }
    }

    #[test]
    fn frames_decode_from_a_slice_of_a_larger_buffer(f in frame(), pre in 0usize..16, post in 0usize..16) {
        // Transports hand the codec slices of their read buffers.
        let encoded = codec().encode_to_bytes(&f).unwrap();
        let mut buf = vec![b'#'; pre];
        buf.extend_from_slice(&encoded);
        buf.extend(std::iter::repeat_n(b'#', post));
        let buf = Bytes::from(buf);
        let input = buf.slice(pre..pre + encoded.len());
        prop_assert_eq!(codec().decode(&input), Ok(f));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec().decode(&Bytes::from(bytes));
    }

    #[test]
    fn json_ish_strings_never_panic(parts in proptest::collection::vec(prop_oneof![
        Just("{"), Just("}"), Just("["), Just("]"), Just(":"), Just(","), Just("\""),
        Just("\"type\""), Just("\"message\""), Just("\"publish\""), Just("\"hello\""), Just("\"welcome\""),
        Just("\"gap\""), Just("\"close\""), Just("\"error\""), Just("\"channel\""), Just("\"c\""),
        Just("\"seq\""), Just("\"id\""), Just("\"data\""), Just("\"data_b64\""), Just("\"code\""),
        Just("\"positions\""), Just("\"from\""), Just("\"to\""), Just("null"), Just("true"),
        Just("-1"), Just("0"), Just("1e999"), Just("18446744073709551616"), Just("\"\\ud800\""),
        Just("\"AAAA\""), Just("\"=\""), Just(" "), Just("\\"),
    ], 0..60)) {
        let s: String = parts.concat();
        let _ = decode_str(&s);
    }

    #[test]
    fn objects_with_known_keys_and_random_values_never_panic(
        kind in proptest::sample::select(vec![
            "hello", "welcome", "publish", "message", "ack", "publish_ack", "subscribe", "subscribed",
            "unsubscribe", "gap", "ping", "pong", "error", "close", "nope",
        ]),
        fields in proptest::collection::vec((
            proptest::sample::select(vec![
                "channel", "seq", "id", "data", "data_b64", "version", "resume", "positions", "session",
                "resume_token", "resumed", "heartbeat_ms", "max_frame", "publish_acked", "after", "from",
                "to", "nonce", "code", "message", "reason", "extra",
            ]),
            json_value(),
        ), 0..10),
    ) {
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), json!(kind));
        for (k, v) in fields {
            obj.insert(k.into(), v);
        }
        let _ = decode_str(&Value::Object(obj).to_string());
    }

    #[test]
    fn mutated_frames_never_panic(f in frame(), edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8)) {
        let mut bytes = codec().encode_to_bytes(&f).unwrap().to_vec();
        for (at, byte, op) in edits {
            let at = if bytes.is_empty() { 0 } else { at % bytes.len() };
            match op {
                0 if !bytes.is_empty() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if !bytes.is_empty() => { bytes.remove(at); }
                _ => {}
            }
        }
        let _ = codec().decode(&Bytes::from(bytes));
    }
}

#[test]
fn deep_nesting_is_an_error_or_ok_never_a_stack_overflow() {
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let _ = decode_str(&format!(r#"{{"type":"ping","extra":{nested}}}"#));
    let _ = decode_str(&format!(
        r#"{{"type":"publish","channel":"c","seq":1,"data":{nested}}}"#
    ));
    let _ = decode_str(&"[".repeat(depth));
    let _ = decode_str(&format!(
        r#"{{"type":"ping","extra":{}"#,
        "{\"a\":".repeat(depth)
    ));
}

// ---------------------------------------------------------------------------
// Typed errors

#[test]
fn unknown_type_is_unknown_frame_type() {
    let err = decode_str(r#"{"type":"teleport","channel":"c"}"#).unwrap_err();
    assert_eq!(
        err,
        CodecError::UnknownFrameType {
            name: "teleport".into()
        }
    );
    assert_eq!(err.code(), ErrorCode::UnknownFrameType);
    // The echoed name is bounded.
    let long = "x".repeat(10_000);
    let err = decode_str(&format!(r#"{{"type":"{long}"}}"#)).unwrap_err();
    let CodecError::UnknownFrameType { name } = err else {
        panic!("{err:?}")
    };
    assert_eq!(name.len(), 64);
}

#[test]
fn missing_fields_are_malformed_and_name_the_field() {
    let cases = [
        (r#"{"channel":"c","seq":1}"#, "type"),
        (r#"{"type":"hello"}"#, "version"),
        (
            r#"{"type":"welcome","version":1,"resume_token":"t","heartbeat_ms":1,"max_frame":1}"#,
            "session",
        ),
        (
            r#"{"type":"welcome","version":1,"session":"s","heartbeat_ms":1,"max_frame":1}"#,
            "resume_token",
        ),
        (
            r#"{"type":"welcome","version":1,"session":"s","resume_token":"t","max_frame":1}"#,
            "heartbeat_ms",
        ),
        (
            r#"{"type":"welcome","version":1,"session":"s","resume_token":"t","heartbeat_ms":1}"#,
            "max_frame",
        ),
        (r#"{"type":"publish","channel":"c","data":1}"#, "seq"),
        (r#"{"type":"publish","seq":1,"data":1}"#, "channel"),
        (r#"{"type":"publish","channel":"c","seq":1}"#, "data"),
        (r#"{"type":"message","channel":"c","seq":1,"data":1}"#, "id"),
        (
            r#"{"type":"message","channel":"c","id":"1","data":1}"#,
            "seq",
        ),
        (r#"{"type":"ack","channel":"c"}"#, "seq"),
        (r#"{"type":"ack","seq":1}"#, "channel"),
        (r#"{"type":"publish_ack"}"#, "seq"),
        (r#"{"type":"subscribe"}"#, "channel"),
        (r#"{"type":"subscribed","channel":"c"}"#, "seq"),
        (r#"{"type":"unsubscribe"}"#, "channel"),
        (r#"{"type":"gap","channel":"c","to":2}"#, "from"),
        (r#"{"type":"gap","channel":"c","from":2}"#, "to"),
        (r#"{"type":"error","message":"m"}"#, "code"),
    ];
    for (input, field) in cases {
        let err = decode_str(input).unwrap_err();
        let CodecError::Malformed { reason } = &err else {
            panic!("{input}: {err:?}")
        };
        assert!(reason.contains(&format!("`{field}`")), "{input}: {reason}");
        assert_eq!(err.code(), ErrorCode::MalformedFrame);
    }
}

#[test]
fn invalid_values_are_malformed() {
    for input in [
        r#"{"type":"publish","channel":"c","seq":1,"data":1,"data_b64":"AA=="}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data_b64":"not base64!"}"#,
        r#"{"type":"publish","channel":"","seq":1,"data":1}"#,
        r#"{"type":"publish","channel":"a\u0007b","seq":1,"data":1}"#,
        r#"{"type":"publish","channel":"c","seq":-1,"data":1}"#,
        r#"{"type":"publish","channel":"c","seq":18446744073709551616,"data":1}"#,
        r#"{"type":"message","channel":"c","seq":1,"id":"x1","data":1}"#,
        r#"{"type":"message","channel":"c","seq":1,"id":7,"data":1}"#,
        r#"{"type":"gap","channel":"c","from":0,"to":2}"#,
        r#"{"type":"gap","channel":"c","from":3,"to":2}"#,
        r#"{"type":"close","code":"normal"}"#,
        r#"{"type":"close","code":70000}"#,
        r#"{"type":"hello","version":1,"positions":[{"channel":"","seq":1}]}"#,
        r#"{"type":"ping","nonce":1,"nonce":2}"#,
        r#"{"type":7}"#,
        r#"["ping"]"#,
        r#""ping""#,
        "",
        "{",
        r#"{"type":"ping"} trailing"#,
    ] {
        let err = decode_str(input).unwrap_err();
        assert!(
            matches!(err, CodecError::Malformed { .. }),
            "{input}: {err:?}"
        );
    }
    let too_long = format!(
        r#"{{"type":"ack","channel":"{}","seq":1}}"#,
        "x".repeat(MAX_CHANNEL_LEN + 1)
    );
    assert!(matches!(
        decode_str(&too_long),
        Err(CodecError::Malformed { .. })
    ));
}

#[test]
fn lenient_where_the_protocol_says_so() {
    // Unknown fields are ignored (forward compatibility).
    assert_eq!(
        decode_str(r#"{"type":"ping","nonce":3,"future":{"x":[1]}}"#).unwrap(),
        Frame::Ping(Ping { nonce: 3 })
    );
    // Optional fields take their defaults.
    assert_eq!(
        decode_str(r#"{"type":"pong"}"#).unwrap(),
        Frame::Pong(Ping { nonce: 0 })
    );
    assert_eq!(
        decode_str(r#"{"type":"close"}"#).unwrap(),
        Frame::Close(Close {
            code: 1000,
            reason: String::new()
        })
    );
    assert_eq!(
        decode_str(r#"{"type":"hello","version":1}"#).unwrap(),
        Frame::Hello(Hello {
            version: 1,
            resume: None,
            positions: vec![],
            publisher: None,
        })
    );
    assert_eq!(
        decode_str(r#"{"type":"subscribe","channel":"c"}"#).unwrap(),
        Frame::Subscribe(Subscribe {
            channel: ch("c"),
            after: None
        })
    );
    // Unknown error codes survive as Unknown; numeric ones too.
    let Frame::Error(e) =
        decode_str(r#"{"type":"error","code":"brand_new","message":"m"}"#).unwrap()
    else {
        panic!()
    };
    assert_eq!(e.code, ErrorCode::Unknown);
    let Frame::Error(e) = decode_str(r#"{"type":"error","code":42}"#).unwrap() else {
        panic!()
    };
    assert_eq!(e.code, ErrorCode::Unknown);
    // Escapes in strings are decoded.
    let f = decode_str(r#"{"type":"ack","channel":"r\u00e9\"x","seq":1}"#).unwrap();
    assert_eq!(
        f,
        Frame::Ack(Ack {
            channel: ch("ré\"x"),
            seq: 1
        })
    );
    // Whitespace around the frame is fine.
    assert_eq!(
        decode_str(" \n{\"type\":\"ping\",\"nonce\":1}\n ").unwrap(),
        Frame::Ping(Ping { nonce: 1 })
    );
}

// ---------------------------------------------------------------------------
// Zero copy

fn assert_within(payload: &Bytes, input: &Bytes) {
    let range = input.as_ptr_range();
    let p = payload.as_ptr_range();
    assert!(
        range.start <= p.start && p.end <= range.end,
        "payload is not a slice of the input"
    );
}

#[test]
fn inline_payloads_are_zero_copy_slices_of_the_input() {
    let input = Bytes::from_static(
        br#"{"type":"message","channel":"c","seq":1,"id":"9","data":{"big":[1,2,3],"s":"\u00e9"}}"#,
    );
    let f = codec().decode(&input).unwrap();
    let Frame::Message(m) = &f else {
        panic!("{f:?}")
    };
    assert_eq!(
        &m.payload[..],
        br#"{"big":[1,2,3],"s":"\u00e9"}"#,
        "raw JSON, escapes untouched"
    );
    assert_within(&m.payload, &input);

    let input = Bytes::from_static(br#"{"type":"publish","data":"text","channel":"c","seq":1}"#);
    let Frame::Publish(p) = codec().decode(&input).unwrap() else {
        panic!()
    };
    assert_eq!(&p.payload[..], br#""text""#);
    assert_within(&p.payload, &input);

    // Base64 payloads are decoded into a new buffer.
    let input = Bytes::from_static(
        br#"{"type":"message","channel":"c","seq":1,"id":"9","data_b64":"AAEC"}"#,
    );
    let Frame::Message(m) = codec().decode(&input).unwrap() else {
        panic!()
    };
    assert_eq!(&m.payload[..], &[0, 1, 2]);
}

proptest! {
    #[test]
    fn inline_payloads_are_always_slices_of_the_input(v in json_value(), seq in any::<u64>()) {
        let payload = Bytes::from(serde_json::to_vec(&v).unwrap());
        let f = Frame::Message(Message { channel: ch("c"), seq, id: MessageId(seq), payload: payload.clone() });
        let input = codec().encode_to_bytes(&f).unwrap();
        let Ok(Frame::Message(m)) = codec().decode(&input) else { panic!() };
        prop_assert_eq!(&m.payload, &payload);
        let range = input.as_ptr_range();
        let p = m.payload.as_ptr_range();
        prop_assert!(range.start <= p.start && p.end <= range.end);
    }
}
