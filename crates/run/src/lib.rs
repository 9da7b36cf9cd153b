//! Running a scenario: the orchestrator that lays a run out over processes (service, edges,
//! sites), drives its timeline, collects and merges what every process measured, and writes the
//! report; and the child-process side of each role.
//!
//! # Layout
//! - [`plan`]: how many processes of each role a run needs (pure; from the open-files limit).
//! - [`limits`]: raising the open-files limit; the ephemeral port range; the machine for the
//!   report.
//! - [`ipc`]: the JSON-lines protocol between the orchestrator and its children.
//! - [`children`]: spawning and talking to child processes (parent side).
//! - [`child`]: the child side: broker, edge and site entry points.
//! - [`procstat`]: CPU and peak memory of a process from `/proc`.
//! - [`observer`]: the progress interface the CLI implements (the run never prints).
//! - [`mosquitto`]: `service.broker = "mosquitto"`: its configuration, start and readiness.
//! - `running`: the run's children while it runs: service lifecycle, sites, following them.
//! - `external`: `network.backend = "toxiproxy"`: proxies and toxics on a Toxiproxy server.
//! - `fault_api`: `--fault-api`, Toxiproxy's API over the run's middleboxes.
//! - `tunnels`: `proxy-tunnels.csv`, every request the embedded proxies saw.
//! - [`shard`]: `--shard i/N`: which agents a shard runs (pure), the same dealing as sites.
//! - [`orchestrator`]: one run from scenario to report.

pub mod child;
pub mod children;
mod external;
mod fault_api;
pub mod ipc;
pub mod limits;
pub mod mosquitto;
pub mod observer;
pub mod orchestrator;
pub mod plan;
pub mod procstat;
mod running;
pub mod shard;
mod tunnels;

pub use observer::{Observer, Phase, Status};
pub use orchestrator::{execute, Outcome, RunOptions};

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario or the options are wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The machine cannot host the run, or a part of it failed to start (exit 3). The message
    /// names the fix.
    #[error("{0}")]
    Environment(String),
    /// Ctrl-C before the timeline started: nothing ran, nothing is reported (exit 130).
    #[error("interrupted before the run started")]
    Interrupted,
}

impl RunError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Usage(_) => 2,
            RunError::Environment(_) => 3,
            RunError::Interrupted => 130,
        }
    }
}
