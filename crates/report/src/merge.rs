//! The report of a run split into shards (`--shard i/N`), from the shards' reports and
//! histograms (pure): histograms added (never percentiles averaged), counts summed, timelines
//! summed second by second aligned on each shard's start, SLOs evaluated on the whole.

use std::collections::BTreeMap;

use pushsim_metrics::{Histo, Snapshot};
use pushsim_scenario::Slo;

use crate::build::{distributions, latencies};
use crate::model::*;
use crate::{hlog, slo};

/// One shard as read from its report folder.
pub struct ShardRun {
    /// Where it was read from (named in errors).
    pub source: String,
    /// Its report.json.
    pub report: RunReport,
    /// Its histograms.hlog, by tag.
    pub histograms: BTreeMap<String, Histo>,
}

/// Shard reports that do not make one run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    /// Nothing given.
    #[error("nothing to merge: give the report folders of every shard")]
    Empty,
    /// A whole run's report, or a merged one.
    #[error("{0}: not a shard's report (its report.json has no `shard`); run each part with --shard i/N")]
    NotAShard(String),
    /// Two reports of different runs.
    #[error("{a} and {b} are not shards of one run: their {what} differ")]
    Mismatch {
        /// One report.
        a: String,
        /// The other.
        b: String,
        /// What differs.
        what: &'static str,
    },
    /// One shard twice.
    #[error("shard {index}/{count} is both {a} and {b}")]
    Duplicate {
        /// Its index.
        index: u32,
        /// Shards in the run.
        count: u32,
        /// One folder.
        a: String,
        /// The other.
        b: String,
    },
    /// Shards not given.
    #[error("shard{} {} missing: a merge needs every shard of the run", if missing.len() > 1 { "s" } else { "" }, missing.iter().map(|i| format!("{i}/{count}")).collect::<Vec<_>>().join(", "))]
    Missing {
        /// The missing indices.
        missing: Vec<u32>,
        /// Shards in the run.
        count: u32,
    },
}

fn info(s: &ShardRun) -> Result<&ShardInfo, MergeError> {
    s.report
        .shard
        .as_ref()
        .ok_or_else(|| MergeError::NotAShard(s.source.clone()))
}

/// Checks that `shards` are every shard of one run, each once; returns them in index order.
fn check(mut shards: Vec<ShardRun>) -> Result<Vec<ShardRun>, MergeError> {
    let first = shards.first().ok_or(MergeError::Empty)?;
    let count = info(first)?.count;
    for s in &shards {
        let i = info(s)?;
        let (a, b) = (first.source.clone(), s.source.clone());
        let mismatch = |what| MergeError::Mismatch {
            a: a.clone(),
            b: b.clone(),
            what,
        };
        if i.count != count {
            return Err(mismatch("shard counts"));
        }
        if s.report.scenario.text != first.report.scenario.text {
            return Err(mismatch("scenarios"));
        }
        if s.report.seed != first.report.seed {
            return Err(mismatch("seeds"));
        }
        if s.report.plan.broker != first.report.plan.broker {
            return Err(mismatch("brokers"));
        }
    }
    shards.sort_by_key(|s| s.report.shard.as_ref().map_or(0, |i| i.index));
    for w in shards.windows(2) {
        let (a, b) = (info(&w[0])?, info(&w[1])?);
        if a.index == b.index {
            return Err(MergeError::Duplicate {
                index: a.index,
                count,
                a: w[0].source.clone(),
                b: w[1].source.clone(),
            });
        }
    }
    let have: Vec<u32> = shards
        .iter()
        .filter_map(|s| s.report.shard.as_ref().map(|i| i.index))
        .collect();
    let missing: Vec<u32> = (0..count).filter(|i| !have.contains(i)).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing { missing, count });
    }
    Ok(shards)
}

