//! The scenario model. Every field a file may set is here, with its default.
//!
//! Scalars come before tables so that a resolved scenario serialises back to valid TOML.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::broker::Broker;

use crate::network::Network;
use crate::proxy::{Proxy, Route};
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
    /// The network path: the middlebox's fault rules.
    #[serde(default)]
    pub network: Network,
    /// The HTTP proxy on the agents' path (none: agents go direct).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Proxy>,
    /// Agent groups, each with its own settings; without any, `agents.count` agents form one
    /// group named `all`.
    #[serde(default, rename = "group", skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// Service events at offsets of the run (`[[at]]`).
    #[serde(default, rename = "at", skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<At>,
    /// Run the scenario once per value of one key, and report the runs side by side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
}

/// One group with its settings resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedGroup {
    /// Name (`all` when the scenario has no groups).
    pub name: String,
    /// Agents in it.
    pub count: u32,
    /// Its settings.
    pub profile: Profile,
}

impl Scenario {
    /// The groups with their settings; run indices are dealt to them in this order.
    pub fn resolved_groups(&self) -> Vec<ResolvedGroup> {
        if self.groups.is_empty() {
            return vec![ResolvedGroup {
                name: "all".into(),
                count: self.agents.count.unwrap_or(0),
                profile: self.agents.profile(),
            }];
        }
        self.groups
            .iter()
            .map(|g| ResolvedGroup {
                name: g.name.clone(),
                count: g.agents,
                profile: g.profile(&self.agents),
            })
            .collect()
    }

    /// Agents in the run.
    pub fn agent_count(&self) -> u32 {
        if self.groups.is_empty() {
            self.agents.count.unwrap_or(0)
        } else {
            self.groups
                .iter()
                .map(|g| g.agents)
                .fold(0u32, u32::saturating_add)
        }
    }

    /// Sets the number of agents; with groups, scales every group in proportion (at least one
    /// agent each), the last group taking the rounding.
    pub fn set_agent_count(&mut self, n: u32) {
        if self.groups.is_empty() {
            self.agents.count = Some(n);
            return;
        }
        let total = u64::from(self.agent_count().max(1));
        let k = self.groups.len();
        let mut left = n;
        for (i, g) in self.groups.iter_mut().enumerate() {
            let share = if i + 1 == k {
                left
            } else {
                ((u64::from(g.agents) * u64::from(n) / total) as u32)
                    .max(1)
                    .min(left.saturating_sub((k - 1 - i) as u32))
            };
            g.agents = share;
            left = left.saturating_sub(share);
        }
    }
}

fn default_seed() -> u64 {
    1
}

/// The push service: edge (TLS) and broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Service {
    /// The broker: `rumqttd` (behind pushsim's TLS edge), `mosquitto` (managed by pushsim) or
    /// `mqtts://host:port` (external).
    pub broker: Broker,
    /// External broker: CA certificate (PEM) its certificate is checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// External broker: client certificate (PEM) every agent and the console present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// External broker: the client certificate's key (PEM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Port of the primary listener (the 8883 role); 0 picks a free one.
    pub primary_port: u16,
    /// Port of the fallback listener (the 443 role); 0 picks a free one.
    pub fallback_port: u16,
    /// How long the edge waits for a TLS handshake to finish.
    pub handshake_timeout: Dur,
    /// Plain listeners rumqttd gets behind the edge; 0 sizes them to the run.
    pub broker_listeners: u16,
    /// Whether agents can reach the service at all. `false` models a push service blocked on
    /// the agents' path from the start: their connects are refused and wake-ups reach them
    /// only through replication (the console still publishes).
    pub reachable: bool,
    /// Bound for the service to be back after an outage (`service.start`, `service.restart`);
    /// past it the run ends with exit 3.
    pub start_timeout: Dur,
}

impl Default for Service {
    fn default() -> Self {
        Self {
            broker: Broker::Rumqttd,
            ca: None,
            cert: None,
            key: None,
            primary_port: 0,
            fallback_port: 0,
            handshake_timeout: Dur::secs(10),
            broker_listeners: 0,
            reachable: true,
            start_timeout: Dur::secs(30),
        }
    }
}

/// An endpoint role of the push service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    /// The 8883 role.
    #[default]
    Primary,
    /// The 443 role.
    Fallback,
}

/// How an agent waits between failed connect rounds (formulas in `pushsim_agent::backoff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackoffPolicy {
    /// Retry at once.
    None,
    /// Always `base`.
    Fixed,
    /// `min(cap, base·2ⁿ)`.
    Exponential,
    /// `rand(0, min(cap, base·2ⁿ))`.
    #[default]
    FullJitter,
    /// `t/2 + rand(0, t/2)`, `t = min(cap, base·2ⁿ)`.
    EqualJitter,
    /// `min(cap, rand(base, previous·3))`.
    DecorrelatedJitter,
}

/// Backoff between failed connect rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// The formula.
    pub policy: BackoffPolicy,
    /// `b` in the formulas.
    pub base: Dur,
    /// `c` in the formulas.
    pub cap: Dur,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            policy: BackoffPolicy::FullJitter,
            base: Dur::secs(1),
            cap: Dur::secs(30),
        }
    }
}

