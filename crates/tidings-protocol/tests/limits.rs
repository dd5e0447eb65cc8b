//! Limits: queue full, payload and frame size, subscription count, slow consumers (disconnect and drop-oldest), bounded memory.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use tidings_protocol::{
    ClientEvent, ClientSession, ClientState, CloseCode, ErrorCode, Frame, Limits, ProtocolError,
    Publish, ServerConfig, ServerEvent, ServerState, SessionError, SlowConsumerPolicy,
};

fn payload(n: usize) -> Bytes {
    Bytes::from(vec![b'7'; n]) // a JSON number: sent inline
}

fn timeline(events: &[ClientEvent], channel: &str) -> Vec<(char, u64, u64)> {
    let channel = ch(channel);
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Message(m) if m.channel == channel => Some(('m', m.seq, m.seq)),
            ClientEvent::Gap(g) if g.channel == channel => Some(('g', g.from, g.to)),
            _ => None,
        })
        .collect()
}

/// Checks that `timeline` covers `1..=last` exactly once, in order; returns the number of gaps.
fn assert_covers(timeline: &[(char, u64, u64)], first: u64, last: u64) -> usize {
    let mut next = first;
    for (_, from, to) in timeline {
        assert_eq!(*from, next, "{timeline:?}");
        next = to + 1;
    }
    assert_eq!(next, last + 1, "{timeline:?}");
    timeline.iter().filter(|t| t.0 == 'g').count()
}

#[test]
fn publishing_beyond_max_queued_bytes_is_queue_full() {
    let limits = Limits::default().with_max_queued_bytes(100);
    let mut net = Net::connected(client_config().with_limits(limits), server_config());
    let now = net.now;
    net.client.publish(now, ch("up"), payload(60)).unwrap();
    net.client.publish(now, ch("up"), payload(40)).unwrap();
    let err = net.client.publish(now, ch("up"), payload(1)).unwrap_err();
    assert!(err.is_queue_full(), "{err:?}");
    assert_eq!(
        err,
        SessionError::QueueFull {
            queued: 100,
            limit: 100
        }
    );
    assert_eq!(net.client.unacked_len(), 2);
    assert_eq!(net.client.unacked_bytes(), 100);

    // Once the server acknowledges, there is room again.
    net.pump();
    net.advance(past_ack_delay());
    assert_eq!(net.client.unacked_bytes(), 0);
    net.client.publish(net.now, ch("up"), payload(100)).unwrap();
    assert_eq!(net.hub.published.len(), 2);
}

#[test]
fn queue_full_also_applies_while_disconnected() {
    let limits = Limits::default().with_max_queued_bytes(50);
    let t0 = tidings_protocol::Instant::now();
    let mut c = ClientSession::new(client_config().with_limits(limits), 1, t0);
    c.publish(t0, ch("up"), payload(50)).unwrap();
    assert!(
        c.publish(t0, ch("up"), payload(1))
            .unwrap_err()
            .is_queue_full()
    );
    assert!(
        drain_client(&mut c).is_empty(),
        "nothing is written without a transport"
    );
}

/// Encoded size of a publish of `n` inline bytes on channel "up".
fn publish_frame_len(seq: u64, n: usize) -> usize {
    enc(&Frame::Publish(Publish {
        channel: ch("up"),
        seq,
        payload: payload(n),
    }))
    .len()
}

