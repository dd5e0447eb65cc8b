//! Frame strategies and samples shared by the codec tests (JSON, binary, fuzz-style).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;
use tidings_protocol::{
    Ack, ChannelName, ChannelPosition, Close, ErrorCode, ErrorFrame, Frame, Gap, Hello,
    MAX_CHANNEL_LEN, Message, MessageId, Ping, Publish, PublishAck, Publisher, ResumeToken,
    SessionId, Subscribe, Subscribed, Unsubscribe, Welcome,
};

pub fn ch(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

// ---------------------------------------------------------------------------
// Strategies

pub fn channel() -> impl Strategy<Value = ChannelName> {
    prop_oneof![
        "[a-z][a-z0-9:._-]{0,30}",
        // Anything without control characters (`char::is_control` is exactly \p{Cc}).
        "[^\\p{Cc}]{1,60}",
        // Near the length limit.
        Just("x".repeat(MAX_CHANNEL_LEN)),
        Just("é".repeat(MAX_CHANNEL_LEN / 2)),
    ]
    .prop_map(|s| ChannelName::new(s).unwrap())
}

pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A payload and whether it must travel inline as `data` (valid JSON text, no
/// surrounding whitespace) rather than as `data_b64`.
pub fn payload() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        // Valid JSON, compact and pretty (inner whitespace is kept byte for byte).
        json_value().prop_map(|v| Bytes::from(serde_json::to_vec(&v).unwrap())),
        json_value().prop_map(|v| Bytes::from(serde_json::to_vec_pretty(&v).unwrap())),
        // Arbitrary binary.
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from),
        // Text that is almost JSON.
        "[ \\[\\]{}\":,0-9a-z\\\\]{0,40}".prop_map(Bytes::from),
        Just(Bytes::from_static(b"null")),
        Just(Bytes::from_static(b" 1")),
        Just(Bytes::from_static(b"1\n")),
        Just(Bytes::new()),
    ]
}

pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(vec![
        ErrorCode::MalformedFrame,
        ErrorCode::UnknownFrameType,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnexpectedFrame,
        ErrorCode::InvalidChannel,
        ErrorCode::QueueFull,
        ErrorCode::SlowConsumer,
        ErrorCode::TooManySubscriptions,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::Internal,
        ErrorCode::Unknown,
    ])
}

pub fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            any::<u32>(),
            proptest::option::of(any::<String>()),
            proptest::collection::vec((channel(), any::<u64>()), 0..5),
            proptest::option::of(("[A-Za-z0-9_-]{1,64}", any::<u64>()))
        )
            .prop_map(
                |(version, resume, positions, publisher)| Frame::Hello(Hello {
                    version,
                    resume: resume.map(ResumeToken),
                    positions: positions
                        .into_iter()
                        .map(|(channel, seq)| ChannelPosition { channel, seq })
                        .collect(),
                    publisher: publisher.map(|(id, base)| Publisher::new(&id, base).unwrap()),
                })
            ),
        (
            any::<u32>(),
            any::<String>(),
            any::<String>(),
            any::<bool>(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(
                |(version, s, t, resumed, heartbeat_ms, max_frame, publish_acked)| {
                    Frame::Welcome(Welcome {
                        version,
                        session: SessionId(s),
                        resume_token: ResumeToken(t),
                        resumed,
                        heartbeat_ms,
                        max_frame,
                        publish_acked,
                    })
                }
            ),
        (channel(), any::<u64>(), payload()).prop_map(|(channel, seq, payload)| Frame::Publish(
            Publish {
                channel,
                seq,
                payload
            }
        )),
        (channel(), any::<u64>(), any::<u64>(), payload()).prop_map(
            |(channel, seq, id, payload)| {
                Frame::Message(Message {
                    channel,
                    seq,
                    id: MessageId(id),
                    payload,
                })
            }
        ),
        (channel(), any::<u64>()).prop_map(|(channel, seq)| Frame::Ack(Ack { channel, seq })),
        any::<u64>().prop_map(|seq| Frame::PublishAck(PublishAck { seq })),
        (channel(), proptest::option::of(any::<u64>()))
            .prop_map(|(channel, after)| Frame::Subscribe(Subscribe { channel, after })),
        (channel(), any::<u64>())
            .prop_map(|(channel, seq)| Frame::Subscribed(Subscribed { channel, seq })),
        channel().prop_map(|channel| Frame::Unsubscribe(Unsubscribe { channel })),
        (channel(), 1u64.., any::<u64>()).prop_map(|(channel, from, len)| Frame::Gap(Gap {
            channel,
            from,
            to: from.saturating_add(len % 1_000_000),
        })),
        any::<u64>().prop_map(|nonce| Frame::Ping(Ping { nonce })),
        any::<u64>().prop_map(|nonce| Frame::Pong(Ping { nonce })),
        (error_code(), any::<String>(), any::<Option<u64>>()).prop_map(
            |(code, message, publish)| Frame::Error(ErrorFrame {
                code,
                message,
                publish
            })
        ),
        (any::<u16>(), any::<String>())
            .prop_map(|(code, reason)| Frame::Close(Close { code, reason })),
    ]
}

pub fn payload_of(f: &Frame) -> Option<&Bytes> {
    match f {
        Frame::Publish(p) => Some(&p.payload),
        Frame::Message(m) => Some(&m.payload),
        _ => None,
    }
}

/// One sample of every frame type.
pub fn samples() -> Vec<Frame> {
    let c = ch("room:1");
    vec![
        Frame::Hello(Hello {
            version: 1,
            resume: Some(ResumeToken("tok".into())),
            positions: vec![ChannelPosition {
                channel: c.clone(),
                seq: 3,
            }],
            publisher: None,
        }),
        Frame::Welcome(Welcome {
            version: 1,
            session: SessionId("s".into()),
            resume_token: ResumeToken("t".into()),
            resumed: true,
            heartbeat_ms: 15_000,
            max_frame: 1 << 20,
            publish_acked: 9,
        }),
        Frame::Publish(Publish {
            channel: c.clone(),
            seq: 1,
            payload: Bytes::from_static(b"{\"a\":1}"),
        }),
        Frame::Message(Message {
            channel: c.clone(),
            seq: 2,
            id: MessageId(u64::MAX),
            payload: Bytes::from_static(b"\x00\x01"),
        }),
        Frame::Ack(Ack {
            channel: c.clone(),
            seq: 2,
        }),
        Frame::PublishAck(PublishAck { seq: 1 }),
        Frame::Subscribe(Subscribe {
            channel: c.clone(),
            after: Some(4),
        }),
        Frame::Subscribed(Subscribed {
            channel: c.clone(),
            seq: 4,
        }),
        Frame::Unsubscribe(Unsubscribe { channel: c.clone() }),
        Frame::Gap(Gap {
            channel: c,
            from: 5,
            to: 9,
        }),
        Frame::Ping(Ping { nonce: 1 }),
        Frame::Pong(Ping { nonce: 1 }),
        Frame::Error(ErrorFrame::new(ErrorCode::QueueFull, "slow down")),
        Frame::Close(Close {
            code: 1000,
            reason: "bye".into(),
        }),
        // Last: its binary tag is 16 (after rpc, 15, which is not sampled here).
        Frame::Hello(Hello {
            version: 1,
            resume: None,
            positions: vec![],
            publisher: Some(Publisher::new("c0ffee_42-x", 17).unwrap()),
        }),
    ]
}
