//! Publisher ids: the `hello` carries the client's publisher id and the number its session's publish 1 follows, so a publish re-sent in a fresh session keeps its number (`base + seq`), and a number is never reused for another publish.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use tidings_protocol::{
    ClientConfig, ClientSession, Frame, Instant, PROTOCOL_VERSION, PublishAck, Publisher,
    ResumeToken, SessionId, Welcome,
};

fn welcome() -> Frame {
    Frame::Welcome(Welcome {
        version: PROTOCOL_VERSION,
        session: SessionId("s".into()),
        resume_token: ResumeToken("t".into()),
        resumed: false,
        heartbeat_ms: 1_000,
        max_frame: 1 << 20,
        publish_acked: 0,
    })
}

/// Brings the transport up and returns the `hello`'s publisher.
fn connect(c: &mut ClientSession, now: Instant) -> Option<Publisher> {
    c.on_connecting();
    c.on_transport_up(now, codec());
    let frames = drain_client(c);
    let Some(Frame::Hello(h)) = frames.first() else {
        panic!("no hello: {frames:?}")
    };
    h.publisher.clone()
}

/// A fresh server session opens; returns the publishes re-sent to it.
fn fresh_welcome(c: &mut ClientSession, now: Instant) -> Vec<u64> {
    c.handle_input(now, enc(&welcome())).unwrap();
    drain_client(c)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Publish(p) => Some(p.seq),
            _ => None,
        })
        .collect()
}

fn client() -> (ClientSession, Instant) {
    let now = Instant::now();
    let config = ClientConfig::default().with_publisher_id("c1");
    (ClientSession::new(config, 1, now), now)
}

fn publish(c: &mut ClientSession, now: Instant, n: usize) {
    for i in 0..n {
        c.publish(now, ch("room"), Bytes::from(format!("p{i}")))
            .unwrap();
    }
}

#[test]
fn without_an_id_the_hello_has_no_publisher() {
    let now = Instant::now();
    let mut c = ClientSession::new(ClientConfig::default(), 1, now);
    assert_eq!(connect(&mut c, now), None);
    // An invalid id is left out too (the server would refuse the hello).
    let mut c = ClientSession::new(ClientConfig::default().with_publisher_id("a b"), 1, now);
    assert_eq!(connect(&mut c, now), None);
}

#[test]
fn unacknowledged_publishes_keep_their_numbers_in_a_fresh_session() {
    let (mut c, now) = client();
    publish(&mut c, now, 3);
    let p = connect(&mut c, now).unwrap();
    assert_eq!((p.id(), p.base), ("c1", 0));
    assert_eq!(fresh_welcome(&mut c, now), [1, 2, 3]);
    // The server acknowledges the first two; the node dies.
    c.handle_input(now, enc(&Frame::PublishAck(PublishAck { seq: 2 })))
        .unwrap();
    c.on_transport_down(now, "node died");
    let later = now + ms(60_000);
    // The next server numbers from 2: the pending publish is 1 there, 3 here.
    let p = connect(&mut c, later).unwrap();
    assert_eq!(p.base, 2);
    assert_eq!(fresh_welcome(&mut c, later), [1]);
    assert_eq!(p.key(1), "p:c1:3");
    // New publishes go on after it.
    publish(&mut c, later, 1);
    c.on_transport_down(later, "again");
    let p = connect(&mut c, later + ms(60_000)).unwrap();
    assert_eq!(
        (p.base, p.key(1), p.key(2)),
        (2, "p:c1:3".into(), "p:c1:4".into())
    );
}

#[test]
fn with_nothing_pending_a_fresh_session_starts_after_every_number_used() {
    let (mut c, now) = client();
    publish(&mut c, now, 2);
    connect(&mut c, now).unwrap();
    fresh_welcome(&mut c, now);
    c.handle_input(now, enc(&Frame::PublishAck(PublishAck { seq: 2 })))
        .unwrap();
    c.on_transport_down(now, "down");
    let p = connect(&mut c, now + ms(60_000)).unwrap();
    assert_eq!(p.base, 2, "numbers 1 and 2 are used: the next publish is 3");
}
