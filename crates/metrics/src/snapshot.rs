//! Merging the snapshots of several processes into one: histograms are added (never
//! percentiles averaged), counters and timelines summed, receipts concatenated.

use crate::histo::Histo;
use crate::recorder::{Counters, Snapshot, PATH_NAMES};

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

    /// Every latency histogram by its interval-log tag: the [`Snapshot::histograms`] names, then
    /// `time_to_connected.<path>` per path ([`PATH_NAMES`] order).
    pub fn tagged(&self) -> Vec<(String, &Histo)> {
        let mut v: Vec<(String, &Histo)> = self
            .histograms()
            .into_iter()
            .map(|(n, h)| (n.to_string(), h))
            .collect();
        v.extend(
            PATH_NAMES
                .iter()
                .zip(&self.time_to_connected)
                .map(|(p, h)| (format!("time_to_connected.{p}"), h)),
        );
        v
    }

    /// The histogram of `tag` (a [`Snapshot::tagged`] name), to add into; none for another name.
    pub fn tagged_mut(&mut self, tag: &str) -> Option<&mut Histo> {
        if let Some(p) = tag.strip_prefix("time_to_connected.") {
            let i = PATH_NAMES.iter().position(|n| *n == p)?;
            return self.time_to_connected.get_mut(i);
        }
        Some(match tag {
            "connect" => &mut self.connect,
            "first_connect" => &mut self.first_connect,
            "wakeup" => &mut self.wakeup,
            "wakeup_cold" => &mut self.wakeup_cold,
            "detect" => &mut self.detect,
            "reconnect" => &mut self.reconnect,
            "checkin" => &mut self.checkin,
            "wakeup_to_checkin" => &mut self.wakeup_to_checkin,
            _ => return None,
        })
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
    fn every_tag_finds_its_histogram() {
        let mut r = Recorder::new(0);
        r.connected(0, 2_000_000, 0, Some(0));
        let s = r.snapshot();
        let mut empty = Snapshot::default();
        let tags: Vec<String> = s.tagged().into_iter().map(|(t, _)| t).collect();
        assert_eq!(tags.len(), 12);
        for (tag, h) in s.tagged() {
            empty.tagged_mut(&tag).unwrap().add(h);
        }
        assert_eq!(empty.connect.len(), 1);
        assert_eq!(
            empty.tagged().iter().map(|(_, h)| h.len()).sum::<u64>(),
            s.tagged().iter().map(|(_, h)| h.len()).sum::<u64>()
        );
        assert!(empty.tagged_mut("time_to_connected.nowhere").is_none());
        assert!(empty.tagged_mut("latency").is_none());
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
