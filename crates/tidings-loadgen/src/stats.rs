//! Round-trip statistics: percentiles of the samples and a histogram for spotting stalls of a fixed length.

/// Round-trip samples in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples(
    /// The round trips (ns), sorted once [`Samples::percentiles_us`] has run.
    pub Vec<u64>,
);

impl Samples {
    /// p50, p99, p99.9 and max in microseconds (0 when empty). Sorts in place.
    pub fn percentiles_us(&mut self) -> [f64; 4] {
        let v = &mut self.0;
        if v.is_empty() {
            return [0.0; 4];
        }
        v.sort_unstable();
        let at = |q: f64| {
            let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1e3
        };
        [at(0.50), at(0.99), at(0.999), at(1.0)]
    }
}

/// Counts per power-of-two bucket of milliseconds (`<1 ms`, `1-2 ms`, `2-4 ms`, ...), for
/// spotting stalls of a fixed length (delayed ACKs, retransmission timers) in a tail.
pub fn log2_histogram_ms(sorted_ns: &[u64]) -> String {
    let mut buckets: Vec<u64> = Vec::new();
    for &ns in sorted_ns {
        let ms = ns / 1_000_000;
        let b = if ms == 0 {
            0
        } else {
            64 - ms.leading_zeros() as usize
        };
        if buckets.len() <= b {
            buckets.resize(b + 1, 0);
        }
        buckets[b] += 1;
    }
    let mut out = Vec::new();
    for (b, n) in buckets.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let label = if b == 0 {
            "<1ms".to_owned()
        } else {
            format!("{}-{}ms", 1u64 << (b - 1), 1u64 << b)
        };
        out.push(format!("{label}:{n}"));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples((1..=1000).rev().map(|n| n * 1000).collect());
        assert_eq!(s.percentiles_us(), [500.0, 990.0, 999.0, 1000.0]);
        assert_eq!(Samples::default().percentiles_us(), [0.0; 4]);
        assert_eq!(Samples(vec![7_000]).percentiles_us(), [7.0; 4]);
    }

    #[test]
    fn histogram_buckets_are_powers_of_two_milliseconds() {
        let ms = 1_000_000;
        let sorted = [0, ms - 1, ms, 2 * ms - 1, 2 * ms, 3 * ms, 40 * ms];
        assert_eq!(
            log2_histogram_ms(&sorted),
            "<1ms:2 1-2ms:2 2-4ms:2 32-64ms:1"
        );
        assert_eq!(log2_histogram_ms(&[]), "");
    }
}
