//! Assembling a [`RunReport`] from what the run measured.

use std::collections::BTreeMap;

use pushsim_metrics::recorder::PATHS;
use pushsim_metrics::{Snapshot, WakeupCounts};
use pushsim_scenario::{Network, Proxy, Scenario};

use crate::model::*;
use crate::slo;

/// One group's measurements, merged over every process.
pub struct GroupInput {
    /// Group name.
    pub name: String,
    /// Agents configured in it.
    pub configured: u64,
    /// Its snapshots merged (sites, and the console's check-in answers for its agents).
    pub merged: Snapshot,
    /// The ledger's classification of the wake-ups sent to its agents.
    pub wakeups: WakeupCounts,
    /// Its agents connected at the end.
    pub connected_end: u64,
    /// Of those, per path (`pushsim_metrics::recorder::PATH_NAMES` order).
    pub paths: [u64; PATHS],
}

/// A service outage as the orchestrator made it.
pub struct OutageEvent {
    /// `service.kill`, `service.stop`, `service.restart`.
    pub action: String,
    /// When it began, ns on the run clock.
    pub at_ns: u64,
    /// When the service was back, if it came back.
    pub up_ns: Option<u64>,
}

/// What a run hands over to make its report.
pub struct Inputs<'a> {
    /// The scenario as run.
    pub scenario: &'a Scenario,
    /// `builtin:<name>` or the file path.
    pub origin: String,
    /// RFC 3339 UTC start.
    pub started_at: String,
    /// Seconds the timeline ran.
    pub duration_s: f64,
    /// Why the run stopped early, if it did.
    pub stopped_early: Option<String>,
    /// Process layout.
    pub plan: Plan,
    /// Per group.
    pub groups: &'a [GroupInput],
    /// What the console recorded itself (wake-ups sent per second).
    pub console: &'a Snapshot,
    /// The run start, ns on the run clock.
    pub t0_ns: u64,
    /// Service outages in order.
    pub outages: Vec<OutageEvent>,
    /// CPU and memory per process.
    pub processes: Vec<ProcessStats>,
    /// Edge counters summed over edge processes.
    pub edge: BTreeMap<String, u64>,
    /// The network as run (the rules the middlebox applied).
    pub network: &'a Network,
    /// Connections hit per rule id, summed over sites (none: not known, e.g. Toxiproxy's).
    pub fault_hits: Option<BTreeMap<u32, u64>>,
    /// Middlebox counters summed over sites.
    pub middlebox: BTreeMap<String, u64>,
    /// The scenario's proxy and what it did (none: no proxy).
    pub proxy: Option<(&'a Proxy, ProxyReport)>,
    /// Requests decided per proxy rule id, summed over sites (none: not known).
    pub proxy_hits: Option<BTreeMap<u32, u64>>,
    /// The machine.
    pub machine: Machine,
    /// The shard this run is (none: a whole run). A shard's SLOs are not evaluated: they hold
    /// for the whole, and `pushsim report merge` judges them.
    pub shard: Option<ShardInfo>,
}

pub(crate) fn agent_counts(configured: u64, m: &Snapshot, connected_end: u64) -> AgentCounts {
    let c = m.counters;
    AgentCounts {
        configured,
        connected_peak: m.timeline.connected().into_iter().max().unwrap_or(0),
        connected_end,
        connect_attempts: c.connect_attempts,
        connect_failures: c.connect_failures,
        disconnects: c.disconnects,
        subscribe_failures: c.subscribe_failures,
        malformed_messages: c.malformed,
        primary_retries: c.primary_retries,
        pingresp_timeouts: c.pingresp_timeouts,
        checkin_failures: c.checkin_failures,
        drops: c.drops,
    }
}

/// The embedded proxy's fault rules with the requests each decided (`hits` by rule id).
pub fn proxy_faults(proxy: &Proxy, hits: Option<&BTreeMap<u32, u64>>) -> Vec<FaultReport> {
    proxy
        .faults
        .iter()
        .enumerate()
        .map(|(id, r)| FaultReport {
            name: r.label(id),
            kind: r.fault.clone(),
            target: "proxy".into(),
            direction: "both".into(),
            groups: r.groups.clone(),
            at_s: r.at.get().as_secs_f64(),
            until_s: r.until.map(|u| u.get().as_secs_f64()),
            connections_hit: hits.map(|h| h.get(&(id as u32)).copied().unwrap_or(0)),
        })
        .collect()
}

