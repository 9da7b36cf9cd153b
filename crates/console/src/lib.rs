//! The management-server simulator: it plans the run's wake-up calls and publishes them to the
//! push service as an MQTT client over TLS with its own certificate.
//!
//! # Layout
//! - [`checkins`]: the check-in endpoint and the wake-up → check-in accounting.
//! - [`schedule`]: the plan of wake-ups (broadcast rounds, Poisson stream), pure and seeded.
//! - [`publisher`]: the MQTT connection and the loop that sends the plan on time, recording every
//!   wake-up in the ledger before it is published.
//! - [`timer`]: deadlines with microsecond precision (timerfd), so wake-ups leave on time.

pub mod checkins;
pub mod publisher;
pub mod schedule;
pub mod timer;

pub use publisher::{Console, ConsoleError};
pub use schedule::{Planned, Schedule};
