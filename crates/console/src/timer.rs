//! Sending on time: a deadline on the run clock (`CLOCK_MONOTONIC`) kept by a timerfd and
//! awaited through tokio's reactor. tokio's own timers tick in whole milliseconds, so a wake-up
//! sent after `tokio::time::sleep` leaves up to a millisecond after its intended time — more
//! than the whole path a wake-up takes to an agent on loopback, and counted in its latency.

use std::io;
use std::os::fd::OwnedFd;

use pushsim_metrics::clock::mono_ns;
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A reusable one-shot timer with nanosecond deadlines.
pub struct Deadline {
    fd: AsyncFd<OwnedFd>,
}

impl Deadline {
    /// A timer (needs a tokio runtime with I/O enabled).
    pub fn new() -> io::Result<Self> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: an `OwnedFd` is open and stays the same descriptor until it is dropped, which
        // happens only with the `AsyncFd` that owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(Self { fd })
    }

    /// Resolves at `at_ns` on the run clock (at once if that has passed).
    pub async fn until(&mut self, at_ns: u64) -> io::Result<()> {
        if at_ns <= mono_ns() {
            return Ok(());
        }
        let value = Timespec {
            tv_sec: (at_ns / 1_000_000_000) as i64,
            tv_nsec: (at_ns % 1_000_000_000) as i64,
        };
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::ABSTIME, &spec)?;
        loop {
            let mut ready = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(ready.get_inner(), &mut expirations) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_at_the_deadline_not_before_and_is_reusable() {
        let mut t = Deadline::new().unwrap();
        for delay_us in [300u64, 1_500, 50] {
            let at = mono_ns() + delay_us * 1_000;
            t.until(at).await.unwrap();
            assert!(mono_ns() >= at, "fired before its deadline");
        }
        // A past deadline resolves at once.
        t.until(mono_ns() - 1).await.unwrap();
    }
}
