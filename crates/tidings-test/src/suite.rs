//! The transport suite: fault, resume and bad-input scenarios written once against the runtime's `Client`, run by every transport's tests with its own connector and server.
//!
//! A transport's test file starts its server (behind a [`FaultProxy`] where the
//! scenario cuts links) and passes a function that builds a connected client
//! for a session config; the scenario does the rest and panics with the reason
//! when a promise is broken. Hubs that serve these scenarios use
//! [`server_session_config`] (replay buffer and queues big enough for the
//! message counts) and clients [`client_session_config`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tidings_protocol::{ClientConfig, ClientEvent, Limits, ServerConfig, SessionError};
use tidings_runtime::{Client, ClientError, ClientTransport};

use crate::proxy::{FaultProxy, MidFrameCut};

/// Messages of the mid-frame-cut scenario.
pub const FAULT_MESSAGES: usize = 10_000;
/// Cuts of the mid-frame-cut scenario.
pub const FAULT_CUTS: usize = 5;
/// How long any one event may take before a scenario calls delivery stalled.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Per-session transmit queue limit of the slow-consumer tests' servers.
pub const SLOW_QUEUE_LIMIT: usize = 256 * 1024;
/// Payload size of each message the slow-consumer tests publish.
pub const SLOW_PAYLOAD_BYTES: usize = 8 * 1024;
/// Bytes the slow-consumer tests publish in all (20 MiB): far more than the
/// queue limit plus the socket buffers of the connection that never reads.
pub const SLOW_TOTAL_BYTES: usize = 20 << 20;
/// Messages the slow-consumer tests publish before waiting for the
/// well-behaved client to catch up (128 KiB: well under the queue limit).
pub const SLOW_BATCH: u64 = 16;

/// Builds clients of transport `T` for `url` with a session config, for the scenarios.
pub fn connector<T: ClientTransport>(url: String) -> impl Fn(ClientConfig) -> Client<T> {
    move |config| T::connect(url.clone(), config).expect("the client starts")
}

/// Server sessions for the scenarios: 16 MiB replay buffer and queue (10,000
/// messages in flight across a cut), heartbeat every 2 s.
pub fn server_session_config() -> ServerConfig {
    let limits = Limits::default()
        .with_replay_buffer_bytes(16 << 20)
        .with_max_queued_bytes(16 << 20);
    ServerConfig::default()
        .with_limits(limits)
        .with_heartbeat(Duration::from_secs(2))
}

/// Client sessions for the scenarios: quick backoff (10–200 ms), 16 MiB queue.
pub fn client_session_config() -> ClientConfig {
    ClientConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .with_limits(Limits::default().with_max_queued_bytes(16 << 20))
}

/// The next event of `client`; panics after [`EVENT_TIMEOUT`] or when it closed.
pub async fn next<T>(client: &Client<T>) -> ClientEvent {
    tokio::time::timeout(EVENT_TIMEOUT, client.next_event())
        .await
        .expect("no event within 30 s: delivery stalled")
        .expect("client closed unexpectedly")
}

/// Reads events until `channel` is subscribed.
pub async fn subscribed<T>(client: &Client<T>, channel: &str) {
    loop {
        if let ClientEvent::Subscribed { channel: c, .. } = next(client).await
            && c.as_str() == channel
        {
            return;
        }
    }
}

/// What the mid-frame-cut scenario saw.
#[derive(Debug)]
pub struct FaultReport {
    /// Where each cut landed.
    pub cuts: Vec<MidFrameCut>,
    /// How often the receiver resumed.
    pub reconnects: usize,
}

