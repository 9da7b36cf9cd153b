//! Waits between failed connect rounds (AWS Architecture Blog, "Exponential Backoff And
//! Jitter"; attempt n from 0, base b, cap c):
//!
//! | policy | sleep |
//! |---|---|
//! | none | 0 |
//! | fixed | b |
//! | exponential | min(c, b·2ⁿ) |
//! | full-jitter | rand(0, min(c, b·2ⁿ)) |
//! | equal-jitter | t/2 + rand(0, t/2), t = min(c, b·2ⁿ) |
//! | decorrelated-jitter | min(c, rand(b, previous·3)) |
//!
//! Pure: the random source is passed in (each agent's own, seeded from the run's seed).

use std::time::Duration;

use pushsim_scenario::model::{Backoff as Spec, BackoffPolicy};
use rand::Rng;

/// One agent's backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    spec: Spec,
    attempt: u32,
    prev: Duration,
}

impl Backoff {
    /// Fresh state for `spec`.
    pub fn new(spec: Spec) -> Self {
        Self {
            prev: spec.base.get(),
            spec,
            attempt: 0,
        }
    }

    /// Rounds failed since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Forgets past failures (after a stable connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.prev = self.spec.base.get();
    }

    /// The wait before the next round; counts one more failed round.
    pub fn next(&mut self, rng: &mut impl Rng) -> Duration {
        let (b, c) = (self.spec.base.get(), self.spec.cap.get());
        let exp = || {
            b.checked_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
                .unwrap_or(c)
                .min(c)
        };
        let uniform = |rng: &mut dyn rand::RngCore, lo: Duration, hi: Duration| {
            if hi <= lo {
                lo
            } else {
                Duration::from_nanos(rng.random_range(lo.as_nanos() as u64..=hi.as_nanos() as u64))
            }
        };
        let d = match self.spec.policy {
            BackoffPolicy::None => Duration::ZERO,
            BackoffPolicy::Fixed => b,
            BackoffPolicy::Exponential => exp(),
            BackoffPolicy::FullJitter => uniform(rng, Duration::ZERO, exp()),
            BackoffPolicy::EqualJitter => {
                let t = exp();
                t / 2 + uniform(rng, Duration::ZERO, t / 2)
            }
            BackoffPolicy::DecorrelatedJitter => {
                let hi = self.prev.saturating_mul(3).max(b);
                uniform(rng, b, hi).min(c)
            }
        };
        self.attempt = self.attempt.saturating_add(1);
        self.prev = d;
        d
    }
}

#[cfg(test)]
mod tests {
    use pushsim_scenario::Dur;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    fn spec(policy: BackoffPolicy) -> Spec {
        Spec {
            policy,
            base: Dur::secs(1),
            cap: Dur::secs(30),
        }
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn deterministic_policies() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut none = Backoff::new(spec(BackoffPolicy::None));
        let mut fixed = Backoff::new(spec(BackoffPolicy::Fixed));
        let mut exp = Backoff::new(spec(BackoffPolicy::Exponential));
        let e: Vec<f64> = (0..8).map(|_| secs(exp.next(&mut rng))).collect();
        assert_eq!(e, vec![1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(none.next(&mut rng), Duration::ZERO);
        assert_eq!(fixed.next(&mut rng), Duration::from_secs(1));
        assert_eq!(fixed.next(&mut rng), Duration::from_secs(1));
        exp.reset();
        assert_eq!(exp.next(&mut rng), Duration::from_secs(1));
        // far past the cap, no overflow
        for _ in 0..100 {
            exp.next(&mut rng);
        }
        assert_eq!(exp.next(&mut rng), Duration::from_secs(30));
    }

    /// Bounds of every draw, and the mean of many draws against the formula's.
    fn draws(policy: BackoffPolicy, attempt: u32, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let mut b = Backoff::new(spec(policy));
                for _ in 0..attempt {
                    b.next(&mut rng);
                }
                secs(b.next(&mut rng))
            })
            .collect()
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn full_jitter_is_uniform_below_the_exponential() {
        let v = draws(BackoffPolicy::FullJitter, 3, 20_000, 7); // t = 8 s
        assert!(v.iter().all(|&x| (0.0..=8.0).contains(&x)));
        assert!((mean(&v) - 4.0).abs() < 0.1, "mean {}", mean(&v));
        let low = v.iter().filter(|&&x| x < 2.0).count() as f64 / v.len() as f64;
        assert!((low - 0.25).abs() < 0.02, "P(x<2) = {low}");
    }

    #[test]
    fn equal_jitter_keeps_half() {
        let v = draws(BackoffPolicy::EqualJitter, 3, 20_000, 7); // t = 8 s: [4, 8]
        assert!(v.iter().all(|&x| (4.0..=8.0).contains(&x)));
        assert!((mean(&v) - 6.0).abs() < 0.1, "mean {}", mean(&v));
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_and_stays_capped() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut b = Backoff::new(spec(BackoffPolicy::DecorrelatedJitter));
        let mut prev: f64 = 1.0;
        for _ in 0..200 {
            let d = secs(b.next(&mut rng));
            assert!(
                (1.0..=30.0).contains(&d) && d <= (prev * 3.0).max(1.0) + 1e-9,
                "{d} after {prev}"
            );
            prev = d;
        }
        let first = draws(BackoffPolicy::DecorrelatedJitter, 0, 20_000, 9); // rand(1, 3)
        assert!((mean(&first) - 2.0).abs() < 0.05, "mean {}", mean(&first));
    }

    #[test]
    fn same_seed_same_waits() {
        assert_eq!(
            draws(BackoffPolicy::FullJitter, 2, 50, 11),
            draws(BackoffPolicy::FullJitter, 2, 50, 11)
        );
        assert_ne!(
            draws(BackoffPolicy::FullJitter, 2, 50, 11),
            draws(BackoffPolicy::FullJitter, 2, 50, 12)
        );
    }
}
