//! Agent ids and the dealing of agents to sites.

/// The id of the agent with run index `index` (0-based): `agent-000001` for 0.
pub fn agent_id(index: u32) -> String {
    format!("agent-{:06}", u64::from(index) + 1)
}

/// The run indices of site `site` of `sites`, dealt round-robin so that every site ramps up at
/// the same pace.
pub fn site_agents(total: u32, site: u32, sites: u32) -> Vec<u32> {
    (site..total).step_by(sites.max(1) as usize).collect()
}

/// When agent `index` starts, in ns after the run start, at `ramp_per_sec` agents per second.
pub fn start_offset_ns(index: u32, ramp_per_sec: f64) -> u64 {
    if ramp_per_sec <= 0.0 {
        return 0;
    }
    (f64::from(index) / ramp_per_sec * 1e9) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_one_based_and_padded() {
        assert_eq!(agent_id(0), "agent-000001");
        assert_eq!(agent_id(9_999), "agent-010000");
    }

    #[test]
    fn sites_partition_the_agents() {
        let all: Vec<u32> = (0..3).flat_map(|s| site_agents(10, s, 3)).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(site_agents(10, 1, 3), vec![1, 4, 7]);
    }

    #[test]
    fn ramp_spaces_starts() {
        assert_eq!(start_offset_ns(0, 500.0), 0);
        assert_eq!(start_offset_ns(500, 500.0), 1_000_000_000);
        assert_eq!(start_offset_ns(5, 0.0), 0);
    }
}
