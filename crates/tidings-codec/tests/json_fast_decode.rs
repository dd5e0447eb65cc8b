//! JSON decode fast path: whenever `decode_fast` returns `Some(frame)`, the serde path returns `Ok(frame)` (round trips, grammar-generated and mutated frames, garbage, edge cases).
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use tidings_codec::JsonCodec;
use tidings_protocol::{
    Ack, ChannelName, Frame, FrameCodec, MAX_CHANNEL_LEN, Message, MessageId, Ping, Publish,
    PublishAck, Subscribe, Subscribed, Unsubscribe,
};

fn codec() -> JsonCodec {
    JsonCodec::new()
}

fn is_inline_json(p: &[u8]) -> bool {
    serde_json::from_slice::<&serde_json::value::RawValue>(p)
        .is_ok_and(|raw| raw.get().len() == p.len())
}

/// The invariant: the fast path never disagrees with the serde path, the codec
/// (fast path first, serde on `None`) equals the serde path on every input
/// (errors included), and fast-path payloads are slices of the input.
fn check(input: &[u8]) -> Option<Frame> {
    let bytes = Bytes::copy_from_slice(input);
    let fast = codec().decode_fast(&bytes);
    let serde = codec().decode_serde(&bytes);
    if let Some(f) = &fast {
        assert_eq!(
            serde.as_ref(),
            Ok(f),
            "fast path diverges on {:?}",
            String::from_utf8_lossy(input)
        );
        if let Some(p) = payload_of(f).filter(|p| !p.is_empty()) {
            let range = bytes.as_ptr_range();
            assert!(
                range.contains(&p.as_ptr()),
                "payload is not a slice of the input"
            );
        }
    }
    assert_eq!(codec().decode(&bytes), serde);
    fast
}

fn fast_str(s: &str) -> Option<Frame> {
    check(s.as_bytes())
}

// ---------------------------------------------------------------------------
// Strategies

/// Channel names, including ones the encoder must escape (quotes, backslashes)
/// and non-ASCII ones.
fn any_channel() -> impl Strategy<Value = ChannelName> {
    prop_oneof![
        channel(),
        "[a-z\"\\\\é€😀/]{1,20}".prop_map(|s| ChannelName::new(s).unwrap()),
    ]
}

fn any_seq() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..1000,
        Just(0),
        Just(u64::MAX),
        Just(u64::MAX - 1)
    ]
}

/// Every frame type the fast path reads.
fn fast_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any_channel(), any_seq(), payload()).prop_map(|(channel, seq, payload)| {
            Frame::Publish(Publish {
                channel,
                seq,
                payload,
            })
        }),
        (any_channel(), any_seq(), any_seq(), payload()).prop_map(|(channel, seq, id, payload)| {
            Frame::Message(Message {
                channel,
                seq,
                id: MessageId(id),
                payload,
            })
        }),
        (any_channel(), any_seq()).prop_map(|(channel, seq)| Frame::Ack(Ack { channel, seq })),
        any_seq().prop_map(|seq| Frame::PublishAck(PublishAck { seq })),
        (any_channel(), proptest::option::of(any_seq()))
            .prop_map(|(channel, after)| Frame::Subscribe(Subscribe { channel, after })),
        (any_channel(), any_seq())
            .prop_map(|(channel, seq)| Frame::Subscribed(Subscribed { channel, seq })),
        any_channel().prop_map(|channel| Frame::Unsubscribe(Unsubscribe { channel })),
        any_seq().prop_map(|nonce| Frame::Ping(Ping { nonce })),
        any_seq().prop_map(|nonce| Frame::Pong(Ping { nonce })),
    ]
}

fn channel_of(f: &Frame) -> Option<&ChannelName> {
    match f {
        Frame::Publish(p) => Some(&p.channel),
        Frame::Message(m) => Some(&m.channel),
        Frame::Ack(a) => Some(&a.channel),
        Frame::Subscribe(s) => Some(&s.channel),
        Frame::Subscribed(s) => Some(&s.channel),
        Frame::Unsubscribe(u) => Some(&u.channel),
        _ => None,
    }
}

