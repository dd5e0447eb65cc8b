//! Handshake: Hello/Welcome, refusals (version, first frame, size), handshake timeout and a second Welcome.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use tidings_protocol::{
    ClientEvent, ClientSession, ClientState, CloseCode, CodecError, ErrorCode, Frame, FrameType,
    Hello, Limits, PROTOCOL_VERSION, Ping, ProtocolError, ResumeToken, ServerSession, ServerState,
    SessionId, Welcome,
};

fn welcome(resumed: bool) -> Welcome {
    Welcome {
        version: PROTOCOL_VERSION,
        session: SessionId("s".into()),
        resume_token: ResumeToken("t".into()),
        resumed,
        heartbeat_ms: 1_000,
        max_frame: 1 << 20,
        publish_acked: 0,
    }
}

/// A client with a transport up and its `Hello` taken off the queue.
fn handshaking_client() -> (ClientSession, tidings_protocol::Instant) {
    let t0 = tidings_protocol::Instant::now();
    let mut c = ClientSession::new(client_config(), 1, t0);
    assert!(c.wants_connect(t0));
    c.on_connecting();
    assert_eq!(c.state(), ClientState::Connecting);
    c.on_transport_up(t0, codec());
    assert_eq!(c.state(), ClientState::Handshaking);
    let hello = drain_client(&mut c);
    assert!(matches!(&hello[..], [Frame::Hello(_)]));
    (c, t0)
}

#[test]
fn hello_welcome_opens_both_sides() {
    let net = Net::connected(client_config(), server_config());
    assert_eq!(net.client.state(), ClientState::Open);
    assert!(net.client.has_transport());
    let server = net.server.as_ref().unwrap();
    assert_eq!(server.state(), ServerState::Open);
    assert_eq!(server.epoch(), 1);
    assert_eq!(net.client.session_id(), Some(server.id()));

    assert_eq!(
        net.c2s,
        vec![Frame::Hello(Hello {
            version: PROTOCOL_VERSION,
            resume: None,
            positions: vec![],
            publisher: None,
        })]
    );
    let [Frame::Welcome(w)] = &net.s2c[..] else {
        panic!("expected one Welcome, got {:?}", net.s2c)
    };
    assert_eq!(w.version, PROTOCOL_VERSION);
    assert!(!w.resumed);
    assert_eq!(w.heartbeat_ms, 1_000);
    assert_eq!(w.max_frame, 1 << 20);
    assert_eq!(w.publish_acked, 0);
    assert_eq!(&w.session, server.id());
    assert_eq!(&w.resume_token, server.token());

    assert_eq!(
        net.client_events,
        vec![ClientEvent::Connected {
            session: server.id().clone(),
            resumed: false
        }]
    );
    assert!(net.server_events.is_empty());
}

#[test]
fn second_hello_carries_token_and_positions() {
    let mut net = Net::connected(client_config(), server_config());
    net.client.subscribe(net.now, ch("room")).unwrap();
    net.pump();
    net.inject("room", "1");
    net.pump();
    net.drop_link();
    net.reconnect();
    let Some(Frame::Hello(h)) = net.c2s.iter().rev().find(|f| matches!(f, Frame::Hello(_))) else {
        panic!("no second hello")
    };
    assert_eq!(
        h.resume.as_ref(),
        Some(net.server.as_ref().unwrap().token())
    );
    assert_eq!(h.positions.len(), 1);
    assert_eq!(h.positions[0].channel, ch("room"));
    assert_eq!(h.positions[0].seq, 1);
}

#[test]
fn unsupported_version_is_refused_with_error_and_close() {
    let c = codec();
    let hello = enc(&Frame::Hello(Hello {
        version: PROTOCOL_VERSION + 1,
        resume: None,
        positions: vec![],
        publisher: None,
    }));
    let err = ServerSession::read_hello(&*c, &hello, &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnsupportedVersion {
            got: PROTOCOL_VERSION + 1,
            supported: PROTOCOL_VERSION
        }
    );
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
    assert_eq!(err.close_code(), CloseCode::UNSUPPORTED_VERSION);

    let refusal = ServerSession::refusal(&*c, &err);
    let frames: Vec<Frame> = refusal.iter().map(dec).collect();
    let [Frame::Error(e), Frame::Close(close)] = &frames[..] else {
        panic!("{frames:?}")
    };
    assert_eq!(e.code, ErrorCode::UnsupportedVersion);
    assert!(e.message.contains("version"), "{}", e.message);
    assert_eq!(close.code, CloseCode::UNSUPPORTED_VERSION);

    // The client takes the refusal as final: it does not reconnect.
    let (mut client, t0) = handshaking_client();
    for b in refusal {
        client.handle_input(t0, b).unwrap();
    }
    assert_eq!(client.state(), ClientState::Closed);
    let events = client_events(&mut client);
    assert!(
        matches!(
            events[0],
            ClientEvent::Error {
                code: ErrorCode::UnsupportedVersion,
                ..
            }
        ),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(ClientEvent::Closed { .. })),
        "{events:?}"
    );
    assert!(!client.wants_connect(t0 + ms(3_600_000)));
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn first_frame_other_than_hello_is_refused() {
    let c = codec();
    let err = ServerSession::read_hello(
        &*c,
        &enc(&Frame::Ping(Ping { nonce: 1 })),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnexpectedFrame {
            frame: FrameType::Ping,
            state: "awaiting hello"
        }
    );
    let frames: Vec<Frame> = ServerSession::refusal(&*c, &err).iter().map(dec).collect();
    let [Frame::Error(e), Frame::Close(close)] = &frames[..] else {
        panic!("{frames:?}")
    };
    assert_eq!(e.code, ErrorCode::UnexpectedFrame);
    assert_eq!(close.code, CloseCode::PROTOCOL_ERROR);

    // Garbage is refused as malformed.
    let err = ServerSession::read_hello(
        &*c,
        &Bytes::from_static(b"\xff\x00garbage"),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ProtocolError::Codec(CodecError::Malformed { .. })),
        "{err:?}"
    );
    assert_eq!(err.code(), ErrorCode::MalformedFrame);
    assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);

    // An unknown frame type is refused as such.
    let err = ServerSession::read_hello(
        &*c,
        &Bytes::from_static(br#"{"type":"hullo"}"#),
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownFrameType);

    // An oversized Hello is refused before decoding, with 1009.
    let big = enc(&Frame::Hello(Hello {
        version: PROTOCOL_VERSION,
        resume: Some(ResumeToken("x".repeat(500))),
        positions: vec![],
        publisher: None,
    }));
    let limits = Limits::default().with_max_frame_bytes(100);
    let err = ServerSession::read_hello(&*c, &big, &limits).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::FrameTooLarge {
            size: big.len(),
            max: 100
        }
    );
    let frames: Vec<Frame> = ServerSession::refusal(&*c, &err).iter().map(dec).collect();
    assert!(matches!(&frames[..], [Frame::Error(e), Frame::Close(cl)]
        if e.code == ErrorCode::FrameTooLarge && cl.code == CloseCode::TOO_BIG));
}

