//! Resume by frame number (SSE `Last-Event-ID`): frames are numbered over a session's life, a frame number maps back to exact channel positions, unknown numbers are refused.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tidings_protocol::{ClientEvent, Frame, ServerState};

fn frame_net() -> Net {
    let mut net = Net::new(client_config(), server_config());
    net.frame_mode = true;
    net.connect();
    net
}

fn subscribe(net: &mut Net, channel: &str) {
    let now = net.now;
    net.client.subscribe(now, ch(channel)).unwrap();
    net.pump();
}

fn frames_after_last_welcome(net: &Net) -> Vec<Frame> {
    let i = net
        .s2c
        .iter()
        .rposition(|f| matches!(f, Frame::Welcome(_)))
        .unwrap();
    net.s2c[i..].to_vec()
}

fn kinds(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Welcome(w) => format!("welcome{}", if w.resumed { "+" } else { "" }),
            Frame::Subscribed(s) => format!("subscribed{}", s.seq),
            Frame::Message(m) => format!("m{}", m.seq),
            Frame::Gap(g) => format!("gap{}-{}", g.from, g.to),
            other => format!("{:?}", other.frame_type()),
        })
        .collect()
}

#[test]
fn frames_are_numbered_over_the_session_life() {
    let mut net = frame_net();
    assert_eq!(net.server().frames_sent(), 1, "the welcome is frame 1");
    assert_eq!(net.last_frame, 1);
    subscribe(&mut net, "a");
    net.inject("a", "1");
    net.pump();
    assert_eq!(net.server().frames_sent(), 3, "subscribed, m1");
    net.drop_link();
    net.reconnect();
    // Numbering goes on after a resume: welcome is frame 4.
    assert_eq!(net.server().frames_sent(), 4);
    assert_eq!(kinds(&frames_after_last_welcome(&net)), ["welcome+"]);
}

#[test]
fn resume_re_sends_exactly_the_frames_not_received() {
    let mut net = frame_net();
    subscribe(&mut net, "a");
    for i in 1..=5 {
        net.inject("a", &i.to_string());
    }
    // m1 and m2 arrive (frames 3, 4), m3..m5 are in flight when the link is cut.
    assert!(net.step_s2c());
    assert!(net.step_s2c());
    assert_eq!(net.last_frame, 4);
    net.cut_in_flight(3);
    assert_eq!(net.server().frames_sent(), 7);
    // Delivered while detached: kept for replay.
    net.inject("a", "6");
    net.reconnect();
    assert_eq!(
        kinds(&frames_after_last_welcome(&net)),
        ["welcome+", "m3", "m4", "m5", "m6"]
    );
    let seqs: Vec<u64> = net.received("a").iter().map(|r| r.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
    assert!(
        !net.client_events
            .iter()
            .any(|e| matches!(e, ClientEvent::Gap(_)))
    );
}

#[test]
fn a_subscribed_frame_never_received_is_sent_again() {
    let mut net = frame_net();
    let now = net.now;
    net.client.subscribe(now, ch("a")).unwrap();
    assert!(net.step_c2s());
    net.inject("a", "1");
    // `subscribed` and m1 are lost in flight: the client only has the welcome.
    net.cut_in_flight(5);
    assert_eq!(net.last_frame, 1);
    net.reconnect();
    assert_eq!(
        kinds(&frames_after_last_welcome(&net)),
        ["welcome+", "subscribed0", "m1"]
    );
    assert_eq!(net.received("a"), [(1, "1".to_string())]);
}

#[test]
fn a_stale_frame_number_re_sends_rather_than_skips() {
    let mut net = frame_net();
    subscribe(&mut net, "a");
    for i in 1..=4 {
        net.inject("a", &i.to_string());
    }
    net.pump();
    let end_of_first = net.last_frame; // 6: the whole first connection
    assert_eq!(end_of_first, 6);
    net.drop_link();
    // Another connection resumes from an older frame (frame 4: m2) and gets m3, m4
    // again under new numbers.
    let now = net.now;
    let codec = codec();
    net.server()
        .resume_after_frame(now, codec.clone(), 4)
        .unwrap();
    let again: Vec<Frame> = std::iter::from_fn(|| net.server().poll_transmit())
        .map(|b| dec(&b))
        .collect();
    assert_eq!(kinds(&again), ["welcome+", "m3", "m4"]);
    net.server().detach(now);
    // The first connection's number now maps to what frame 4 held (frames 5 and 6
    // of the first connection were superseded): m3 and m4 come again (the client
    // drops duplicates by sequence number), nothing is skipped.
    net.server()
        .resume_after_frame(now, codec, end_of_first)
        .unwrap();
    let again: Vec<Frame> = std::iter::from_fn(|| net.server().poll_transmit())
        .map(|b| dec(&b))
        .collect();
    assert_eq!(kinds(&again), ["welcome+", "m3", "m4"]);
}

#[test]
fn a_frame_number_never_sent_is_refused() {
    let mut net = frame_net();
    subscribe(&mut net, "a");
    net.drop_link();
    let sent = net.server().frames_sent();
    let epoch = net.server().epoch();
    let (now, codec) = (net.now, codec());
    assert_eq!(
        net.server()
            .resume_after_frame(now, codec.clone(), sent + 1),
        None
    );
    assert_eq!(
        net.server()
            .resume_after_frame(now, codec.clone(), u64::MAX),
        None
    );
    assert_eq!(
        net.server().epoch(),
        epoch,
        "a refused resume changes nothing"
    );
    assert_eq!(net.server().state(), ServerState::Detached);
    assert!(net.server().resume_after_frame(now, codec, sent).is_some());
}

#[test]
fn acks_count_as_positions_even_for_an_old_frame_number() {
    let mut net = frame_net();
    subscribe(&mut net, "a");
    for i in 1..=3 {
        net.inject("a", &i.to_string());
    }
    net.pump();
    net.advance(past_ack_delay()); // the client's delayed ack goes out
    net.drop_link();
    let now = net.now;
    // An id from before the messages, but the client acknowledged all three:
    // nothing is re-sent.
    net.server().resume_after_frame(now, codec(), 2).unwrap();
    let again: Vec<Frame> = std::iter::from_fn(|| net.server().poll_transmit())
        .map(|b| dec(&b))
        .collect();
    assert_eq!(kinds(&again), ["welcome+"]);
}

#[test]
fn an_evicted_replay_is_an_explicit_gap() {
    let mut server = server_config();
    server.limits = server.limits.clone().with_replay_buffer_bytes(2 * (1 + 64));
    let mut net = Net::new(client_config(), server);
    net.frame_mode = true;
    net.connect();
    subscribe(&mut net, "a");
    net.drop_link();
    for i in 1..=5 {
        net.inject("a", &i.to_string());
    }
    net.reconnect();
    assert_eq!(
        kinds(&frames_after_last_welcome(&net)),
        ["welcome+", "gap1-3", "m4", "m5"]
    );
}