/// JSON values as text, valid and not, in the shapes that trip parsers.
fn value_token() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        (0u64..100).prop_map(|n| n.to_string()),
        proptest::sample::select(vec![
            "0",
            "00",
            "01",
            "-0",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "1E3",
            "1.",
            ".5",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "4294967295",
            "4294967296",
            "null",
            "true",
            "false",
            "\"\"",
            "\"c\"",
            "\"42\"",
            "\"007\"",
            "\"+7\"",
            "\"-7\"",
            "\"18446744073709551615\"",
            "\"18446744073709551616\"",
            "\"a\\\"b\"",
            "\"a\\\\b\"",
            "\"\\u0063\"",
            "\"a\u{1}b\"",
            "\"é\"",
            "\"room:lobby\"",
            "{}",
            "[]",
            "{\"a\":[1,2]}",
            "{\"a\":}",
            "[1,2",
            "\"unterminated",
            " 1",
            "1 ",
            "{ }",
            "nul",
            "",
        ])
        .prop_map(String::from),
        "\"[a-z\u{7f}\u{80}é\\\\\"\u{1}]{0,8}\"",
        json_value().prop_map(|v| serde_json::to_string(&v).unwrap()),
    ]
}

fn key_token() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "channel",
        "seq",
        "id",
        "data",
        "after",
        "nonce",
        "data_b64",
        "type",
        "version",
        "from",
        "to",
        "code",
        "reason",
        "message",
        "resume",
        "extra",
        "Seq",
        "chan\\u006eel",
        "",
    ])
    .prop_map(String::from)
}

fn kind_token() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "publish",
        "message",
        "ack",
        "publish_ack",
        "subscribe",
        "subscribed",
        "unsubscribe",
        "ping",
        "pong",
        "publish",
        "message",
        "ack",
        "publish_ack",
        "subscribe",
        "subscribed",
        "unsubscribe",
        "ping",
        "pong",
        "hello",
        "gap",
        "close",
        "Publish",
        "pin\\u0067",
        "",
    ])
    .prop_map(String::from)
}

fn number_token() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => any::<u64>().prop_map(|n| n.to_string()),
        6 => (0u64..100).prop_map(|n| n.to_string()),
        1 => Just(u64::MAX.to_string()),
        3 => proptest::sample::select(vec![
            "00", "01", "007", "-0", "-1", "+1", "1.0", "1e3", "0e0", "1.", "18446744073709551616",
            "99999999999999999999", "null", "true", "\"1\"", "", " 1", "1 ",
        ])
        .prop_map(String::from),
    ]
}

fn channel_token() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "\"[a-z:é😀]{1,10}\"",
        2 => "\"[a-z\u{7f}\u{80}é\\\\\"\u{1}]{0,8}\"",
        1 => Just(format!("\"{}\"", "x".repeat(MAX_CHANNEL_LEN))),
        1 => Just(format!("\"{}\"", "x".repeat(MAX_CHANNEL_LEN + 1))),
        2 => value_token(),
    ]
}

fn id_token() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => any::<u64>().prop_map(|n| format!("\"{n}\"")),
        3 => proptest::sample::select(vec![
            "\"0\"", "\"007\"", "\"+7\"", "\"-7\"", "\"\"", "\" 7\"", "\"7x\"", "\"1.0\"",
            "\"12 \"", "\"18446744073709551615\"", "\"18446744073709551616\"", "\"\\u0037\"",
            "7", "null",
        ])
        .prop_map(String::from),
    ]
}

fn data_token() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => json_value().prop_map(|v| serde_json::to_string(&v).unwrap()),
        4 => json_value().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
        3 => proptest::sample::select(vec![
            "null", " 1", "1 ", " null", "{} ", "\n[]", "{\"a\":}", "[1,2", "nul", "", "1,", "\"\\u00e9}\"",
            "{\"a\":1}}", "\"\\\"\"", "\"\\x\"", "0001", "-", "[1,]",
        ])
        .prop_map(String::from),
    ]
}

