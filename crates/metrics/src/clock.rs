//! The run's clock: `CLOCK_MONOTONIC` in nanoseconds. All processes of a run live on one host,
//! so values taken in different processes compare directly (wake-up payloads carry them).

use rustix::time::{clock_gettime, ClockId};

/// Nanoseconds on `CLOCK_MONOTONIC`.
pub fn mono_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    // CLOCK_MONOTONIC is never negative.
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Microseconds from `from_ns` to `to_ns`, zero if `to_ns` is earlier.
pub fn elapsed_us(from_ns: u64, to_ns: u64) -> u64 {
    to_ns.saturating_sub(from_ns) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_elapsed() {
        let a = mono_ns();
        let b = mono_ns();
        assert!(b >= a);
        assert_eq!(elapsed_us(1_000, 3_500_000), 3_499);
        assert_eq!(elapsed_us(5_000, 1_000), 0);
    }
}
