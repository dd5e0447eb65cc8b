//! Resume: what a dropped client missed is re-sent exactly once, publishes are not lost or doubled, overflow is an explicit gap.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use tidings_protocol::{
    ClientConfig, ClientEvent, ClientState, Frame, Limits, ServerConfig, ServerState,
};

const ENTRY_OVERHEAD: usize = 64;

fn publish(net: &mut Net, channel: &str, payload: &str) -> u64 {
    let now = net.now;
    net.client
        .publish(now, ch(channel), Bytes::copy_from_slice(payload.as_bytes()))
        .unwrap()
}

fn subscribe(net: &mut Net, channel: &str) {
    let now = net.now;
    net.client.subscribe(now, ch(channel)).unwrap();
}

/// Index of the last frame of a kind in a log.
fn frames_since_last_hello(frames: &[Frame]) -> &[Frame] {
    let i = frames
        .iter()
        .rposition(|f| matches!(f, Frame::Hello(_)))
        .unwrap();
    &frames[i..]
}

fn frames_since_last_welcome(frames: &[Frame]) -> &[Frame] {
    let i = frames
        .iter()
        .rposition(|f| matches!(f, Frame::Welcome(_)))
        .unwrap();
    &frames[i..]
}

fn message_seqs(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| {
            if let Frame::Message(m) = f {
                Some(m.seq)
            } else {
                None
            }
        })
        .collect()
}

fn publish_seqs(frames: &[Frame]) -> Vec<(u64, String)> {
    frames
        .iter()
        .filter_map(|f| {
            if let Frame::Publish(p) = f {
                Some((p.seq, String::from_utf8(p.payload.to_vec()).unwrap()))
            } else {
                None
            }
        })
        .collect()
}

/// Message / gap events of `channel` as `m<seq>` / `gap<from>-<to>`.
fn timeline(events: &[ClientEvent], channel: &str) -> Vec<String> {
    let channel = ch(channel);
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Message(m) if m.channel == channel => Some(format!("m{}", m.seq)),
            ClientEvent::Gap(g) if g.channel == channel => Some(format!("gap{}-{}", g.from, g.to)),
            _ => None,
        })
        .collect()
}

#[test]
fn resume_resends_exactly_what_was_missed_and_publishes_once() {
    let mut net = Net::connected(client_config(), server_config());
    subscribe(&mut net, "a");
    net.pump();
    for i in 1..=5 {
        net.inject("a", &format!("\"m{i}\""));
    }
    publish(&mut net, "up", "\"p1\"");
    publish(&mut net, "up", "\"p2\"");
    net.pump();
    assert_eq!(net.received("a").len(), 5);
    assert_eq!(net.hub_published(), ["\"p1\"", "\"p2\""]);

    // Mid-way: p3 reaches the server, p4 does not; message 6 reaches the client, 7 does not.
    publish(&mut net, "up", "\"p3\"");
    publish(&mut net, "up", "\"p4\"");
    assert!(net.step_c2s());
    net.inject("a", "\"m6\"");
    net.inject("a", "\"m7\"");
    // The server's queue: possibly a PublishAck, then m6, m7. Deliver up to m6.
    while net.received("a").len() < 6 {
        assert!(net.step_s2c());
    }
    net.drop_link();
    assert_eq!(net.server().state(), ServerState::Detached);
    assert_eq!(net.client.state(), ClientState::Disconnected);

    // The hub keeps delivering to the detached session.
    for i in 8..=10 {
        net.inject("a", &format!("\"m{i}\""));
    }
    assert_eq!(
        net.server().queued_bytes(),
        0,
        "nothing queued for a detached session"
    );
    assert!(net.server().replay_bytes() > 0);

    net.reconnect();
    let hello = frames_since_last_hello(&net.c2s);
    let Frame::Hello(h) = &hello[0] else {
        unreachable!()
    };
    assert_eq!(
        h.resume.as_ref(),
        Some(net.server.as_ref().unwrap().token())
    );
    assert_eq!(h.positions.len(), 1);
    assert_eq!(h.positions[0].seq, 6);

    let Frame::Welcome(w) = &frames_since_last_welcome(&net.s2c)[0] else {
        unreachable!()
    };
    assert!(w.resumed);
    assert_eq!(w.publish_acked, 3, "the server had p1..p3");
    assert_eq!(
        message_seqs(frames_since_last_welcome(&net.s2c)),
        vec![7, 8, 9, 10]
    );
    assert!(
        !frames_since_last_welcome(&net.s2c)
            .iter()
            .any(|f| matches!(f, Frame::Gap(_)))
    );
    assert_eq!(
        publish_seqs(hello),
        vec![(4, "\"p4\"".into())],
        "only the unacked publish is re-sent"
    );
    assert!(
        !hello.iter().any(|f| matches!(f, Frame::Subscribe(_))),
        "a resumed session keeps its subscriptions"
    );

    assert_eq!(
        net.received("a").iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let payloads: Vec<String> = net.received("a").into_iter().map(|r| r.1).collect();
    assert_eq!(
        payloads,
        (1..=10).map(|i| format!("\"m{i}\"")).collect::<Vec<_>>()
    );
    assert_eq!(
        net.hub_published(),
        ["\"p1\"", "\"p2\"", "\"p3\"", "\"p4\""]
    );
    assert!(
        net.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Connected { resumed: true, .. }))
    );
    assert!(
        !net.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Gap(_)))
    );

    net.advance(past_ack_delay());
    assert_eq!(net.client.unacked_len(), 0);
    assert_eq!(net.server().replay_bytes(), 0);
}