/// 10,000 messages published by one client and received by another, both
/// through `proxy`, which adds 1 ms of delay and cuts every link mid-frame 5
/// times while data flows: the receiver gets every message exactly once, in
/// order, with no gap, and every reconnect resumes its session.
pub async fn messages_survive_mid_frame_cuts<T: 'static>(
    proxy: &FaultProxy,
    connect: impl Fn(ClientConfig) -> Client<T>,
) -> FaultReport {
    proxy.set_delay(Duration::from_millis(1));
    let receiver = connect(client_session_config());
    let sender = connect(client_session_config());
    receiver.subscribe("fault").unwrap();
    subscribed(&receiver, "fault").await;

    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let receiving = async move {
        let mut got = Vec::with_capacity(FAULT_MESSAGES);
        let mut gaps = Vec::new();
        let mut reconnects = 0;
        // Every cut resets the receiver's link too: wait for all messages and all resumes.
        while got.len() < FAULT_MESSAGES || reconnects < FAULT_CUTS {
            match next(&receiver).await {
                ClientEvent::Message(m) => {
                    got.push((m.seq, index_of(&m.payload)));
                    let _ = progress_tx.send(got.len());
                }
                ClientEvent::Gap(g) => gaps.push(g),
                ClientEvent::Connected { resumed, .. } => {
                    assert!(resumed, "the receiver's session must resume, not restart");
                    reconnects += 1;
                }
                _ => {}
            }
        }
        (got, gaps, reconnects)
    };
    let publishing = async {
        // Publish in slices; after each, cut every link mid-frame while data flows.
        let per_slice = FAULT_MESSAGES / FAULT_CUTS;
        let mut cuts = Vec::new();
        for slice in 0..FAULT_CUTS {
            for i in slice * per_slice..(slice + 1) * per_slice {
                sender.publish("fault", format!(r#"{{"i":{i}}}"#)).unwrap();
            }
            // Wait until part of this slice arrived so the cut lands mid-stream.
            let target = slice * per_slice + per_slice / 4;
            progress.wait_for(|n| *n >= target).await.unwrap();
            cuts.push(proxy.cut_mid_frame().await);
        }
        cuts
    };
    let ((got, gaps, reconnects), cuts) = tokio::time::timeout(Duration::from_secs(180), async {
        tokio::join!(receiving, publishing)
    })
    .await
    .expect("the scenario did not finish within 180 s");

    assert!(gaps.is_empty(), "no gap may be reported: {gaps:?}");
    assert_eq!(got.len(), FAULT_MESSAGES);
    for (k, (seq, i)) in got.iter().enumerate() {
        assert_eq!(
            *seq,
            k as u64 + 1,
            "per-channel sequence must be gap-free and ordered"
        );
        assert_eq!(
            *i, k as u64,
            "payloads must arrive exactly once, in publish order"
        );
    }
    let mid_frame = cuts
        .iter()
        .filter(|c| matches!(c, MidFrameCut::MidFrame { .. }))
        .count();
    assert_eq!(cuts.len(), FAULT_CUTS);
    assert!(
        mid_frame >= 1,
        "at least one cut must land inside a frame: {cuts:?}"
    );
    assert!(
        reconnects >= FAULT_CUTS,
        "the receiver reconnected {reconnects} times for {FAULT_CUTS} cuts"
    );
    assert!(proxy.stats().connections_cut >= FAULT_CUTS as u64);
    sender.close();
    FaultReport { cuts, reconnects }
}

/// A receiver whose link is cut while it is down for the messages published
/// meanwhile (the proxy refuses reconnects until they are all published)
/// resumes its session and gets each of them once, in order.
pub async fn a_resume_delivers_what_was_missed<T: 'static>(
    proxy: &FaultProxy,
    connect: impl Fn(ClientConfig) -> Client<T>,
) {
    const MISSED: u64 = 200;
    let receiver = connect(client_session_config());
    receiver.subscribe("resume").unwrap();
    subscribed(&receiver, "resume").await;
    // The publisher connects past the proxy's refusals: the first link stays up.
    let sender = connect(client_session_config());
    sender.subscribe("resume").unwrap();
    subscribed(&sender, "resume").await;

    proxy.set_refuse(true);
    proxy.cut_all();
    loop {
        if let ClientEvent::Disconnected { .. } = next(&receiver).await {
            break;
        }
    }
    // The sender reconnects too (its link was cut): its publishes wait in its
    // queue and go out once it is back, while the receiver is still refused.
    for i in 0..MISSED {
        sender.publish("resume", format!(r#"{{"i":{i}}}"#)).unwrap();
    }
    proxy.set_refuse(false);
    let mut next_index = 0;
    let mut resumed = false;
    while next_index < MISSED {
        match next(&receiver).await {
            ClientEvent::Message(m) => {
                assert_eq!(index_of(&m.payload), next_index, "exactly once, in order");
                assert_eq!(m.seq, next_index + 1);
                next_index += 1;
            }
            ClientEvent::Connected { resumed: r, .. } => resumed |= r,
            ClientEvent::Gap(g) => panic!("nothing may be missing after a resume: {g:?}"),
            _ => {}
        }
    }
    assert!(resumed, "the receiver must have resumed its session");
    sender.close();
    receiver.close();
}

/// Bad input from the application gets a typed error at once and the
/// session lives on: an invalid channel name, a payload over the frame limit;
/// afterwards a normal publish still reaches a subscriber.
pub async fn bad_input_is_refused_and_the_session_lives_on<T: 'static>(
    connect: impl Fn(ClientConfig) -> Client<T>,
) {
    let max_frame = 4096;
    let config =
        client_session_config().with_limits(Limits::default().with_max_frame_bytes(max_frame));
    let client = connect(config);
    client.subscribe("ok").unwrap();
    subscribed(&client, "ok").await;

    for name in ["", "a\u{7}b"] {
        match client.subscribe(name) {
            Err(ClientError::Session(SessionError::Protocol(e))) => {
                assert!(e.to_string().contains("invalid channel"), "{e}")
            }
            other => panic!("subscribe({name:?}) must be refused as invalid, got {other:?}"),
        }
        assert!(client.publish(name, "{}").is_err(), "publish({name:?})");
    }
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(max_frame));
    match client.publish("ok", big) {
        Err(ClientError::Session(SessionError::MessageTooLarge { size, limit })) => {
            assert!(size > limit, "size {size}, limit {limit}")
        }
        other => panic!("an oversized publish must be refused at once, got {other:?}"),
    }
    let seq = client.publish("ok", r#"{"after":"bad input"}"#).unwrap();
    assert_eq!(seq, 1, "refused publishes take no sequence number");
    loop {
        match next(&client).await {
            ClientEvent::Message(m) => {
                assert_eq!(&m.payload[..], br#"{"after":"bad input"}"#);
                break;
            }
            ClientEvent::Disconnected { .. } => panic!("bad input must not cost the connection"),
            _ => {}
        }
    }
    client.close();
}

/// A publish the server's limit refuses, queued before the first `welcome`
/// (this client allows more than the server), is refused once and reported
/// once (`PublishRefused`), never sent, and never retried; the publishes
/// queued after it are delivered, and no reconnect happens.
pub async fn a_poison_publish_is_refused_once_and_the_rest_flows<T: 'static>(
    proxy: &FaultProxy,
    connect: impl Fn(ClientConfig) -> Client<T>,
) {
    // Held off until everything is queued: the publishes wait for the welcome.
    proxy.set_refuse(true);
    let config = client_session_config().with_limits(
        Limits::default()
            .with_max_frame_bytes(8 << 20)
            .with_max_queued_bytes(16 << 20),
    );
    let client = connect(config);
    client.subscribe("poison").unwrap();
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(3 << 20));
    let poison = client
        .publish("poison", big)
        .expect("queued: the limit is not known yet");
    for i in 0..3 {
        client.publish("poison", format!(r#"{{"i":{i}}}"#)).unwrap();
    }
    proxy.set_refuse(false);
    let (mut refused, mut received, mut connected) = (Vec::new(), Vec::new(), 0);
    while received.len() < 3 {
        match next(&client).await {
            ClientEvent::PublishRefused { seq, code, .. } => refused.push((seq, code)),
            ClientEvent::Message(m) => received.push(index_of(&m.payload)),
            ClientEvent::Connected { .. } => connected += 1,
            _ => {}
        }
    }
    assert_eq!(
        refused,
        [(poison, tidings_protocol::ErrorCode::FrameTooLarge)],
        "refused once, by name"
    );
    assert_eq!(
        received,
        [0, 1, 2],
        "the rest of the queue is delivered, in order"
    );
    // The server acknowledges the rest (its acks are batched): nothing is left to re-send.
    while client.unacked() > 0 {
        match next(&client).await {
            ClientEvent::PublishRefused { seq, .. } => panic!("refused twice: {seq}"),
            ClientEvent::Connected { .. } => connected += 1,
            _ => {}
        }
    }
    assert_eq!(connected, 1, "no reconnect");
    client.close();
}

/// The `i` of a `{"i":N}` payload.
fn index_of(payload: &[u8]) -> u64 {
    let text = std::str::from_utf8(payload).expect("UTF-8 payload");
    text.trim_start_matches(r#"{"i":"#)
        .trim_end_matches('}')
        .parse()
        .expect("a {\"i\":N} payload")
}

/// Peak and current resident set size of this process, in bytes (Linux), for
/// the slow-consumer tests' bound on server memory.
pub fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// The slow-consumer tests' payloads: `{"seq":N,"pad":"xxx…"}` of exactly `bytes` bytes.
pub fn padded_payload(seq: u64, bytes: usize) -> Vec<u8> {
    let mut p = format!(r#"{{"seq":{seq},"pad":""#).into_bytes();
    p.resize(bytes - 2, b'x');
    p.extend_from_slice(br#""}"#);
    p
}
