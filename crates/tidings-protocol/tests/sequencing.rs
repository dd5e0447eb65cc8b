//! Sequencing: per-channel seq, duplicate drop, gaps, batched cumulative acks, publish acks, publish dedup and ordering.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use tidings_protocol::{
    Ack, ClientConfig, ClientEvent, CloseCode, ErrorCode, Frame, Gap, ProtocolError, Publish,
    PublishAck, ServerConfig, ServerEvent, ServerState,
};

/// Cost the replay buffer charges per message on top of the payload.
const ENTRY_OVERHEAD: usize = 64;

fn client_acking(every: u32, delay_ms: u64) -> ClientConfig {
    let mut c = client_config();
    c.ack_every = every;
    c.ack_delay = ms(delay_ms);
    c
}

fn server_acking(every: u32, delay_ms: u64) -> ServerConfig {
    let mut s = server_config();
    s.ack_every = every;
    s.ack_delay = ms(delay_ms);
    s
}

/// Connected, subscribed to `channels`, first events and frames cleared.
fn net_with(client: ClientConfig, server: ServerConfig, channels: &[&str]) -> Net {
    let mut net = Net::connected(client, server);
    for c in channels {
        let now = net.now;
        net.client.subscribe(now, ch(c)).unwrap();
    }
    net.pump();
    let subscribed: Vec<_> = net
        .take_client_events()
        .into_iter()
        .filter(|e| matches!(e, ClientEvent::Subscribed { .. }))
        .collect();
    assert_eq!(subscribed.len(), channels.len());
    net.take_server_events();
    net.c2s.clear();
    net.s2c.clear();
    net
}

fn acks(frames: &[Frame]) -> Vec<(String, u64)> {
    frames
        .iter()
        .filter_map(|f| {
            if let Frame::Ack(Ack { channel, seq }) = f {
                Some((channel.to_string(), *seq))
            } else {
                None
            }
        })
        .collect()
}

fn publish_acks(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| {
            if let Frame::PublishAck(PublishAck { seq }) = f {
                Some(*seq)
            } else {
                None
            }
        })
        .collect()
}

fn publish_frame(channel: &str, seq: u64, payload: &str) -> Bytes {
    enc(&Frame::Publish(Publish {
        channel: ch(channel),
        seq,
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }))
}

#[test]
fn sequence_numbers_are_per_channel() {
    let mut net = net_with(client_config(), server_config(), &["a", "b"]);
    for (c, p) in [("a", "1"), ("a", "2"), ("b", "1"), ("a", "3"), ("b", "2")] {
        net.inject(c, &format!("\"{c}{p}\""));
    }
    net.pump();
    assert_eq!(
        net.received("a"),
        vec![
            (1, "\"a1\"".into()),
            (2, "\"a2\"".into()),
            (3, "\"a3\"".into())
        ]
    );
    assert_eq!(
        net.received("b"),
        vec![(1, "\"b1\"".into()), (2, "\"b2\"".into())]
    );
    assert!(
        !net.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Gap(_)))
    );
    assert_eq!(net.client.position(&ch("a")), Some(3));
    assert_eq!(net.client.position(&ch("b")), Some(2));
}

#[test]
fn subscription_starts_at_the_channel_position() {
    let mut net = net_with(client_config(), server_config(), &[]);
    net.inject("late", "1");
    net.inject("late", "2");
    let now = net.now;
    net.client.subscribe(now, ch("late")).unwrap();
    net.pump();
    assert_eq!(net.hub.subscribe_requests, vec![(ch("late"), None)]);
    assert!(net.client_events.contains(&ClientEvent::Subscribed {
        channel: ch("late"),
        seq: 2
    }));
    net.inject("late", "3");
    net.pump();
    assert_eq!(net.received("late"), vec![(3, "3".into())]);
    assert!(
        !net.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Gap(_)))
    );
}

