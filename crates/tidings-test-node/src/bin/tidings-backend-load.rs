//! `tidings-backend-load`: publish → deliver through each broker (memory, Redis, ...) in one run: messages per second and delivery latency p50/p99, as a Markdown table.
//!
//! ```text
//! tidings-backend-load [--brokers memory://,redis://127.0.0.1:6379,postgres://...,nats://...] [--messages N] [--publishers P]
//! ```
//! Each broker gets one subscriber and `P` publishing tasks (each waits for
//! its publish to return before the next, as a hub's session does); a
//! message carries its publish time, the subscriber records the delay to
//! its delivery. Durable brokers publish under idempotency keys, as the
//! hub's client publishes do. A broker that cannot be reached is reported
//! as skipped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidings::backend::connect_broker;
use tidings::channels::Delivery;
use tidings::protocol::{ChannelName, SharedMessage};

/// Delivery latencies in µs, and the count.
struct Sink {
    base: Instant,
    lat: Mutex<Vec<u64>>,
    count: AtomicU64,
}

impl Delivery for Sink {
    fn deliver(&self, m: &Arc<SharedMessage>) {
        let p = &m.message().payload;
        let sent = p
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes);
        let now = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.lat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(now.saturating_sub(sent));
        self.count.fetch_add(1, Ordering::Release);
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(s, _)| s)
}

async fn run_one(url: &str, messages: u64, publishers: u64) -> Result<String, String> {
    let broker = connect_broker(url).await.map_err(|e| e.to_string())?;
    let channel =
        ChannelName::new(format!("bench{}", std::process::id())).map_err(|e| e.to_string())?;
    let sink = Arc::new(Sink {
        base: Instant::now(),
        lat: Mutex::new(Vec::with_capacity(messages as usize)),
        count: AtomicU64::new(0),
    });
    broker
        .subscribe(&channel, None, sink.clone())
        .await
        .map_err(|e| e.to_string())?;
    let durable = broker.is_durable();
    let started = Instant::now();
    let per = messages / publishers;
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (broker, channel, sink) = (broker.clone(), channel.clone(), sink.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let now = u64::try_from(sink.base.elapsed().as_micros()).unwrap_or(0);
                let mut payload = now.to_le_bytes().to_vec();
                payload.extend_from_slice(&[b'x'; 24]); // 32 bytes in all
                let r = if durable {
                    broker
                        .publish_keyed(&channel, payload.into(), &format!("bench:{p}:{i}"))
                        .await
                } else {
                    broker.publish(&channel, payload.into()).await
                };
                if let Err(e) = r {
                    return Err(e.to_string());
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let total = per * publishers;
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.count.load(Ordering::Acquire) < total {
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {total} delivered",
                sink.count.load(Ordering::Acquire)
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let took = started.elapsed();
    if matches!(scheme(url), "redis" | "rediss") {
        // The run's keys go (its prefix is its own).
        let backend = tidings::backend::redis::RedisBackend::connect_url(url)
            .await
            .map_err(|e| e.to_string())?;
        backend.purge().await.map_err(|e| e.to_string())?;
    }
    if matches!(scheme(url), "postgres" | "postgresql") {
        let backend = tidings::backend::postgres::PostgresBackend::connect_url(url)
            .await
            .map_err(|e| e.to_string())?;
        backend.drop_schema().await.map_err(|e| e.to_string())?;
    }
    if scheme(url) == "nats" {
        let backend = tidings::backend::nats::NatsBackend::connect_url(url)
            .await
            .map_err(|e| e.to_string())?;
        backend.purge().await.map_err(|e| e.to_string())?;
    }
    let mut lat = sink.lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    lat.sort_unstable();
    Ok(format!(
        "| {} | {total} | {publishers} | {:.0} | {} µs | {} µs |",
        scheme(url),
        total as f64 / took.as_secs_f64(),
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let redis =
        std::env::var("TIDINGS_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let pg = std::env::var("TIDINGS_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let nats = std::env::var("TIDINGS_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let pid = std::process::id();
    let mut brokers = format!(
        "memory://,{redis}?prefix=tidings_bench_{pid},{pg}?schema=tidings_bench_{pid},{nats}?prefix=tidings_bench_{pid}"
    );
    let (mut messages, mut publishers) = (20_000u64, 16u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--brokers" => brokers = value()?,
            "--messages" => messages = value()?.parse()?,
            "--publishers" => publishers = value()?.parse::<u64>()?.max(1),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    println!("| broker | messages | publishers | msg/s | publish → deliver p50 | p99 |");
    println!("|---|---:|---:|---:|---:|---:|");
    for url in brokers.split(',').filter(|u| !u.is_empty()) {
        match run_one(url, messages, publishers).await {
            Ok(row) => println!("{row}"),
            Err(e) => println!("| {} | skipped: {e} | | | | |", scheme(url)),
        }
    }
    Ok(())
}
