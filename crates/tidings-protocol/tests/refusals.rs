//! Publishes refused for good: an `error` frame names the publish, the client drops and reports it once and never re-sends it, the session goes on.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use tidings_protocol::{
    ClientEvent, ErrorCode, ErrorFrame, Frame, Instant, Limits, Publish, ResumeToken, ServerConfig,
    ServerEvent, ServerSession, SessionId,
};

const SERVER_MAX: usize = 4096;

fn small_server() -> ServerConfig {
    server_config().with_limits(Limits::default().with_max_frame_bytes(SERVER_MAX))
}

fn payload(n: usize) -> Bytes {
    Bytes::from(vec![b'7'; n]) // a JSON number: sent inline
}

fn publish_frame(seq: u64, n: usize) -> Bytes {
    enc(&Frame::Publish(Publish {
        channel: ch("up"),
        seq,
        payload: payload(n),
    }))
}

fn refusals(events: &[ClientEvent]) -> Vec<(u64, ErrorCode)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::PublishRefused { seq, code, .. } => Some((*seq, *code)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_server_refuses_an_oversized_publish_by_name_and_takes_the_next_one() {
    let now = Instant::now();
    let mut s = ServerSession::accept(
        small_server(),
        SessionId("s".into()),
        ResumeToken("t".into()),
        codec(),
        now,
    );
    drain_server(&mut s);
    s.handle_input(now, publish_frame(1, SERVER_MAX + 10))
        .unwrap();
    s.handle_input(now, publish_frame(2, 10)).unwrap();
    let frames = drain_server(&mut s);
    let refused: Vec<&ErrorFrame> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{frames:?}");
    assert_eq!(refused[0].publish, Some(1));
    assert_eq!(refused[0].code, ErrorCode::FrameTooLarge);
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Close(_))),
        "the session goes on: {frames:?}"
    );
    let published: Vec<_> = server_events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            ServerEvent::Publish { payload, .. } => Some(payload.len()),
            _ => None,
        })
        .collect();
    assert_eq!(published, [10], "only the second publish reaches a channel");
    // A resend of the refused publish is refused again, not published.
    s.handle_input(now, publish_frame(1, SERVER_MAX + 10))
        .unwrap();
    assert!(
        drain_server(&mut s)
            .iter()
            .any(|f| matches!(f, Frame::Error(e) if e.publish == Some(1)))
    );
    assert!(server_events(&mut s).is_empty());
}

#[test]
fn a_poison_publish_queued_before_the_first_welcome_is_refused_once_and_never_sent() {
    // The client allows more than the server: its queue holds a publish the
    // server's limit refuses.
    let client = client_config().with_limits(Limits::default().with_max_frame_bytes(1 << 20));
    let mut net = Net::new(client, small_server());
    let big = net
        .client
        .publish(net.now, ch("up"), payload(SERVER_MAX * 2))
        .unwrap();
    net.client.publish(net.now, ch("up"), payload(8)).unwrap();
    net.connect();
    net.advance(past_ack_delay());
    let events = net.take_client_events();
    assert_eq!(refusals(&events), [(big, ErrorCode::FrameTooLarge)]);
    assert_eq!(
        net.hub_published(),
        ["77777777"],
        "the small one is delivered"
    );
    assert!(net.server_errors.is_empty(), "{:?}", net.server_errors);
    assert_eq!(net.client.unacked_len(), 0);
    // Reconnects never bring it back.
    for _ in 0..3 {
        net.drop_link();
        net.advance(ms(5_000));
        net.reconnect();
        net.advance(past_ack_delay());
    }
    assert!(refusals(&net.take_client_events()).is_empty());
    assert_eq!(net.hub_published(), ["77777777"]);
    assert!(
        !net.c2s
            .iter()
            .any(|f| matches!(f, Frame::Publish(p) if p.payload.len() > SERVER_MAX)),
        "the poison publish is never sent"
    );
}

#[test]
fn a_publish_the_server_refuses_is_reported_once_and_not_resent_after_a_resume() {
    let mut net = Net::connected(client_config(), small_server());
    // A publish the client lets through but the server refuses (a hook, say).
    let seq = net.client.publish(net.now, ch("up"), payload(8)).unwrap();
    // The server refuses it (as a permission hook would): the client's frame
    // is taken off the wire and answered by hand.
    let now = net.now;
    for f in drain_client(&mut net.client) {
        if let Frame::Publish(p) = f {
            net.server()
                .refuse_publish(
                    now,
                    p.seq,
                    ErrorCode::Forbidden,
                    "not on this channel".into(),
                )
                .unwrap();
        }
    }
    // The link drops before the client reads the refusal; the resume repeats it.
    net.drop_link();
    net.advance(ms(5_000));
    net.reconnect();
    net.advance(past_ack_delay());
    let events = net.take_client_events();
    assert_eq!(refusals(&events), [(seq, ErrorCode::Forbidden)]);
    assert_eq!(net.client.unacked_len(), 0, "dropped, not queued");
    assert!(net.hub_published().is_empty(), "never published");
    // The next publish goes through with the next number.
    let next = net.client.publish(net.now, ch("up"), payload(3)).unwrap();
    assert_eq!(next, seq + 1);
    net.advance(past_ack_delay());
    assert_eq!(net.hub_published(), ["777"]);
    assert!(net.server_errors.is_empty(), "{:?}", net.server_errors);
}

#[test]
fn publishes_over_the_rate_limit_are_refused_by_name_and_the_session_goes_on() {
    let limit = tidings_protocol::RateLimit {
        per_second: 10,
        burst: 3,
    };
    let now = Instant::now();
    let mut s = ServerSession::accept(
        server_config().with_publish_rate(limit),
        SessionId("s".into()),
        ResumeToken("t".into()),
        codec(),
        now,
    );
    drain_server(&mut s);
    for seq in 1..=5 {
        s.handle_input(now, publish_frame(seq, 4)).unwrap();
    }
    let refused: Vec<(Option<u64>, ErrorCode)> = drain_server(&mut s)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Error(e) => Some((e.publish, e.code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [
            (Some(4), ErrorCode::RateLimited),
            (Some(5), ErrorCode::RateLimited)
        ]
    );
    // 100 ms later one more token: the next publish passes.
    let later = now + ms(100);
    s.handle_input(later, publish_frame(6, 4)).unwrap();
    let published = server_events(&mut s)
        .into_iter()
        .filter(|e| matches!(e, ServerEvent::Publish { .. }))
        .count();
    assert_eq!(published, 4, "the burst of 3, then one per 100 ms");
}
