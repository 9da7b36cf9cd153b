//! How a run is laid out over processes, from the open-files limit (pure).
//!
//! Per agent: one socket in its site, two more with the middlebox (its two sides) and two more
//! with the embedded proxy (its two sides), two in the edge (agent side and rumqttd side), one in rumqttd. rumqttd cannot be split, so it bounds a single machine's run; sites and edges split.

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

/// What the run needs of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// Agents.
    pub agents: u32,
    /// Whether agents go through a middlebox in their site (two more sockets per agent there).
    pub middlebox: bool,
    /// Whether agents go through the embedded proxy in their site (two more sockets per agent).
    pub proxy: bool,
    /// Site processes asked for (default: as the open-files limit requires).
    pub sites: Option<u32>,
    /// rumqttd listeners asked for (default: sized to the run).
    pub listeners: Option<u32>,
}

/// The layout for `needs` under `nofile` open files per process and `ephemeral` ephemeral ports
/// per destination.
pub fn make(needs: Needs, nofile: u64, ephemeral: u64) -> Result<Plan, DoesNotFit> {
    let Needs {
        agents,
        middlebox,
        proxy,
        sites,
        listeners,
    } = needs;
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
    let per_agent = 1 + 2 * u64::from(middlebox) + 2 * u64::from(proxy);
    let needed_sites = (per_agent * a).div_ceil(budget).max(1) as u32;
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

    fn needs(agents: u32, sites: Option<u32>, listeners: Option<u32>) -> Needs {
        Needs {
            agents,
            middlebox: false,
            proxy: false,
            sites,
            listeners,
        }
    }

    #[test]
    fn the_middlebox_triples_a_sites_sockets() {
        let n = Needs {
            middlebox: true,
            ..needs(10_000, None, None)
        };
        assert_eq!(make(n, 20_000, EPH).unwrap().sites, 2);
        let both = Needs { proxy: true, ..n };
        assert_eq!(
            make(both, 20_000, EPH).unwrap().sites,
            3,
            "5 sockets per agent"
        );
    }

    #[test]
    fn small_runs_use_one_of_each() {
        let p = make(needs(1_000, None, None), 20_000, EPH).unwrap();
        assert_eq!((p.sites, p.edges, p.broker_listeners), (1, 1, 2));
    }

    #[test]
    fn ten_thousand_agents_split_the_edge() {
        let p = make(needs(10_000, None, None), 20_000, EPH).unwrap();
        assert_eq!((p.sites, p.edges, p.broker_listeners), (1, 2, 4));
    }

    #[test]
    fn too_many_for_rumqttd_says_how_many_fit() {
        let e = make(needs(25_000, None, None), 20_000, 60_000).unwrap_err();
        assert!(e.0.contains("at most 19736 agents"), "{e}");
    }

    #[test]
    fn ports_and_limits_are_checked() {
        assert!(make(needs(100, None, None), 512, EPH)
            .unwrap_err()
            .0
            .contains("at least 1024"));
        let e = make(needs(19_000, None, None), 1_000_000, 10_000).unwrap_err();
        assert!(e.0.contains("ephemeral ports"), "{e}");
        assert!(make(needs(10_000, Some(1), None), 4_096, EPH).is_err());
        assert_eq!(
            make(needs(10, Some(3), None), 20_000, EPH).unwrap().sites,
            3
        );
    }
}

/// Deals run indices to groups of `counts` agents, interleaved in proportion (so every group
/// ramps up across the whole ramp): entry `i` is the group of agent `i`.
pub fn deal_groups(counts: &[u32]) -> Vec<u16> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    let mut given = vec![0u64; counts.len()];
    (0..total)
        .map(|i| {
            // The group furthest behind its share of the first i+1 agents.
            let g = (0..counts.len())
                .filter(|&g| given[g] < u64::from(counts[g]))
                .max_by(|&a, &b| {
                    let lag = |g: usize| {
                        (i + 1) as f64 * counts[g] as f64 / total as f64 - given[g] as f64
                    };
                    lag(a).total_cmp(&lag(b)).then(b.cmp(&a))
                })
                .unwrap_or(0);
            given[g] += 1;
            g as u16
        })
        .collect()
}

#[cfg(test)]
mod deal_tests {
    use super::deal_groups;

    #[test]
    fn groups_are_interleaved_in_proportion() {
        let d = deal_groups(&[3, 1]);
        assert_eq!(d, vec![0, 0, 1, 0]);
        let d = deal_groups(&[500, 1500, 1]);
        assert_eq!(d.iter().filter(|&&g| g == 0).count(), 500);
        assert_eq!(d.iter().filter(|&&g| g == 2).count(), 1);
        // the first 100 agents hold about a quarter of group 0
        let early = d[..100].iter().filter(|&&g| g == 0).count();
        assert!((24..=26).contains(&early), "{early}");
        assert!(deal_groups(&[]).is_empty());
    }
}