fn add_agents(a: &mut AgentCounts, o: &AgentCounts) {
    a.configured += o.configured;
    a.connected_peak += o.connected_peak;
    a.connected_end += o.connected_end;
    a.connect_attempts += o.connect_attempts;
    a.connect_failures += o.connect_failures;
    a.disconnects += o.disconnects;
    a.subscribe_failures += o.subscribe_failures;
    a.malformed_messages += o.malformed_messages;
    a.primary_retries += o.primary_retries;
    a.pingresp_timeouts += o.pingresp_timeouts;
    a.checkin_failures += o.checkin_failures;
    a.drops += o.drops;
}

fn add_map(a: &mut BTreeMap<String, u64>, o: &BTreeMap<String, u64>) {
    for (k, v) in o {
        *a.entry(k.clone()).or_default() += v;
    }
}

fn add_point(a: &mut TimelinePoint, o: &TimelinePoint) {
    a.connected += o.connected;
    a.connects += o.connects;
    a.disconnects += o.disconnects;
    a.connect_failures += o.connect_failures;
    a.wakeups_sent += o.wakeups_sent;
    a.wakeups_delivered += o.wakeups_delivered;
    a.drops += o.drops;
    a.paths.add(&o.paths);
}

fn add_proxy(a: &mut ProxyReport, o: &ProxyReport) {
    a.connections += o.connections;
    a.refused += o.refused;
    add_map(&mut a.statuses, &o.statuses);
    a.unanswered += o.unanswered;
    add_map(&mut a.closed, &o.closed);
    a.bytes_up += o.bytes_up;
    a.bytes_down += o.bytes_down;
    a.max_open += o.max_open;
}

/// A merged run: its report and its histograms by interval-log tag (for histograms.hlog).
#[derive(Debug)]
pub struct Merged {
    /// The whole run's report, SLOs evaluated.
    pub report: RunReport,
    /// Every tag's histogram, added over the shards.
    pub histograms: BTreeMap<String, Histo>,
}

/// The histograms under `prefix` (`""` for the whole run, `group.<g>.` for a group).
fn snapshot(sums: &BTreeMap<String, Histo>, prefix: &str) -> Snapshot {
    let mut s = Snapshot::default();
    for (tag, h) in sums {
        if let Some(mine) = tag.strip_prefix(prefix).and_then(|n| s.tagged_mut(n)) {
            mine.add(h);
        }
    }
    s
}