#[test]
fn a_payload_larger_than_the_max_frame_is_rejected() {
    // Before the first connection the codec is unknown: the payload must fit with room for the envelope.
    let limits = Limits::default().with_max_frame_bytes(256);
    let t0 = tidings_protocol::Instant::now();
    let mut c = ClientSession::new(client_config().with_limits(limits), 1, t0);
    let err = c.publish(t0, ch("up"), payload(257)).unwrap_err();
    assert!(
        matches!(err, SessionError::MessageTooLarge { size, limit: 256 } if size > 257),
        "{err:?}"
    );
    assert!(!err.is_queue_full());
    assert_eq!(c.unacked_len(), 0, "a rejected publish is not queued");
    c.publish(t0, ch("up"), payload(64)).unwrap();

    // Once connected the encoded frame must fit: the largest accepted payload gives
    // a frame of exactly the limit.
    let limits = Limits::default().with_max_frame_bytes(4096);
    let mut net = Net::connected(client_config().with_limits(limits), server_config());
    let overhead = publish_frame_len(1, 1000) - 1000;
    let fits = 4096 - overhead;
    assert_eq!(publish_frame_len(1, fits), 4096);
    let now = net.now;
    assert_eq!(
        net.client
            .publish(now, ch("up"), payload(fits + 1))
            .unwrap_err(),
        SessionError::MessageTooLarge {
            size: 4097,
            limit: 4096
        }
    );
    net.client.publish(now, ch("up"), payload(fits)).unwrap();
    net.pump();
    assert!(net.server_errors.is_empty(), "{:?}", net.server_errors);
    assert_eq!(
        net.hub.published.len(),
        1,
        "a frame of exactly max_frame is accepted by the server"
    );

    // The server's Welcome can lower the limit further.
    let server = server_config().with_limits(Limits::default().with_max_frame_bytes(1024));
    let mut net = Net::connected(client_config(), server);
    let now = net.now;
    let err = net
        .client
        .publish(now, ch("up"), payload(1024))
        .unwrap_err();
    assert!(
        matches!(err, SessionError::MessageTooLarge { limit: 1024, .. }),
        "{err:?}"
    );
}

#[test]
fn a_binary_payload_is_checked_after_base64_expansion() {
    // 3 000 bytes of non-JSON become ~4 000 bytes of base64: the frame would be refused
    // by the server (and closed with 1009), so the client refuses it up front.
    let server = server_config().with_limits(Limits::default().with_max_frame_bytes(3_500));
    let mut net = Net::connected(client_config(), server);
    let now = net.now;
    let err = net
        .client
        .publish(now, ch("up"), Bytes::from(vec![0xff; 3_000]))
        .unwrap_err();
    assert!(
        matches!(err, SessionError::MessageTooLarge { size, limit: 3_500 } if size > 4_000),
        "{err:?}"
    );
}

#[test]
fn an_oversized_input_frame_that_is_not_a_publish_closes_the_server_session_with_1009() {
    // (An oversized publish is refused by name and the session goes on: tests/refusals.rs.)
    let server = server_config().with_limits(Limits::default().with_max_frame_bytes(128));
    let mut net = Net::connected(client_config(), server);
    let now = net.now;
    let big = enc(&Frame::Error(tidings_protocol::ErrorFrame::new(
        ErrorCode::Internal,
        "x".repeat(200),
    )));
    let s = net.server();
    let err = s.handle_input(now, big.clone()).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::FrameTooLarge {
            size: big.len(),
            max: 128
        }
    );
    assert_eq!(err.code(), ErrorCode::FrameTooLarge);
    assert_eq!(s.state(), ServerState::Closed);
    let frames = drain_server(s);
    let [Frame::Error(e), Frame::Close(c)] = &frames[..] else {
        panic!("{frames:?}")
    };
    assert_eq!(e.code, ErrorCode::FrameTooLarge);
    assert_eq!(c.code, CloseCode::TOO_BIG);
    let events = server_events(s);
    assert!(
        matches!(
            &events[..],
            [
                ServerEvent::Disconnect {
                    code: CloseCode::TOO_BIG,
                    ..
                },
                ServerEvent::Closed { .. }
            ]
        ),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| !matches!(e, ServerEvent::Publish { .. })),
        "the frame is not decoded"
    );
}

