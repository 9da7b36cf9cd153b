//! Latency histograms in microseconds (1 µs to 1 hour, 3 significant digits) and their summary.

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest trackable latency: one hour in µs. Larger values are clamped to it.
pub const MAX_US: u64 = 3_600_000_000;

/// Points per nine in [`Histo::percentiles`] (90 %, 99 %, 99.9 % … are one nine apart).
pub const STEPS_PER_NINE: u32 = 8;
/// The deepest percentile [`Histo::percentiles`] goes to: six nines, 99.9999 %.
const MAX_NINES: f64 = 6.0;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Histo(Histogram<u64>);

impl Default for Histo {
    fn default() -> Self {
        Self::new()
    }
}

impl Histo {
    /// An empty histogram.
    pub fn new() -> Self {
        // 1..=MAX_US with 3 significant digits is a valid configuration; cannot fail.
        Self(Histogram::new_with_bounds(1, MAX_US, 3).expect("static histogram bounds"))
    }

    /// Records one value in µs (0 is recorded as 1, values over [`MAX_US`] as [`MAX_US`]).
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, MAX_US));
    }

    /// Adds every count of `other`.
    pub fn add(&mut self, other: &Histo) {
        // Same bounds on both sides, so adding cannot fail.
        self.0.add(&other.0).expect("histograms share bounds");
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying HdrHistogram.
    pub fn inner(&self) -> &Histogram<u64> {
        &self.0
    }

    /// Percentile summary.
    pub fn summary(&self) -> Summary {
        let h = &self.0;
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            min: h.min(),
            mean: h.mean().round() as u64,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// The percentile distribution as HdrHistogram plots it: `(percentile, µs)` points evenly
    /// spaced on the "nines" scale (`-log10(1 - p)`), [`STEPS_PER_NINE`] per nine, up to the
    /// last percentile the sample count resolves (at most 99.9999 %), then `(100, max)`.
    /// Empty when nothing was recorded.
    pub fn percentiles(&self) -> Vec<(f64, u64)> {
        let h = &self.0;
        if h.is_empty() {
            return Vec::new();
        }
        let top = (h.len() as f64).log10().min(MAX_NINES);
        let steps = (top * STEPS_PER_NINE as f64).floor() as u32;
        let mut out: Vec<(f64, u64)> = (0..=steps)
            .map(|k| {
                let nines = f64::from(k) / f64::from(STEPS_PER_NINE);
                let q = 1.0 - 10f64.powf(-nines);
                // Rounded so report.json reads 99.9, not 99.90000000000001.
                let pct = (q * 100.0 * 1e6).round() / 1e6;
                (pct, h.value_at_quantile(q))
            })
            .collect();
        out.push((100.0, h.max()));
        out
    }

    /// Base64 of the V2 deflate encoding (HdrHistogram's interchange format).
    pub fn to_base64(&self) -> String {
        let mut buf = Vec::new();
        // Writing into a Vec cannot fail.
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut buf)
            .expect("serialize into Vec");
        base64::engine::general_purpose::STANDARD.encode(buf)
    }

    /// Decodes [`Histo::to_base64`] output.
    pub fn from_base64(s: &str) -> Result<Self, HistoError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| HistoError(format!("not base64: {e}")))?;
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| HistoError(format!("not an HdrHistogram V2 encoding: {e:?}")))?;
        Self::try_from_hdr(&h)
    }

    /// A histogram of this kind holding every count of `h` (e.g. one read from an interval
    /// log); an error when `h` has values past [`MAX_US`].
    pub fn try_from_hdr(h: &Histogram<u64>) -> Result<Self, HistoError> {
        let mut out = Histo::new();
        out.0
            .add(h)
            .map_err(|e| HistoError(format!("histogram out of bounds: {e:?}")))?;
        Ok(out)
    }
}

/// A histogram that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("bad histogram: {0}")]
pub struct HistoError(pub String);

impl Serialize for Histo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Histo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Histo::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// Percentiles of a latency histogram, all in µs; zeros when empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Smallest value.
    pub min: u64,
    /// Arithmetic mean, rounded.
    pub mean: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_step_on_the_nines_scale_up_to_what_the_count_resolves() {
        let mut h = Histo::new();
        assert!(h.percentiles().is_empty());
        for v in 1..=1000 {
            h.record(v);
        }
        let p = h.percentiles();
        // 1,000 values resolve three nines: 3 × 8 steps + the 0th, then the max.
        assert_eq!(p.len(), 3 * STEPS_PER_NINE as usize + 2);
        assert_eq!(p[0], (0.0, 1));
        assert_eq!(p[STEPS_PER_NINE as usize], (90.0, 900));
        assert_eq!(p[2 * STEPS_PER_NINE as usize], (99.0, 990));
        assert_eq!(p[3 * STEPS_PER_NINE as usize], (99.9, 999));
        assert_eq!(*p.last().unwrap(), (100.0, 1000));
        assert!(
            p.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{p:?}"
        );
        let mut big = Histo::new();
        for v in 0..10_000_000u64 {
            big.record(v % 5000 + 1);
        }
        let p = big.percentiles();
        assert_eq!(p[p.len() - 2].0, 99.9999, "capped at six nines");
    }

    #[test]
    fn summary_of_uniform_values() {
        let mut h = Histo::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1);
        assert_eq!(s.max, 1000);
        assert_eq!(s.p50, 500);
        assert_eq!(s.p99, 990);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Histo::new().summary(), Summary::default());
    }

    #[test]
    fn base64_round_trip_and_add() {
        let mut a = Histo::new();
        a.record(10);
        a.record(0); // clamped to 1
        a.record(u64::MAX); // clamped to MAX_US
        let b = Histo::from_base64(&a.to_base64()).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b.summary().min, 1);
        assert!(b.summary().max >= MAX_US);
        let mut c = a.clone();
        c.add(&b);
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Histo::from_base64("!!!").is_err());
        assert!(Histo::from_base64("aGVsbG8=").is_err());
    }
}
