//! The plan of a run's wake-ups: when (offset from the run start) and to whom (agent index).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp};

/// One planned wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Intended send time, ns after the run start.
    pub offset_ns: u64,
    /// Target agent's run index.
    pub agent: u32,
}

/// Every wake-up of a run, in send order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// The wake-ups, sorted by offset (broadcasts in agent order).
    pub items: Vec<Planned>,
}

/// A steady stream: `rate` per second from `from` to `until`, to uniformly random agents.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Wake-ups per second (mean of a Poisson process).
    pub per_sec: f64,
    /// Start offset.
    pub from: Duration,
    /// End offset (exclusive).
    pub until: Duration,
}

impl Schedule {
    /// The plan for `agents` agents: one wake-up to each at every `broadcast` offset, plus the
    /// Poisson `stream`, seeded by `seed`.
    pub fn plan(agents: u32, broadcast: &[Duration], stream: Option<Stream>, seed: u64) -> Self {
        let mut items = Vec::new();
        for b in broadcast {
            let offset_ns = b.as_nanos() as u64;
            items.extend((0..agents).map(|agent| Planned { offset_ns, agent }));
        }
        if let (Some(s), true) = (stream, agents > 0) {
            if let Ok(exp) = Exp::new(s.per_sec) {
                let mut rng = StdRng::seed_from_u64(seed ^ 0x5741_4b45_5550); // "WAKEUP"
                let mut t = s.from.as_secs_f64();
                let end = s.until.as_secs_f64();
                loop {
                    t += exp.sample(&mut rng);
                    if t >= end {
                        break;
                    }
                    items.push(Planned {
                        offset_ns: (t * 1e9) as u64,
                        agent: rng.random_range(0..agents),
                    });
                }
            }
        }
        // Stable: broadcast rounds keep agent order.
        items.sort_by_key(|p| p.offset_ns);
        Self { items }
    }

    /// Number of wake-ups planned.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when nothing is planned.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_reach_every_agent_at_their_offset() {
        let s = Schedule::plan(
            3,
            &[Duration::from_secs(2), Duration::from_secs(1)],
            None,
            1,
        );
        let got: Vec<(u64, u32)> = s
            .items
            .iter()
            .map(|p| (p.offset_ns / 1_000_000_000, p.agent))
            .collect();
        assert_eq!(got, vec![(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]);
    }

    #[test]
    fn stream_has_the_rate_and_is_seeded() {
        let st = Stream {
            per_sec: 100.0,
            from: Duration::from_secs(10),
            until: Duration::from_secs(110),
        };
        let a = Schedule::plan(50, &[], Some(st), 7);
        let b = Schedule::plan(50, &[], Some(st), 7);
        let c = Schedule::plan(50, &[], Some(st), 8);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // 10,000 expected; Poisson sd = 100, so ±5 sd:
        assert!((9_500..=10_500).contains(&a.len()), "{}", a.len());
        assert!(a.items.iter().all(|p| p.offset_ns >= 10_000_000_000
            && p.offset_ns < 110_000_000_000
            && p.agent < 50));
        assert!(a.items.windows(2).all(|w| w[0].offset_ns <= w[1].offset_ns));
        // every agent is hit about equally often (200 each expected)
        let mut hits = [0u32; 50];
        for p in &a.items {
            hits[p.agent as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (130..=270).contains(&h)), "{hits:?}");
    }
}