/// MQTT session kind: whether wake-ups published while an agent is offline wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Session {
    /// Clean session: wake-ups sent while offline are lost.
    #[default]
    Clean,
    /// Persistent session (QoS 1): the broker keeps them for the agent's return.
    Persistent,
}

/// A duration that may be `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Every(pub Option<Dur>);

impl Serialize for Every {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(d) => d.serialize(s),
            None => s.serialize_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "off" {
            return Ok(Every(None));
        }
        s.parse::<Dur>()
            .map(|d| Every(Some(d)))
            .map_err(|e| serde::de::Error::custom(format!("{e}, or \"off\"")))
    }
}

/// Declares the per-agent settings once: [`Agents`] holds their defaults (plus the run-wide
/// `count` and `ramp`), [`Group`] may override each, and [`Profile`] is one group's resolution.
macro_rules! agent_settings {
    ($($(#[$doc:meta])* $field:ident : $ty:ty = $default:expr;)*) => {
        /// The simulated agents: settings every group starts from.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Agents {
            /// How many agents, when the scenario has no `[[group]]`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub count: Option<u32>,
            /// How fast agents start over the whole run, e.g. `"500/s"`.
            #[serde(default = "default_ramp")]
            pub ramp: Rate,
            $($(#[$doc])* #[serde(default = $default)] pub $field: $ty,)*
        }

        /// A group of agents with its own settings; every figure of the report is also given
        /// per group.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Group {
            /// Name in the report (`groups.<name>`).
            pub name: String,
            /// How many agents.
            pub agents: u32,
            $($(#[$doc])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $field: Option<$ty>,)*
        }

        /// One group's settings, every default resolved.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct Profile {
            $($(#[$doc])* pub $field: $ty,)*
        }

        impl Group {
            /// This group's settings over `defaults`.
            pub fn profile(&self, defaults: &Agents) -> Profile {
                Profile { $($field: self.$field.clone().unwrap_or_else(|| defaults.$field.clone()),)* }
            }
        }

        impl Agents {
            /// The defaults as a profile (the one group of a scenario without groups).
            pub fn profile(&self) -> Profile {
                Profile { $($field: self.$field.clone(),)* }
            }
        }
    };
}

agent_settings! {
    /// Bound of one connect attempt: TCP + TLS + CONNACK.
    connect_timeout: Dur = "default_connect_timeout";
    /// MQTT keep-alive (whole seconds, 1 s to 65535 s).
    keep_alive: Dur = "default_keep_alive";
    /// How long an agent waits for PINGRESP before it declares the connection dead.
    pingresp_timeout: Dur = "default_pingresp_timeout";
    /// Endpoints in the order an agent tries them.
    endpoints: Vec<PortRole> = "default_endpoints";
    /// Through the proxy or direct, in which order (each over every endpoint); without a
    /// `[proxy]`, agents go direct.
    route: Route = "Route::default";
    /// Connected on a fallback endpoint, how often to try the primary again (`"off"`: never).
    primary_retry: Every = "Every::default";
    /// Wait between failed connect rounds.
    backoff: Backoff = "Backoff::default";
    /// Connected this long, an agent forgets its past failures (backoff restarts).
    stable_after: Dur = "default_stable_after";
    /// How often an agent checks in with the management server without a wake-up.
    replication_interval: Dur = "default_replication_interval";
    /// MQTT session kind.
    session: Session = "Session::default";
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
fn default_pingresp_timeout() -> Dur {
    Dur::secs(10)
}
fn default_endpoints() -> Vec<PortRole> {
    vec![PortRole::Primary, PortRole::Fallback]
}
fn default_stable_after() -> Dur {
    Dur::secs(10)
}
fn default_replication_interval() -> Dur {
    Dur::secs(20 * 60)
}

/// A change of the service at a moment of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceAction {
    /// SIGKILL: every connection dies at once, sessions with it.
    #[serde(rename = "service.kill")]
    Kill,
    /// Graceful stop: the edge closes every connection cleanly, then the service exits.
    #[serde(rename = "service.stop")]
    Stop,
    /// Start a stopped service (same ports).
    #[serde(rename = "service.start")]
    Start,
    /// Kill, stay down for `down`, start again.
    #[serde(rename = "service.restart")]
    Restart,
}

impl ServiceAction {
    /// As written in scenario files: `service.kill`, ...
    pub fn name(self) -> &'static str {
        match self {
            ServiceAction::Kill => "service.kill",
            ServiceAction::Stop => "service.stop",
            ServiceAction::Start => "service.start",
            ServiceAction::Restart => "service.restart",
        }
    }
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct At {
    /// Offset from the run start.
    pub time: Dur,
    /// What happens.
    #[serde(rename = "do")]
    pub action: ServiceAction,
    /// For `service.restart`: how long the service stays down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<Dur>,
}

/// One run per value of one key, reported side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Dotted key of the scenario, e.g. `agents.backoff.policy`.
    pub key: String,
    /// The values, as they would be written for that key.
    pub values: Vec<toml::Value>,
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