#[test]
fn an_oversized_message_is_an_explicit_gap_and_is_acked_not_a_reconnect_loop() {
    let limits = Limits::default().with_max_frame_bytes(256);
    let mut net = Net::connected(client_config().with_limits(limits), server_config());
    let now = net.now;
    net.client.subscribe(now, ch("a")).unwrap();
    net.pump();
    net.take_client_events();
    let big = message_frame("a", 1, &"7".repeat(300));
    net.client.handle_input(now, big).unwrap();
    net.client
        .handle_input(now, message_frame("a", 2, "2"))
        .unwrap();
    assert_eq!(net.client.state(), ClientState::Open, "the link stays up");
    let events = net.take_client_events();
    assert!(
        matches!(
            &events[..],
            [
                ClientEvent::Error { code: ErrorCode::FrameTooLarge, .. },
                ClientEvent::Gap(g),
                ClientEvent::Message(m),
            ] if g.from == 1 && g.to == 1 && m.seq == 2
        ),
        "{events:?}"
    );
    // The skipped message is acknowledged like a received one.
    let later = now + ms(1_000);
    net.client.handle_timeout(later);
    let acks: Vec<_> = drain_client(&mut net.client)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Ack(a) => Some(a.seq),
            _ => None,
        })
        .collect();
    assert_eq!(acks, [2]);
}

#[test]
fn an_oversized_control_frame_from_the_server_drops_the_client_transport() {
    let limits = Limits::default().with_max_frame_bytes(256);
    let mut net = Net::connected(client_config().with_limits(limits), server_config());
    net.take_client_events();
    let now = net.now;
    let big = enc(&Frame::Error(tidings_protocol::ErrorFrame::new(
        ErrorCode::Internal,
        "x".repeat(300),
    )));
    let err = net.client.handle_input(now, big.clone()).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::FrameTooLarge {
            size: big.len(),
            max: 256
        }
    );
    assert_eq!(net.client.state(), ClientState::Disconnected);
}

#[test]
fn too_many_subscriptions_get_an_error_frame_and_the_session_continues() {
    let server = server_config().with_limits(Limits::default().with_max_subscriptions(2));
    let mut net = Net::connected(client_config(), server);
    for c in ["a", "b", "c"] {
        let now = net.now;
        net.client.subscribe(now, ch(c)).unwrap();
    }
    net.pump();
    assert!(
        net.s2c
            .iter()
            .any(|f| matches!(f, Frame::Error(e) if e.code == ErrorCode::TooManySubscriptions))
    );
    assert!(net.client_events.iter().any(|e| matches!(
        e,
        ClientEvent::Error {
            code: ErrorCode::TooManySubscriptions,
            ..
        }
    )));
    assert_eq!(net.client.state(), ClientState::Open);
    assert_eq!(net.server().state(), ServerState::Open);
    let mut channels: Vec<String> = net.server().channels().map(|c| c.to_string()).collect();
    channels.sort();
    assert_eq!(channels, ["a", "b"]);
    assert_eq!(net.hub.subscribe_requests.len(), 2);

    net.inject("a", "1");
    net.inject("c", "1");
    net.pump();
    assert_eq!(net.received("a").len(), 1);
    assert!(net.received("c").is_empty());
}

#[test]
fn the_client_enforces_its_own_subscription_limit() {
    let limits = Limits::default().with_max_subscriptions(2);
    let t0 = tidings_protocol::Instant::now();
    let mut c = ClientSession::new(client_config().with_limits(limits), 1, t0);
    c.subscribe(t0, ch("a")).unwrap();
    c.subscribe(t0, ch("b")).unwrap();
    c.subscribe(t0, ch("a")).unwrap(); // already subscribed: fine
    let err = c.subscribe(t0, ch("c")).unwrap_err();
    assert_eq!(
        err,
        SessionError::Protocol(ProtocolError::TooManySubscriptions { max: 2 })
    );
}

fn slow_server(policy: SlowConsumerPolicy, queued: usize, replay: usize) -> ServerConfig {
    server_config().with_slow_consumer(policy).with_limits(
        Limits::default()
            .with_max_queued_bytes(queued)
            .with_replay_buffer_bytes(replay),
    )
}

