//! Frames a superseded connection received before the takeover: handled while they still come first, dropped once the new connection spoke.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use tidings_protocol::{
    Close, Frame, FrameCodec, Hello, Instant, PROTOCOL_VERSION, Publish, ResumeToken, ServerEvent,
    ServerSession, ServerState,
};

fn session(now: Instant) -> ServerSession {
    let mut s = accepted_server(now);
    drain_server(&mut s);
    s
}

fn resume(s: &mut ServerSession, now: Instant) -> u64 {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        resume: Some(ResumeToken("t1".into())),
        positions: Vec::new(),
        publisher: None,
    };
    s.resume(now, codec(), &hello)
}

fn publish(seq: u64) -> Bytes {
    enc(&Frame::Publish(Publish {
        channel: ch("c"),
        seq,
        payload: Bytes::from_static(b"1"),
    }))
}

fn published(s: &mut ServerSession) -> Vec<Bytes> {
    server_events(s)
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Publish { payload, .. } => Some(payload),
            _ => None,
        })
        .collect()
}

#[test]
fn late_frames_are_handled_while_the_new_connection_has_said_nothing() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.handle_input(t0, publish(1)).unwrap();
    assert_eq!(published(&mut s).len(), 1);
    assert_eq!(resume(&mut s, t0), 2);
    // The old connection's POST (or socket read) arrives after the takeover.
    let codec = codec();
    assert!(s.handle_late_input(t0, &*codec, publish(2)).unwrap());
    assert_eq!(published(&mut s).len(), 1, "seq 2 reached the session");
    // A resend of it on the new connection is a duplicate: acknowledged, not delivered.
    s.handle_input(t0, publish(2)).unwrap();
    assert!(published(&mut s).is_empty());
    // Once the new connection spoke, a late frame would come out of order: dropped.
    assert!(!s.handle_late_input(t0, &*codec, publish(3)).unwrap());
    assert!(published(&mut s).is_empty());
    s.handle_input(t0, publish(3)).unwrap();
    assert_eq!(published(&mut s).len(), 1);
}

#[test]
fn a_late_close_ends_the_session() {
    let t0 = Instant::now();
    let mut s = session(t0);
    resume(&mut s, t0);
    drain_server(&mut s);
    let close = enc(&Frame::Close(Close {
        code: 1000,
        reason: "done".into(),
    }));
    assert!(s.handle_late_input(t0, &*codec(), close).unwrap());
    assert_eq!(s.state(), ServerState::Closed);
    assert!(
        server_events(&mut s)
            .iter()
            .any(|e| matches!(e, ServerEvent::Closed { .. }))
    );
    // The reply goes out on the new connection.
    assert!(matches!(drain_server(&mut s)[..], [Frame::Close(_)]));
}

#[test]
fn a_late_frame_is_decoded_with_its_own_connections_codec() {
    let t0 = Instant::now();
    let mut s = session(t0);
    resume(&mut s, t0);
    let binary = tidings_codec::BinaryCodec::new();
    let frame = binary.encode_to_bytes(&Frame::Publish(Publish {
        channel: ch("c"),
        seq: 1,
        payload: Bytes::from_static(b"1"),
    }));
    assert!(s.handle_late_input(t0, &binary, frame.unwrap()).unwrap());
    assert_eq!(published(&mut s).len(), 1);
    // A malformed late frame is the protocol error it would have been.
    assert!(
        s.handle_late_input(t0, &*codec(), Bytes::from_static(b"{"))
            .is_err()
    );
    assert_eq!(s.state(), ServerState::Closed);
}
