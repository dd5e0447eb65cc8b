//! JSON fast path: `JsonCodec::encode` writes byte for byte what the serde encoder (`encode_serde`) writes, for every frame, and what it writes decodes back to the frame.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use tidings_codec::JsonCodec;
use tidings_protocol::{
    Ack, ChannelName, Frame, FrameCodec, MAX_CHANNEL_LEN, Message, MessageId, Ping, Publish,
    PublishAck, Subscribed,
};

fn fast(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    JsonCodec::new().encode(f, &mut out).unwrap();
    out.to_vec()
}

fn serde(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    JsonCodec::new().encode_serde(f, &mut out).unwrap();
    out.to_vec()
}

/// Fast and serde output are the same bytes (shown as text when they differ),
/// also when appended to a buffer that already holds something, and the
/// output decodes back to the frame.
fn check(f: &Frame) -> Result<(), TestCaseError> {
    let (a, b) = (fast(f), serde(f));
    prop_assert_eq!(
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&b),
        "fast != serde for {:?}",
        f
    );
    prop_assert_eq!(&a, &b);

    let mut out = BytesMut::from(&b"prefix"[..]);
    JsonCodec::new().encode(f, &mut out).unwrap();
    prop_assert_eq!(&out[..6], b"prefix");
    prop_assert_eq!(&out[6..], &b[..]);

    let decoded = JsonCodec::new().decode(&Bytes::from(a)).unwrap();
    prop_assert_eq!(&decoded, f);
    Ok(())
}

/// Channel names that stress string escaping: quotes, backslashes, non-ASCII
/// (2-, 3- and 4-byte UTF-8, DEL's neighbours, U+2028/U+2029 which
/// serde_json does not escape) mixed with plain characters, plus the generic
/// ones of the shared strategies.
fn tricky_channel() -> impl Strategy<Value = ChannelName> {
    prop_oneof![
        channel(),
        "[a-z:\"\\\\/é€😀\u{2028}\u{2029}\u{a0}\u{ad}\u{feff}~ ]{1,40}"
            .prop_map(|s| ChannelName::new(s).unwrap()),
        Just(ch("\"")),
        Just(ch("\\")),
        Just(ch("room\"lobby")),
        Just(ch("a\\u0000b")),
        Just(ch(&"\"".repeat(MAX_CHANNEL_LEN))),
    ]
}

/// Payloads: the shared ones (JSON compact and pretty, binary, near-JSON),
/// plus valid JSON with whitespace around it (must go as base64), JSON with
/// escapes and non-ASCII inside, and non-UTF-8 bytes.
fn tricky_payload() -> impl Strategy<Value = Bytes> {
    let ws = "[ \t\r\n]{0,3}";
    // Every kind of JSON value at the top level (each one's first and last
    // byte matter to the fast path's pre-check).
    let scalar = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::to_string(&f).unwrap()),
        // Numbers in all their shapes, some invalid (`-`, `01`, `1.`).
        "-?[0-9]{0,3}(\\.[0-9]{0,3})?([eE][+-]?[0-9]{0,3})?",
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("[1]".to_owned()),
        Just(r#"{"a":"b"}"#.to_owned()),
    ];
    let value = prop_oneof![
        3 => scalar,
        1 => json_value().prop_map(|v| serde_json::to_string(&v).unwrap()),
    ];
    let fixed: [&'static [u8]; 6] = [
        r#""a\"b\\c\u0000é""#.as_bytes(),
        "\"é😀\u{2028}\"".as_bytes(),
        b"\"\xff\"",
        b" ",
        b"{\"a\":1}{\"b\":2}",
        b"\xef\xbb\xbf{}",
    ];
    prop_oneof![
        3 => payload(),
        4 => value.clone().prop_map(Bytes::from),
        // One arbitrary byte before or after a JSON value.
        3 => (value, any::<u8>(), any::<bool>()).prop_map(|(json, b, before)| {
            let mut v = json.into_bytes();
            if before {
                v.insert(0, b);
            } else {
                v.push(b);
            }
            Bytes::from(v)
        }),
        1 => (ws, json_value(), ws).prop_map(|(pre, v, post)| {
            Bytes::from(format!("{pre}{}{post}", serde_json::to_string(&v).unwrap()))
        }),
        1 => proptest::sample::select(fixed.to_vec()).prop_map(Bytes::from_static),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
    ]
}