#[test]
fn a_slow_consumer_is_disconnected_with_4002_and_memory_stays_bounded() {
    const QUEUED: usize = 2_000;
    const REPLAY: usize = 4_000;
    let mut net = Net::connected(
        client_config(),
        slow_server(SlowConsumerPolicy::Disconnect, QUEUED, REPLAY),
    );
    let now = net.now;
    net.client.subscribe(now, ch("a")).unwrap();
    net.pump();
    net.take_server_events();

    // The driver does not drain poll_transmit: the client does not read.
    let mut disconnected_at = None;
    for i in 1..=1_000u64 {
        net.inject("a", &"7".repeat(100));
        let s = net.server.as_ref().unwrap();
        assert!(
            s.queued_bytes() <= QUEUED,
            "message {i}: {} queued",
            s.queued_bytes()
        );
        assert!(
            s.replay_bytes() <= REPLAY,
            "message {i}: {} in replay",
            s.replay_bytes()
        );
        if disconnected_at.is_none() && s.state() == ServerState::Detached {
            disconnected_at = Some(i);
        }
    }
    let at = disconnected_at.unwrap();
    assert!(
        at > 5 && at < 20,
        "disconnected once the queue passed the limit (message {at})"
    );
    let events = server_events(net.server());
    let [ServerEvent::Disconnect { code, reason }] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(*code, CloseCode::SLOW_CONSUMER);
    assert!(reason.contains("slow consumer"), "{reason}");
    assert_eq!(net.server().queued_bytes(), 0);
    assert!(net.server().replay_bytes() > 0);

    // The driver closes the connection; the session stays resumable.
    net.drop_link();
    assert_eq!(net.server().state(), ServerState::Detached);
    assert!(
        net.server().poll_timeout().is_some(),
        "detach starts the resume window"
    );
    net.reconnect();
    assert_eq!(net.server().state(), ServerState::Open);
    let gaps = assert_covers(&timeline(&net.client_events, "a"), 1, 1_000);
    assert!(gaps >= 1, "what the replay buffer lost is an explicit gap");
    assert!(net.server().queued_bytes() <= QUEUED);
}

#[test]
fn drop_oldest_keeps_the_queue_within_the_limit() {
    const QUEUED: usize = 2_000;
    const REPLAY: usize = 1 << 20;
    let mut net = Net::connected(
        client_config(),
        slow_server(SlowConsumerPolicy::DropOldest, QUEUED, REPLAY),
    );
    let now = net.now;
    net.client.subscribe(now, ch("a")).unwrap();
    net.pump();
    net.take_server_events();
    for _ in 0..200 {
        net.inject("a", &"7".repeat(100));
        assert!(net.server().queued_bytes() <= QUEUED);
    }
    assert_eq!(net.server().state(), ServerState::Open);
    assert!(
        server_events(net.server()).is_empty(),
        "no disconnect under drop-oldest"
    );
    net.pump();
    let t = timeline(&net.client_events, "a");
    assert_eq!(t[0].0, 'g', "the dropped frames are an explicit gap: {t:?}");
    assert_covers(&t, 1, 200);
    // The newest messages made it.
    assert_eq!(t.last(), Some(&('m', 200, 200)));
    net.advance(past_ack_delay());
    assert_eq!(
        net.server().replay_bytes(),
        0,
        "the cumulative ack also covers the dropped ones"
    );
}

