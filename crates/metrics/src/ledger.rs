//! The orchestrator's record of every wake-up sent, and the exactly-once classification of
//! each: delivered (first receipt within `late_after`), late (first receipt after it), or lost
//! (never received). Duplicates are counted besides; receipts of unknown wake-ups too.

use serde::{Deserialize, Serialize};

use crate::recorder::Receipt;

/// One sent wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Index of the target agent in the run.
    pub agent: u32,
    /// Intended send time, ns on the run clock.
    pub intended_ns: u64,
}

/// Every wake-up of a run, indexed by sequence number.
#[derive(Debug, Default)]
pub struct Ledger {
    sent: Vec<Sent>,
}

/// The wake-up accounting of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WakeupCounts {
    /// Published by the console.
    pub sent: u64,
    /// Received within the deadline.
    pub delivered: u64,
    /// Received after the deadline.
    pub late: u64,
    /// Never received.
    pub lost: u64,
    /// Receipts after the first (not part of the sum).
    pub duplicate: u64,
    /// Receipts of sequence numbers never sent (not part of the sum).
    pub unknown: u64,
}

impl WakeupCounts {
    /// True when every sent wake-up is in exactly one bucket.
    pub fn adds_up(&self) -> bool {
        self.delivered + self.late + self.lost == self.sent
    }

    /// Adds another set of counts (disjoint wake-ups, e.g. another group's).
    pub fn add(&mut self, o: &WakeupCounts) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.late += o.late;
        self.lost += o.lost;
        self.duplicate += o.duplicate;
        self.unknown += o.unknown;
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a wake-up about to be sent; returns its sequence number.
    pub fn record(&mut self, agent: u32, intended_ns: u64) -> u64 {
        self.sent.push(Sent { agent, intended_ns });
        (self.sent.len() - 1) as u64
    }

    /// Wake-ups recorded so far.
    pub fn len(&self) -> u64 {
        self.sent.len() as u64
    }

    /// True when nothing was sent.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// Classifies every sent wake-up exactly once from the first receipts of all processes.
    /// `duplicates` are the duplicates the processes counted themselves.
    pub fn classify<'a>(
        &self,
        receipts: impl IntoIterator<Item = &'a Receipt>,
        late_after_us: u64,
        duplicates: u64,
    ) -> WakeupCounts {
        self.classify_where(receipts, late_after_us, duplicates, |_| true)
    }

    /// The same for the wake-ups sent to agents for which `in_group` holds (one group's
    /// receipts); receipts of other agents' wake-ups are passed over.
    pub fn classify_where<'a>(
        &self,
        receipts: impl IntoIterator<Item = &'a Receipt>,
        late_after_us: u64,
        duplicates: u64,
        in_group: impl Fn(u32) -> bool,
    ) -> WakeupCounts {
        // 0 = not received, 1 = delivered, 2 = late, 3 = another group's
        let mut state: Vec<u8> = self
            .sent
            .iter()
            .map(|s| if in_group(s.agent) { 0 } else { 3 })
            .collect();
        let mut c = WakeupCounts {
            duplicate: duplicates,
            ..Default::default()
        };
        for r in receipts {
            let Some(slot) = usize::try_from(r.seq).ok().and_then(|i| state.get_mut(i)) else {
                c.unknown += 1;
                continue;
            };
            match *slot {
                0 => *slot = if r.latency_us <= late_after_us { 1 } else { 2 },
                3 => {}
                _ => c.duplicate += 1,
            }
        }
        for s in state {
            match s {
                1 => c.delivered += 1,
                2 => c.late += 1,
                3 => continue,
                _ => c.lost += 1,
            }
            c.sent += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wakeup_in_exactly_one_bucket() {
        let mut l = Ledger::new();
        for i in 0..5 {
            assert_eq!(l.record(i, 0), i as u64);
        }
        let receipts = [
            Receipt {
                seq: 0,
                latency_us: 10,
            },
            Receipt {
                seq: 1,
                latency_us: 5_000_001,
            },
            Receipt {
                seq: 2,
                latency_us: 5_000_000,
            },
            Receipt {
                seq: 2,
                latency_us: 7,
            }, // same seq from another process
            Receipt {
                seq: 99,
                latency_us: 1,
            }, // never sent
        ];
        let c = l.classify(&receipts, 5_000_000, 3);
        assert_eq!(
            c,
            WakeupCounts {
                sent: 5,
                delivered: 2,
                late: 1,
                lost: 2,
                duplicate: 4,
                unknown: 1
            }
        );
        assert!(c.adds_up());
        // agents 0..=2 only: seqs 0, 1, 2
        let g = l.classify_where(&receipts, 5_000_000, 0, |a| a <= 2);
        assert_eq!(
            g,
            WakeupCounts {
                sent: 3,
                delivered: 2,
                late: 1,
                lost: 0,
                duplicate: 1,
                unknown: 1
            }
        );
        let h = l.classify_where(&receipts, 5_000_000, 0, |a| a > 2);
        assert_eq!((h.sent, h.lost, h.delivered), (2, 2, 0));
    }
}
