//! `PublishLatency`: a histogram of how long the broker takes with each publish (memory broker: the fan-out; a backend: until stored), recorded only while someone reads it, in per-thread shards so that publishing writes no memory shared between cores.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (Prometheus' `le`); one more
/// bucket counts everything slower (`+Inf`).
pub const LATENCY_BOUNDS: [f64; 20] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The same bounds in nanoseconds (what a recording compares with).
const BOUNDS_NS: [u64; 20] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
];

const BUCKETS: usize = BOUNDS_NS.len() + 1;
const SHARDS: usize = 8;

/// One thread's share: buckets and sum on lines of their own.
#[repr(align(64))]
#[derive(Default)]
struct Shard {
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
}

/// Latency of the hub's publishes to its broker (see the module docs).
/// Off until [`PublishLatency::enable`]: then each publish costs two clock
/// reads and two relaxed additions on the recording thread's own shard.
#[derive(Default)]
pub struct PublishLatency {
    enabled: AtomicBool,
    shards: [Shard; SHARDS],
}

impl std::fmt::Debug for PublishLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishLatency")
            .field("enabled", &self.is_enabled())
            .finish_non_exhaustive()
    }
}

fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        i.get()
    })
}

impl PublishLatency {
    /// Starts recording (a metrics endpoint calls it when mounted).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Whether publishes are being timed.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Records one publish that took `took`.
    pub fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BOUNDS_NS.len());
        let shard = &self.shards[shard_index()];
        shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        shard.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts so far, summed over the shards.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut counts = [0u64; BUCKETS];
        let mut sum_ns = 0u64;
        for s in &self.shards {
            for (c, b) in counts.iter_mut().zip(&s.buckets) {
                *c += b.load(Ordering::Relaxed);
            }
            sum_ns = sum_ns.wrapping_add(s.sum_ns.load(Ordering::Relaxed));
        }
        LatencySnapshot { counts, sum_ns }
    }
}

/// Counts of a [`PublishLatency`] at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// Publishes per bucket (not cumulative): `counts[i]` took at most
    /// [`LATENCY_BOUNDS`]`[i]` and more than the bound before; the last
    /// counts those slower than every bound.
    pub counts: [u64; LATENCY_BOUNDS.len() + 1],
    /// Total time of every recorded publish, in nanoseconds.
    pub sum_ns: u64,
}

impl LatencySnapshot {
    /// Publishes recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_their_bucket() {
        let h = PublishLatency::default();
        h.record(Duration::from_nanos(800));
        h.record(Duration::from_micros(3));
        h.record(Duration::from_secs(10));
        let s = h.snapshot();
        assert_eq!(s.count(), 3);
        assert_eq!(s.counts[0], 1);
        assert_eq!(s.counts[2], 1, "3 µs ≤ 5 µs");
        assert_eq!(s.counts[BUCKETS - 1], 1, "+Inf");
        assert_eq!(s.sum_ns, 800 + 3_000 + 10_000_000_000);
    }
}