#[test]
fn publishes_made_while_disconnected_are_sent_after_resume() {
    let mut net = Net::connected(client_config(), server_config());
    publish(&mut net, "up", "1");
    net.pump();
    net.drop_link();
    assert_eq!(publish(&mut net, "up", "2"), 2);
    assert_eq!(publish(&mut net, "up", "3"), 3);
    assert_eq!(
        net.client.unacked_len(),
        3,
        "p1 is not acknowledged yet either"
    );
    net.reconnect();
    assert_eq!(net.hub_published(), ["1", "2", "3"]);
    net.advance(past_ack_delay());
    assert_eq!(net.client.unacked_len(), 0);
}

#[test]
fn dropping_during_the_handshake_loses_nothing() {
    let mut net = Net::connected(client_config(), server_config());
    subscribe(&mut net, "a");
    net.pump();
    net.inject("a", "1");
    net.pump();
    net.drop_link();
    net.inject("a", "2");
    publish(&mut net, "up", "p");
    // Reconnect: Hello reaches the server, which resumes and queues Welcome + replay,
    // but the link drops before the client reads any of it.
    net.reconnect_no_pump();
    net.drop_link();
    net.inject("a", "3");
    net.reconnect();
    assert_eq!(timeline(&net.client_events, "a"), ["m1", "m2", "m3"]);
    assert_eq!(net.hub_published(), ["p"]);
}

#[test]
fn an_overflowed_replay_buffer_yields_an_explicit_gap() {
    let budget = 3 * (2 + ENTRY_OVERHEAD);
    let server = server_config().with_limits(Limits::default().with_replay_buffer_bytes(budget));
    let mut net = Net::connected(client_config(), server);
    subscribe(&mut net, "a");
    net.pump();
    net.inject("a", "01");
    net.inject("a", "02");
    net.pump();
    net.advance(past_ack_delay()); // acked: the buffer is empty
    assert_eq!(net.server().replay_bytes(), 0);
    net.drop_link();
    for i in 3..=10 {
        net.inject("a", &format!("{i:02}"));
        assert!(
            net.server().replay_bytes() <= budget,
            "the replay buffer stays within its budget"
        );
    }
    net.reconnect();
    let after = frames_since_last_welcome(&net.s2c);
    assert!(
        matches!(&after[1], Frame::Gap(g) if g.from == 3 && g.to == 7),
        "{after:?}"
    );
    assert_eq!(message_seqs(after), vec![8, 9, 10]);
    assert_eq!(
        timeline(&net.client_events, "a"),
        ["m1", "m2", "gap3-7", "m8", "m9", "m10"]
    );
}

