//! What one process records during a run, and the [`Snapshot`] it hands to the orchestrator.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::clock::elapsed_us;
use crate::histo::Histo;
use crate::timeline::Timeline;

/// Paths an agent can be connected on: direct or through the HTTP proxy, to the primary or the
/// fallback port role. A path's index is `2·proxy + fallback`.
pub const PATHS: usize = 4;
/// The paths' names, by index, as the report writes them.
pub const PATH_NAMES: [&str; PATHS] = [
    "direct_primary",
    "direct_fallback",
    "proxy_primary",
    "proxy_fallback",
];

/// The index of a path.
pub fn path_index(proxy: bool, fallback: bool) -> usize {
    2 * usize::from(proxy) + usize::from(fallback)
}

/// One first receipt of a wake-up: its sequence number and latency from the intended send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Wake-up sequence number.
    pub seq: u64,
    /// µs from intended send time to receipt.
    pub latency_us: u64,
}

/// Plain counters of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Connect attempts started.
    pub connect_attempts: u64,
    /// Connect attempts that failed (refused, TLS, timeout, CONNACK refused).
    pub connect_failures: u64,
    /// Established connections that were lost.
    pub disconnects: u64,
    /// Wake-ups received again after their first receipt.
    pub duplicates: u64,
    /// Messages on a wake-up topic that were not wake-ups.
    pub malformed: u64,
    /// Subscriptions the broker refused.
    pub subscribe_failures: u64,
    /// Connections left on purpose to try the primary endpoint again.
    pub primary_retries: u64,
    /// Connections declared dead because PINGRESP did not come in time.
    pub pingresp_timeouts: u64,
    /// Check-ins that failed.
    pub checkin_failures: u64,
    /// Connections broken by a fault rule (the middlebox's, or the proxy's idle close).
    #[serde(default)]
    pub drops: u64,
}

/// Reconnection after one service outage, as seen by one process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outage {
    /// When the outage began, ns on the run clock.
    pub at_ns: u64,
    /// Agents connected when it began.
    pub connected_before: u64,
    /// Per agent that lost its connection in the outage: µs from its start to the agent's next
    /// successful connect.
    pub back: Histo,
}

/// Everything a process measured, mergeable with other processes' snapshots.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// TCP + TLS + CONNACK time of successful connects.
    pub connect: Histo,
    /// Per agent, from its first connect attempt to its first CONNACK (on whichever endpoint).
    #[serde(default)]
    pub first_connect: Histo,
    /// The same, by the path the agent first connected on (index: [`path_index`]).
    #[serde(default)]
    pub time_to_connected: [Histo; PATHS],
    /// Wake-up latency of every agent's later (warm) wake-ups.
    pub wakeup: Histo,
    /// Wake-up latency of every agent's first wake-up (cold).
    pub wakeup_cold: Histo,
    /// From the moment the path died to the moment the agent noticed.
    pub detect: Histo,
    /// From a lost connection to the next successful connect.
    pub reconnect: Histo,
    /// Check-in round trip (agent to management server).
    pub checkin: Histo,
    /// From a wake-up's intended send time to the check-in that answers it (console side).
    pub wakeup_to_checkin: Histo,
    /// Service outages.
    pub outages: Vec<Outage>,
    /// Per-second counters.
    pub timeline: Timeline,
    /// Counters.
    pub counters: Counters,
    /// First receipts, for exactly-once accounting by the orchestrator.
    pub receipts: Vec<Receipt>,
}

/// Records one process's events against the run start `t0_ns`.
#[derive(Debug)]
pub struct Recorder {
    t0_ns: u64,
    snap: Snapshot,
    seen: HashSet<u64>,
    paths: [u64; PATHS],
}

/// What became of a received wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipted {
    /// First receipt: recorded.
    First,
    /// Seen before: counted as duplicate only.
    Duplicate,
}

impl Recorder {
    /// A recorder for a run that started at `t0_ns` on the run clock.
    pub fn new(t0_ns: u64) -> Self {
        Self {
            t0_ns,
            snap: Snapshot::default(),
            seen: HashSet::new(),
            paths: [0; PATHS],
        }
    }

    /// Moves the run start (used when the start is set after the recorder exists).
    pub fn set_t0(&mut self, t0_ns: u64) {
        self.t0_ns = t0_ns;
    }

    /// A connect attempt began.
    pub fn connect_attempt(&mut self) {
        self.snap.counters.connect_attempts += 1;
    }

    /// A connect attempt failed at `now_ns`.
    pub fn connect_failed(&mut self, now_ns: u64) {
        self.snap.counters.connect_failures += 1;
        self.snap.timeline.at(self.t0_ns, now_ns).connect_failures += 1;
    }