#[test]
fn duplicates_are_dropped() {
    let mut net = net_with(client_config(), server_config(), &["a"]);
    let now = net.now;
    for seq in [1, 1, 2, 1, 2, 3, 3] {
        net.client
            .handle_input(now, message_frame("a", seq, &seq.to_string()))
            .unwrap();
    }
    net.collect();
    assert_eq!(
        net.received("a"),
        vec![(1, "1".into()), (2, "2".into()), (3, "3".into())]
    );
}

#[test]
fn a_skipped_seq_gives_a_gap_then_the_message() {
    let mut net = net_with(client_config(), server_config(), &["a"]);
    let now = net.now;
    net.client
        .handle_input(now, message_frame("a", 1, "1"))
        .unwrap();
    net.client
        .handle_input(now, message_frame("a", 4, "4"))
        .unwrap();
    net.client
        .handle_input(now, message_frame("a", 3, "3"))
        .unwrap(); // late: already covered
    net.client
        .handle_input(now, message_frame("a", 5, "5"))
        .unwrap();
    let events = net.take_client_events();
    let seqs: Vec<String> = events
        .iter()
        .map(|e| match e {
            ClientEvent::Message(m) => format!("m{}", m.seq),
            ClientEvent::Gap(g) => format!("gap{}-{}", g.from, g.to),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, ["m1", "gap2-3", "m4", "m5"]);
    assert_eq!(net.client.position(&ch("a")), Some(5));
}

#[test]
fn a_gap_frame_is_reported_and_moves_the_position() {
    let mut net = net_with(client_config(), server_config(), &["a"]);
    let now = net.now;
    net.client
        .handle_input(
            now,
            enc(&Frame::Gap(Gap {
                channel: ch("a"),
                from: 1,
                to: 7,
            })),
        )
        .unwrap();
    net.client
        .handle_input(now, message_frame("a", 8, "8"))
        .unwrap();
    let events = net.take_client_events();
    assert!(
        matches!(&events[..], [ClientEvent::Gap(g), ClientEvent::Message(m)] if g.from == 1 && g.to == 7 && m.seq == 8),
        "{events:?}"
    );
}

#[test]
fn messages_of_other_channels_are_ignored() {
    let mut net = net_with(client_config(), server_config(), &["a"]);
    let now = net.now;
    net.client
        .handle_input(now, message_frame("zzz", 1, "1"))
        .unwrap();
    assert!(net.take_client_events().is_empty());
    // The server does not deliver channels the session did not subscribe to.
    net.inject("zzz", "1");
    net.pump();
    assert!(net.s2c.is_empty());
}

#[test]
fn acks_are_batched_by_count_and_prune_the_replay_buffer() {
    let mut net = net_with(client_acking(4, 60_000), server_config(), &["a"]);
    for i in 1..=3 {
        net.inject("a", &i.to_string());
    }
    net.pump();
    assert_eq!(net.received("a").len(), 3);
    assert!(
        acks(&net.c2s).is_empty(),
        "no ack before 4 messages: {:?}",
        net.c2s
    );
    assert_eq!(net.server().replay_bytes(), 3 * (1 + ENTRY_OVERHEAD));

    net.inject("a", "4");
    net.pump();
    assert_eq!(acks(&net.c2s), vec![("a".into(), 4)], "one cumulative ack");
    assert_eq!(net.server().replay_bytes(), 0);

    for i in 5..=12 {
        net.inject("a", &i.to_string());
    }
    net.pump();
    assert_eq!(
        acks(&net.c2s),
        vec![("a".into(), 4), ("a".into(), 8), ("a".into(), 12)]
    );
    assert_eq!(net.server().replay_bytes(), 0);
}

#[test]
fn acks_are_batched_by_delay() {
    let mut net = net_with(client_acking(64, 20), server_config(), &["a", "b"]);
    let t = net.now;
    net.inject("a", "1");
    net.inject("b", "1");
    net.pump();
    net.inject("a", "2");
    net.pump();
    let before = net.server().replay_bytes();
    assert_eq!(before, 3 * (1 + ENTRY_OVERHEAD));
    assert!(acks(&net.c2s).is_empty());
    assert_eq!(
        net.client.poll_timeout(),
        Some(t + ms(20)),
        "ack timer runs from the first unacked message"
    );

    net.run_until(t + ms(19));
    assert!(acks(&net.c2s).is_empty());
    net.run_until(t + ms(20));
    let mut sent = acks(&net.c2s);
    sent.sort();
    assert_eq!(
        sent,
        vec![("a".into(), 2), ("b".into(), 1)],
        "one ack per channel, cumulative"
    );
    assert_eq!(net.server().replay_bytes(), 0);

    // Nothing new: no further acks, no ack timer.
    net.run_until(t + ms(500));
    assert_eq!(acks(&net.c2s).len(), 2);
}

#[test]
fn replay_bytes_go_down_as_acks_arrive() {
    let mut net = net_with(client_acking(2, 60_000), server_config(), &["a"]);
    let mut observed = Vec::new();
    for i in 1..=6 {
        net.inject("a", &"x".repeat(10 * i));
        observed.push(net.server().replay_bytes());
        net.pump();
        observed.push(net.server().replay_bytes());
    }
    // After odd messages one is held; after even ones the ack pruned everything.
    assert_eq!(observed[1], 10 + ENTRY_OVERHEAD);
    assert_eq!(observed[3], 0);
    assert!(observed[2] > observed[3]);
    assert_eq!(observed[11], 0);
}

#[test]
fn publish_acks_prune_the_unacked_queue() {
    let mut net = net_with(client_config(), server_acking(2, 50), &[]);
    let t = net.now;
    for i in 1..=3 {
        let seq = net
            .client
            .publish(t, ch("up"), Bytes::from(format!("{i}")))
            .unwrap();
        assert_eq!(seq, i);
    }
    assert_eq!(net.client.unacked_len(), 3);
    assert_eq!(net.client.unacked_bytes(), 3);
    net.pump();
    assert_eq!(net.hub_published(), ["1", "2", "3"]);
    assert_eq!(
        publish_acks(&net.s2c),
        vec![2],
        "acked after ack_every publishes"
    );
    assert_eq!(net.client.unacked_len(), 1);
    assert_eq!(net.client.unacked_bytes(), 1);

    net.run_until(t + ms(50));
    assert_eq!(publish_acks(&net.s2c), vec![2, 3], "then after ack_delay");
    assert_eq!(net.client.unacked_len(), 0);
    assert_eq!(net.client.unacked_bytes(), 0);
    let acked: Vec<u64> = net
        .client_events
        .iter()
        .filter_map(|e| {
            if let ClientEvent::PublishAcked { seq } = e {
                Some(*seq)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(acked, vec![2, 3]);
}

#[test]
fn publish_acks_ride_along_with_messages_at_once_when_sparse_else_when_half_due() {
    // Defaults: 64 publishes, 64 KiB or 1 s; riding along from 500 ms on, or
    // at once when the publish came 500 ms or more after the one before.
    let delay = server_config().ack_delay;
    assert_eq!(delay, ms(1_000));
    let mut net = net_with(client_config(), server_config(), &["room"]);
    let publish = |net: &mut Net, body: &str| {
        let now = net.now;
        net.client
            .publish(now, ch("room"), Bytes::from(body.to_owned()))
            .unwrap();
        net.pump();
    };
    // The first publish has nothing before it: its ack goes with its echo.
    publish(&mut net, "1");
    assert_eq!(frame_kinds(&net.s2c), ["message", "publish_ack"]);
    assert_eq!(publish_acks(&net.s2c), vec![1]);

    // Then one every 100 ms: the ack waits until its batch is 500 ms old.
    for i in 2..=6 {
        net.advance(ms(100));
        publish(&mut net, &i.to_string());
    }
    assert_eq!(net.received("room").len(), 6);
    assert_eq!(publish_acks(&net.s2c), vec![1], "publishes 2..=6 wait");
    net.advance(ms(100)); // 600 ms after publish 2
    publish(&mut net, "7");
    assert_eq!(publish_acks(&net.s2c), vec![1, 7], "half due: rides along");
    assert_eq!(
        frame_kinds(&net.s2c).last(),
        Some(&"publish_ack"),
        "in the same turn as message 7"
    );
    assert_eq!(net.client.unacked_len(), 0);

    // Sparse again (600 ms since the last): at once.
    net.advance(ms(600));
    publish(&mut net, "8");
    assert_eq!(publish_acks(&net.s2c), vec![1, 7, 8]);
    assert_eq!(net.received("room").len(), 8);
}

/// The kinds of the message and publish-ack frames among `frames`.
fn frame_kinds(frames: &[Frame]) -> Vec<&'static str> {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Message(_) => Some("message"),
            Frame::PublishAck(_) => Some("publish_ack"),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publish_ack_with_nothing_to_ride_on_goes_out_after_the_delay() {
    let delay = server_config().ack_delay;
    let mut net = net_with(client_config(), server_config(), &[]);
    let t = net.now;
    net.client
        .publish(t, ch("up"), Bytes::from_static(b"1"))
        .unwrap();
    net.pump();
    assert_eq!(net.hub_published(), ["1"]);
    net.run_until(t + delay - ms(1));
    assert_eq!(publish_acks(&net.s2c), Vec::<u64>::new());
    net.run_until(t + delay);
    assert_eq!(publish_acks(&net.s2c), vec![1]);
    assert_eq!(net.client.unacked_len(), 0);
}

#[test]
fn large_publishes_are_acknowledged_by_their_bytes() {
    let mut server = server_config();
    server.ack_bytes = 1000;
    let mut net = net_with(client_config(), server, &[]);
    let t = net.now;
    let big = Bytes::from(format!("\"{}\"", "x".repeat(398)));
    for _ in 0..2 {
        net.client.publish(t, ch("up"), big.clone()).unwrap();
    }
    net.pump();
    assert_eq!(
        publish_acks(&net.s2c),
        Vec::<u64>::new(),
        "800 bytes pending"
    );
    net.client.publish(t, ch("up"), big).unwrap();
    net.pump();
    assert_eq!(
        publish_acks(&net.s2c),
        vec![3],
        "1,200 bytes: acked at once"
    );
    assert_eq!(net.client.unacked_bytes(), 0);
}

#[test]
fn a_client_receives_its_own_publish_on_a_subscribed_channel() {
    let mut net = net_with(client_config(), server_config(), &["room"]);
    let now = net.now;
    net.client
        .publish(now, ch("room"), Bytes::from_static(b"{\"hi\":1}"))
        .unwrap();
    net.pump();
    assert_eq!(net.received("room"), vec![(1, "{\"hi\":1}".into())]);
}

#[test]
fn the_server_drops_a_resent_publish() {
    let mut net = net_with(client_config(), server_acking(64, 50), &[]);
    let now = net.now;
    let server = net.server();
    server
        .handle_input(now, publish_frame("up", 1, "1"))
        .unwrap();
    server
        .handle_input(now, publish_frame("up", 2, "2"))
        .unwrap();
    server
        .handle_input(now, publish_frame("up", 1, "1"))
        .unwrap();
    server
        .handle_input(now, publish_frame("up", 2, "2"))
        .unwrap();
    server
        .handle_input(now, publish_frame("up", 3, "3"))
        .unwrap();
    let events = server_events(server);
    let payloads: Vec<&[u8]> = events
        .iter()
        .map(|e| match e {
            ServerEvent::Publish { payload, .. } => &payload[..],
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(payloads, [b"1", b"2", b"3"]);
    assert_eq!(server.state(), ServerState::Open);
    // A resend is acknowledged again (the client may have lost the first ack).
    server.handle_timeout(now + ms(50));
    assert_eq!(publish_acks(&drain_server(server)), vec![3]);
}

#[test]
fn a_publish_that_skips_a_seq_is_a_protocol_error() {
    let mut net = net_with(client_config(), server_config(), &["a"]);
    let now = net.now;
    let server = net.server();
    server
        .handle_input(now, publish_frame("up", 1, "1"))
        .unwrap();
    let err = server
        .handle_input(now, publish_frame("up", 3, "3"))
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::PublishOutOfOrder {
            expected: 2,
            got: 3
        }
    );
    assert_eq!(server.state(), ServerState::Closed);

    let frames = drain_server(server);
    let [.., Frame::Error(e), Frame::Close(c)] = &frames[..] else {
        panic!("{frames:?}")
    };
    assert_eq!(e.code, ErrorCode::UnexpectedFrame);
    assert!(e.message.contains("expected 2"), "{}", e.message);
    assert_eq!(c.code, CloseCode::PROTOCOL_ERROR);

    let events = server_events(server);
    assert!(
        matches!(
            &events[..],
            [
                ServerEvent::Publish { .. },
                ServerEvent::Disconnect {
                    code: CloseCode::PROTOCOL_ERROR,
                    ..
                },
                ServerEvent::Closed { .. },
            ]
        ),
        "{events:?}"
    );

    // A closed session ignores further input and delivers nothing.
    server
        .handle_input(now, publish_frame("up", 2, "2"))
        .unwrap();
    assert!(server_events(server).is_empty());
    net.inject("a", "1");
    assert!(drain_server(net.server()).is_empty());
    assert_eq!(net.server().replay_bytes(), 0);
}

#[test]
fn the_client_ends_the_session_on_a_protocol_error_close() {
    // Through the harness: the server's Error + Close reach the client, which stops for good.
    let mut net = net_with(client_config(), server_config(), &[]);
    let now = net.now;
    // Inject a bad publish as if the client had sent it.
    net.server()
        .handle_input(now, publish_frame("up", 2, "x"))
        .unwrap_err();
    net.run_hub();
    net.pump();
    let events = net.take_client_events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            ClientEvent::Error {
                code: ErrorCode::UnexpectedFrame,
                ..
            }
        )),
        "{events:?}"
    );
    assert!(
        matches!(events.last(), Some(ClientEvent::Closed { .. })),
        "{events:?}"
    );
    assert_eq!(net.client.state(), tidings_protocol::ClientState::Closed);
    assert!(!net.connected);
}

#[test]
fn a_channel_restarted_below_the_seen_position_is_reported_not_hidden() {
    use tidings_protocol::{ResumeToken, SessionId, Subscribed, Welcome};
    let t0 = tidings_protocol::Instant::now();
    let mut c =
        tidings_protocol::ClientSession::new(tidings_protocol::ClientConfig::default(), 1, t0);
    let welcome = |resumed| {
        enc(&Frame::Welcome(Welcome {
            version: 1,
            session: SessionId("s".into()),
            resume_token: ResumeToken("t".into()),
            resumed,
            heartbeat_ms: 15_000,
            max_frame: 1 << 20,
            publish_acked: 0,
        }))
    };
    let subscribed = |seq| {
        enc(&Frame::Subscribed(Subscribed {
            channel: ch("a"),
            seq,
        }))
    };
    c.on_connecting();
    c.on_transport_up(t0, codec());
    c.handle_input(t0, welcome(false)).unwrap();
    c.subscribe(t0, ch("a")).unwrap();
    c.handle_input(t0, subscribed(10)).unwrap();
    c.on_transport_down(t0, "server restarted");
    let later = t0 + ms(60_000);
    assert!(c.wants_connect(later));
    c.on_connecting();
    c.on_transport_up(later, codec());
    c.handle_input(later, welcome(false)).unwrap();
    // The restarted server's channel starts again at 0.
    c.handle_input(later, subscribed(0)).unwrap();
    let events = client_events(&mut c);
    assert!(
        events.iter().any(|e| matches!(e, ClientEvent::ChannelReset { channel, seen: 10 } if channel.as_str() == "a")),
        "{events:?}"
    );
    c.handle_input(later, message_frame("a", 1, "1")).unwrap();
    let events = client_events(&mut c);
    assert!(
        matches!(&events[..], [ClientEvent::Message(m)] if m.seq == 1),
        "{events:?}"
    );
}