#[test]
fn everything_evicted_is_still_an_explicit_gap() {
    let budget = 2 + ENTRY_OVERHEAD;
    let server = server_config().with_limits(Limits::default().with_replay_buffer_bytes(budget));
    let mut net = Net::connected(client_config(), server);
    subscribe(&mut net, "a");
    subscribe(&mut net, "b");
    net.pump();
    net.drop_link();
    net.inject("a", "a1");
    net.inject("a", "a2");
    net.inject("b", "b1"); // evicts all of "a"
    net.reconnect();
    assert_eq!(timeline(&net.client_events, "a"), ["gap1-2"]);
    assert_eq!(timeline(&net.client_events, "b"), ["m1"]);
    net.inject("a", "a3");
    net.pump();
    assert_eq!(timeline(&net.client_events, "a"), ["gap1-2", "m3"]);
}

#[test]
fn an_unknown_token_starts_a_new_session_renumbers_and_resubscribes() {
    let server = server_config().with_resume_window(ms(1_000));
    let mut net = Net::connected(client_config(), server);
    subscribe(&mut net, "a");
    net.pump();
    for i in 1..=3 {
        net.inject("a", &i.to_string());
    }
    publish(&mut net, "up", "p1");
    net.pump();
    net.advance(past_ack_delay());
    assert_eq!(net.client.unacked_len(), 0);
    publish(&mut net, "up", "p2");
    publish(&mut net, "up", "p3");
    net.drop_link(); // p2, p3 never left the client

    // The server forgets the session; the hub keeps history of channel "a".
    net.advance(ms(1_000));
    assert_eq!(net.server().state(), ServerState::Closed);
    net.inject("a", "4");
    net.inject("a", "5");
    net.c2s.clear();
    net.reconnect();

    let events = net.take_client_events();
    assert!(
        events.iter().any(|e| matches!(e, ClientEvent::Connected { resumed: false, session } if session.0 == "session-2")),
        "{events:?}"
    );
    let Frame::Hello(h) = &net.c2s[0] else {
        panic!()
    };
    assert_eq!(
        h.resume.as_ref().map(|t| t.0.as_str()),
        Some("token-1"),
        "the stale token was presented"
    );
    assert!(
        net.c2s.iter().any(
            |f| matches!(f, Frame::Subscribe(s) if s.channel == ch("a") && s.after == Some(3))
        )
    );
    assert_eq!(
        publish_seqs(&net.c2s),
        vec![(1, "p2".into()), (2, "p3".into())],
        "pending publishes renumbered from 1"
    );
    assert_eq!(net.hub.subscribe_requests.last(), Some(&(ch("a"), Some(3))));
    assert_eq!(net.hub_published(), ["p1", "p2", "p3"]);
    // History served the backlog: nothing lost, nothing doubled.
    let mut all = net.received("a");
    all.extend(events.iter().filter_map(|e| match e {
        ClientEvent::Message(m) => Some((m.seq, String::from_utf8(m.payload.to_vec()).unwrap())),
        _ => None,
    }));
    all.sort();
    all.dedup();
    assert_eq!(
        all.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert!(!events.iter().any(|e| matches!(e, ClientEvent::Gap(_))));

    // New publishes continue the new numbering.
    assert_eq!(publish(&mut net, "up", "p4"), 3);
    net.pump();
    assert_eq!(net.hub_published(), ["p1", "p2", "p3", "p4"]);
}

#[test]
fn a_new_session_without_history_reports_the_hole_as_a_gap() {
    let server = server_config().with_resume_window(ms(1_000));
    let mut net = Net::connected(client_config(), server);
    net.hub.history = false;
    subscribe(&mut net, "a");
    net.pump();
    net.inject("a", "1");
    net.pump();
    net.drop_link();
    net.advance(ms(1_000));
    net.inject("a", "2");
    net.inject("a", "3");
    net.reconnect();
    net.inject("a", "4");
    net.pump();
    assert_eq!(timeline(&net.client_events, "a"), ["m1", "gap2-3", "m4"]);
}

#[test]
fn subscribe_while_disconnected_takes_effect_after_resume() {
    let mut net = Net::connected(client_config(), server_config());
    subscribe(&mut net, "a");
    net.pump();
    net.drop_link();
    subscribe(&mut net, "b");
    net.reconnect();
    net.inject("b", "1");
    net.pump();
    assert_eq!(
        timeline(&net.client_events, "b"),
        ["m1"],
        "client frames: {:?}",
        net.c2s
    );
}

#[test]
fn a_subscription_confirmed_only_after_the_drop_is_not_a_hole() {
    // Subscribe reaches the server, but the link drops before Subscribed reaches the client.
    let mut net = Net::connected(client_config(), server_config());
    net.inject("a", "1");
    net.inject("a", "2");
    subscribe(&mut net, "a");
    assert!(net.step_c2s());
    net.drop_link();
    net.inject("a", "3");
    net.reconnect();
    net.inject("a", "4");
    net.pump();
    assert_eq!(
        timeline(&net.client_events, "a"),
        ["m3", "m4"],
        "s2c: {:?}",
        net.s2c
    );
}

#[test]
fn a_resumed_session_re_sends_to_a_client_that_switched_codec_instance() {
    // `resume` takes the new connection's codec; shared messages are encoded once per codec kind.
    let mut net = Net::connected(client_config(), server_config());
    subscribe(&mut net, "a");
    net.pump();
    net.drop_link();
    net.inject("a", "{\"k\":[1,2,3]}");
    net.reconnect();
    assert_eq!(net.received("a"), vec![(1, "{\"k\":[1,2,3]}".into())]);
}

// ---------------------------------------------------------------------------------
// Property: random interleavings of publishes, deliveries, subscriptions, partial
// pumps, time and disconnect/reconnect points.

#[derive(Clone, Debug)]
enum Op {
    /// The client publishes on `CHANNELS[i % 5]` (subscribed ones are echoed back; "up" never is).
    Publish(u8),
    /// Another node publishes on `CHANNELS[i % 4]`.
    Inject(u8),
    /// The client subscribes to "c" or "d" (initially unsubscribed).
    Subscribe(u8),
    /// Pump until quiet.
    Pump,
    /// Move up to `n` frames client → server.
    C2s(u8),
    /// Move up to `n` frames server → client.
    S2c(u8),
    /// Time passes (acks are flushed by their timers).
    Advance(u8),
    /// The link breaks.
    Drop,
    /// The link breaks with up to `n` server frames in flight (sent, never received).
    CutInFlight(u8),
    /// The client reconnects (at its retry time); nothing is pumped yet.
    Reconnect,
    /// The server forgets the session (resume window over, or a restart).
    Expire,
    /// A publish the server already received arrives again (network duplicate,
    /// or a late frame of an old connection).
    Duplicate(u8),
}

fn op(expire: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u8>().prop_map(Op::Publish),
        8 => any::<u8>().prop_map(Op::Inject),
        1 => any::<u8>().prop_map(Op::Subscribe),
        4 => Just(Op::Pump),
        6 => (1u8..6).prop_map(Op::C2s),
        6 => (1u8..6).prop_map(Op::S2c),
        2 => (1u8..40).prop_map(Op::Advance),
        2 => Just(Op::Drop),
        2 => (1u8..6).prop_map(Op::CutInFlight),
        4 => Just(Op::Reconnect),
        // A lost session may re-deliver publishes, so duplicates are only injected
        // where exactly-once is asserted.
        2 => any::<u8>().prop_map(move |i| if expire { Op::Expire } else { Op::Duplicate(i) }),
    ]
}