    /// A connect attempt that began at `start_ns` got its CONNACK at `now_ns`, on path `path`
    /// ([`path_index`]). `lost_ns` is when the agent's previous connection was lost, if
    /// it was: it times the reconnect and, when the loss fell in the latest outage, the
    /// agent's return from it.
    pub fn connected(&mut self, start_ns: u64, now_ns: u64, path: usize, lost_ns: Option<u64>) {
        self.snap.connect.record(elapsed_us(start_ns, now_ns));
        let b = self.snap.timeline.at(self.t0_ns, now_ns);
        b.connects += 1;
        if let Some(c) = b.path_connects.get_mut(path) {
            *c += 1;
        }
        if let Some(p) = self.paths.get_mut(path) {
            *p += 1;
        }
        if let Some(lost) = lost_ns {
            self.snap.reconnect.record(elapsed_us(lost, now_ns));
            if let Some(o) = self.snap.outages.last_mut() {
                if lost >= o.at_ns {
                    o.back.record(elapsed_us(o.at_ns, now_ns));
                }
            }
        }
    }

    /// A connection on `path` ended at `now_ns`. `lost` when it broke (not when the agent left
    /// on purpose); `path_down_ns` when the path was known dead since then (times detection).
    pub fn disconnected(
        &mut self,
        now_ns: u64,
        path: usize,
        lost: bool,
        path_down_ns: Option<u64>,
    ) {
        if lost {
            self.snap.counters.disconnects += 1;
        }
        let b = self.snap.timeline.at(self.t0_ns, now_ns);
        b.disconnects += 1;
        if let Some(c) = b.path_disconnects.get_mut(path) {
            *c += 1;
        }
        if let Some(p) = self.paths.get_mut(path) {
            *p = p.saturating_sub(1);
        }
        if let Some(down) = path_down_ns {
            self.snap.detect.record(elapsed_us(down, now_ns));
        }
    }

    /// An agent that began trying at `first_attempt_ns` got its first CONNACK at `now_ns`, on
    /// `path`.
    pub fn first_connected(&mut self, first_attempt_ns: u64, now_ns: u64, path: usize) {
        let us = elapsed_us(first_attempt_ns, now_ns);
        self.snap.first_connect.record(us);
        if let Some(h) = self.snap.time_to_connected.get_mut(path) {
            h.record(us);
        }
    }

    /// A fault rule (middlebox or proxy) broke a connection at `at_ns`.
    pub fn dropped(&mut self, at_ns: u64) {
        self.snap.counters.drops += 1;
        self.snap.timeline.at(self.t0_ns, at_ns).drops += 1;
    }

    /// An agent gave up on (or was told of) a connection a fault rule broke at `hit_ns`, at
    /// `now_ns`: a detection time.
    pub fn drop_noticed(&mut self, hit_ns: u64, now_ns: u64) {
        self.snap.detect.record(elapsed_us(hit_ns, now_ns));
    }

    /// An outage began at `at_ns` (the service was killed or stopped).
    pub fn outage(&mut self, at_ns: u64) {
        self.snap.outages.push(Outage {
            at_ns,
            connected_before: self.connected_now(),
            back: Histo::new(),
        });
    }

    /// An agent left its fallback connection to retry the primary.
    pub fn primary_retry(&mut self) {
        self.snap.counters.primary_retries += 1;
    }

    /// An agent declared its connection dead: no PINGRESP in time.
    pub fn pingresp_timeout(&mut self) {
        self.snap.counters.pingresp_timeouts += 1;
    }

    /// A check-in that took `rtt_us`, or failed.
    pub fn checkin(&mut self, rtt_us: Option<u64>) {
        match rtt_us {
            Some(us) => self.snap.checkin.record(us),
            None => self.snap.counters.checkin_failures += 1,
        }
    }

    /// The console saw the check-in that answers a wake-up `us` after its intended send time.
    pub fn wakeup_answered(&mut self, us: u64) {
        self.snap.wakeup_to_checkin.record(us);
    }

    /// Agents connected now per path ([`path_index`]).
    pub fn paths(&self) -> [u64; PATHS] {
        self.paths
    }

    /// The console published a wake-up at `now_ns`.
    pub fn wakeup_sent(&mut self, now_ns: u64) {
        self.snap.timeline.at(self.t0_ns, now_ns).wakeups_sent += 1;
    }

