//! The leak check: many connect/disconnect cycles against a tidings server, then its RSS and session count back to their baseline.
//!
//! Each cycle opens a WebSocket and ends it one of three ways (cycle number mod 3):
//!
//! * 0 — a full session (`hello`, subscribe, publish, receive it back) ended in order:
//!   tidings `close`, WebSocket close; the hub forgets the session at once;
//! * 1 — the same session, then the socket is reset (`SO_LINGER` 0): the session is
//!   detached and expires after the resume window;
//! * 2 — the socket is closed (FIN) right after the WebSocket handshake, before `hello`.
//!
//! `--parallel` workers run cycles concurrently, all on one channel `leak` (so the broker's
//! channel count and history stay bounded and only connections come and go). The
//! cycles run in `--rounds` equal rounds; after each, the checker waits until the hub has
//! no session left (resume window + reaping) and reads the server's RSS. The first round
//! is the baseline: it brings the allocator to its working set (glibc keeps freed memory
//! of up to several thousand concurrent detached sessions mapped); a leak shows as RSS
//! growing round after round, i.e. the last round beyond the first by more than 10%.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tidings_loadgen::{self as proto, Handshake, now_ns};
use tokio_tungstenite::tungstenite::Message;

use crate::generator::{CONNECT_TIMEOUT, connect};
use crate::stats::{Probe, Record, progress};
use crate::{Args, sys};

const TAG: &str = "leak";

/// Every cycle subscribes and publishes here. One channel: the broker keeps the last 1,024
/// messages of each channel (each holding on to the 4 KiB read buffer it was decoded
/// from), so one channel reaches that plateau within the first round and per-worker
/// channels would look like growth round after round.
const LEAK_CHANNEL: &str = "leak";

/// `tidings-load leak ...`.
pub(crate) fn run(args: &Args) -> Result<(), String> {
    let addr: SocketAddr = args.req("addr")?;
    let probe = Probe {
        pid: args.req("server-pid")?,
        control: args.req("control")?,
    };
    let cycles: u64 = args.get("cycles", 100_000)?;
    let parallel: usize = args.get("parallel", 32)?;
    let resume = Duration::from_millis(args.get("resume-ms", 2_000u64)?);
    let rounds: u64 = args.get("rounds", 5)?;
    let limit = Duration::from_secs_f64(args.get("limit-secs", 120.0)?);
    sys::raise_nofile(parallel as u64 * 4 + 1_024)?;
    let rt = crate::runtime();
    let record = rt.block_on(check(
        addr,
        &probe,
        cycles,
        parallel,
        rounds.max(1),
        resume,
        limit,
    ))?;
    record.emit();
    std::process::exit(0);
}

#[derive(Default)]
struct Counts {
    done: AtomicU64,
    failed: AtomicU64,
    next: AtomicU64,
}

async fn check(
    addr: SocketAddr,
    probe: &Probe,
    cycles: u64,
    parallel: usize,
    rounds: u64,
    resume: Duration,
    limit: Duration,
) -> Result<Record, String> {
    let mut r = Record::default();
    let rss_start = probe.rss_kib();
    progress(
        TAG,
        &format!("RSS at start {rss_start} KiB; {cycles} cycles in {rounds} rounds"),
    );
    // Peak RSS while cycling, sampled.
    let peak = Arc::new(AtomicU64::new(rss_start));
    let sampler = {
        let (peak, pid) = (peak.clone(), probe.pid);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                peak.fetch_max(sys::rss_kib(pid).unwrap_or(0), Ordering::Relaxed);
            }
        })
    };
    let deadline = Instant::now() + limit;
    let per_round = cycles.div_ceil(rounds);
    let (mut done, mut failed, mut secs) = (0, 0, 0.0);
    let mut after_rounds = Vec::new();
    let mut last = (0, 0, 0.0);
    for round in 1..=rounds {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = per_round.min(cycles - done - failed);
        if n == 0 || left.is_zero() {
            break;
        }
        let (d, f, s) = cycles_run(addr, n, parallel, left).await;
        done += d;
        failed += f;
        secs += s;
        let (sessions_mid, _) = probe.sessions().unwrap_or((0, 0));
        let rss_mid = probe.rss_kib();
        last = wait_sessions_gone(probe, resume).await;
        let rss = probe.rss_kib();
        after_rounds.push(rss);
        progress(
            TAG,
            &format!(
                "round {round}: {d} cycles in {s:.1}s ({:.0}/s, {f} failed); at its end RSS {rss_mid} KiB, {sessions_mid} sessions; {:.1}s later {} sessions, {} connections, RSS {rss} KiB",
                d as f64 / s.max(1e-9),
                last.2,
                last.0,
                last.1
            ),
        );
    }
    sampler.abort();
    let (Some(&base), Some(&after)) = (after_rounds.first(), after_rounds.last()) else {
        return Err("no round ran".into());
    };
    if done == 0 {
        return Err(format!("no cycle succeeded ({failed} failed)"));
    }
    let ratio = after as f64 / base.max(1) as f64;
    let rounds_text: Vec<String> = after_rounds.iter().map(u64::to_string).collect();
    progress(
        TAG,
        &format!(
            "{done} cycles ({failed} failed) in {secs:.1}s: RSS after each round {} KiB; last/first = {:.1}% (peak {} KiB, empty server {rss_start} KiB); sessions at the end {}",
            rounds_text.join(" -> "),
            ratio * 100.0,
            peak.load(Ordering::Relaxed),
            last.0
        ),
    );
    r.num("cycles", cycles as f64)
        .num("cycles_done", done as f64)
        .num("cycles_failed", failed as f64)
        .num("cycles_secs", secs)
        .num("parallel", parallel as f64)
        .num("rounds", after_rounds.len() as f64)
        .num("resume_ms", resume.as_millis() as f64)
        .num("rss_start_kib", rss_start as f64)
        .num("rss_base_kib", base as f64)
        .num("rss_peak_kib", peak.load(Ordering::Relaxed) as f64)
        .num("rss_after_kib", after as f64)
        .num("rss_ratio", ratio)
        .text("rss_rounds_kib", &rounds_text.join(" "))
        .num("sessions_after", last.0 as f64)
        .num("connections_after", last.1 as f64)
        .num("wait_secs", last.2);
    Ok(r)
}