const CHANNELS: [&str; 5] = ["a", "b", "c", "d", "up"];

struct Run {
    net: Net,
    published: Vec<(String, String)>,
    counter: u32,
    expired: bool,
}

impl Run {
    fn new(replay_budget: usize, client_ack_every: u32, server_ack_every: u32) -> Self {
        Self::with_mode(replay_budget, client_ack_every, server_ack_every, false)
    }

    /// `frame_mode`: reconnects resume by frame number, as over SSE (see `Net::frame_mode`).
    fn with_mode(
        replay_budget: usize,
        client_ack_every: u32,
        server_ack_every: u32,
        frame_mode: bool,
    ) -> Self {
        let mut client = ClientConfig::default().with_backoff(ms(10), ms(100));
        client.ack_every = client_ack_every;
        client.ack_delay = ms(15);
        let mut server = ServerConfig::default()
            .with_heartbeat(ms(3_600_000))
            .with_resume_window(ms(3_600_000))
            .with_limits(Limits::default().with_replay_buffer_bytes(replay_budget));
        server.ack_every = server_ack_every;
        server.ack_delay = ms(15);
        let mut net = Net::new(client, server);
        net.frame_mode = frame_mode;
        net.connect();
        for c in ["a", "b"] {
            subscribe(&mut net, c);
        }
        net.pump();
        Self {
            net,
            published: Vec::new(),
            counter: 0,
            expired: false,
        }
    }