/// Objects shaped like the fast path's input: a kind, a subset of the fast-path
/// keys in any order (`data` usually last) with mostly valid values, sometimes
/// an extra or a duplicated pair, sometimes a tail after the `}`.
fn grammar_frame() -> impl Strategy<Value = Vec<u8>> {
    // Mostly the keys of the kind (all of them, or a subset), in any order.
    let kind_and_keys = kind_token().prop_flat_map(|kind| {
        let keys: Vec<&'static str> = match kind.as_str() {
            "publish" => vec!["channel", "seq", "data"],
            "message" => vec!["channel", "seq", "id", "data"],
            "ack" | "subscribed" => vec!["channel", "seq"],
            "publish_ack" => vec!["seq"],
            "subscribe" => vec!["channel", "after"],
            "unsubscribe" => vec!["channel"],
            "ping" | "pong" => vec!["nonce"],
            _ => vec!["channel", "seq", "id", "data", "after", "nonce"],
        };
        let n = keys.len();
        let subset = prop_oneof![
            6 => proptest::sample::subsequence(keys.clone(), n),
            1 => proptest::sample::subsequence(keys, 0..=n),
        ];
        (Just(kind), subset.prop_shuffle())
    });
    let values = (
        channel_token(),
        number_token(),
        id_token(),
        data_token(),
        number_token(),
        number_token(),
    );
    let extra = proptest::option::weighted(
        0.15,
        (key_token(), value_token(), any::<proptest::sample::Index>()),
    );
    (
        kind_and_keys,
        values,
        any::<bool>(),
        extra,
        prop_oneof![
            8 => Just(""),
            1 => proptest::sample::select(vec![" ", "\n", "x", "}", ",", "]"]),
        ],
        prop_oneof![8 => Just(""), 1 => proptest::sample::select(vec![" ", "\n"])],
        // The closing brace, or not.
        prop_oneof![
            12 => Just("}"),
            1 => proptest::sample::select(vec!["", "]", " ", "x", "0", "}}", " }"]),
        ],
    )
        .prop_map(
            |((kind, mut keys), (c, s, i, d, a, n), data_anywhere, extra, tail, pad, close)| {
                if !data_anywhere {
                    keys.sort_by_key(|k| *k == "data");
                }
                let mut pairs: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        let v = match *k {
                            "channel" => &c,
                            "seq" => &s,
                            "id" => &i,
                            "data" => &d,
                            "after" => &a,
                            _ => &n,
                        };
                        format!("\"{k}\":{v}")
                    })
                    .collect();
                if let Some((k, v, at)) = extra {
                    pairs.insert(at.index(pairs.len() + 1), format!("\"{k}\":{v}"));
                }
                let mut s = format!("{{{pad}\"type\":\"{kind}\"");
                for p in pairs {
                    s.push(',');
                    s.push_str(&p);
                }
                s.push_str(close);
                s.push_str(tail);
                s.into_bytes()
            },
        )
}

