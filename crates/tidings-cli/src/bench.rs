//! `tidings bench URL`: echo round trips and fan-out through a live server with the real client, a progress bar, and a p50/p99 table.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tidings::protocol::ClientEvent;
use tokio::sync::mpsc;

use crate::client::{self, AnyClient, ConnectOpts};
use crate::error::CliError;
use crate::out::Out;

/// What `bench` measures.
#[derive(Clone, Debug)]
pub struct BenchOpts {
    /// Echo round trips (publish on a subscribed channel → its message back).
    pub messages: u64,
    /// Fan-out subscribers.
    pub subscribers: usize,
    /// Fan-out messages (each to every subscriber).
    pub fanout_messages: u64,
    /// Payload bytes (at least the index the fan-out carries).
    pub size: usize,
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    name: String,
    deliveries: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// The `p`-quantile (0 < p ≤ 1) of sorted samples: the smallest value with at least `p` of the
/// samples at or below it.
pub fn quantile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn micros(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} {per_sec}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

/// Waits for the `Subscribed` of `channel`, failing on a refusal.
async fn subscribed(client: &AnyClient, channel: &str, timeout: Duration) -> Result<(), CliError> {
    let deadline = Instant::now() + timeout;
    loop {
        let what = || format!("the subscription to {channel}");
        match client::next_by(client, deadline, what, timeout).await? {
            ClientEvent::Subscribed { channel: c, .. } if c.as_str() == channel => return Ok(()),
            ClientEvent::Error { code, message } => {
                return Err(CliError::Server {
                    code: code.to_string(),
                    message,
                });
            }
            _ => {}
        }
    }
}

/// The payload of fan-out message `index`: the index, padded to `size` bytes.
fn payload(index: u64, size: usize) -> Vec<u8> {
    let mut p = index.to_string().into_bytes();
    if p.len() < size {
        p.push(b' ');
        p.resize(size, b'x');
    }
    p
}

fn index_of(payload: &[u8]) -> Option<u64> {
    let end = payload
        .iter()
        .position(|b| *b == b' ')
        .unwrap_or(payload.len());
    std::str::from_utf8(&payload[..end]).ok()?.parse().ok()
}

async fn echo(url: &str, o: &BenchOpts, opts: &ConnectOpts) -> Result<Row, CliError> {
    let timeout = opts.timeout()?;
    let client = AnyClient::start(url, opts)?;
    let channel = client::unique_channel("bench:echo");
    client.subscribe(&channel)?;
    client::wait_open(&client, url, timeout).await?;
    subscribed(&client, &channel, timeout).await?;
    let pb = bar(o.messages, "echo");
    let mut latencies = Vec::with_capacity(o.messages as usize);
    let started = Instant::now();
    for i in 0..o.messages {
        let sent = Instant::now();
        client.publish(&channel, payload(i, o.size))?;
        loop {
            let event = client::next_by(
                &client,
                sent + timeout,
                || format!("echo {i} on {channel}"),
                timeout,
            )
            .await?;
            match event {
                ClientEvent::Message(m) if index_of(&m.payload) == Some(i) => break,
                ClientEvent::PublishRefused { code, message, .. } => {
                    return Err(CliError::PublishRefused {
                        channel: channel.clone(),
                        code: code.to_string(),
                        message,
                    });
                }
                _ => {}
            }
        }
        latencies.push(sent.elapsed());
        pb.inc(1);
    }
    let elapsed = started.elapsed();
    pb.finish_and_clear();
    client.close();
    Ok(Row {
        name: "echo".into(),
        deliveries: latencies.len(),
        elapsed,
        latencies,
    })
}

async fn fanout(url: &str, o: &BenchOpts, opts: &ConnectOpts) -> Result<Row, CliError> {
    let timeout = opts.timeout()?;
    let channel = client::unique_channel("bench:fanout");
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut subscribers = Vec::with_capacity(o.subscribers);
    for _ in 0..o.subscribers {
        let client = AnyClient::start(url, opts)?;
        client.subscribe(&channel)?;
        subscribers.push(client);
    }
    for client in &subscribers {
        client::wait_open(client, url, timeout).await?;
        subscribed(client, &channel, timeout).await?;
    }
    let mut tasks = Vec::new();
    for client in subscribers {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(event) = client.next_event().await {
                if let ClientEvent::Message(m) = event
                    && let Some(i) = index_of(&m.payload)
                    && tx.send((i, Instant::now())).is_err()
                {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let publisher = AnyClient::start(url, opts)?;
    client::wait_open(&publisher, url, timeout).await?;
    let total = o.fanout_messages * o.subscribers as u64;
    let pb = bar(total, "fan-out");
    let mut latencies = Vec::with_capacity(total as usize);
    let started = Instant::now();
    for i in 0..o.fanout_messages {
        let sent = Instant::now();
        publisher.publish(&channel, payload(i, o.size))?;
        let mut got = 0;
        while got < o.subscribers {
            let left = (sent + timeout).saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((index, at))) if index == i => {
                    latencies.push(at.duration_since(sent));
                    got += 1;
                    pb.inc(1);
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err(CliError::Closed("a subscriber closed".into())),
                Err(_) => {
                    return Err(CliError::Timeout {
                        what: format!(
                            "message {i} to reach all {} subscribers ({got} got it)",
                            o.subscribers
                        ),
                        secs: timeout.as_secs_f64(),
                    });
                }
            }
        }
    }
    let elapsed = started.elapsed();
    pb.finish_and_clear();
    publisher.close();
    for t in tasks {
        t.abort();
    }
    Ok(Row {
        name: format!("fan-out x{}", o.subscribers),
        deliveries: latencies.len(),
        elapsed,
        latencies,
    })
}

/// Runs the echo and fan-out measurements and prints the table.
pub async fn run(
    url: &str,
    o: &BenchOpts,
    opts: &ConnectOpts,
    out: &mut Out,
) -> Result<(), CliError> {
    if o.messages == 0 && (o.fanout_messages == 0 || o.subscribers == 0) {
        return Err(CliError::BadArgument(
            "nothing to measure: every count is 0".into(),
        ));
    }
    let mut rows = Vec::new();
    if o.messages > 0 {
        rows.push(echo(url, o, opts).await?);
    }
    if o.fanout_messages > 0 && o.subscribers > 0 {
        rows.push(fanout(url, o, opts).await?);
    }
    out.line(&format!(
        "{:<14} {:>10} {:>12} {:>10} {:>10} {:>10}",
        "test", "deliveries", "per second", "p50", "p99", "max"
    ))?;
    for mut row in rows {
        row.latencies.sort_unstable();
        let rate = row.deliveries as f64 / row.elapsed.as_secs_f64().max(1e-9);
        out.line(&format!(
            "{:<14} {:>10} {:>12.0} {:>10} {:>10} {:>10}",
            row.name,
            row.deliveries,
            rate,
            micros(quantile(&row.latencies, 0.50)),
            micros(quantile(&row.latencies, 0.99)),
            micros(row.latencies.last().copied().unwrap_or_default()),
        ))?;
    }
    out.info(&format!(
        "{}-byte payloads, closed loop (one message in flight); echo: publish → own message back; fan-out: publish → each subscriber's receipt",
        o.size
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_payloads() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(quantile(&v, 0.5), Duration::from_micros(50));
        assert_eq!(quantile(&v, 0.99), Duration::from_micros(99));
        assert_eq!(quantile(&v[..1], 0.99), Duration::from_micros(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
        assert_eq!(index_of(&payload(42, 32)), Some(42));
        assert_eq!(payload(42, 32).len(), 32);
        assert_eq!(index_of(&payload(123_456, 2)), Some(123_456));
    }
}
