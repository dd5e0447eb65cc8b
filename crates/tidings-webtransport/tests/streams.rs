//! Channel streams over WebTransport: each channel on a QUIC stream of its own, so a stalled channel (its reader stopped, its stream's flow-control window full) delays no other; channels beyond the stream credit stay on the control stream; a server's bad channel streams are typed errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tidings_codec::JsonCodec;
use tidings_protocol::{ClientEvent, Frame, FrameCodec};
use tidings_runtime::{ClientTransport, TransportExt};
use tidings_test::suite::{client_session_config, next, subscribed};
use tidings_webtransport::channel_stream::{read_header, write_header};
use tidings_webtransport::framing::FrameReader;
use tidings_webtransport::{
    Accepted, Certificate, ServerConfig, ServerHandle, WebTransport, WtConfig, WtServer, close_code,
};
use wtransport::RecvStream;
use wtransport::error::ConnectionError;

/// Receive window of each stream of the raw client: what QUIC may deliver
/// of a stream its application does not read.
const WINDOW: u32 = 64 << 10;

/// One stream of the raw client and its frame reader.
struct Reader {
    recv: RecvStream,
    frames: FrameReader,
    /// Framed bytes read (length prefixes included).
    bytes: usize,
}

impl Reader {
    fn new(recv: RecvStream, already: &[u8]) -> Self {
        let mut frames = FrameReader::new(2 << 20);
        frames.extend(already);
        Self {
            recv,
            frames,
            bytes: 0,
        }
    }

    async fn frame(&mut self) -> Frame {
        loop {
            if let Some(f) = self.frames.next_frame().unwrap() {
                self.bytes += 4 + f.len();
                return JsonCodec.decode(&f).unwrap();
            }
            let mut buf = [0u8; 8 << 10];
            let n = self
                .recv
                .read(&mut buf)
                .await
                .unwrap()
                .expect("the stream stays open");
            self.frames.extend(&buf[..n]);
        }
    }