/// Encoded fast-path frames (or grammar frames) with a few random edits.
fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    // Boxed: the unboxed value tree overflows the test thread's stack in debug builds.
    let base = prop_oneof![
        fast_frame()
            .prop_map(|f| codec().encode_to_bytes(&f).unwrap().to_vec())
            .boxed(),
        grammar_frame().boxed(),
    ];
    let edit = (
        0u8..6,
        any::<proptest::sample::Index>(),
        any::<u8>(),
        proptest::sample::select(vec![
            &b" "[..],
            b"\"",
            b"\\",
            b",",
            b":",
            b"}",
            b"{",
            b"0",
            b"-",
            b".",
            b"e",
            b"null",
            b",\"seq\":1",
            b",\"channel\":\"c\"",
            b",\"nonce\":2",
            b",\"after\":3",
            b",\"id\":\"4\"",
            b",\"data\":5",
            b",\"x\":6",
            b"\xff",
            b"\x01",
        ]),
    );
    (base, proptest::collection::vec(edit, 1..3)).prop_map(|(mut bytes, edits)| {
        for (op, at, byte, token) in edits {
            let i = at.index(bytes.len() + 1);
            match op {
                // Digits become other digits (leading zeros, overflow), the rest anything.
                0 if i < bytes.len() => {
                    bytes[i] = if bytes[i].is_ascii_digit() {
                        b'0' + byte % 10
                    } else {
                        byte
                    }
                }
                1 => bytes.insert(i, byte),
                2 if i < bytes.len() => {
                    bytes.remove(i);
                }
                3 => bytes.truncate(i),
                _ => {
                    let tail = bytes.split_off(i);
                    bytes.extend_from_slice(token);
                    bytes.extend_from_slice(&tail);
                }
            }
        }
        bytes
    })
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// (1) Encoded hot frames: fast == serde == the original, and the fast path
    /// takes every frame our encoder writes in the compact shape.
    #[test]
    fn encoded_frames_agree(f in fast_frame()) {
        let bytes = codec().encode_to_bytes(&f).unwrap();
        let fast = check(&bytes);
        prop_assert_eq!(codec().decode_serde(&bytes), Ok(f.clone()));
        if let Some(fast) = &fast {
            prop_assert_eq!(fast, &f);
        }
        // The encoder escapes `"` and `\` (the fast path leaves escapes to serde)
        // and writes non-JSON payloads as `data_b64` (also left to serde).
        let escaped = channel_of(&f).is_some_and(|c| c.as_str().contains(['"', '\\']));
        let b64 = payload_of(&f).is_some_and(|p| !is_inline_json(p));
        prop_assert_eq!(
            fast.is_some(),
            !escaped && !b64,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }

    /// (2a) Compact objects of any keys in any order with odd values.
    #[test]
    fn grammar_frames_agree(bytes in grammar_frame()) {
        check(&bytes);
    }

    /// (2b) Mutations of valid frames.
    #[test]
    fn mutated_frames_agree(bytes in mutated_frame()) {
        check(&bytes);
    }

    /// (2c) Arbitrary bytes, and arbitrary text after a valid prefix.
    #[test]
    fn garbage_agrees(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        tail in "[ -~é]{0,60}",
    ) {
        check(&bytes);
        let mut prefixed = b"{\"type\":\"publish\",".to_vec();
        prefixed.extend_from_slice(tail.as_bytes());
        check(&prefixed);
    }
}

/// The generated inputs are not vacuous: a good share of them takes the fast
/// path (so the properties above compare two real decodes), and a good share
/// does not.
#[test]
fn generated_inputs_exercise_both_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for (name, strategy) in [
        ("grammar", grammar_frame().boxed()),
        ("mutated", mutated_frame().boxed()),
    ] {
        let n = 2000;
        let fast = (0..n)
            .filter(|_| {
                let bytes = strategy.new_tree(&mut runner).unwrap().current();
                check(&bytes).is_some()
            })
            .count();
        eprintln!("{name}: {fast} of {n} take the fast path");
        // Mutations mostly break a frame: those that keep it decodable are rarer.
        let least = if name == "mutated" { n / 50 } else { n / 10 };
        assert!(fast > least && fast < n * 9 / 10, "{name}: {fast} of {n}");
    }
}

// ---------------------------------------------------------------------------
// (3) Edge cases

fn publish(channel: &str, seq: u64, payload: &'static [u8]) -> Frame {
    Frame::Publish(Publish {
        channel: ch(channel),
        seq,
        payload: Bytes::from_static(payload),
    })
}

