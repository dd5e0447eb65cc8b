//! Presence benches on a real hub (in-memory transports, JSON frames, no sockets): a room of 10,000 members.
//!
//! * `join_fanout/10000_members_1000_watchers` — one more session joins the
//!   room; the time until each of the 1,000 watching sessions has the diff
//!   frame in its transport (the presence flush runs every millisecond here,
//!   so up to 1 ms of the time is the flush timer).
//! * `snapshot/10000_members` — a new session subscribes to the room's
//!   presence channel; the time until its snapshot of 10,000 members (about
//!   150 KB of JSON) is in its transport.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use tidings_channels::{Hub, MemoryBroker};
use tidings_codec::JsonCodec;
use tidings_presence::{Presence, PresenceConfig};
use tidings_runtime::TransportExt;
use tidings_test::memory::{MemoryTransport, pair};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

const MEMBERS: usize = 10_000;
const WATCHERS: usize = 1_000;
const ROOM: &str = "room:bench";

fn serve(hub: &Hub) -> MemoryTransport {
    let (client, server) = pair();
    let hub = hub.clone();
    tokio::spawn(async move { hub.serve(server, Arc::new(JsonCodec::new())).await });
    client
}

async fn send(t: &mut MemoryTransport, json: &str) {
    t.send(Bytes::copy_from_slice(json.as_bytes()))
        .await
        .expect("memory transport open");
}

/// Reads frames until one starts with `prefix`.
async fn until(t: &mut MemoryTransport, prefix: &str) {
    while let Some(Ok(frame)) = t.recv().await {
        if frame.starts_with(prefix.as_bytes()) {
            return;
        }
    }
    panic!("transport ended before {prefix}");
}

async fn open(hub: &Hub, channels: &[&str]) -> MemoryTransport {
    let mut t = serve(hub);
    send(&mut t, r#"{"type":"hello","version":1}"#).await;
    until(&mut t, r#"{"type":"welcome""#).await;
    for c in channels {
        send(
            &mut t,
            &format!(r#"{{"type":"subscribe","channel":"{c}"}}"#),
        )
        .await;
        until(&mut t, r#"{"type":"subscribed""#).await;
    }
    t
}

/// Ends the session (not just the connection), so nothing waits for a resume.
async fn close(mut t: MemoryTransport) {
    send(&mut t, r#"{"type":"close","code":1000,"reason":"done"}"#).await;
    until(&mut t, r#"{"type":"close""#).await;
}

/// Presence messages received by all watchers, and who waits for a count.
struct Tally {
    n: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

fn watch(mut t: MemoryTransport, tally: Arc<Tally>) {
    tokio::spawn(async move {
        let presence = format!(r#"{{"type":"message","channel":"presence:{ROOM}""#);
        while let Some(Ok(frame)) = t.recv().await {
            if frame.starts_with(presence.as_bytes()) {
                let n = tally.n.fetch_add(1, Ordering::AcqRel) + 1;
                if n == tally.target.load(Ordering::Acquire) {
                    tally.reached.notify_one();
                }
            }
        }
    });
}

async fn wait_for(tally: &Tally, target: u64) {
    let reached = tally.reached.notified();
    tally.target.store(target, Ordering::Release);
    if tally.n.load(Ordering::Acquire) >= target {
        return;
    }
    tokio::time::timeout(Duration::from_secs(60), reached)
        .await
        .expect("every watcher got the diff");
}

fn presence(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let (hub, tally) = rt.block_on(async {
        let hub = Hub::new(Arc::new(MemoryBroker::default()));
        let mut config = PresenceConfig::default();
        config.flush_interval = Duration::from_millis(1);
        config.grace = Duration::ZERO;
        Presence::attach(&hub, config).await.expect("presence");
        let mut members = Vec::with_capacity(MEMBERS);
        for _ in 0..MEMBERS - WATCHERS {
            members.push(open(&hub, &[ROOM]).await);
        }
        let tally = Arc::new(Tally {
            n: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: Notify::new(),
        });
        let presence_channel = format!("presence:{ROOM}");
        for _ in 0..WATCHERS {
            let t = open(&hub, &[ROOM, &presence_channel]).await;
            watch(t, tally.clone());
        }
        // Let the joins of the watchers themselves settle.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Members' transports are only kept open (their frames are not read).
        std::mem::forget(members);
        (hub, tally)
    });

    let mut group = c.benchmark_group("presence");
    group.sample_size(20);
    group.bench_function("join_fanout/10000_members_1000_watchers", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let base = tally.n.load(Ordering::Acquire);
                    let mut t = open(&hub, &[]).await;
                    let start = Instant::now();
                    send(
                        &mut t,
                        &format!(r#"{{"type":"subscribe","channel":"{ROOM}"}}"#),
                    )
                    .await;
                    wait_for(&tally, base + WATCHERS as u64).await;
                    total += start.elapsed();
                    close(t).await;
                    // Its leave reaches the watchers too, outside the time.
                    wait_for(&tally, base + 2 * WATCHERS as u64).await;
                }
                total
            })
        });
    });
    group.bench_function("snapshot/10000_members", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut t = open(&hub, &[]).await;
                    let start = Instant::now();
                    send(
                        &mut t,
                        &format!(r#"{{"type":"subscribe","channel":"presence:{ROOM}"}}"#),
                    )
                    .await;
                    until(&mut t, r#"{"type":"message""#).await;
                    total += start.elapsed();
                    close(t).await;
                }
                total
            })
        });
    });
    group.finish();
}

criterion_group!(benches, presence);
criterion_main!(benches);
