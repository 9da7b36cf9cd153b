//! Scenario files: the model, loading (built-in or from a path), validation, and SLO expressions.
//!
//! A scenario is plain data (serde, `deny_unknown_fields`), validated once before anything binds
//! a socket. Parse errors name the file, line and column; validation errors name the key, the
//! value and what would be valid.
//!
//! # Layout
//! - [`model`]: the scenario structs and their defaults.
//! - [`broker`]: `service.broker`: rumqttd, mosquitto, or an external `mqtts://` broker.
//! - [`units`]: durations (`"30s"`) and rates (`"500/s"`) as they are written in files.
//! - [`network`]: the middlebox's fault rules as written (`[network]`).
//! - [`fault`]: the typed faults, read from those rules.
//! - `network_check`: the checks of `[network]`.
//! - [`proxy`]: the HTTP proxy on the agents' path (`[proxy]`), its faults, the agents' routes.
//! - `proxy_check`: the checks of `[proxy]` and of routes.
//! - [`slo`]: SLO expressions (`"wakeups.lost == 0"`), parsed and evaluated against numbers.
//! - [`sweep`]: the variants of a scenario that sweeps one key.
//! - [`validate`]: the checks a scenario passes before a run.
//! - [`load`]: reading a file or a built-in, errors with file:line:col.
//! - [`builtin`]: the scenarios shipped in `scenarios/`.

pub mod broker;
pub mod builtin;
pub mod fault;
pub mod load;
pub mod model;
pub mod network;
mod network_check;
pub mod proxy;
mod proxy_check;
pub use network_check::TOXIPROXY_KINDS;
pub mod slo;
pub mod sweep;
pub mod units;
pub mod validate;

pub use broker::Broker;
pub use fault::{Direction, Fault, IdleMode, OverLimit};
pub use load::{load, parse, ScenarioError};
pub use model::{
    Agents, At, Backoff, BackoffPolicy, Every, Group, PortRole, Profile, ResolvedGroup, Scenario,
    Service, ServiceAction, Session, Sweep, Wakeups,
};
pub use network::{NetRule, Network};
pub use proxy::{proxy_url, Proxy, ProxyAddr, ProxyFault, ProxyRule, Route};
pub use slo::{Limit, Op, Slo};
pub use units::{Dur, Rate};
