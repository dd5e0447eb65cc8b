//! Presence benches on a real hub (in-memory transports, JSON frames, no sockets): a room of 10,000 members.
//!
//! * `join_fanout/10000_members_1000_watchers` — one more session joins the
//!   room; the time until each of the 1,000 watching sessions has the diff
//!   frame in its transport (the presence flush runs every millisecond here,
//!   so up to 1 ms of the time is the flush timer).
//! * `leave_fanout/10000_members_1000_watchers` — that session closes; the
//!   time until each watcher has the leave diff.
//! * `plain_fanout_same_bytes/1000_subscribers` — the baseline: the same
//!   watchers also subscribe to a plain channel, and the server publishes
//!   the bytes of a captured join diff on it (`Hub::publish`); the time
//!   until each has the message. What presence adds over a plain channel
//!   fan-out is the difference (its flush timer, the diff, the member
//!   table).
//! * `snapshot/10000_members` — a new session subscribes to the room's
//!   presence channel; the time until its snapshot of 10,000 members (about
//!   150 KB of JSON) is in its transport.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use tidings_benches::sum_measured;
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
const PLAIN: &str = "plain:bench";

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

impl Tally {
    fn new() -> Arc<Self> {
        Arc::new(Tally {
            n: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: Notify::new(),
        })
    }

    fn count(&self) {
        let n = self.n.fetch_add(1, Ordering::AcqRel) + 1;
        if n == self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }
}

/// Counts a watcher's presence messages and plain-channel messages; the
/// first watcher keeps the payload of the last join diff it saw in `diff`.
fn watch(
    mut t: MemoryTransport,
    tally: Arc<Tally>,
    plain: Arc<Tally>,
    diff: Option<Arc<Mutex<Option<String>>>>,
) {
    tokio::spawn(async move {
        let presence = format!(r#"{{"type":"message","channel":"presence:{ROOM}""#);
        let plain_prefix = format!(r#"{{"type":"message","channel":"{PLAIN}""#);
        while let Some(Ok(frame)) = t.recv().await {
            if frame.starts_with(presence.as_bytes()) {
                if let Some(diff) = &diff
                    && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&frame)
                    && v["data"].get("joined").is_some()
                {
                    *diff.lock().expect("diff lock") = Some(v["data"].to_string());
                }
                tally.count();
            } else if frame.starts_with(plain_prefix.as_bytes()) {
                plain.count();
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
    let (hub, tally, plain, diff) = rt.block_on(async {
        let hub = Hub::new(Arc::new(MemoryBroker::default()));
        let mut config = PresenceConfig::default();
        config.flush_interval = Duration::from_millis(1);
        config.grace = Duration::ZERO;
        Presence::attach(&hub, config).await.expect("presence");
        let mut members = Vec::with_capacity(MEMBERS);
        for _ in 0..MEMBERS - WATCHERS {
            members.push(open(&hub, &[ROOM]).await);
        }
        let (tally, plain) = (Tally::new(), Tally::new());
        let diff = Arc::new(Mutex::new(None));
        let presence_channel = format!("presence:{ROOM}");
        for i in 0..WATCHERS {
            let t = open(&hub, &[ROOM, &presence_channel, PLAIN]).await;
            watch(
                t,
                tally.clone(),
                plain.clone(),
                (i == 0).then(|| diff.clone()),
            );
        }
        // Let the joins of the watchers themselves settle.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Members' transports are only kept open (their frames are not read).
        std::mem::forget(members);
        // One join (and leave) before measuring: the join diff's bytes are
        // what the plain-channel baseline publishes.
        let base = tally.n.load(Ordering::Acquire);
        let t = open(&hub, &[ROOM]).await;
        wait_for(&tally, base + WATCHERS as u64).await;
        close(t).await;
        wait_for(&tally, base + 2 * WATCHERS as u64).await;
        let diff = diff
            .lock()
            .expect("diff lock")
            .clone()
            .expect("a join diff");
        (hub, tally, plain, Bytes::from(diff))
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
    let (hub_ref, tally_ref, plain_ref, diff_ref) = (&hub, &tally, &plain, &diff);
    group.bench_function("leave_fanout/10000_members_1000_watchers", |b| {
        b.iter_custom(|iters| {
            sum_measured(&rt, iters, move || async move {
                let base = tally_ref.n.load(Ordering::Acquire);
                let t = open(hub_ref, &[ROOM]).await;
                wait_for(tally_ref, base + WATCHERS as u64).await;
                let start = Instant::now();
                close(t).await;
                wait_for(tally_ref, base + 2 * WATCHERS as u64).await;
                start.elapsed()
            })
        });
    });
    group.bench_function("plain_fanout_same_bytes/1000_subscribers", |b| {
        b.iter_custom(|iters| {
            sum_measured(&rt, iters, move || async move {
                let base = plain_ref.n.load(Ordering::Acquire);
                let start = Instant::now();
                hub_ref
                    .publish(PLAIN, diff_ref.clone())
                    .await
                    .expect("publish");
                wait_for(plain_ref, base + WATCHERS as u64).await;
                start.elapsed()
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