/// Every frame type the fast path handles, with tricky strings and payloads.
fn hot_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            tricky_channel(),
            any::<u64>(),
            any::<u64>(),
            tricky_payload()
        )
            .prop_map(|(channel, seq, id, payload)| Frame::Message(Message {
                channel,
                seq,
                id: MessageId(id),
                payload,
            })),
        (tricky_channel(), any::<u64>(), tricky_payload()).prop_map(|(channel, seq, payload)| {
            Frame::Publish(Publish {
                channel,
                seq,
                payload,
            })
        }),
        (tricky_channel(), any::<u64>())
            .prop_map(|(channel, seq)| Frame::Ack(Ack { channel, seq })),
        (tricky_channel(), any::<u64>())
            .prop_map(|(channel, seq)| Frame::Subscribed(Subscribed { channel, seq })),
        any::<u64>().prop_map(|seq| Frame::PublishAck(PublishAck { seq })),
        any::<u64>().prop_map(|nonce| Frame::Ping(Ping { nonce })),
        any::<u64>().prop_map(|nonce| Frame::Pong(Ping { nonce })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn fast_path_matches_serde_byte_for_byte(f in hot_frame()) {
        check(&f)?;
    }

    /// The payload rule alone (inline `data` or `data_b64`), on `message`
    /// and `publish`.
    #[test]
    fn payload_encoding_matches_serde_byte_for_byte(
        payload in tricky_payload(),
        seq in any::<u64>(),
        id in any::<u64>(),
    ) {
        let channel = ch("room:lobby");
        check(&Frame::Message(Message {
            channel: channel.clone(),
            seq,
            id: MessageId(id),
            payload: payload.clone(),
        }))?;
        check(&Frame::Publish(Publish { channel, seq, payload }))?;
    }

    /// All 14 frame types (the ones without a fast path go through serde both ways).
    #[test]
    fn every_frame_matches_serde_byte_for_byte(f in frame()) {
        check(&f)?;
    }
}

#[test]
fn edge_values_match_serde() {
    let payloads: [&[u8]; 22] = [
        b"",
        b"null",
        b" null",
        b"null ",
        b"true",
        b"false",
        b"0",
        b"-1",
        b"1.5e-3",
        b"1.",
        b"-",
        b"\"\"",
        b"\"",
        b"[]",
        b"{}",
        b"[1]]",
        b"\xff",
        b"{\"x\":[1, 2]}",
        b"\"\\u00e9\"",
        b"[1,",
        b"nul",
        b"\xef\xbb\xbf{}",
    ];
    for channel in ["c", "room:lobby", "é", "😀", "a\"b", "a\\b", "\u{7f}x"] {
        // DEL is a control character: not a valid channel name.
        let Ok(channel) = ChannelName::new(channel) else {
            continue;
        };
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            for p in payloads {
                let payload = Bytes::from_static(p);
                for f in [
                    Frame::Message(Message {
                        channel: channel.clone(),
                        seq: n,
                        id: MessageId(n),
                        payload: payload.clone(),
                    }),
                    Frame::Publish(Publish {
                        channel: channel.clone(),
                        seq: n,
                        payload,
                    }),
                ] {
                    check(&f).unwrap();
                }
            }
            for f in [
                Frame::Ack(Ack {
                    channel: channel.clone(),
                    seq: n,
                }),
                Frame::Subscribed(Subscribed {
                    channel: channel.clone(),
                    seq: n,
                }),
                Frame::PublishAck(PublishAck { seq: n }),
                Frame::Ping(Ping { nonce: n }),
                Frame::Pong(Ping { nonce: n }),
            ] {
                check(&f).unwrap();
            }
        }
    }
}

/// The examples of docs/protocol.md §3.1, written by the fast path.
#[test]
fn protocol_examples() {
    let c = ch("room:lobby");
    let cases = [
        (
            Frame::Subscribed(Subscribed {
                channel: c.clone(),
                seq: 41,
            }),
            r#"{"type":"subscribed","channel":"room:lobby","seq":41}"#,
        ),
        (
            Frame::Publish(Publish {
                channel: c.clone(),
                seq: 1,
                payload: Bytes::from_static(br#"{"text":"hi"}"#),
            }),
            r#"{"type":"publish","channel":"room:lobby","seq":1,"data":{"text":"hi"}}"#,
        ),
        (
            Frame::PublishAck(PublishAck { seq: 1 }),
            r#"{"type":"publish_ack","seq":1}"#,
        ),
        (
            Frame::Message(Message {
                channel: c.clone(),
                seq: 42,
                id: MessageId(4_294_967_296),
                payload: Bytes::from_static(br#"{"text":"hi"}"#),
            }),
            r#"{"type":"message","channel":"room:lobby","seq":42,"id":"4294967296","data":{"text":"hi"}}"#,
        ),
        (
            Frame::Ack(Ack {
                channel: c.clone(),
                seq: 42,
            }),
            r#"{"type":"ack","channel":"room:lobby","seq":42}"#,
        ),
        (
            Frame::Ping(Ping { nonce: 3 }),
            r#"{"type":"ping","nonce":3}"#,
        ),
        (
            Frame::Pong(Ping { nonce: 3 }),
            r#"{"type":"pong","nonce":3}"#,
        ),
        (
            Frame::Message(Message {
                channel: ch(r#"a"b\c"#),
                seq: 7,
                id: MessageId(u64::MAX),
                payload: Bytes::from_static(b" 1"),
            }),
            r#"{"type":"message","channel":"a\"b\\c","seq":7,"id":"18446744073709551615","data_b64":"IDE="}"#,
        ),
    ];
    for (f, want) in cases {
        assert_eq!(String::from_utf8(fast(&f)).unwrap(), want);
        assert_eq!(String::from_utf8(serde(&f)).unwrap(), want);
    }
}
