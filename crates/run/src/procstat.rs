//! CPU time and peak memory of a process, from `/proc`.

use procfs::process::Process;

/// CPU seconds (user + system) and peak RSS (KiB) of `pid`, if it is still there.
pub fn read(pid: u32) -> Option<(f64, u64)> {
    let p = Process::new(pid as i32).ok()?;
    let stat = p.stat().ok()?;
    let tps = procfs::ticks_per_second() as f64;
    let cpu = (stat.utime + stat.stime) as f64 / tps;
    let hwm = p.status().ok()?.vmhwm.unwrap_or(0);
    Some((cpu, hwm))
}

/// Resident set (VmRSS, KiB) of `pid` now, if it is still there.
pub fn rss(pid: u32) -> Option<u64> {
    Process::new(pid as i32).ok()?.status().ok()?.vmrss
}

/// The same for this process.
pub fn myself() -> Option<(f64, u64)> {
    read(std::process::id())
}
