//! Per-second counters of a run. Seconds count from the run's start (`t0`, on the run clock).

use serde::{Deserialize, Serialize};

use crate::recorder::PATHS;

/// Counters of one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Successful connects (CONNACK received).
    pub connects: u64,
    /// Connections lost or closed.
    pub disconnects: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Wake-ups published by the console.
    pub wakeups_sent: u64,
    /// Wake-ups received for the first time.
    pub wakeups_delivered: u64,
    /// Connections broken by a fault rule (held, forgotten, closed or reset by the middlebox, or
    /// closed idle by the proxy).
    #[serde(default)]
    pub drops: u64,
    /// Of `connects`, per path (`recorder::PATH_NAMES` order).
    #[serde(default)]
    pub path_connects: [u64; PATHS],
    /// Of `disconnects`, per path.
    #[serde(default)]
    pub path_disconnects: [u64; PATHS],
}

impl Bucket {
    fn add(&mut self, o: &Bucket) {
        self.connects += o.connects;
        self.disconnects += o.disconnects;
        self.connect_failures += o.connect_failures;
        self.wakeups_sent += o.wakeups_sent;
        self.wakeups_delivered += o.wakeups_delivered;
        self.drops += o.drops;
        for p in 0..PATHS {
            self.path_connects[p] += o.path_connects[p];
            self.path_disconnects[p] += o.path_disconnects[p];
        }
    }
}

/// Seconds since `t0`, one bucket each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// Bucket `i` covers `[t0 + i s, t0 + (i+1) s)`.
    pub buckets: Vec<Bucket>,
}

impl Timeline {
    /// The bucket for run-clock time `now_ns`; events before `t0` land in second 0.
    pub fn at(&mut self, t0_ns: u64, now_ns: u64) -> &mut Bucket {
        let i = (now_ns.saturating_sub(t0_ns) / 1_000_000_000) as usize;
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, Bucket::default());
        }
        &mut self.buckets[i]
    }

    /// Adds another timeline second by second.
    pub fn add(&mut self, other: &Timeline) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), Bucket::default());
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            a.add(b);
        }
    }

    /// Connected agents at the end of each second: cumulative connects minus disconnects.
    pub fn connected(&self) -> Vec<u64> {
        let mut level: i64 = 0;
        self.buckets
            .iter()
            .map(|b| {
                level += b.connects as i64 - b.disconnects as i64;
                level.max(0) as u64
            })
            .collect()
    }

    /// Connected agents at the end of each second, per path: cumulative connects minus
    /// disconnects on that path.
    pub fn connected_by_path(&self) -> Vec<[u64; PATHS]> {
        let mut level = [0i64; PATHS];
        self.buckets
            .iter()
            .map(|b| {
                let mut out = [0u64; PATHS];
                for p in 0..PATHS {
                    level[p] += b.path_connects[p] as i64 - b.path_disconnects[p] as i64;
                    out[p] = level[p].max(0) as u64;
                }
                out
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_second_and_connected_level() {
        let mut t = Timeline::default();
        let t0 = 10_000_000_000;
        t.at(t0, t0 + 100).connects += 3;
        t.at(t0, t0 + 2_500_000_000).connects += 2;
        t.at(t0, t0 + 2_900_000_000).disconnects += 1;
        t.at(t0, t0 - 5).connects += 1; // before t0: second 0
        assert_eq!(t.buckets.len(), 3);
        assert_eq!(t.connected(), vec![4, 4, 5]);
    }

    #[test]
    fn connected_per_path_follows_each_path() {
        let mut t = Timeline::default();
        let b = t.at(0, 0);
        b.path_connects = [3, 0, 2, 0];
        let b = t.at(0, 1_000_000_000);
        b.path_disconnects = [1, 0, 2, 0];
        b.path_connects = [0, 1, 0, 0];
        let mut other = Timeline::default();
        other.at(0, 1_500_000_000).path_connects = [0, 0, 0, 4];
        t.add(&other);
        assert_eq!(t.connected_by_path(), vec![[3, 0, 2, 0], [2, 1, 0, 4]]);
    }

    #[test]
    fn add_aligns_on_seconds() {
        let mut a = Timeline::default();
        a.at(0, 0).connects = 1;
        let mut b = Timeline::default();
        b.at(0, 3_000_000_000).wakeups_sent = 7;
        b.at(0, 0).connects = 2;
        a.add(&b);
        assert_eq!(a.buckets.len(), 4);
        assert_eq!(a.buckets[0].connects, 3);
        assert_eq!(a.buckets[3].wakeups_sent, 7);
    }
}
