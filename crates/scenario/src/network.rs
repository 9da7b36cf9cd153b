//! The network path between agents and the service as a scenario writes it (`[network]`): the
//! middlebox's fault rules per port role, and what applies them. A rule is one flat table so QA
//! can read it: `{ fault = "idle_drop", after = "20s", mode = "silent" }`; its typed form is in
//! [`crate::fault`], its checks in `network_check`.

use serde::{Deserialize, Serialize};

use crate::fault::Direction;
use crate::model::PortRole;
use crate::units::Dur;

/// `[network]`: fault rules per port role, and where they run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Put the middlebox in the path even when no rule is written (e.g. to add faults through
    /// the fault API, or to measure what the extra hop costs).
    pub middlebox: bool,
    /// What applies the rules.
    pub backend: Backend,
    /// The Toxiproxy server's API when `backend = "toxiproxy"`, e.g. `"http://127.0.0.1:8474"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toxiproxy_url: Option<String>,
    /// Rules on the primary (8883 role) path, first match decides.
    pub primary: Vec<NetRule>,
    /// Rules on the fallback (443 role) path.
    pub fallback: Vec<NetRule>,
}

impl Network {
    /// Whether agents go through the middlebox.
    pub fn in_path(&self) -> bool {
        self.middlebox || !self.primary.is_empty() || !self.fallback.is_empty()
    }

    /// Every rule with its role and name, primary first, in file order; a rule's position here
    /// is its id in the middlebox and the report.
    pub fn entries(&self) -> Vec<(PortRole, String, &NetRule)> {
        let p = self
            .primary
            .iter()
            .enumerate()
            .map(|(i, r)| (PortRole::Primary, r.label(PortRole::Primary, i), r));
        let f = self
            .fallback
            .iter()
            .enumerate()
            .map(|(i, r)| (PortRole::Fallback, r.label(PortRole::Fallback, i), r));
        p.chain(f).collect()
    }
}

/// What applies the fault rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// pushsim's own middlebox, inside each site process.
    #[default]
    Builtin,
    /// A Toxiproxy server (for the toxics it has).
    Toxiproxy,
}
/// One rule as a scenario writes it: the fault, its parameters, and where and when it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetRule {
    /// The fault kind (see [`FAULT_KINDS`]).
    pub fault: String,
    /// Name in the report (default `<role>.<index>.<fault>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which direction's data it looks at.
    #[serde(default)]
    pub direction: Direction,
    /// Probability that it applies to a connection (0 to 1).
    #[serde(default = "one")]
    pub toxicity: f64,
    /// Only these groups' agents (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// When it switches on (offset of the run).
    #[serde(default)]
    pub at: Dur,
    /// When it switches off (default: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Dur>,
    /// latency: added delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Dur>,
    /// latency: spread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Dur>,
    /// bandwidth: KB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// slicer: mean piece size, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_size: Option<u64>,
    /// slicer: spread of the piece size, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_variation: Option<u64>,
    /// slicer: pause between pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Dur>,
    /// limit_data: bytes let through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// timeout, reset_peer: the delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// idle_drop: idle time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Dur>,
    /// idle_drop: `silent` | `rst` | `fin`; max_connections: `refuse` | `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// max_connections: open connections allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

fn one() -> f64 {
    1.0
}

impl NetRule {
    /// A rule of `fault` with every parameter unset.
    pub fn new(fault: &str) -> Self {
        Self {
            fault: fault.into(),
            name: None,
            direction: Direction::Both,
            toxicity: 1.0,
            groups: Vec::new(),
            at: Dur::secs(0),
            until: None,
            latency: None,
            jitter: None,
            rate: None,
            average_size: None,
            size_variation: None,
            delay: None,
            bytes: None,
            timeout: None,
            after: None,
            mode: None,
            limit: None,
        }
    }

    /// Its name in the report: its own, or `<role>.<index>.<fault>`.
    pub fn label(&self, role: PortRole, index: usize) -> String {
        self.name.clone().unwrap_or_else(|| {
            let r = match role {
                PortRole::Primary => "primary",
                PortRole::Fallback => "fallback",
            };
            format!("{r}.{index}.{}", self.fault)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_default_to_role_index_and_kind() {
        let r = NetRule::new("swallow");
        assert_eq!(r.label(PortRole::Primary, 2), "primary.2.swallow");
        let r = NetRule {
            name: Some("nat".into()),
            ..r
        };
        assert_eq!(r.label(PortRole::Fallback, 0), "nat");
    }
}