    /// The next `message` frame (seq, index in its payload).
    async fn message(&mut self) -> (u64, u64) {
        match self.frame().await {
            Frame::Message(m) => (m.seq, index_of(&m.payload)),
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// The `i` of a `{"i":N,...}` payload.
fn index_of(payload: &[u8]) -> u64 {
    let text = std::str::from_utf8(payload).unwrap();
    let digits = text.trim_start_matches(r#"{"i":"#);
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap();
    digits[..end].parse().unwrap()
}

/// Accepts the server's next channel stream: its channel and reader.
async fn accept_channel_stream(conn: &wtransport::Connection) -> (String, Reader) {
    let mut recv = conn.accept_uni().await.unwrap();
    let mut head = Vec::new();
    loop {
        if let Some((channel, len)) = read_header(&head).unwrap() {
            let reader = Reader::new(recv, &head[len..]);
            return (channel, reader);
        }
        let mut buf = [0u8; 512];
        let n = recv.read(&mut buf).await.unwrap().expect("a header");
        head.extend_from_slice(&buf[..n]);
    }
}

async fn send_json(send: &mut wtransport::SendStream, json: &str) {
    send.write_all(&common::framed(json.as_bytes()))
        .await
        .unwrap();
}

/// The publishing pattern: `fast` messages (counting from `from`), and one `slow` message (with a
/// 256-byte pad) before every fifth of them.
fn publish_pattern(client: &tidings_webtransport::Client, from: u64, fast: u64) {
    let pad = "x".repeat(256);
    for i in from..from + fast {
        if i % 5 == 0 {
            client
                .publish("slow", format!(r#"{{"i":{},"pad":"{pad}"}}"#, i / 5))
                .unwrap();
        }
        client.publish("fast", format!(r#"{{"i":{i}}}"#)).unwrap();
    }
}

/// Reads `n` messages from `reader`, checking they are exactly once and in
/// order from `*next`; acks every 500 on the control stream. Returns the
/// time from the first to the last.
async fn read_in_order(
    reader: &mut Reader,
    n: u64,
    next: &mut u64,
    channel: &str,
    acks: &tokio::sync::mpsc::UnboundedSender<String>,
) -> Duration {
    let mut first = None;
    for _ in 0..n {
        let (seq, i) = reader.message().await;
        first.get_or_insert_with(Instant::now);
        assert_eq!(seq, *next + 1, "{channel}: gap-free and in order");
        assert_eq!(i, *next, "{channel}: exactly once, in publish order");
        *next += 1;
        if next.is_multiple_of(500) {
            let _ = acks.send(format!(
                r#"{{"type":"ack","channel":"{channel}","seq":{}}}"#,
                *next
            ));
        }
    }
    first.map_or(Duration::ZERO, |f| f.elapsed())
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// One channel's reader stops reading while another channel keeps flowing:
/// a raw WebTransport client (receive window 64 KiB per stream) subscribes
/// to `slow` and `fast`, each arrives on its own stream; a publisher sends
/// 10,000 `fast` messages with 2,000 `slow` ones (~680 KB) interleaved. The
/// client never reads `slow` and still gets all 10,000 `fast` messages, in
/// order. By then every `slow` message was queued for it (each was
/// published before a `fast` one it received), of which QUIC could deliver
/// at most the 64 KiB window: the `slow` stream was blocked while `fast`
/// flowed. Then `slow` is read: all 2,000, exactly once, in order. A second
/// round reads both at once, for comparison; the figures are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_channel_delays_no_other() {
    const FAST: u64 = 10_000;
    const SLOW: u64 = FAST / 5;
    let handle = common::server(WtConfig::default()).await;
    let (addr, hash) = (handle.local_addr(), handle.certificate_hash());
    let conn = common::raw_session_with(addr, hash, "/?protocol=tidings.v1.json", WINDOW, 16).await;
    let (mut control, control_recv) = conn.open_bi().await.unwrap().await.unwrap();
    let mut control_in = Reader::new(control_recv, &[]);
    send_json(
        &mut control,
        r#"{"type":"hello","version":1,"positions":[]}"#,
    )
    .await;
    assert!(matches!(control_in.frame().await, Frame::Welcome(_)));
    send_json(&mut control, r#"{"type":"subscribe","channel":"slow"}"#).await;
    send_json(&mut control, r#"{"type":"subscribe","channel":"fast"}"#).await;
    let mut streams = HashMap::new();
    for _ in 0..2 {
        let (channel, mut reader) = accept_channel_stream(&conn).await;
        assert!(
            matches!(reader.frame().await, Frame::Subscribed(s) if s.channel.as_str() == channel),
            "a channel stream starts with its `subscribed`"
        );
        streams.insert(channel, reader);
    }
    let mut slow = streams.remove("slow").expect("a stream for `slow`");
    let mut fast = streams.remove("fast").expect("a stream for `fast`");
    // Acks go out on the control stream from a task of their own.
    let (acks, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let acker = tokio::spawn(async move {
        while let Some(a) = ack_rx.recv().await {
            send_json(&mut control, &a).await;
        }
        control
    });

    let publisher = common::connector(addr, hash, WtConfig::default())(client_session_config());
    let (mut fast_next, mut slow_next) = (0, 0);
    let timed = tokio::time::timeout(Duration::from_secs(120), async {
        // Round 1: `slow` is never read while `fast` is.
        publish_pattern(&publisher, 0, FAST);
        let before = slow.bytes;
        let stalled = read_in_order(&mut fast, FAST, &mut fast_next, "fast", &acks).await;
        assert_eq!(slow.bytes, before, "nothing of `slow` was read");
        let slow_start = Instant::now();
        read_in_order(&mut slow, SLOW, &mut slow_next, "slow", &acks).await;
        let drained = slow_start.elapsed();
        let slow_bytes = slow.bytes - before;
        // Round 2: both read at once.
        publish_pattern(&publisher, FAST, FAST);
        let (both_fast, _) = tokio::join!(
            read_in_order(&mut fast, FAST, &mut fast_next, "fast", &acks),
            read_in_order(&mut slow, SLOW, &mut slow_next, "slow", &acks),
        );
        (stalled, drained, slow_bytes, both_fast)
    })
    .await;
    let (stalled, drained, slow_bytes, both_fast) =
        timed.expect("a channel was held up: the scenario did not finish within 120 s");
    assert!(
        slow_bytes > 4 * WINDOW as usize,
        "`slow` had {slow_bytes} bytes queued, more than its 64 KiB window could take"
    );
    assert_eq!((fast_next, slow_next), (2 * FAST, 2 * SLOW));
    println!(
        "stalled channel: fast {FAST} msgs in {stalled:?} ({:.0} msg/s) while slow was not read \
         ({slow_bytes} bytes queued for it, window {WINDOW}); slow then drained {SLOW} msgs in \
         {drained:?} ({:.0} msg/s); both read: fast {FAST} msgs in {both_fast:?} ({:.0} msg/s)",
        rate(FAST, stalled),
        rate(SLOW, drained),
        rate(FAST, both_fast),
    );
    drop(acks);
    let _ = acker.await;
    publisher.close();
    handle.shutdown().await;
}

/// A client whose QUIC stream credit is smaller than the server's channel
/// streams (3 unidirectional streams, of which the server's HTTP/3 control
/// stream takes one): the channels past the credit stay on the control
/// stream, and all six channels still deliver every message once, in order,
/// in both codecs (the server reads a binary frame's channel in place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_beyond_the_stream_credit_stay_on_the_control_stream() {
    for binary in [false, true] {
        beyond_the_stream_credit(binary).await;
    }
}

async fn beyond_the_stream_credit(binary: bool) {
    const PER: u64 = 200;
    let handle = common::server(WtConfig::default()).await;
    let (addr, hash) = (handle.local_addr(), handle.certificate_hash());
    let tight = WtConfig::default().with_max_streams(16, 3);
    let builder = WebTransport::builder(format!("https://{addr}/"))
        .session_config(client_session_config())
        .server_certificate_hash(hash)
        .wt_config(tight);
    let receiver = if binary { builder.binary() } else { builder }
        .connect()
        .unwrap();
    let channels: Vec<String> = (0..6).map(|c| format!("room:{c}")).collect();
    for c in &channels {
        receiver.subscribe(c.as_str()).unwrap();
        subscribed(&receiver, c).await;
    }
    let publisher = common::connector(addr, hash, WtConfig::default())(client_session_config());
    for i in 0..PER {
        for c in &channels {
            publisher
                .publish(c.as_str(), format!(r#"{{"i":{i}}}"#))
                .unwrap();
        }
    }
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut got = 0;
    while got < PER * 6 {
        match next(&receiver).await {
            ClientEvent::Message(m) => {
                let n = seen.entry(m.channel.as_str().to_owned()).or_default();
                assert_eq!(m.seq, *n + 1, "{}: in order, once", m.channel.as_str());
                assert_eq!(m.payload, format!(r#"{{"i":{n}}}"#).as_bytes());
                *n += 1;
                got += 1;
            }
            ClientEvent::Gap(g) => panic!("no gap may be reported: {g:?}"),
            ClientEvent::Disconnected { reason, .. } => panic!("link lost: {reason}"),
            _ => {}
        }
    }
    assert!(seen.values().all(|n| *n == PER), "{seen:?}");
    receiver.close();
    publisher.close();
    handle.shutdown().await;
}

/// What a misbehaving server does on its channel streams after the welcome.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// A stream whose first byte is not a channel stream's.
    BadHeader,
    /// A channel stream carrying a `message` of another channel.
    WrongChannel,
    /// Three channel streams to a client that accepts two.
    TooMany,
}

/// A server that answers `hello` with a `welcome`, then misbehaves; reports
/// the application close code and reason the client ended the session with.
fn misbehaving_server(
    how: Misbehaviour,
) -> (
    ServerHandle,
    tokio::sync::mpsc::UnboundedReceiver<(u64, String)>,
) {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]).unwrap();
    let server = WtServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        ServerConfig::default(),
        cert,
    )
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = server.serve(move |mut s: Accepted| {
        let tx = tx.clone();
        async move {
            let _hello = s.transport.recv().await;
            let welcome = r#"{"type":"welcome","version":1,"session":"s1-bad","resume_token":"t0k3n","resumed":false,"heartbeat_ms":15000,"max_frame":1048576,"publish_acked":0}"#;
            s.transport.send(Bytes::from_static(welcome.as_bytes())).await.unwrap();
            let conn = s.transport.connection().clone();
            let streams = match how {
                Misbehaviour::TooMany => 3,
                _ => 1,
            };
            for k in 0..streams {
                let mut send = conn.open_uni().await.unwrap().await.unwrap();
                let mut bytes = bytes::BytesMut::new();
                match how {
                    Misbehaviour::BadHeader => bytes.extend_from_slice(b"\x07garbage"),
                    Misbehaviour::WrongChannel => {
                        write_header(&mut bytes, "mine");
                        let m = br#"{"type":"message","channel":"theirs","seq":1,"id":"1","data":1}"#;
                        bytes.extend_from_slice(&common::framed(m));
                    }
                    Misbehaviour::TooMany => write_header(&mut bytes, &format!("c{k}")),
                }
                let _ = send.write_all(&bytes).await;
                std::mem::forget(send);
            }
            let closed = match conn.closed().await {
                ConnectionError::ApplicationClosed(c) => (
                    c.code().into_inner(),
                    String::from_utf8_lossy(c.reason()).into_owned(),
                ),
                other => (0, other.to_string()),
            };
            let _ = tx.send(closed);
        }
    });
    (handle, rx)
}

/// A server's bad channel stream (a wrong header, another channel's frame,
/// more streams than the client accepts) is a typed error on the client,
/// which ends that session with its close code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_channel_streams_from_a_server_are_typed_errors() {
    for (how, code, says) in [
        (
            Misbehaviour::BadHeader,
            close_code::GARBAGE,
            "bad channel stream header",
        ),
        (
            Misbehaviour::WrongChannel,
            close_code::GARBAGE,
            "stream of channel `mine`",
        ),
        (
            Misbehaviour::TooMany,
            close_code::UNEXPECTED_STREAM,
            "beyond the session's 2",
        ),
    ] {
        let (handle, mut closed) = misbehaving_server(how);
        let wt = WtConfig::default().with_channel_streams(2, 1 << 20);
        let client = common::connector(handle.local_addr(), handle.certificate_hash(), wt)(
            client_session_config(),
        );
        let reason = loop {
            match next(&client).await {
                ClientEvent::Disconnected { reason, .. } => break reason,
                _ => continue,
            }
        };
        assert!(reason.contains(says), "{how:?}: {reason}");
        let (got, why) = tokio::time::timeout(Duration::from_secs(10), closed.recv())
            .await
            .expect("the client closes the session")
            .unwrap();
        assert_eq!(got, u64::from(code), "{how:?}: {why}");
        println!("{how:?}: client disconnected ({reason}), session closed with {got}: {why}");
        client.close();
        handle.shutdown().await;
    }
}