    fn apply(&mut self, op: &Op) {
        let net = &mut self.net;
        match *op {
            Op::Publish(i) => {
                self.counter += 1;
                let channel = CHANNELS[usize::from(i) % 5];
                let payload = format!("\"p{}\"", self.counter);
                publish(net, channel, &payload);
                self.published.push((channel.to_string(), payload));
            }
            Op::Inject(i) => {
                self.counter += 1;
                net.inject(
                    CHANNELS[usize::from(i) % 4],
                    &format!("\"x{}\"", self.counter),
                );
            }
            Op::Subscribe(i) => subscribe(net, ["c", "d"][usize::from(i) % 2]),
            Op::Pump => net.pump(),
            Op::C2s(n) => {
                for _ in 0..n {
                    net.step_c2s();
                }
            }
            Op::S2c(n) => {
                for _ in 0..n {
                    net.step_s2c();
                }
            }
            Op::Advance(n) => net.advance(ms(u64::from(n))),
            Op::Drop => net.drop_link(),
            Op::CutInFlight(n) => net.cut_in_flight(usize::from(n)),
            Op::Reconnect => {
                if !net.connected {
                    net.reconnect_no_pump();
                }
            }
            Op::Duplicate(i) => {
                let sent: Vec<Frame> = net
                    .c2s
                    .iter()
                    .filter(|f| matches!(f, Frame::Publish(_)))
                    .cloned()
                    .collect();
                if net.connected && !sent.is_empty() {
                    let frame = enc(&sent[usize::from(i) % sent.len()]);
                    let now = net.now;
                    net.server().handle_input(now, frame).unwrap();
                    net.run_hub();
                }
            }
            Op::Expire => {
                net.drop_link();
                net.server = None;
                self.expired = true;
            }
        }
    }

    fn settle(&mut self) {
        let net = &mut self.net;
        if !net.connected {
            net.reconnect_no_pump();
        }
        net.pump();
        net.advance(ms(100));
        assert!(net.connected);
        assert_eq!(net.client.state(), ClientState::Open);
    }

