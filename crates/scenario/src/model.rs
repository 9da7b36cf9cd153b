//! The scenario model. Every field a file may set is here, with its default.
//!
//! Scalars come before tables so that a resolved scenario serialises back to valid TOML.

use serde::{Deserialize, Serialize};

use crate::slo::Slo;
use crate::units::{Dur, Rate};

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name (the built-in's name or the file stem; not written in files).
    #[serde(skip)]
    pub name: String,
    /// One line about what the scenario shows.
    pub description: String,
    /// How long the run's timeline lasts, from the start of the ramp-up.
    pub duration: Dur,
    /// Seed of every random choice in the run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// SLOs evaluated on report.json; a failed one makes the run exit 1.
    #[serde(default)]
    pub slo: Vec<Slo>,
    /// The push service.
    #[serde(default)]
    pub service: Service,
    /// The simulated agents.
    pub agents: Agents,
    /// The wake-up calls the console pushes.
    #[serde(default)]
    pub wakeups: Wakeups,
}

fn default_seed() -> u64 {
    1
}

/// Which broker the service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Broker {
    /// rumqttd behind pushsim's TLS edge.
    #[default]
    Rumqttd,
}

/// The push service: edge (TLS) and broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// The broker behind the edge.
    pub broker: Broker,
    /// Port of the primary listener (the 8883 role); 0 picks a free one.
    pub primary_port: u16,
    /// Port of the fallback listener (the 443 role); 0 picks a free one.
    pub fallback_port: u16,
    /// How long the edge waits for a TLS handshake to finish.
    pub handshake_timeout: Dur,
    /// Plain listeners rumqttd gets behind the edge; 0 sizes them to the run.
    pub broker_listeners: u16,
}

impl Default for Service {
    fn default() -> Self {
        Self {
            broker: Broker::Rumqttd,
            primary_port: 0,
            fallback_port: 0,
            handshake_timeout: Dur::secs(10),
            broker_listeners: 0,
        }
    }
}

/// Which edge listener agents connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    /// The 8883 role.
    #[default]
    Primary,
    /// The 443 role.
    Fallback,
}

/// The simulated agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agents {
    /// How many agents.
    pub count: u32,
    /// How fast they start, e.g. `"500/s"`.
    #[serde(default = "default_ramp")]
    pub ramp: Rate,
    /// Bound of one connect attempt: TCP + TLS + CONNACK.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Dur,
    /// MQTT keep-alive (whole seconds, 1 s to 65535 s).
    #[serde(default = "default_keep_alive")]
    pub keep_alive: Dur,
    /// Which edge listener the agents use.
    #[serde(default)]
    pub port: PortRole,
    /// Wait before reconnecting after a failed attempt or a lost connection.
    #[serde(default = "default_reconnect_delay")]
    pub reconnect_delay: Dur,
}

fn default_ramp() -> Rate {
    Rate::per_sec(500.0)
}
fn default_connect_timeout() -> Dur {
    Dur::secs(5)
}
fn default_keep_alive() -> Dur {
    Dur::secs(30)
}
fn default_reconnect_delay() -> Dur {
    Dur::secs(1)
}

/// The wake-up calls the console pushes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wakeups {
    /// Offsets at which every agent gets a wake-up (one broadcast round each).
    pub broadcast: Vec<Dur>,
    /// A steady Poisson stream of wake-ups to random agents, e.g. `"20/s"`.
    pub rate: Option<Rate>,
    /// When the steady stream starts.
    pub rate_from: Dur,
    /// When the steady stream stops (default: the end of the run).
    pub rate_until: Option<Dur>,
    /// A wake-up received later than this after its intended send time counts as late.
    pub late_after: Dur,
    /// After the timeline ends, how long to wait for wake-ups still in flight.
    pub drain: Dur,
}

impl Default for Wakeups {
    fn default() -> Self {
        Self {
            broadcast: Vec::new(),
            rate: None,
            rate_from: Dur::secs(0),
            rate_until: None,
            late_after: Dur::secs(10),
            drain: Dur::secs(10),
        }
    }
}

impl Scenario {
    /// The resolved scenario as TOML (what ran, with every default filled in).
    pub fn to_toml(&self) -> String {
        // Scalars precede tables in every struct, so serialisation cannot fail.
        let body =
            toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"));
        format!(
            "# scenario {} as run, every default filled in\n{body}",
            self.name
        )
    }
}
