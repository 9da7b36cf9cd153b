//! What a run tells whoever shows its progress. The run never prints; the CLI draws bars.

/// Where the run is.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Starting a part of the run (service, edges, sites, console).
    Starting(String),
    /// Ready, waiting for the common start (`--start-at`), or late for it: the text says which.
    Waiting(String),
    /// The timeline started: agents ramping up.
    Running {
        /// Agents in the run.
        agents: u64,
        /// Planned length in seconds.
        duration_s: f64,
    },
    /// Waiting for wake-ups still in flight.
    Draining,
    /// Collecting measurements and stopping processes.
    Stopping,
}

/// Live figures, several times a second while running.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Status {
    /// Seconds since the run start.
    pub elapsed_s: f64,
    /// Agents connected now.
    pub connected: u64,
    /// Wake-ups sent so far.
    pub wakeups_sent: u64,
    /// Distinct wake-ups received so far.
    pub wakeups_received: u64,
    /// Failed connect attempts so far.
    pub connect_failures: u64,
}

/// Progress display.
pub trait Observer: Send + Sync {
    /// A new phase began.
    fn phase(&self, phase: Phase);
    /// Live figures.
    fn status(&self, status: Status);
}
