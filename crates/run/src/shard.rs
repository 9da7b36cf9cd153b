//! Shards: one run's agents split over processes or machines (`--shard i/N`), pure: which
//! agents a shard runs, and which shard options cannot work.
//!
//! Agents are dealt round-robin by run index, the same way a run deals its agents to its site
//! processes: shard `i` of `N` holds the indices `i, i + N, i + 2N, …`, and its site `j` of `m`
//! holds every `m`-th of those, which is slice `i + N·j` of `N·m`. So `N` shards of `m` sites are
//! one run of `N·m` sites: ids are disjoint and stable, every agent starts at the offset its
//! index gives (the whole ramps at the scenario's rate), and each group is spread evenly.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use pushsim_agent::ids::site_agents;
use pushsim_scenario::Broker;

/// The furthest ahead a common start may be.
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// Shard `index` of `count` (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which one, from 0.
    pub index: u32,
    /// How many in the whole run.
    pub count: u32,
}

/// Most shards in one run.
pub const MAX_SHARDS: u32 = 10_000;

impl Shard {
    /// The whole run in one piece.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// True for a part of a larger run (`count` > 1).
    pub fn is_part(&self) -> bool {
        self.count > 1
    }

    /// Whether run index `agent` is this shard's.
    pub fn holds(&self, agent: u32) -> bool {
        agent % self.count == self.index
    }

    /// This shard's run indices, of `total` in the whole run.
    pub fn agents(&self, total: u32) -> Vec<u32> {
        site_agents(total, self.index, self.count)
    }

    /// Refuses what cannot work, before anything starts: several shards each with a broker of
    /// its own, more shards than the run's `agents`, a common start a day or more after `now`.
    pub fn check(
        self,
        agents: u32,
        broker: &Broker,
        start_at: Option<SystemTime>,
        now: SystemTime,
    ) -> Result<(), String> {
        if self.is_part() && broker.managed() {
            return Err(format!(
                "--shard {self}: the shards of a run share one broker; give it with --broker mqtts://host:port (and --ca, --cert, --key), not {broker}"
            ));
        }
        if self.count > agents {
            return Err(format!(
                "--shard {self}: {} shards for {agents} agents; every shard needs at least one agent",
                self.count
            ));
        }
        if let Some(at) = start_at {
            if at.duration_since(now).is_ok_and(|d| d > MAX_WAIT) {
                return Err(format!(
                    "--start-at {}: more than a day away",
                    humantime::format_rfc3339_seconds(at)
                ));
            }
        }
        Ok(())
    }

    /// The run indices of this shard's site `site` of `sites`.
    pub fn site_agents(&self, total: u32, site: u32, sites: u32) -> Vec<u32> {
        site_agents(
            total,
            self.index + self.count * site,
            self.count * sites.max(1),
        )
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("{s:?}: a shard is i/N, e.g. 0/4 (i from 0 to N-1)");
        let (i, n) = s.split_once('/').ok_or_else(usage)?;
        let index: u32 = i.trim().parse().map_err(|_| usage())?;
        let count: u32 = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("{s:?}: N must be 1 to {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!(
                "{s:?}: i must be below N (shards are numbered from 0, as Kubernetes' JOB_COMPLETION_INDEX)"
            ));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_by_name() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("0/1".parse::<Shard>().map(|s| s.is_part()), Ok(false));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/3", "1/20000"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn options_that_cannot_work_are_refused() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ext: Broker = "mqtts://localhost:8883".to_string().try_into().unwrap();
        let part = Shard { index: 1, count: 4 };
        assert_eq!(part.check(100, &ext, None, now), Ok(()));
        let e = part.check(100, &Broker::Mosquitto, None, now).unwrap_err();
        assert!(
            e.contains("share one broker") && e.contains("mosquitto"),
            "{e}"
        );
        assert_eq!(Shard::WHOLE.check(100, &Broker::Rumqttd, None, now), Ok(()));
        let e = part.check(3, &ext, None, now).unwrap_err();
        assert!(e.contains("4 shards for 3 agents"), "{e}");
        let soon = Some(now + Duration::from_secs(3_600));
        let late = Some(now - Duration::from_secs(3_600));
        let far = Some(now + Duration::from_secs(2 * 86_400));
        assert_eq!(part.check(100, &ext, soon, now), Ok(()));
        assert_eq!(
            part.check(100, &ext, late, now),
            Ok(()),
            "late is run and reported"
        );
        let e = part.check(100, &ext, far, now).unwrap_err();
        assert!(e.contains("more than a day away"), "{e}");
    }

    #[test]
    fn shards_and_their_sites_partition_the_run() {
        let total = 103;
        let mut all: Vec<u32> = Vec::new();
        for i in 0..4 {
            let shard = Shard { index: i, count: 4 };
            let mine = shard.agents(total);
            assert!(mine.iter().all(|&a| shard.holds(a)));
            let mut by_site: Vec<u32> = (0..3)
                .flat_map(|j| shard.site_agents(total, j, 3))
                .collect();
            by_site.sort_unstable();
            assert_eq!(by_site, mine, "a shard's sites hold exactly its agents");
            all.extend(mine);
        }
        all.sort_unstable();
        assert_eq!(all, (0..total).collect::<Vec<_>>());
        // The whole run is shard 0/1: its sites are the run's sites.
        assert_eq!(Shard::WHOLE.site_agents(10, 1, 3), site_agents(10, 1, 3));
    }
}
