//! Assembling a [`RunReport`] from what the run measured.

use std::collections::BTreeMap;

use pushsim_metrics::{Snapshot, WakeupCounts};
use pushsim_scenario::Scenario;

use crate::model::*;
use crate::slo;

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
    /// Every process's measurements merged (sites and console).
    pub merged: &'a Snapshot,
    /// The ledger's classification.
    pub wakeups: WakeupCounts,
    /// Agents connected at the end (sum over sites).
    pub connected_end: u64,
    /// CPU and memory per process.
    pub processes: Vec<ProcessStats>,
    /// Edge counters summed over edge processes.
    pub edge: BTreeMap<String, u64>,
}

impl RunReport {
    /// The report, SLOs evaluated.
    pub fn build(i: Inputs<'_>) -> RunReport {
        let m = i.merged;
        let connected = m.timeline.connected();
        let timeline = m
            .timeline
            .buckets
            .iter()
            .zip(&connected)
            .enumerate()
            .map(|(t, (b, c))| TimelinePoint {
                t_s: t as u64,
                connected: *c,
                connects: b.connects,
                disconnects: b.disconnects,
                wakeups_sent: b.wakeups_sent,
                wakeups_delivered: b.wakeups_delivered,
            })
            .collect();
        let c = m.counters;
        let mut r = RunReport {
            schema_version: SCHEMA_VERSION,
            pushsim_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario: ScenarioInfo {
                name: i.scenario.name.clone(),
                description: i.scenario.description.clone(),
                origin: i.origin,
            },
            seed: i.scenario.seed,
            started_at: i.started_at,
            duration_s: i.duration_s,
            stopped_early: i.stopped_early,
            plan: i.plan,
            agents: AgentCounts {
                configured: u64::from(i.scenario.agents.count),
                connected_peak: connected.iter().copied().max().unwrap_or(0),
                connected_end: i.connected_end,
                connect_attempts: c.connect_attempts,
                connect_failures: c.connect_failures,
                disconnects: c.disconnects,
                subscribe_failures: c.subscribe_failures,
                malformed_messages: c.malformed,
            },
            wakeups: i.wakeups,
            latency_us: Latencies {
                connect: m.connect.summary(),
                wakeup: m.wakeup.summary(),
                wakeup_cold: m.wakeup_cold.summary(),
            },
            slos: Vec::new(),
            processes: i.processes,
            edge: i.edge,
            timeline,
        };
        r.slos = slo::evaluate(&r, &i.scenario.slo);
        r
    }

    /// True when every SLO held.
    pub fn passed(&self) -> bool {
        self.slos.iter().all(|s| s.passed)
    }
}
