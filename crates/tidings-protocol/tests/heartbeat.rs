//! Heartbeat: idle pings and pongs, dead-peer detection on both sides, detach and resume-window expiry.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tidings_protocol::{
    ClientEvent, ClientState, CloseCode, Frame, Ping, ServerEvent, ServerState,
};

/// Server heartbeat 1 s (sent to the client in `Welcome`), dead after 3 s.
fn net() -> Net {
    net_with(client_config())
}

fn net_with(client: tidings_protocol::ClientConfig) -> Net {
    let mut net = Net::connected(client, server_config().with_resume_window(ms(10_000)));
    net.take_client_events();
    net.c2s.clear();
    net.s2c.clear();
    net
}

fn pings(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| {
            if let Frame::Ping(p) = f {
                Some(p.nonce)
            } else {
                None
            }
        })
        .collect()
}

fn pongs(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| {
            if let Frame::Pong(p) = f {
                Some(p.nonce)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn idle_client_pings_after_the_heartbeat_and_server_answers() {
    let mut net = net();
    let t0 = net.t0;
    // The server's 1 s heartbeat from Welcome replaces the client's default 15 s.
    assert_eq!(net.client.poll_timeout(), Some(t0 + ms(1_000)));

    net.now = t0 + ms(999);
    net.tick();
    assert!(
        net.c2s.is_empty(),
        "no ping before the interval: {:?}",
        net.c2s
    );

    net.run_until(t0 + ms(1_000));
    assert_eq!(pings(&net.c2s), vec![1]);
    assert_eq!(pongs(&net.s2c), vec![1]);
    assert_eq!(net.client.state(), ClientState::Open);
    // The pong is traffic: the next ping is one interval later.
    assert_eq!(net.client.poll_timeout(), Some(t0 + ms(2_000)));

    net.run_until(t0 + ms(10_000));
    assert_eq!(pings(&net.c2s), (1..=10).collect::<Vec<_>>());
    assert_eq!(pongs(&net.s2c), (1..=10).collect::<Vec<_>>());
    assert_eq!(net.client.state(), ClientState::Open);
    assert_eq!(net.server().state(), ServerState::Open);
    assert!(net.take_client_events().is_empty());
    assert!(net.take_server_events().is_empty());
}

#[test]
fn traffic_postpones_pings() {
    // The client acknowledges 20 ms after a message (the default waits longer
    // than the heartbeat here).
    let mut client = client_config();
    client.ack_delay = ms(20);
    let mut net = net_with(client);
    let t0 = net.t0;
    net.client
        .subscribe(t0, tidings_protocol::ChannelName::new("a").unwrap())
        .unwrap();
    net.pump();
    net.c2s.clear();
    net.now = t0 + ms(600);
    net.inject("a", "1");
    net.pump();
    // The message at 600 ms is acknowledged at 620 ms (ack_delay): both directions
    // saw traffic, so the idle clock (older of last sent / last received) restarts
    // at 600 ms and the next ping is due at 1.6 s, not 1 s.
    net.run_until(t0 + ms(1_599));
    assert!(net.c2s.iter().any(|f| matches!(f, Frame::Ack(_))));
    assert!(pings(&net.c2s).is_empty(), "{:?}", net.c2s);
    net.run_until(t0 + ms(1_600));
    assert_eq!(pings(&net.c2s), vec![1]);
}

#[test]
fn client_answers_a_ping_with_the_same_nonce() {
    let mut net = net();
    let now = net.now;
    net.client
        .handle_input(now, enc(&Frame::Ping(Ping { nonce: 99 })))
        .unwrap();
    assert_eq!(
        drain_client(&mut net.client),
        vec![Frame::Pong(Ping { nonce: 99 })]
    );
}

#[test]
fn client_declares_a_silent_server_dead() {
    let mut net = net();
    let t0 = net.t0;
    net.blackhole_s2c = true;
    // dead_after = 3 heartbeats of 1 s with no input at all.
    net.run_until(t0 + ms(2_999));
    assert_eq!(net.client.state(), ClientState::Open);
    assert_eq!(
        pings(&net.c2s),
        vec![1],
        "one outstanding ping, not one per interval"
    );
    assert!(net.take_client_events().is_empty());

    net.run_until(t0 + ms(3_000));
    assert_eq!(net.client.state(), ClientState::Disconnected);
    assert!(!net.connected);
    let events = net.take_client_events();
    let [ClientEvent::Disconnected { reason, retry_in }] = &events[..] else {
        panic!("{events:?}")
    };
    assert!(reason.contains("heartbeat"), "{reason}");
    assert!(*retry_in <= ms(100));
    assert_eq!(net.client.poll_timeout(), Some(t0 + ms(3_000) + *retry_in));
    // The driver closed the transport: the server session is detached, not gone.
    assert_eq!(net.server().state(), ServerState::Detached);
}

#[test]
fn server_declares_a_silent_client_dead_and_detaches() {
    let mut net = net();
    let t0 = net.t0;
    net.blackhole_c2s = true;
    let dead = t0 + ms(3_000);
    assert_eq!(net.server().poll_timeout(), Some(dead));

    net.server().handle_timeout(dead - ms(1));
    assert_eq!(net.server().state(), ServerState::Open);
    assert!(server_events(net.server()).is_empty());

    net.server().handle_timeout(dead);
    assert_eq!(net.server().state(), ServerState::Detached);
    let events = server_events(net.server());
    assert!(
        matches!(
            &events[..],
            [ServerEvent::Disconnect {
                code: CloseCode::HEARTBEAT_TIMEOUT,
                ..
            }]
        ),
        "{events:?}"
    );
    assert_eq!(net.server().queued_bytes(), 0);
    assert_eq!(net.server().poll_timeout(), Some(dead + ms(10_000)));
    // Input on the old connection is ignored once detached.
    let now = dead;
    net.server()
        .handle_input(now, enc(&Frame::Ping(Ping { nonce: 5 })))
        .unwrap();
    assert!(drain_server(net.server()).is_empty());
}

#[test]
fn driver_closes_the_link_on_server_heartbeat_timeout() {
    let mut net = net();
    let t0 = net.t0;
    net.blackhole_c2s = true;
    net.run_until(t0 + ms(3_000));
    assert!(net.server_events.iter().any(|e| matches!(
        e,
        ServerEvent::Disconnect {
            code: CloseCode::HEARTBEAT_TIMEOUT,
            ..
        }
    )));
    assert_eq!(net.server().state(), ServerState::Detached);
    assert!(!net.connected);
    assert_eq!(net.client.state(), ClientState::Disconnected);
}

#[test]
fn detached_session_expires_after_the_resume_window() {
    let mut net = net();
    let t0 = net.t0;
    net.now = t0 + ms(500);
    net.drop_link();
    let detached = t0 + ms(500);
    assert_eq!(net.server().state(), ServerState::Detached);
    assert_eq!(net.server().poll_timeout(), Some(detached + ms(10_000)));

    net.server().handle_timeout(detached + ms(9_999));
    assert_eq!(net.server().state(), ServerState::Detached);
    assert!(server_events(net.server()).is_empty());

    net.server().handle_timeout(detached + ms(10_000));
    assert_eq!(net.server().state(), ServerState::Closed);
    let events = server_events(net.server());
    assert!(
        matches!(&events[..], [ServerEvent::Closed { reason }] if reason.contains("resume")),
        "{events:?}"
    );
    assert_eq!(net.server().poll_timeout(), None);

    // A client coming back later gets a new session.
    net.now = detached + ms(10_000);
    net.reconnect();
    let events = net.take_client_events();
    assert!(
        events.iter().any(|e| matches!(e, ClientEvent::Connected { resumed: false, session } if session.0 == "session-2")),
        "{events:?}"
    );
}

#[test]
fn resume_within_the_window_keeps_the_session() {
    let mut net = net();
    net.drop_link();
    net.advance(ms(5_000));
    net.reconnect();
    assert_eq!(net.server().state(), ServerState::Open);
    assert_eq!(net.server().epoch(), 2);
    let events = net.take_client_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ClientEvent::Connected { resumed: true, .. })),
        "{events:?}"
    );
    // The resumed server session measures liveness from the resume, not from before.
    let now = net.now;
    assert_eq!(net.server().poll_timeout(), Some(now + ms(3_000)));
}