#[test]
fn drop_oldest_never_sheds_control_frames() {
    // A resume queues Welcome + the replay beyond max_queued_bytes; the next
    // delivery sheds messages, never the Welcome (or the client would fail the
    // handshake and resume into the same state again).
    let mut net = Net::connected(
        client_config(),
        slow_server(SlowConsumerPolicy::DropOldest, 500, 5_000),
    );
    let now = net.now;
    net.client.subscribe(now, ch("a")).unwrap();
    net.pump();
    net.drop_link();
    for _ in 0..20 {
        net.inject("a", &"7".repeat(100));
    }
    net.reconnect_no_pump();
    net.inject("a", "21");
    assert!(net.server().queued_bytes() <= 500);
    net.pump();
    assert!(net.client_errors.is_empty(), "{:?}", net.client_errors);
    assert_eq!(net.client.state(), ClientState::Open);
    let t = timeline(&net.client_events, "a");
    assert_covers(&t, 1, 21);
    assert_eq!(t.last(), Some(&('m', 21, 21)));

    // Subscribed is kept too, even when messages pile up behind it.
    let now = net.now;
    net.client.subscribe(now, ch("b")).unwrap();
    net.step_c2s();
    for _ in 0..20 {
        net.inject("b", &"7".repeat(100));
    }
    net.pump();
    assert!(
        net.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Subscribed { channel, .. } if *channel == ch("b")))
    );
    assert_covers(&timeline(&net.client_events, "b"), 1, 20);
}

proptest! {
    /// Whatever the mix of deliveries, sizes and (partial) draining, a server
    /// session never holds more than its limits, and the client still sees every
    /// message once or an explicit gap.
    #[test]
    fn server_memory_is_bounded_under_any_load(
        steps in proptest::collection::vec((1usize..600, 0usize..4), 1..200),
        drop_oldest in any::<bool>(),
    ) {
        const QUEUED: usize = 3_000;
        const REPLAY: usize = 5_000;
        let policy = if drop_oldest { SlowConsumerPolicy::DropOldest } else { SlowConsumerPolicy::Disconnect };
        let mut net = Net::connected(client_config(), slow_server(policy, QUEUED, REPLAY));
        let now = net.now;
        net.client.subscribe(now, ch("a")).unwrap();
        net.pump();
        for (size, drain) in &steps {
            net.inject("a", &"7".repeat(*size));
            let s = net.server.as_ref().unwrap();
            prop_assert!(s.queued_bytes() <= QUEUED);
            prop_assert!(s.replay_bytes() <= REPLAY);
            prop_assert_ne!(s.state(), ServerState::Closed);
            for _ in 0..*drain {
                net.step_s2c();
            }
            net.run_hub();
            if !net.connected || net.server.as_ref().unwrap().state() == ServerState::Detached {
                net.drop_link();
                net.reconnect_no_pump();
            }
        }
        net.pump();
        if net.server.as_ref().unwrap().state() == ServerState::Detached {
            net.drop_link();
            net.reconnect();
        }
        let last = net.hub.last_seq(&ch("a"));
        let t = timeline(&net.client_events, "a");
        let mut next = 1;
        for (_, from, to) in &t {
            prop_assert_eq!(*from, next);
            next = to + 1;
        }
        prop_assert_eq!(next, last + 1);
    }
}

#[test]
fn a_client_that_pings_without_reading_is_a_slow_consumer() {
    const QUEUED: usize = 2_000;
    let mut net = Net::connected(
        client_config(),
        slow_server(SlowConsumerPolicy::Disconnect, QUEUED, 1_000),
    );
    net.take_server_events();
    let now = net.now;
    let server = net.server();
    let ping = enc(&Frame::Ping(tidings_protocol::Ping { nonce: 1 }));
    let mut disconnected = false;
    for _ in 0..1_000 {
        let _ = server.handle_input(now, ping.clone());
        assert!(
            server.queued_bytes() <= QUEUED,
            "{} bytes of pongs queued",
            server.queued_bytes()
        );
        if server.state() != ServerState::Open {
            disconnected = true;
            break;
        }
    }
    assert!(
        disconnected,
        "pinging without reading must end in a slow-consumer disconnect"
    );
    let events = server_events(server);
    assert!(
        events.iter().any(|e| matches!(e, ServerEvent::Disconnect { code, .. } if *code == CloseCode::SLOW_CONSUMER)),
        "{events:?}"
    );
}
