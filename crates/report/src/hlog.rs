//! Latency histograms in HdrHistogram's interval-log format (`histograms.hlog`), readable by
//! HistogramLogAnalyzer and the hdrhistogram libraries, and read back for `report merge`.
//!
//! Tags: a histogram of the whole run has its name (`wakeup`, `connect`,
//! `time_to_connected.direct_primary`, ...); a group's is `group.<group>.<name>`.

use std::collections::BTreeMap;
use std::fs;
use std::io::BufWriter;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use pushsim_metrics::Histo;

use crate::ReportError;

/// The tag of a group's histogram `name`.
pub fn group_tag(group: &str, name: &str) -> String {
    format!("group.{group}.{name}")
}

fn bad(path: &Path, why: String) -> ReportError {
    ReportError::NotAReport {
        path: path.display().to_string(),
        why,
    }
}

/// Writes `histograms` (tag, histogram) as one interval each, covering the whole run from
/// `started`. A tag with a space or a comma (not allowed by the format) is written untagged.
pub fn write(
    path: &Path,
    started: SystemTime,
    duration: Duration,
    histograms: &[(String, &Histo)],
) -> Result<(), ReportError> {
    let io = |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = fs::File::create(path).map_err(io)?;
    let mut out = BufWriter::new(file);
    let mut ser = V2DeflateSerializer::new();
    let mut w = IntervalLogWriterBuilder::new()
        .add_comment("pushsim latency histograms, values in microseconds")
        .with_start_time(started)
        .with_base_time(started)
        .begin_log_with(&mut out, &mut ser)
        .map_err(io)?;
    for (tag, h) in histograms {
        w.write_histogram(h.inner(), Duration::ZERO, duration, Tag::new(tag))
            .map_err(|e| ReportError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(format!("{e:?}")),
            })?;
    }
    drop(w);
    std::io::Write::flush(&mut out).map_err(|source| ReportError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Reads an interval log: every interval's histogram added into its tag's (several intervals
/// of one tag are one histogram). Untagged intervals are refused: nothing says what they are.
pub fn read(path: &Path) -> Result<BTreeMap<String, Histo>, ReportError> {
    let text = fs::read(path).map_err(|source| ReportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut out: BTreeMap<String, Histo> = BTreeMap::new();
    let mut de = Deserializer::new();
    for (n, entry) in IntervalLogIterator::new(&text).enumerate() {
        let entry =
            entry.map_err(|e| bad(path, format!("not an HdrHistogram interval log: {e:?}")))?;
        let LogEntry::Interval(i) = entry else {
            continue;
        };
        let tag = i
            .tag()
            .map(|t| t.as_str().to_string())
            .ok_or_else(|| bad(path, format!("interval {} has no tag", n + 1)))?;
        let bytes = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            i.encoded_histogram(),
        )
        .map_err(|e| bad(path, format!("{tag}: not base64: {e}")))?;
        let h: Histogram<u64> = de
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| bad(path, format!("{tag}: not an HdrHistogram: {e:?}")))?;
        let h = Histo::try_from_hdr(&h).map_err(|e| bad(path, format!("{tag}: {e}")))?;
        out.entry(tag).or_default().add(&h);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_histograms_read_back_by_tag() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = Histo::new();
        for v in [250, 900, 12_000] {
            h.record(v);
        }
        let p = dir.path().join("h.hlog");
        let g = group_tag("ka-15s", "wakeup");
        write(
            &p,
            SystemTime::now(),
            Duration::from_secs(5),
            &[
                ("wakeup".into(), &h),
                ("connect".into(), &Histo::new()),
                (g.clone(), &h),
            ],
        )
        .unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back["wakeup"].summary(), h.summary());
        assert_eq!(back[&g].summary(), h.summary());
        assert!(back["connect"].is_empty());
    }

    #[test]
    fn garbage_and_untagged_intervals_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h.hlog");
        let mut h = Histo::new();
        h.record(7);
        write(
            &p,
            SystemTime::now(),
            Duration::from_secs(1),
            &[("a b".into(), &h)],
        )
        .unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("h.hlog") && e.contains("no tag"), "{e}");
        fs::write(&p, "Tag=x,0.0,1.0,1.0,!!!\n").unwrap();
        assert!(read(&p).is_err());
        let e = read(&dir.path().join("none.hlog")).unwrap_err().to_string();
        assert!(e.contains("none.hlog"), "{e}");
    }
}