/// Waits until the hub has no session left (the resume window plus reaping), up to the
/// window + 10 s. Returns (sessions, connections, seconds waited).
async fn wait_sessions_gone(probe: &Probe, resume: Duration) -> (u64, u64, f64) {
    let started = Instant::now();
    let deadline = started + resume + Duration::from_secs(10);
    loop {
        let (sessions, connections) = probe.sessions().unwrap_or((u64::MAX, u64::MAX));
        if (sessions == 0 && connections == 0) || Instant::now() > deadline {
            // A moment for the allocator's frees of the last sessions to settle.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return (sessions, connections, started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `total` cycles on `parallel` workers, stopping early after `limit`.
/// Returns (done, failed, seconds).
async fn cycles_run(
    addr: SocketAddr,
    total: u64,
    parallel: usize,
    limit: Duration,
) -> (u64, u64, f64) {
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let deadline = started + limit;
    let mut workers = Vec::new();
    for _ in 0..parallel {
        let counts = counts.clone();
        workers.push(tokio::spawn(async move {
            let channel = LEAK_CHANNEL;
            let mut first_error = true;
            loop {
                let n = counts.next.fetch_add(1, Ordering::Relaxed);
                if n >= total || Instant::now() > deadline {
                    return;
                }
                match tokio::time::timeout(CONNECT_TIMEOUT, cycle(addr, n, channel)).await {
                    Ok(Ok(())) => {
                        counts.done.fetch_add(1, Ordering::Relaxed);
                    }
                    failure => {
                        counts.failed.fetch_add(1, Ordering::Relaxed);
                        if first_error {
                            first_error = false;
                            let e = match failure {
                                Ok(Err(e)) => e,
                                _ => "timed out".into(),
                            };
                            progress(TAG, &format!("cycle {n} failed: {e}"));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }));
    }
    let mut last = Instant::now();
    for w in workers {
        while !w.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if last.elapsed() > Duration::from_secs(5) {
                last = Instant::now();
                progress(
                    TAG,
                    &format!(
                        "{} cycles done, {} failed",
                        counts.done.load(Ordering::Relaxed),
                        counts.failed.load(Ordering::Relaxed)
                    ),
                );
            }
        }
    }
    (
        counts.done.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    )
}

async fn cycle(addr: SocketAddr, n: u64, channel: &str) -> Result<(), String> {
    let handshake = if n % 3 == 2 {
        Handshake::WebSocket
    } else {
        Handshake::Session {
            subscribe: Some(channel),
        }
    };
    let mut ws = connect(addr, handshake).await.map_err(|e| e.to_string())?;
    if n % 3 == 2 {
        // Before `hello`: the hub sees the transport end during its handshake.
        return Ok(());
    }
    let t = now_ns();
    ws.send(Message::text(proto::publish(channel, 1, t)))
        .await
        .map_err(|e| format!("publish: {e}"))?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                if proto::Frame::parse(text)
                    .is_some_and(|f| f.kind == "message" && f.sent_ns == Some(t))
                {
                    break;
                }
            }
            Some(Ok(_)) => {}
            other => return Err(format!("waiting for the message: {other:?}")),
        }
    }
    if n.is_multiple_of(3) {
        ws.send(Message::text(proto::CLOSE))
            .await
            .map_err(|e| format!("close: {e}"))?;
        // The server answers with its close and ends the connection.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    } else {
        let _ = ws.get_ref().set_zero_linger();
    }
    Ok(())
}