    /// From the moment a channel's subscription is confirmed (`Subscribed`), every
    /// hub message of it reached the app exactly once and in order, or is covered by
    /// a Gap event at its place; a re-confirmation never skips or rewinds. Returns
    /// the number of gaps.
    fn check_deliveries(&self) -> Result<usize, TestCaseError> {
        let mut gaps = 0;
        for c in ["a", "b", "c", "d"] {
            let channel = ch(c);
            let history = self.net.hub.history(&channel);
            let mut next: Option<u64> = None;
            for e in &self.net.client_events {
                match e {
                    ClientEvent::Subscribed { channel: sc, seq } if *sc == channel => {
                        if let Some(n) = next {
                            prop_assert_eq!(
                                *seq + 1,
                                n,
                                "channel {}: re-subscription moved the position",
                                c
                            );
                        }
                        next = Some(*seq + 1);
                    }
                    ClientEvent::Message(m) if m.channel == channel => {
                        let Some(n) = next.as_mut() else {
                            return Err(TestCaseError::fail(format!(
                                "channel {c}: message before Subscribed"
                            )));
                        };
                        prop_assert_eq!(m.seq, *n, "channel {}: out of order or duplicate", c);
                        let expected = &history[usize::try_from(m.seq - 1).unwrap()];
                        prop_assert_eq!(&m.payload, &expected.message().payload);
                        prop_assert_eq!(m.id, expected.message().id);
                        *n += 1;
                    }
                    ClientEvent::Gap(g) if g.channel == channel => {
                        let Some(n) = next.as_mut() else {
                            return Err(TestCaseError::fail(format!(
                                "channel {c}: gap before Subscribed"
                            )));
                        };
                        prop_assert_eq!(
                            g.from,
                            *n,
                            "channel {}: gap does not start at the hole",
                            c
                        );
                        prop_assert!(g.to >= g.from);
                        *n = g.to + 1;
                        gaps += 1;
                    }
                    _ => {}
                }
            }
            let wanted = c == "a"
                || c == "b"
                || self
                    .net
                    .hub
                    .subscribe_requests
                    .iter()
                    .any(|(s, _)| *s == channel)
                || self
                    .net
                    .c2s
                    .iter()
                    .any(|f| matches!(f, Frame::Subscribe(s) if s.channel == channel));
            if wanted {
                prop_assert_eq!(
                    next,
                    Some(history.len() as u64 + 1),
                    "channel {}: messages missing at the end",
                    c
                );
            }
        }
        Ok(gaps)
    }

    fn hub_published(&self) -> Vec<(String, String)> {
        self.net
            .hub
            .published
            .iter()
            .map(|(c, p)| (c.to_string(), String::from_utf8(p.to_vec()).unwrap()))
            .collect()
    }