    /// A wake-up `seq`, intended for `intended_ns`, arrived at `now_ns`; `cold` when it is the
    /// agent's first wake-up of the run.
    pub fn wakeup_received(
        &mut self,
        seq: u64,
        intended_ns: u64,
        now_ns: u64,
        cold: bool,
    ) -> Receipted {
        if !self.seen.insert(seq) {
            self.snap.counters.duplicates += 1;
            return Receipted::Duplicate;
        }
        let latency_us = elapsed_us(intended_ns, now_ns);
        if cold {
            self.snap.wakeup_cold.record(latency_us);
        } else {
            self.snap.wakeup.record(latency_us);
        }
        self.snap.receipts.push(Receipt { seq, latency_us });
        self.snap.timeline.at(self.t0_ns, now_ns).wakeups_delivered += 1;
        Receipted::First
    }

    /// A message on a wake-up topic could not be decoded.
    pub fn malformed(&mut self) {
        self.snap.counters.malformed += 1;
    }

    /// The broker refused a subscription.
    pub fn subscribe_failed(&mut self) {
        self.snap.counters.subscribe_failures += 1;
    }

    /// Agents connected now.
    pub fn connected_now(&self) -> u64 {
        self.paths.iter().sum()
    }

    /// Distinct wake-ups received so far.
    pub fn wakeups_received(&self) -> u64 {
        self.snap.receipts.len() as u64
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.snap.counters
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Snapshot {
        self.snap.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakeups_first_and_duplicate() {
        let mut r = Recorder::new(0);
        assert_eq!(
            r.wakeup_received(1, 1_000_000, 3_000_000, true),
            Receipted::First
        );
        assert_eq!(
            r.wakeup_received(2, 1_000_000, 2_000_000, false),
            Receipted::First
        );
        assert_eq!(
            r.wakeup_received(1, 1_000_000, 9_000_000, false),
            Receipted::Duplicate
        );
        let s = r.snapshot();
        assert_eq!(s.wakeup_cold.summary().max, 2_000);
        assert_eq!(s.wakeup.summary().max, 1_000);
        assert_eq!(s.counters.duplicates, 1);
        assert_eq!(s.receipts.len(), 2);
        assert_eq!(s.timeline.buckets[0].wakeups_delivered, 2);
    }

    #[test]
    fn connects_and_disconnects() {
        let mut r = Recorder::new(0);
        r.connect_attempt();
        r.connected(0, 1_500_000, 0, None);
        r.connect_attempt();
        r.connect_failed(1_000);
        r.disconnected(1_500_000_000, 0, true, Some(1_000_000_000));
        assert_eq!(r.connected_now(), 0);
        let s = r.snapshot();
        assert_eq!(s.counters.connect_attempts, 2);
        assert_eq!(s.counters.connect_failures, 1);
        assert_eq!(s.connect.summary().p50, 1_500);
        assert_eq!(s.timeline.connected(), vec![1, 0]);
        assert!(
            s.detect.summary().max.abs_diff(500_000) <= 500,
            "3 significant digits"
        );
        assert_eq!(s.timeline.buckets[0].connect_failures, 1);
    }

    #[test]
    fn time_to_connected_by_path() {
        let mut r = Recorder::new(0);
        r.first_connected(0, 2_000_000, path_index(false, true));
        r.first_connected(0, 5_000_000, path_index(true, false));
        let s = r.snapshot();
        assert_eq!(s.first_connect.len(), 2);
        let lens: Vec<u64> = s.time_to_connected.iter().map(|h| h.len()).collect();
        assert_eq!(lens, vec![0, 1, 1, 0]);
        assert!(s.time_to_connected[2].summary().max.abs_diff(5_000) <= 5);
        assert_eq!(PATH_NAMES[path_index(true, true)], "proxy_fallback");
    }

    #[test]
    fn outage_return_and_reconnect() {
        let mut r = Recorder::new(0);
        r.connected(0, 1_000, 1, None);
        r.connected(0, 1_000, 0, None);
        assert_eq!(r.paths(), [1, 1, 0, 0]);
        r.outage(10_000_000_000);
        assert_eq!(r.snapshot().outages[0].connected_before, 2);
        r.disconnected(10_000_000_000, 0, true, Some(10_000_000_000));
        r.disconnected(10_000_000_000, 1, true, Some(10_000_000_000));
        assert_eq!(r.paths(), [0, 0, 0, 0]);
        r.connected(0, 1_000, path_index(true, true), None);
        assert_eq!(r.paths(), [0, 0, 0, 1]);
        r.disconnected(1_000, 3, false, None);
        r.connected(12_000_000_000, 12_000_002_000, 0, Some(10_000_000_000));
        // lost before the outage: counts as a reconnect, not as a return from it
        r.connected(5_000_000_000, 5_000_002_000, 0, Some(4_000_000_000));
        let s = r.snapshot();
        assert_eq!(s.outages[0].back.len(), 1);
        assert!(s.outages[0].back.summary().max.abs_diff(2_000_002) <= 2_000);
        assert_eq!(s.reconnect.len(), 2);
        assert_eq!(r.connected_now(), 2);
    }
}