#[test]
fn the_compact_shapes_are_fast() {
    assert_eq!(
        fast_str(r#"{"type":"publish","channel":"room:lobby","seq":1,"data":{"text":"hi"}}"#),
        Some(publish("room:lobby", 1, br#"{"text":"hi"}"#))
    );
    assert_eq!(
        fast_str(r#"{"type":"message","channel":"c","seq":42,"id":"4294967296","data":[1]}"#),
        Some(Frame::Message(Message {
            channel: ch("c"),
            seq: 42,
            id: MessageId(4_294_967_296),
            payload: Bytes::from_static(b"[1]"),
        }))
    );
    assert_eq!(
        fast_str(r#"{"type":"ack","channel":"c","seq":42}"#),
        Some(Frame::Ack(Ack {
            channel: ch("c"),
            seq: 42
        }))
    );
    assert_eq!(
        fast_str(r#"{"type":"publish_ack","seq":0}"#),
        Some(Frame::PublishAck(PublishAck { seq: 0 }))
    );
    assert_eq!(
        fast_str(r#"{"type":"subscribe","channel":"c"}"#),
        Some(Frame::Subscribe(Subscribe {
            channel: ch("c"),
            after: None
        }))
    );
    assert_eq!(
        fast_str(r#"{"type":"subscribe","channel":"c","after":7}"#),
        Some(Frame::Subscribe(Subscribe {
            channel: ch("c"),
            after: Some(7)
        }))
    );
    assert_eq!(
        fast_str(r#"{"type":"subscribed","channel":"c","seq":41}"#),
        Some(Frame::Subscribed(Subscribed {
            channel: ch("c"),
            seq: 41
        }))
    );
    assert_eq!(
        fast_str(r#"{"type":"unsubscribe","channel":"c"}"#),
        Some(Frame::Unsubscribe(Unsubscribe { channel: ch("c") }))
    );
    assert_eq!(
        fast_str(r#"{"type":"ping","nonce":3}"#),
        Some(Frame::Ping(Ping { nonce: 3 }))
    );
    // Without nonce: 0, as serde.
    assert_eq!(
        fast_str(r#"{"type":"ping"}"#),
        Some(Frame::Ping(Ping { nonce: 0 }))
    );
    assert_eq!(
        fast_str(r#"{"type":"pong"}"#),
        Some(Frame::Pong(Ping { nonce: 0 }))
    );
    // Non-ASCII channels are plain UTF-8 bytes.
    assert_eq!(
        fast_str(r#"{"type":"ack","channel":"é€😀","seq":1}"#),
        Some(Frame::Ack(Ack {
            channel: ch("é€😀"),
            seq: 1
        }))
    );
}

#[test]
fn fields_in_another_order() {
    assert_eq!(
        fast_str(r#"{"type":"publish","seq":1,"channel":"c","data":1}"#),
        Some(publish("c", 1, b"1"))
    );
    assert!(fast_str(r#"{"type":"message","id":"9","seq":2,"channel":"c","data":true}"#).is_some());
    assert!(fast_str(r#"{"type":"ack","seq":1,"channel":"c"}"#).is_some());
    // `type` not first: serde's business.
    assert_eq!(fast_str(r#"{"channel":"c","type":"ack","seq":1}"#), None);
    assert!(
        codec()
            .decode_serde(&Bytes::from_static(
                br#"{"channel":"c","type":"ack","seq":1}"#
            ))
            .is_ok()
    );
}

#[test]
fn refused_shapes_go_to_serde() {
    for s in [
        // Duplicate keys (serde: "duplicate field").
        r#"{"type":"ack","channel":"c","seq":1,"seq":2}"#,
        r#"{"type":"ack","channel":"c","channel":"d","seq":1}"#,
        r#"{"type":"ping","nonce":1,"nonce":1}"#,
        // An extra key, even one serde ignores or one of another kind.
        r#"{"type":"ack","channel":"c","seq":1,"x":1}"#,
        r#"{"type":"ack","channel":"c","seq":1,"nonce":1}"#,
        r#"{"type":"publish_ack","seq":1,"channel":"c"}"#,
        r#"{"type":"ping","nonce":1,"version":"x"}"#,
        r#"{"type":"subscribe","channel":"c","seq":1}"#,
        // Whitespace anywhere.
        r#"{ "type":"ack","channel":"c","seq":1}"#,
        r#"{"type":"ack", "channel":"c","seq":1}"#,
        r#"{"type":"ack","channel" :"c","seq":1}"#,
        r#"{"type":"ack","channel":"c","seq": 1}"#,
        r#"{"type":"ack","channel":"c","seq":1 }"#,
        "{\"type\":\"ack\",\"channel\":\"c\",\"seq\":1}\n",
        // Numbers that are not plain unsigned decimals.
        r#"{"type":"ack","channel":"c","seq":01}"#,
        r#"{"type":"ack","channel":"c","seq":00}"#,
        r#"{"type":"ack","channel":"c","seq":-1}"#,
        r#"{"type":"ack","channel":"c","seq":-0}"#,
        r#"{"type":"ack","channel":"c","seq":+1}"#,
        r#"{"type":"ack","channel":"c","seq":1.0}"#,
        r#"{"type":"ack","channel":"c","seq":1e3}"#,
        r#"{"type":"ack","channel":"c","seq":18446744073709551616}"#,
        r#"{"type":"ack","channel":"c","seq":99999999999999999999}"#,
        r#"{"type":"ack","channel":"c","seq":"1"}"#,
        r#"{"type":"ack","channel":"c","seq":null}"#,
        r#"{"type":"subscribe","channel":"c","after":null}"#,
        r#"{"type":"ping","nonce":null}"#,
        r#"{"type":"ping","nonce":-1}"#,
        // Escapes and control bytes in strings.
        r#"{"type":"ack","channel":"a\"b","seq":1}"#,
        r#"{"type":"ack","channel":"a\\b","seq":1}"#,
        r#"{"type":"ack","channel":"\u0063","seq":1}"#,
        "{\"type\":\"ack\",\"channel\":\"a\u{1}b\",\"seq\":1}",
        r#"{"type":"pin\u0067"}"#,
        // Invalid channels.
        r#"{"type":"ack","channel":"","seq":1}"#,
        "{\"type\":\"ack\",\"channel\":\"a\u{7f}b\",\"seq\":1}",
        // Missing required fields.
        r#"{"type":"ack","channel":"c"}"#,
        r#"{"type":"ack","seq":1}"#,
        r#"{"type":"publish_ack"}"#,
        r#"{"type":"unsubscribe"}"#,
        r#"{"type":"publish","channel":"c","seq":1}"#,
        r#"{"type":"message","channel":"c","seq":1,"data":1}"#,
        // `id` not a string of a u64.
        r#"{"type":"message","channel":"c","seq":1,"id":1,"data":1}"#,
        r#"{"type":"message","channel":"c","seq":1,"id":"x","data":1}"#,
        r#"{"type":"message","channel":"c","seq":1,"id":"18446744073709551616","data":1}"#,
        r#"{"type":"message","channel":"c","seq":1,"id":"","data":1}"#,
        // `data` not last, `data_b64`, both, invalid data.
        r#"{"type":"publish","channel":"c","data":1,"seq":1}"#,
        r#"{"type":"publish","data":{"a":1},"channel":"c","seq":1}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data_b64":"/w=="}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data_b64":"/w==","data":1}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":1,"data_b64":"/w=="}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":{"a":}}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":[1,2}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data": 1}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":1 }"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":1,}"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":[1]]"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":12"#,
        r#"{"type":"publish","channel":"c","seq":1,"data":1}}"#,
        r#"{"type":"ack","channel":"c","seq":1,"data":1}"#,
        // Trailing garbage, truncation, other kinds, not an object.
        r#"{"type":"ack","channel":"c","seq":1}}"#,
        r#"{"type":"ack","channel":"c","seq":1}x"#,
        r#"{"type":"ack","channel":"c","seq":1},"#,
        r#"{"type":"ack","channel":"c","seq":1,}"#,
        r#"{"type":"ack","channel":"c","seq":1"#,
        r#"{"type":"ack","channel":"c","seq":"#,
        r#"{"type":"ack","channel":"c"#,
        r#"{"type":"ack""#,
        r#"{"type":"ack"#,
        r#"{"type":"#,
        r#"{"type":"gap","channel":"c","from":1,"to":2}"#,
        r#"{"type":"close","code":1000,"reason":"bye"}"#,
        r#"{"type":"hello","version":1,"positions":[]}"#,
        r#"{"type":"bogus"}"#,
        r#"{"type":1}"#,
        r#"["ack","c",1]"#,
        "",
        "{}",
    ] {
        assert_eq!(fast_str(s), None, "{s}");
    }
}

#[test]
fn seq_limits() {
    let max = format!(r#"{{"type":"ack","channel":"c","seq":{}}}"#, u64::MAX);
    assert_eq!(
        fast_str(&max),
        Some(Frame::Ack(Ack {
            channel: ch("c"),
            seq: u64::MAX
        }))
    );
    let over = format!(
        r#"{{"type":"ack","channel":"c","seq":{}}}"#,
        u128::from(u64::MAX) + 1
    );
    assert_eq!(fast_str(&over), None);
    assert!(codec().decode(&Bytes::from(over)).is_err());
    assert_eq!(
        fast_str(r#"{"type":"ack","channel":"c","seq":0}"#),
        Some(Frame::Ack(Ack {
            channel: ch("c"),
            seq: 0
        }))
    );
}

#[test]
fn id_is_exactly_what_serde_parses() {
    let max = format!(
        r#"{{"type":"message","channel":"c","seq":1,"id":"{}","data":0}}"#,
        u64::MAX
    );
    assert!(matches!(fast_str(&max), Some(Frame::Message(m)) if m.id == MessageId(u64::MAX)));
    // The serde path parses the id string with `str::parse::<u64>`, which takes
    // a `+` and leading zeros; so does the fast path (same function, same string).
    assert!(matches!(
        fast_str(r#"{"type":"message","channel":"c","seq":1,"id":"+007","data":0}"#),
        Some(Frame::Message(m)) if m.id == MessageId(7)
    ));
}

#[test]
fn data_payloads() {
    // `null` is the payload `null`, not "no payload".
    assert_eq!(
        fast_str(r#"{"type":"publish","channel":"c","seq":1,"data":null}"#),
        Some(publish("c", 1, b"null"))
    );
    assert_eq!(
        fast_str(r#"{"type":"publish","channel":"c","seq":1,"data":"x"}"#),
        Some(publish("c", 1, br#""x""#))
    );
    assert_eq!(
        fast_str(r#"{"type":"publish","channel":"c","seq":1,"data":{"a":[1,2]}}"#),
        Some(publish("c", 1, br#"{"a":[1,2]}"#))
    );
    // Inside the payload anything JSON goes, byte for byte: whitespace, escapes, `}`.
    assert_eq!(
        fast_str(
            "{\"type\":\"publish\",\"channel\":\"c\",\"seq\":1,\"data\":{\"a\": [1, \"}\\\"\\u00e9\"]\n}}"
        ),
        Some(publish("c", 1, b"{\"a\": [1, \"}\\\"\\u00e9\"]\n}"))
    );
    // Deeply nested payloads: serde_json skips raw values without a depth limit.
    let deep = format!(
        r#"{{"type":"publish","channel":"c","seq":1,"data":{}{}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    assert!(fast_str(&deep).is_some());
}

#[test]
fn invalid_utf8_is_refused() {
    for s in [
        &b"{\"type\":\"ack\",\"channel\":\"\xff\",\"seq\":1}"[..],
        b"{\"type\":\"ack\",\"channel\":\"a\xc3\",\"seq\":1}",
        b"{\"type\":\"ack\",\"channel\":\"\xed\xa0\x80\",\"seq\":1}",
        b"{\"type\":\"message\",\"channel\":\"c\",\"seq\":1,\"id\":\"1\xff\",\"data\":1}",
        b"{\"type\":\"publish\",\"channel\":\"c\",\"seq\":1,\"data\":\"\xff\"}",
    ] {
        assert_eq!(check(s), None, "{}", String::from_utf8_lossy(s));
        assert!(codec().decode(&Bytes::copy_from_slice(s)).is_err());
    }
}

#[test]
fn channel_length_limit() {
    let at = format!(
        r#"{{"type":"unsubscribe","channel":"{}"}}"#,
        "x".repeat(MAX_CHANNEL_LEN)
    );
    assert!(fast_str(&at).is_some());
    let over = format!(
        r#"{{"type":"unsubscribe","channel":"{}"}}"#,
        "x".repeat(MAX_CHANNEL_LEN + 1)
    );
    assert_eq!(fast_str(&over), None);
    assert!(codec().decode(&Bytes::from(over)).is_err());
}

#[test]
fn decoding_from_a_slice_of_a_larger_buffer() {
    let buf =
        Bytes::from_static(b"xx{\"type\":\"publish\",\"channel\":\"c\",\"seq\":1,\"data\":[7]}yy");
    let frame = buf.slice(2..buf.len() - 2);
    let f = codec().decode_fast(&frame).unwrap();
    assert_eq!(f, publish("c", 1, b"[7]"));
    let p = payload_of(&f).unwrap();
    assert!(frame.as_ptr_range().contains(&p.as_ptr()));
}