    fn check_publishes_exactly_once(&self) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            &self.hub_published(),
            &self.published,
            "every publish reaches the hub exactly once, in order"
        );
        prop_assert_eq!(self.net.client.unacked_len(), 0);
        prop_assert_eq!(self.net.client.unacked_bytes(), 0);
        Ok(())
    }

    /// Across a lost session publishes are at least once; first arrivals keep the client's order.
    fn check_publishes_at_least_once(&self) -> Result<(), TestCaseError> {
        let mut seen = std::collections::HashSet::new();
        let first: Vec<_> = self
            .hub_published()
            .into_iter()
            .filter(|p| seen.insert(p.clone()))
            .collect();
        prop_assert_eq!(&first, &self.published);
        prop_assert_eq!(self.net.client.unacked_len(), 0);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn resume_delivers_everything_exactly_once_or_reports_a_gap(
        ops in proptest::collection::vec(op(false), 0..150),
        small_buffer in any::<bool>(),
        client_ack_every in 1u32..6,
        server_ack_every in 1u32..4,
    ) {
        let budget = if small_buffer { 3 * (6 + ENTRY_OVERHEAD) } else { 1 << 20 };
        let mut run = Run::new(budget, client_ack_every, server_ack_every);
        for op in &ops {
            run.apply(op);
            let server = run.net.server.as_ref().unwrap();
            prop_assert!(server.replay_bytes() <= budget);
            prop_assert_ne!(server.state(), ServerState::Closed);
        }
        run.settle();
        let gaps = run.check_deliveries()?;
        if !small_buffer {
            prop_assert_eq!(gaps, 0, "a large enough replay buffer never loses anything");
        }
        run.check_publishes_exactly_once()?;
        // Every reconnect resumed the one session.
        prop_assert_eq!(run.net.server.as_ref().unwrap().id().0.as_str(), "session-1");
        let fresh_sessions = run
            .net
            .client_events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Connected { resumed: false, .. }))
            .count();
        prop_assert_eq!(fresh_sessions, 1);
        prop_assert!(run.net.server_errors.is_empty(), "{:?}", run.net.server_errors);
        prop_assert!(run.net.client_errors.is_empty(), "{:?}", run.net.client_errors);
    }

    /// The same over a stream that resumes by frame number (SSE `Last-Event-ID`):
    /// the positions the server derives from its frame log are exact.
    #[test]
    fn resume_by_frame_number_delivers_everything_exactly_once_or_reports_a_gap(
        ops in proptest::collection::vec(op(true), 0..150),
        small_buffer in any::<bool>(),
        client_ack_every in 1u32..6,
        server_ack_every in 1u32..4,
    ) {
        let budget = if small_buffer { 3 * (6 + ENTRY_OVERHEAD) } else { 1 << 20 };
        let mut run = Run::with_mode(budget, client_ack_every, server_ack_every, true);
        for op in &ops {
            run.apply(op);
            if let Some(server) = run.net.server.as_ref() {
                prop_assert!(server.replay_bytes() <= budget);
            }
        }
        run.settle();
        let gaps = run.check_deliveries()?;
        if !small_buffer {
            prop_assert_eq!(gaps, 0, "a large enough replay buffer never loses anything");
        }
        if run.expired {
            run.check_publishes_at_least_once()?;
        } else {
            run.check_publishes_exactly_once()?;
        }
        prop_assert!(run.net.server_errors.is_empty(), "{:?}", run.net.server_errors);
        prop_assert!(run.net.client_errors.is_empty(), "{:?}", run.net.client_errors);
    }

    #[test]
    fn a_lost_session_falls_back_to_history_without_holes(
        ops in proptest::collection::vec(op(true), 0..150),
        client_ack_every in 1u32..6,
        server_ack_every in 1u32..4,
    ) {
        // The hub keeps full history, so even a new session loses nothing.
        let mut run = Run::new(1 << 20, client_ack_every, server_ack_every);
        for op in &ops {
            run.apply(op);
        }
        run.settle();
        let gaps = run.check_deliveries()?;
        prop_assert_eq!(gaps, 0);
        if run.expired {
            run.check_publishes_at_least_once()?;
        } else {
            run.check_publishes_exactly_once()?;
        }
        prop_assert!(run.net.server_errors.is_empty(), "{:?}", run.net.server_errors);
        prop_assert!(run.net.client_errors.is_empty(), "{:?}", run.net.client_errors);
    }
}

#[test]
fn unsubscribe_while_disconnected_reaches_the_resumed_session() {
    let mut net = Net::connected(client_config(), server_config());
    subscribe(&mut net, "a");
    net.pump();
    net.inject("a", "1");
    net.pump();
    net.drop_link();
    let now = net.now;
    net.client.unsubscribe(now, &ch("a"));
    net.reconnect();
    net.pump();
    assert!(
        net.server().channels().next().is_none(),
        "the server must have dropped the subscription; client frames: {:?}",
        net.c2s
    );
    // Re-subscribing later starts a fresh subscription: no false gap, no replay of m1.
    subscribe(&mut net, "a");
    net.pump();
    net.inject("a", "2");
    net.pump();
    assert_eq!(timeline(&net.client_events, "a"), ["m1", "m2"]);
}
