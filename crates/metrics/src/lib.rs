//! Measurement for pushsim: HDR histograms in microseconds, per-second timelines, wake-up
//! accounting, and the snapshots that site workers send to the orchestrator to be merged.
//!
//! # Layout
//! - [`clock`]: one monotonic clock (`CLOCK_MONOTONIC`) shared by every process of a run.
//! - [`histo`]: latency histograms and their percentile summary; serde as base64 HdrHistogram V2.
//! - [`timeline`]: per-second counters (connects, disconnects, wake-ups) and connected derivation.
//! - [`recorder`]: what one process records; produces a [`recorder::Snapshot`].
//! - [`snapshot`]: merging snapshots from many processes (histograms added, never averaged).
//! - [`wakeup`]: the wake-up payload on the wire (sequence number + intended send time).
//! - [`ledger`]: the orchestrator's record of every wake-up sent, and the exactly-once
//!   classification into delivered / late / lost (duplicates counted besides).

pub mod clock;
pub mod histo;
pub mod ledger;
pub mod recorder;
pub mod snapshot;
pub mod timeline;
pub mod wakeup;

pub use histo::{Histo, Summary};
pub use ledger::{Ledger, WakeupCounts};
pub use recorder::{Recorder, Snapshot};
