//! Simulated management agents: each keeps an MQTT-over-TLS connection to the push service,
//! subscribes to its own wake-up topic after every CONNACK, and records connects, losses and
//! wake-ups. A *site* is many agents in one process sharing one recorder.
//!
//! # Layout
//! - [`ids`]: agent ids (`agent-000001`) and how agents are dealt to sites.
//! - [`identity`]: issuing each agent's client certificate and TLS configuration, once.
//! - [`backoff`]: waits between failed connect rounds (every policy's formula).
//! - [`liveness`]: dead-link detection by PINGRESP timeout (pure).
//! - [`policy`]: the agent's connection decisions as a pure state machine.
//! - [`checkin`]: replication check-ins over HTTP.
//! - [`driver`]: one agent's connect / listen / reconnect loop over rumqttc.
//! - [`site`]: starting, observing and stopping a site's agents.
//! - [`path`]: the site's middlebox (one listener per group and role) and its events.
//! - [`proxy`]: the site's HTTP proxy (embedded, one listener per group, or external).
//! - `netthread`: the thread of its own that the middlebox and the proxy each run on.

pub mod backoff;
pub mod checkin;
pub mod driver;
pub mod identity;
pub mod ids;
pub mod liveness;
mod netthread;
pub mod path;
pub mod policy;
pub mod proxy;
pub mod site;

pub use proxy::ProxySetup;
pub use site::{Site, SiteConfig, SiteProgress, SiteResult};