/// The fault rules of `net` with the connections each hit (`hits` by rule id, when known).
pub fn faults(net: &Network, hits: Option<&BTreeMap<u32, u64>>) -> Vec<FaultReport> {
    net.entries()
        .into_iter()
        .enumerate()
        .map(|(id, (role, name, r))| FaultReport {
            name,
            kind: r.fault.clone(),
            target: format!("{role:?}").to_lowercase(),
            direction: format!("{:?}", r.direction).to_lowercase(),
            groups: r.groups.clone(),
            at_s: r.at.get().as_secs_f64(),
            until_s: r.until.map(|u| u.get().as_secs_f64()),
            connections_hit: hits.map(|h| h.get(&(id as u32)).copied().unwrap_or(0)),
        })
        .collect()
}

pub(crate) fn latencies(m: &Snapshot) -> Latencies {
    Latencies {
        connect: m.connect.summary(),
        first_connect: m.first_connect.summary(),
        time_to_connected: PathLatencies {
            direct_primary: m.time_to_connected[0].summary(),
            direct_fallback: m.time_to_connected[1].summary(),
            proxy_primary: m.time_to_connected[2].summary(),
            proxy_fallback: m.time_to_connected[3].summary(),
        },
        wakeup: m.wakeup.summary(),
        wakeup_cold: m.wakeup_cold.summary(),
        detect: m.detect.summary(),
        reconnect: m.reconnect.summary(),
        checkin: m.checkin.summary(),
        wakeup_to_checkin: m.wakeup_to_checkin.summary(),
    }
}

/// The percentile distribution of every histogram with samples, by its `latency_us` name.
pub(crate) fn distributions(m: &Snapshot) -> Distributions {
    m.histograms()
        .into_iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(name, h)| (name.to_string(), h.percentiles()))
        .collect()
}

/// Recovery figures of every outage (pure: from merged snapshots and the timeline).
pub fn recovery(
    merged: &Snapshot,
    timeline: &[TimelinePoint],
    t0_ns: u64,
    outages: &[OutageEvent],
) -> Vec<Recovery> {
    let secs = |ns: u64| ns.saturating_sub(t0_ns) as f64 / 1e9;
    outages
        .iter()
        .enumerate()
        .map(|(i, ev)| {
            let measured = merged.outages.get(i);
            let before = measured.map(|o| o.connected_before).unwrap_or(0);
            let back = measured.map(|o| &o.back);
            let back_n = back.map(|h| h.len()).unwrap_or(0);
            let share = |pct: f64| -> Option<f64> {
                let h = back?;
                if before == 0 || h.is_empty() {
                    return None;
                }
                let needed = (pct / 100.0 * before as f64).ceil() as u64;
                if needed > h.len() {
                    return None;
                }
                let q = needed as f64 / h.len() as f64;
                Some(h.inner().value_at_quantile(q) as f64 / 1e6)
            };
            let from = secs(ev.at_ns).floor() as u64;
            let until = outages
                .get(i + 1)
                .map(|n| secs(n.at_ns).floor() as u64)
                .unwrap_or(u64::MAX);
            let window = timeline.iter().filter(|p| p.t_s >= from && p.t_s < until);
            Recovery {
                action: ev.action.clone(),
                at_s: secs(ev.at_ns),
                down_s: ev.up_ns.map(|up| up.saturating_sub(ev.at_ns) as f64 / 1e9),
                connected_before: before,
                reconnected: back_n.min(before),
                reconnected_50_s: share(50.0),
                reconnected_90_s: share(90.0),
                reconnected_99_s: share(99.0),
                reconnected_100_s: share(100.0),
                peak_connects_per_s: window.clone().map(|p| p.connects).max().unwrap_or(0),
                failed_attempts: window.map(|p| p.connect_failures).sum(),
            }
        })
        .collect()
}

