//! `RateLimit` and its token bucket: how many publishes a session may make per second, with a burst, counted with the time the driver passes in.

use std::time::Duration;

use web_time::Instant;

/// A publish rate: `per_second` on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Publishes per second on average.
    pub per_second: u32,
    /// Publishes allowed at once after a quiet spell.
    pub burst: u32,
}

/// A token bucket for a [`RateLimit`]: full at first, one token per publish.
#[derive(Debug)]
pub(crate) struct Bucket {
    limit: RateLimit,
    /// Tokens, in millionths (no floating point in the protocol).
    micro_tokens: u64,
    last: Instant,
}

const MICRO: u64 = 1_000_000;

impl Bucket {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            micro_tokens: u64::from(limit.burst) * MICRO,
            last: now,
        }
    }

    /// Whether the bucket would be full at `now` (it is then the same as a
    /// new one, so a table of buckets may forget it).
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        let added = micros(elapsed).saturating_mul(u64::from(self.limit.per_second));
        let cap = u64::from(self.limit.burst.max(1)) * MICRO;
        self.micro_tokens.saturating_add(added) >= cap
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        let added = micros(elapsed).saturating_mul(u64::from(self.limit.per_second));
        let cap = u64::from(self.limit.burst.max(1)) * MICRO;
        self.micro_tokens = self.micro_tokens.saturating_add(added).min(cap);
        if self.micro_tokens >= MICRO {
            self.micro_tokens -= MICRO;
            true
        } else {
            false
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_average_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            RateLimit {
                per_second: 10,
                burst: 3,
            },
            t0,
        );
        assert!((0..3).all(|_| b.take(t0)), "the burst");
        assert!(!b.take(t0), "then empty");
        let later = t0 + Duration::from_millis(100);
        assert!(b.take(later), "one token per 100 ms");
        assert!(!b.take(later));
        let much_later = later + Duration::from_secs(60);
        assert!((0..3).all(|_| b.take(much_later)), "refilled to the burst");
        assert!(!b.take(much_later), "never more than the burst");
    }
}
