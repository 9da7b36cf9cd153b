//! The middlebox: a fault-injecting TCP proxy between agents and the service, standing for the
//! firewalls, NATs and load balancers on a real path.
//!
//! A rule looks at a new connection, a chunk or the time and returns a verdict (pass, delay,
//! hold, drop, reset, close, forget); the first rule that is not pass decides. Rules switch on
//! and off at times of the run, apply to open and new connections, per port role and group, per
//! direction, with a toxicity probability. The proxy reports, per connection, when a rule broke
//! it and when its agent noticed, so detection time is exact.
//!
//! # Layout
//! - [`rule`]: rules and verdicts, pure (no sockets, no clock).
//! - [`proxy`]: the middlebox's listeners: new connections refused, swallowed or proxied.
//! - `conn`: one proxied connection, its chunks and deadlines carried out.
//! - [`scenario`]: a scenario's `[network]` as rules on the run clock.
//! - [`toxics`]: Toxiproxy's JSON shapes and their translation to and from rules.
//! - [`api`]: Toxiproxy's HTTP API over any [`api::Backend`].
//! - [`standalone`]: stand-alone proxies behind that API (`pushsim toxiproxy`).
//! - [`client`]: a client of Toxiproxy's API (`network.backend = "toxiproxy"`).
//! - [`connect_rule`]: the HTTP CONNECT proxy's faults and request reading (pure).
//! - [`connect`]: the embedded HTTP CONNECT proxy, one listener per group of agents.

pub mod api;
pub mod client;
mod conn;
pub mod connect;
pub mod connect_rule;
pub mod proxy;
pub mod rule;
pub mod scenario;
pub mod standalone;
pub mod toxics;

pub use proxy::{Counts, Events, Middlebox, NoEvents, Tag};
pub use rule::{Rule, RuleSet, Verdict};
