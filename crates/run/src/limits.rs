//! The machine: the limits that shape a run, and what the report says of it.

use procfs::{CpuInfo, Current, Meminfo};
use pushsim_report::model::Machine;

/// Raises the soft open-files limit to the hard one; returns the limit now in force.
pub fn raise_nofile() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024),
    }
}

/// How many ephemeral ports the kernel hands out per destination.
pub fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|x| x.parse::<u64>().ok());
            Some(it.next()?..=it.next()?)
        })
        .map(|r| r.end().saturating_sub(*r.start()) + 1)
        .unwrap_or(28_232)
}

/// This machine's host name (a pod's name on Kubernetes); empty when unknown.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Cores, CPU model, memory, kernel and open-files limit, as far as `/proc` tells.
pub fn machine() -> Machine {
    let cpu = CpuInfo::current().ok();
    Machine {
        cores: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(0),
        cpu: cpu
            .as_ref()
            .and_then(|c| c.model_name(0).map(str::to_string))
            .unwrap_or_default(),
        memory_mib: Meminfo::current()
            .map(|m| m.mem_total / (1024 * 1024))
            .unwrap_or(0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        nofile_hard: rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(_, hard)| hard)
            .unwrap_or(0),
    }
}