/// Merges every shard of one run into its report, the `slos` evaluated on it.
///
/// Alignment: shard timelines are laid on the earliest shard's start, each shifted by its own
/// start (`t0_unix_ms`) rounded to the second; peaks (`connected_peak`, whole and per group)
/// are those of the merged timelines. A shard report without per-group timelines (older
/// pushsim) leaves the group's peak at the sum of the shards' peaks, an upper bound.
pub fn merge(shards: Vec<ShardRun>, slos: &[Slo]) -> Result<Merged, MergeError> {
    let shards = check(shards)?;
    let infos: Vec<ShardInfo> = shards
        .iter()
        .filter_map(|s| s.report.shard.clone())
        .collect();
    let start_ms = infos.iter().map(|i| i.t0_unix_ms).min().unwrap_or(0);
    let offset = |i: &ShardInfo| (i.t0_unix_ms.saturating_sub(start_ms) + 500) / 1000;
    let first = &shards[0].report;
    let mut r = RunReport {
        schema_version: SCHEMA_VERSION,
        pushsim_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: first.scenario.clone(),
        seed: first.seed,
        started_at: shards
            .iter()
            .map(|s| s.report.started_at.clone())
            .min()
            .unwrap_or_default(),
        plan: Plan {
            broker: first.plan.broker.clone(),
            nofile_limit: first.plan.nofile_limit,
            ..Default::default()
        },
        machine: first.machine.clone(),
        ..Default::default()
    };
    let mut stopped = Vec::new();
    let mut timeline: Vec<TimelinePoint> = Vec::new();
    let mut faults: Vec<FaultReport> = first.faults.clone();
    for (k, (s, i)) in shards.iter().zip(&infos).enumerate() {
        let x = &s.report;
        let off = offset(i);
        r.duration_s = r.duration_s.max(off as f64 + x.duration_s);
        if let Some(why) = &x.stopped_early {
            stopped.push(format!("shard {}: {why}", i.index));
        }
        r.plan.sites += x.plan.sites;
        r.plan.edges += x.plan.edges;
        r.plan.broker_listeners += x.plan.broker_listeners;
        r.plan.nofile_limit = r.plan.nofile_limit.min(x.plan.nofile_limit);
        add_agents(&mut r.agents, &x.agents);
        r.wakeups.add(&x.wakeups);
        r.paths.add(&x.paths);
        for (name, g) in &x.groups {
            let mine = r.groups.entry(name.clone()).or_default();
            add_agents(&mut mine.agents, &g.agents);
            mine.wakeups.add(&g.wakeups);
            mine.paths.add(&g.paths);
            let at = off as usize;
            if mine.connected_per_s.len() < at + g.connected_per_s.len() {
                mine.connected_per_s.resize(at + g.connected_per_s.len(), 0);
            }
            for (t, c) in g.connected_per_s.iter().enumerate() {
                mine.connected_per_s[at + t] += c;
            }
        }
        r.processes.extend(x.processes.iter().map(|p| ProcessStats {
            role: format!("shard-{}/{}", i.index, p.role),
            ..p.clone()
        }));
        add_map(&mut r.edge, &x.edge);
        add_map(&mut r.middlebox, &x.middlebox);
        if k > 0 {
            for (mine, f) in faults.iter_mut().zip(&x.faults) {
                mine.connections_hit = mine
                    .connections_hit
                    .zip(f.connections_hit)
                    .map(|(a, b)| a + b);
            }
        }
        match (&mut r.proxy, &x.proxy) {
            (None, Some(p)) => r.proxy = Some(p.clone()),
            (Some(mine), Some(p)) => add_proxy(mine, p),
            _ => {}
        }
        for p in &x.timeline {
            let t = (p.t_s + off) as usize;
            if timeline.len() <= t {
                timeline.resize_with(t + 1, TimelinePoint::default);
            }
            add_point(&mut timeline[t], p);
        }
    }
    for (t, p) in timeline.iter_mut().enumerate() {
        p.t_s = t as u64;
    }
    r.agents.connected_peak = timeline.iter().map(|p| p.connected).max().unwrap_or(0);
    r.timeline = timeline;
    r.faults = faults;
    if shards.len() == 1 {
        r.recovery = first.recovery.clone();
    }
    r.stopped_early = (!stopped.is_empty()).then(|| stopped.join("; "));
    let mut sums: BTreeMap<String, Histo> = BTreeMap::new();
    for sh in &shards {
        for (tag, h) in &sh.histograms {
            sums.entry(tag.clone()).or_default().add(h);
        }
    }
    let all = snapshot(&sums, "");
    r.latency_us = latencies(&all);
    r.distributions = distributions(&all);
    for (name, g) in r.groups.iter_mut() {
        if let Some(peak) = g.connected_per_s.iter().max() {
            g.agents.connected_peak = *peak;
        }
        let h = snapshot(&sums, &hlog::group_tag(name, ""));
        g.latency_us = latencies(&h);
        g.distributions = distributions(&h);
    }
    r.shards = infos;
    r.slos = slo::evaluate(&r, slos);
    Ok(Merged {
        report: r,
        histograms: sums,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(index: u32, count: u32, t0_ms: u64, lat: &[u64]) -> ShardRun {
        let mut h = Histo::new();
        for &v in lat {
            h.record(v);
        }
        let mut report = RunReport {
            schema_version: SCHEMA_VERSION,
            seed: 3,
            duration_s: 3.0,
            shard: Some(ShardInfo {
                index,
                count,
                agents: 10,
                t0_unix_ms: t0_ms,
                ..Default::default()
            }),
            ..Default::default()
        };
        report.scenario.text = "same".into();
        report.agents.configured = 10;
        report.agents.connected_end = 9;
        report.wakeups.sent = lat.len() as u64;
        report.wakeups.delivered = lat.len() as u64;
        report.groups.insert(
            "g".into(),
            GroupReport {
                agents: AgentCounts {
                    connected_peak: 10,
                    ..report.agents
                },
                wakeups: report.wakeups,
                connected_per_s: vec![10, 10, 10],
                ..Default::default()
            },
        );
        report.timeline = (0..3)
            .map(|t| TimelinePoint {
                t_s: t,
                connected: 10,
                wakeups_sent: 1,
                ..Default::default()
            })
            .collect();
        report.processes.push(ProcessStats {
            role: "site-0".into(),
            ..Default::default()
        });
        let histograms = BTreeMap::from([
            ("wakeup".to_string(), h.clone()),
            (hlog::group_tag("g", "wakeup"), h),
        ]);
        ShardRun {
            source: format!("s{index}"),
            report,
            histograms,
        }
    }

    #[test]
    fn counts_add_histograms_add_and_timelines_align() {
        let a = shard(0, 2, 10_000, &[100, 200, 300]);
        let mut b = shard(1, 2, 11_000, &[5_000, 6_000]);
        // b's group connects late: its peak coincides with a's only when aligned.
        if let Some(g) = b.report.groups.get_mut("g") {
            g.connected_per_s = vec![0, 0, 10];
        }
        let mut raw = Histo::new();
        for v in [100, 200, 300, 5_000, 6_000] {
            raw.record(v);
        }
        let slos: Vec<Slo> = ["agents.configured == 20", "latency_us.wakeup.p50 < 1ms"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let m = merge(vec![b, a], &slos).unwrap();
        assert_eq!(m.histograms["wakeup"].summary(), raw.summary());
        let m = m.report;
        assert_eq!(m.agents.configured, 20);
        assert_eq!(m.agents.connected_end, 18);
        assert_eq!(m.wakeups.sent, 5);
        assert_eq!(m.latency_us.wakeup, raw.summary());
        assert_eq!(m.groups["g"].latency_us.wakeup, raw.summary());
        assert_eq!(m.groups["g"].wakeups.delivered, 5);
        // b started a second after a: seconds 0..2 and 1..3.
        let connected: Vec<u64> = m.timeline.iter().map(|p| p.connected).collect();
        assert_eq!(connected, [10, 20, 20, 10]);
        assert_eq!(m.agents.connected_peak, 20);
        assert_eq!(m.groups["g"].connected_per_s, [10, 10, 10, 10]);
        assert_eq!(
            m.groups["g"].agents.connected_peak, 10,
            "the merged group timeline's peak, not the sum of the shards' peaks"
        );
        assert_eq!(m.duration_s, 4.0);
        assert_eq!(m.shards.iter().map(|s| s.index).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(m.processes[1].role, "shard-1/site-0");
        assert!(m.shard.is_none());
        assert_eq!(m.slos.len(), 2);
        assert!(m.slos[0].passed, "{:?}", m.slos);
        assert!(m.slos[1].passed, "p50 is 300 µs: {:?}", m.slos);
    }

    #[test]
    fn shards_of_different_runs_or_incomplete_sets_are_refused() {
        assert_eq!(merge(vec![], &[]).unwrap_err(), MergeError::Empty);
        let e = merge(vec![shard(0, 3, 0, &[1]), shard(2, 3, 0, &[1])], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "shard 1/3 missing: a merge needs every shard of the run"
        );
        let e = merge(vec![shard(0, 2, 0, &[1]), shard(0, 2, 0, &[1])], &[]).unwrap_err();
        assert!(matches!(e, MergeError::Duplicate { index: 0, .. }), "{e}");
        let mut other = shard(1, 2, 0, &[1]);
        other.report.scenario.text = "another".into();
        let e = merge(vec![shard(0, 2, 0, &[1]), other], &[]).unwrap_err();
        assert!(e.to_string().contains("scenarios differ"), "{e}");
        let mut whole = shard(1, 2, 0, &[1]);
        whole.report.shard = None;
        let e = merge(vec![shard(0, 2, 0, &[1]), whole], &[]).unwrap_err();
        assert_eq!(e, MergeError::NotAShard("s1".into()));
    }
}
