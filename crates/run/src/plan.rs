//! How a run is laid out over processes, from the open-files limit (pure).
//!
//! Per agent: one socket in its site, two in the edge (agent side and rumqttd side), one in
//! rumqttd. rumqttd cannot be split, so it bounds a single machine's run; sites and edges split.

use std::fmt;

/// File descriptors every process keeps for itself (runtime, pipes, listeners, logs).
pub const RESERVE_FDS: u64 = 256;

/// The layout of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Site processes.
    pub sites: u32,
    /// Edge processes (sharing listeners with SO_REUSEPORT).
    pub edges: u32,
    /// rumqttd's plain listeners.
    pub broker_listeners: u32,
    /// The open-files limit per process.
    pub nofile: u64,
}

/// A run that cannot fit this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoesNotFit(pub String);

impl fmt::Display for DoesNotFit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Most agents one rumqttd process can hold under `nofile`.
pub fn max_agents(nofile: u64) -> u64 {
    nofile.saturating_sub(RESERVE_FDS)
}

/// The layout for `agents` agents under `nofile` open files per process and `ephemeral`
/// ephemeral ports per destination; `sites` and `listeners` override the computed counts.
pub fn make(
    agents: u32,
    nofile: u64,
    ephemeral: u64,
    sites: Option<u32>,
    listeners: Option<u32>,
) -> Result<Plan, DoesNotFit> {
    let a = u64::from(agents);
    if nofile < 1024 {
        return Err(DoesNotFit(format!(
            "the open-files limit is {nofile}; pushsim needs at least 1024 per process (raise it with `ulimit -n`)"
        )));
    }
    let budget = nofile - RESERVE_FDS;
    let listeners = listeners
        .map(u64::from)
        .unwrap_or_else(|| pushsim_service::broker::listeners_for(agents as usize) as u64);
    if a + listeners > budget {
        return Err(DoesNotFit(format!(
            "{agents} agents do not fit: rumqttd holds one socket per agent in one process, and the open-files limit is {nofile} per process (at most {} agents here); run fewer agents, or raise the hard limit (`ulimit -Hn` as root)",
            max_agents(nofile) - listeners
        )));
    }
    // Every agent connects to the same edge address: one ephemeral port each.
    let port_margin = 1_000;
    if a + port_margin > ephemeral {
        return Err(DoesNotFit(format!(
            "{agents} agents do not fit: they all connect to one loopback address and port, and only {ephemeral} ephemeral ports exist (net.ipv4.ip_local_port_range); run at most {} agents",
            ephemeral.saturating_sub(port_margin)
        )));
    }
    let needed_sites = a.div_ceil(budget).max(1) as u32;
    let sites = match sites {
        Some(s) if s < needed_sites => {
            return Err(DoesNotFit(format!(
                "--sites {s} is too few: {agents} agents need at least {needed_sites} site processes under the open-files limit of {nofile}"
            )))
        }
        Some(0) => return Err(DoesNotFit("--sites must be at least 1".into())),
        Some(s) => s.min(agents.max(1)),
        None => needed_sites,
    };
    // Two sockets per agent in the edge, plus a margin for SO_REUSEPORT's uneven spread.
    let edges = (2 * a + 2 * a / 10).div_ceil(budget).max(1) as u32;
    Ok(Plan {
        sites,
        edges,
        broker_listeners: listeners as u32,
        nofile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPH: u64 = 28_232;

    #[test]
    fn small_runs_use_one_of_each() {
        let p = make(1_000, 20_000, EPH, None, None).unwrap();
        assert_eq!((p.sites, p.edges, p.broker_listeners), (1, 1, 2));
    }

    #[test]
    fn ten_thousand_agents_split_the_edge() {
        let p = make(10_000, 20_000, EPH, None, None).unwrap();
        assert_eq!((p.sites, p.edges, p.broker_listeners), (1, 2, 4));
    }

    #[test]
    fn too_many_for_rumqttd_says_how_many_fit() {
        let e = make(25_000, 20_000, 60_000, None, None).unwrap_err();
        assert!(e.0.contains("at most 19736 agents"), "{e}");
    }

    #[test]
    fn ports_and_limits_are_checked() {
        assert!(make(100, 512, EPH, None, None)
            .unwrap_err()
            .0
            .contains("at least 1024"));
        let e = make(19_000, 1_000_000, 10_000, None, None).unwrap_err();
        assert!(e.0.contains("ephemeral ports"), "{e}");
        assert!(make(10_000, 4_096, EPH, Some(1), None).is_err());
        assert_eq!(make(10, 20_000, EPH, Some(3), None).unwrap().sites, 3);
    }
}
