//! RPC frames round-trip through both codecs, and the JSON spelling is the one docs/protocol.md §9 gives.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use tidings_codec::{BinaryCodec, JsonCodec};
use tidings_protocol::{Frame, FrameCodec, RpcCode, RpcFault, RpcFrame, RpcKind};

fn frames() -> Vec<Frame> {
    let kinds = vec![
        RpcKind::Call {
            method: "math.add".into(),
            params: Bytes::from_static(b"[40,2]"),
            deadline_ms: Some(5000),
            credit: 4,
        },
        RpcKind::Call {
            method: "raw".into(),
            params: Bytes::from_static(&[0, 159, 255]),
            deadline_ms: None,
            credit: 0,
        },
        RpcKind::Reply(Ok(Bytes::from_static(b"42"))),
        RpcKind::Reply(Err(RpcFault {
            code: RpcCode::UnknownMethod,
            message: "no method".into(),
            data: None,
        })),
        RpcKind::Reply(Err(RpcFault {
            code: RpcCode::Application,
            message: "room closed".into(),
            data: Some(Bytes::from_static(br#"{"room":"x"}"#)),
        })),
        RpcKind::Item {
            seq: 7,
            payload: Bytes::from_static(br#"{"text":"hi"}"#),
        },
        RpcKind::End,
        RpcKind::Credit { n: 16 },
        RpcKind::Cancel {
            reason: "gone".into(),
        },
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            Frame::Rpc(RpcFrame {
                call: i as u64 + 1,
                kind,
            })
        })
        .collect()
}

#[test]
fn rpc_frames_round_trip_on_both_codecs() {
    let codecs: [&dyn FrameCodec; 2] = [&JsonCodec, &BinaryCodec::new()];
    for codec in codecs {
        for frame in frames() {
            let wire = codec.encode_to_bytes(&frame).unwrap();
            assert_eq!(codec.decode(&wire).unwrap(), frame, "{:?}", codec.kind());
        }
    }
}

#[test]
fn json_rpc_frames_read_as_documented() {
    let json = JsonCodec;
    let decode = |s: &'static str| json.decode(&Bytes::from_static(s.as_bytes())).unwrap();
    assert_eq!(
        decode(r#"{"type":"call","call":1,"method":"m","data":[1,2],"credit":4}"#),
        Frame::Rpc(RpcFrame {
            call: 1,
            kind: RpcKind::Call {
                method: "m".into(),
                params: Bytes::from_static(b"[1,2]"),
                deadline_ms: None,
                credit: 4,
            },
        })
    );
    assert_eq!(
        decode(r#"{"type":"credit","call":3,"n":4}"#),
        Frame::Rpc(RpcFrame {
            call: 3,
            kind: RpcKind::Credit { n: 4 },
        })
    );
    let wire = json
        .encode_to_bytes(&Frame::Rpc(RpcFrame {
            call: 2,
            kind: RpcKind::Reply(Err(RpcFault {
                code: RpcCode::DeadlineExceeded,
                message: "late".into(),
                data: None,
            })),
        }))
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&wire).unwrap();
    assert_eq!(v["type"], "reply");
    assert_eq!(v["call"], 2);
    assert_eq!(v["code"], "deadline_exceeded");
    // Missing fields are typed errors, not panics.
    assert!(
        json.decode(&Bytes::from_static(br#"{"type":"item","call":1}"#))
            .is_err()
    );
    assert!(
        json.decode(&Bytes::from_static(br#"{"type":"end"}"#))
            .is_err()
    );
}

/// Found by the `view_binary` fuzz target: an RPC archive whose credit does
/// not fit in 32 bits passed the zero-copy view and failed only when turned
/// into a frame. The view refuses it, with the decoder's own error.
#[test]
fn a_binary_rpc_credit_over_32_bits_is_refused_by_the_view_and_the_decoder_alike() {
    let input = Bytes::from_static(include_bytes!("fixtures/rpc_credit_over_u32.bin"));
    let decoded = BinaryCodec::new().decode(&input);
    let viewed = BinaryCodec::view(&input).map(|_| ());
    assert!(decoded.is_err(), "{decoded:?}");
    assert_eq!(viewed.err(), decoded.err());
}
