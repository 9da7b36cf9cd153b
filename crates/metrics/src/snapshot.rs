//! Merging the snapshots of several processes into one: histograms are added (never
//! percentiles averaged), counters and timelines summed, receipts concatenated.

use crate::histo::Histo;
use crate::recorder::{Counters, Snapshot};

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.connect_attempts += o.connect_attempts;
        self.connect_failures += o.connect_failures;
        self.disconnects += o.disconnects;
        self.duplicates += o.duplicates;
        self.malformed += o.malformed;
        self.subscribe_failures += o.subscribe_failures;
        self.primary_retries += o.primary_retries;
        self.pingresp_timeouts += o.pingresp_timeouts;
        self.checkin_failures += o.checkin_failures;
        self.drops += o.drops;
    }
}

impl Snapshot {
    /// The latency histograms by their report name (`latency_us.<name>`), time to connected
    /// per path aside.
    pub fn histograms(&self) -> [(&'static str, &Histo); 8] {
        [
            ("connect", &self.connect),
            ("first_connect", &self.first_connect),
            ("wakeup", &self.wakeup),
            ("wakeup_cold", &self.wakeup_cold),
            ("detect", &self.detect),
            ("reconnect", &self.reconnect),
            ("checkin", &self.checkin),
            ("wakeup_to_checkin", &self.wakeup_to_checkin),
        ]
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Snapshot) {
        self.connect.add(&other.connect);
        self.first_connect.add(&other.first_connect);
        for (mine, o) in self
            .time_to_connected
            .iter_mut()
            .zip(&other.time_to_connected)
        {
            mine.add(o);
        }
        self.wakeup.add(&other.wakeup);
        self.wakeup_cold.add(&other.wakeup_cold);
        self.detect.add(&other.detect);
        self.reconnect.add(&other.reconnect);
        self.checkin.add(&other.checkin);
        self.wakeup_to_checkin.add(&other.wakeup_to_checkin);
        // Outages are the same events in every process: add them index by index.
        for (i, o) in other.outages.iter().enumerate() {
            match self.outages.get_mut(i) {
                Some(mine) => {
                    mine.connected_before += o.connected_before;
                    mine.back.add(&o.back);
                }
                None => self.outages.push(o.clone()),
            }
        }
        self.timeline.add(&other.timeline);
        self.counters.add(&other.counters);
        self.receipts.extend_from_slice(&other.receipts);
    }

    /// Merges many snapshots.
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a Snapshot>) -> Snapshot {
        let mut out = Snapshot::default();
        for p in parts {
            out.merge(p);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::histo::Histo;
    use crate::recorder::Recorder;

    use super::*;

    #[test]
    fn merged_percentiles_equal_combined_raw_values() {
        let mut a = Recorder::new(0);
        let mut b = Recorder::new(0);
        let mut raw = Histo::new();
        for i in 0..500u64 {
            let lat = 1_000 + i * 7;
            a.wakeup_received(i, 0, lat * 1_000, false);
            raw.record(lat);
        }
        for i in 500..1000u64 {
            let lat = 50_000 + i * 3;
            b.wakeup_received(i, 0, lat * 1_000, false);
            raw.record(lat);
        }
        let m = Snapshot::merged([&a.snapshot(), &b.snapshot()]);
        assert_eq!(m.wakeup.summary(), raw.summary());
        assert_eq!(m.receipts.len(), 1000);
        assert_eq!(m.timeline.buckets[0].wakeups_delivered, 1000);
    }

    #[test]
    fn snapshot_survives_json() {
        let mut a = Recorder::new(0);
        a.connected(0, 2_000_000, 0, None);
        a.wakeup_received(3, 0, 5_000_000, true);
        let json = serde_json::to_string(&a.snapshot()).unwrap();
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back.connect.summary(), a.snapshot().connect.summary());
        assert_eq!(back.receipts, a.snapshot().receipts);
    }
}