impl RunReport {
    /// The report, SLOs evaluated.
    pub fn build(i: Inputs<'_>) -> RunReport {
        let mut all = Snapshot::merged(i.groups.iter().map(|g| &g.merged));
        all.merge(i.console);
        let connected = all.timeline.connected();
        let by_path = all.timeline.connected_by_path();
        let timeline: Vec<TimelinePoint> = all
            .timeline
            .buckets
            .iter()
            .zip(connected.iter().zip(&by_path))
            .enumerate()
            .map(|(t, (b, (c, p)))| TimelinePoint {
                t_s: t as u64,
                connected: *c,
                connects: b.connects,
                disconnects: b.disconnects,
                connect_failures: b.connect_failures,
                wakeups_sent: b.wakeups_sent,
                wakeups_delivered: b.wakeups_delivered,
                drops: b.drops,
                paths: Paths::from_counts(*p),
            })
            .collect();
        let mut wakeups = WakeupCounts::default();
        let mut paths = Paths::default();
        let mut connected_end = 0;
        let mut groups = BTreeMap::new();
        for g in i.groups {
            wakeups.add(&g.wakeups);
            let p = Paths::from_counts(g.paths);
            paths.add(&p);
            connected_end += g.connected_end;
            groups.insert(
                g.name.clone(),
                GroupReport {
                    agents: agent_counts(g.configured, &g.merged, g.connected_end),
                    wakeups: g.wakeups,
                    latency_us: latencies(&g.merged),
                    paths: p,
                    distributions: distributions(&g.merged),
                    connected_per_s: g.merged.timeline.connected(),
                },
            );
        }
        let mut r = RunReport {
            schema_version: SCHEMA_VERSION,
            pushsim_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario: ScenarioInfo {
                name: i.scenario.name.clone(),
                description: i.scenario.description.clone(),
                origin: i.origin,
                text: i.scenario.to_toml(),
            },
            seed: i.scenario.seed,
            started_at: i.started_at,
            duration_s: i.duration_s,
            stopped_early: i.stopped_early,
            plan: i.plan,
            agents: agent_counts(
                i.groups.iter().map(|g| g.configured).sum(),
                &all,
                connected_end,
            ),
            wakeups,
            latency_us: latencies(&all),
            paths,
            groups,
            recovery: recovery(&all, &timeline, i.t0_ns, &i.outages),
            slos: Vec::new(),
            processes: i.processes,
            edge: i.edge,
            faults: {
                let mut f = faults(i.network, i.fault_hits.as_ref());
                if let Some((p, _)) = &i.proxy {
                    f.extend(proxy_faults(p, i.proxy_hits.as_ref()));
                }
                f
            },
            middlebox: i.middlebox,
            proxy: i.proxy.map(|(_, r)| r),
            timeline,
            distributions: distributions(&all),
            machine: i.machine,
            shard: i.shard,
            shards: Vec::new(),
        };
        if r.shard.is_none() {
            r.slos = slo::evaluate(&r, &i.scenario.slo);
        }
        r
    }

    /// True when every SLO held.
    pub fn passed(&self) -> bool {
        self.slos.iter().all(|s| s.passed)
    }
}

#[cfg(test)]
mod tests {
    use pushsim_metrics::Recorder;

    use super::*;

    #[test]
    fn recovery_shares_count_against_agents_connected_before() {
        let mut r = Recorder::new(0);
        for _ in 0..10 {
            r.connected(0, 1_000, 0, None);
        }
        r.outage(10_000_000_000);
        // 9 of 10 come back, at 11..19 s after the outage began
        for k in 1..=9u64 {
            r.disconnected(10_000_000_000, 0, true, None);
            r.connected(
                0,
                10_000_000_000 + (10 + k) * 1_000_000_000,
                0,
                Some(10_000_000_000),
            );
        }
        let m = r.snapshot();
        let ev = [OutageEvent {
            action: "service.restart".into(),
            at_ns: 10_000_000_000,
            up_ns: Some(15_000_000_000),
        }];
        let tl: Vec<TimelinePoint> = (0..40)
            .map(|t| TimelinePoint {
                t_s: t,
                connects: t % 3,
                connect_failures: 1,
                ..Default::default()
            })
            .collect();
        let rec = &recovery(&m, &tl, 0, &ev)[0];
        assert_eq!((rec.connected_before, rec.reconnected), (10, 9));
        assert_eq!(rec.down_s, Some(5.0));
        let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 0.02);
        assert!(
            near(rec.reconnected_50_s, 15.0),
            "{:?}",
            rec.reconnected_50_s
        );
        assert!(
            near(rec.reconnected_90_s, 19.0),
            "{:?}",
            rec.reconnected_90_s
        );
        assert_eq!(rec.reconnected_99_s, None, "only 9 of 10 came back");
        assert_eq!(rec.reconnected_100_s, None);
        assert_eq!(rec.peak_connects_per_s, 2);
        assert_eq!(rec.failed_attempts, 30, "seconds 10..40");
    }
}