#[test]
fn handshake_timeout_disconnects_with_backoff() {
    let (mut c, t0) = handshaking_client();
    let deadline = t0 + client_config().handshake_timeout;
    assert_eq!(c.poll_timeout(), Some(deadline));

    c.handle_timeout(deadline - ms(1));
    assert_eq!(c.state(), ClientState::Handshaking);
    assert!(client_events(&mut c).is_empty());

    c.handle_timeout(deadline);
    assert_eq!(c.state(), ClientState::Disconnected);
    assert!(!c.has_transport());
    let events = client_events(&mut c);
    let [ClientEvent::Disconnected { reason, retry_in }] = &events[..] else {
        panic!("{events:?}")
    };
    assert!(reason.contains("handshake"), "{reason}");
    assert!(
        *retry_in <= ms(100),
        "first retry is within the backoff base: {retry_in:?}"
    );
    assert_eq!(c.poll_timeout(), Some(deadline + *retry_in));
    assert!(c.wants_connect(deadline + *retry_in));
    if !retry_in.is_zero() {
        assert!(!c.wants_connect(deadline + *retry_in - std::time::Duration::from_nanos(1)));
    }
    // A Welcome arriving after the driver dropped the transport is ignored.
    c.handle_input(deadline, enc(&Frame::Welcome(welcome(false))))
        .unwrap();
    assert_eq!(c.state(), ClientState::Disconnected);
}

#[test]
fn welcome_twice_is_a_protocol_error() {
    let mut net = Net::connected(client_config(), server_config());
    net.take_client_events();
    let now = net.now;
    let err = net
        .client
        .handle_input(now, enc(&Frame::Welcome(welcome(true))))
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnexpectedFrame {
            frame: FrameType::Welcome,
            state: "open"
        }
    );
    assert_eq!(
        net.client.state(),
        ClientState::Disconnected,
        "not fatal: the client reconnects"
    );
    let events = net.take_client_events();
    assert!(
        matches!(
            &events[..],
            [
                ClientEvent::Error {
                    code: ErrorCode::UnexpectedFrame,
                    ..
                },
                ClientEvent::Disconnected { .. }
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn welcome_with_other_version_closes_the_client_for_good() {
    let (mut c, t0) = handshaking_client();
    let mut w = welcome(false);
    w.version = PROTOCOL_VERSION + 1;
    let err = c.handle_input(t0, enc(&Frame::Welcome(w))).unwrap_err();
    assert!(matches!(err, ProtocolError::UnsupportedVersion { .. }));
    assert_eq!(c.state(), ClientState::Closed);
}

#[test]
fn frames_before_welcome_are_protocol_errors() {
    let (mut c, t0) = handshaking_client();
    let err = c.handle_input(t0, message_frame("a", 1, "1")).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::UnexpectedFrame {
            frame: FrameType::Message,
            state: "handshaking"
        }
    );
    assert_eq!(c.state(), ClientState::Disconnected);
}

#[test]
fn server_sends_nothing_but_welcome_to_a_new_session() {
    let t0 = tidings_protocol::Instant::now();
    let mut s = accepted_server(t0);
    assert_eq!(s.state(), ServerState::Open);
    let frames = drain_server(&mut s);
    assert!(
        matches!(&frames[..], [Frame::Welcome(w)] if !w.resumed && w.session.0 == "s1" && w.resume_token.0 == "t1")
    );
    assert_eq!(s.queued_bytes(), 0);
    assert!(server_events(&mut s).is_empty());
}

#[test]
fn client_close_ends_both_sides() {
    let mut net = Net::connected(client_config(), server_config());
    let now = net.now;
    net.client.close(now, "bye now");
    assert_eq!(net.client.state(), ClientState::Closed);
    net.pump();
    assert!(
        matches!(net.c2s.last(), Some(Frame::Close(c)) if c.code == CloseCode::NORMAL && c.reason == "bye now")
    );
    let server = net.server.as_ref().unwrap();
    assert_eq!(server.state(), ServerState::Closed);
    assert!(
        net.server_events
            .iter()
            .any(|e| matches!(e, tidings_protocol::ServerEvent::Closed { .. }))
    );
    assert!(
        net.client
            .publish(now, ch("a"), Bytes::from_static(b"1"))
            .unwrap_err()
            .is_closed()
    );
}
