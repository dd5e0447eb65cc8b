//! The clock of every timestamp the generator writes into a payload and reads back.

use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds since the first call in this process (the clock of every timestamp).
///
/// Call it once before the first measurement, so that the first reading is not the one
/// that starts the clock.
#[inline]
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::now_ns;

    #[test]
    fn never_goes_back() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
