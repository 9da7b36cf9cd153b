//! The network path between agents and the service: the middlebox's fault rules as a scenario
//! writes them (`[network]`), and their typed form ([`Fault`]) that `pushsim-netfault` applies.
//!
//! A rule is one flat table so that QA can read it: `{ fault = "idle_drop", after = "20s",
//! mode = "silent" }`. Each fault kind takes its own parameters; a parameter that does not belong
//! to the kind, or a missing one, is an error naming both.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::PortRole;
use crate::units::Dur;
use crate::validate::Invalid;

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

/// Which way data flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Both ways.
    #[default]
    Both,
    /// Agent to service (Toxiproxy's `upstream`).
    Up,
    /// Service to agent (Toxiproxy's `downstream`).
    Down,
}

/// What an idle-dropping middlebox does when it forgets a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleMode {
    /// Forget it silently: later data in either direction goes nowhere (Azure LB, AWS Network
    /// Firewall, most NATs).
    #[default]
    Silent,
    /// Answer the next packet from either side with RST (AWS NAT Gateway).
    Rst,
    /// Close both sides at once (AWS NLB).
    Fin,
}

/// What happens to a connection over the limit of `max_connections`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverLimit {
    /// Refused: the connect fails at once.
    #[default]
    Refuse,
    /// Accepted, then reset.
    Reset,
}

/// One fault, with its parameters (Toxiproxy's semantics where it has the toxic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Every chunk is delayed by `latency` ± `jitter`.
    Latency {
        /// Added delay.
        latency: Duration,
        /// Uniform spread around it.
        jitter: Duration,
    },
    /// At most `kb_per_s` KB/s.
    Bandwidth {
        /// Rate, KB/s.
        kb_per_s: u64,
    },
    /// Chunks cut into pieces of `average_size` ± `size_variation` bytes, `delay` apart.
    Slicer {
        /// Mean piece size, bytes.
        average_size: u64,
        /// Spread of the piece size, bytes.
        size_variation: u64,
        /// Pause between pieces.
        delay: Duration,
    },
    /// The connection closes once `bytes` have passed.
    LimitData {
        /// Bytes let through.
        bytes: u64,
    },
    /// Data stops; the connection closes after `timeout` without data (0: held until the rule
    /// ends).
    Timeout {
        /// How long, re-armed by every chunk.
        timeout: Duration,
    },
    /// RST `timeout` after the rule meets the connection.
    ResetPeer {
        /// Delay before the RST.
        timeout: Duration,
    },
    /// FIN at once.
    Close,
    /// Both directions silently held; sockets kept open.
    Blackhole,
    /// After `after` without traffic the connection is forgotten.
    IdleDrop {
        /// Idle time.
        after: Duration,
        /// What forgetting looks like.
        mode: IdleMode,
    },
    /// New connections refused at once.
    Refuse,
    /// New connections accepted and never answered (a blocked port that drops SYNs, as agents
    /// see it: they wait for their connect timeout).
    Swallow,
    /// New connections over `limit` open ones are refused or reset.
    MaxConnections {
        /// Open connections allowed.
        limit: u32,
        /// What happens over it.
        over: OverLimit,
    },
}

impl Fault {
    /// The name a scenario uses.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Latency { .. } => "latency",
            Fault::Bandwidth { .. } => "bandwidth",
            Fault::Slicer { .. } => "slicer",
            Fault::LimitData { .. } => "limit_data",
            Fault::Timeout { .. } => "timeout",
            Fault::ResetPeer { .. } => "reset_peer",
            Fault::Close => "close",
            Fault::Blackhole => "blackhole",
            Fault::IdleDrop { .. } => "idle_drop",
            Fault::Refuse => "refuse",
            Fault::Swallow => "swallow",
            Fault::MaxConnections { .. } => "max_connections",
        }
    }

    /// Whether it decides on new connections only.
    pub fn on_connect(&self) -> bool {
        matches!(
            self,
            Fault::Refuse | Fault::Swallow | Fault::MaxConnections { .. }
        )
    }
}

/// Every fault kind, as written.
pub const FAULT_KINDS: &[&str] = &[
    "latency",
    "bandwidth",
    "slicer",
    "limit_data",
    "timeout",
    "reset_peer",
    "close",
    "blackhole",
    "idle_drop",
    "refuse",
    "swallow",
    "max_connections",
];

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

    /// The parameters given, by name.
    fn given(&self) -> Vec<&'static str> {
        let all: [(&str, bool); 11] = [
            ("latency", self.latency.is_some()),
            ("jitter", self.jitter.is_some()),
            ("rate", self.rate.is_some()),
            ("average_size", self.average_size.is_some()),
            ("size_variation", self.size_variation.is_some()),
            ("delay", self.delay.is_some()),
            ("bytes", self.bytes.is_some()),
            ("timeout", self.timeout.is_some()),
            ("after", self.after.is_some()),
            ("mode", self.mode.is_some()),
            ("limit", self.limit.is_some()),
        ];
        all.iter().filter(|(_, g)| *g).map(|(n, _)| *n).collect()
    }

    /// The typed fault, or what is wrong with the parameters.
    pub fn typed(&self) -> Result<Fault, String> {
        let (allowed, fault): (&[&str], Result<Fault, String>) = match self.fault.as_str() {
            "latency" => (
                &["latency", "jitter"],
                need(self.latency, "latency").map(|l| Fault::Latency {
                    latency: l,
                    jitter: self.jitter.map(|j| j.get()).unwrap_or_default(),
                }),
            ),
            "bandwidth" => (
                &["rate"],
                self.rate
                    .ok_or_else(|| missing("rate", "KB/s, e.g. rate = 100"))
                    .and_then(|r| positive(r, "rate"))
                    .map(|kb_per_s| Fault::Bandwidth { kb_per_s }),
            ),
            "slicer" => (
                &["average_size", "size_variation", "delay"],
                self.average_size
                    .ok_or_else(|| missing("average_size", "bytes, e.g. average_size = 64"))
                    .and_then(|a| positive(a, "average_size"))
                    .and_then(|a| {
                        let v = self.size_variation.unwrap_or(0);
                        if v >= a {
                            Err(format!(
                                "size_variation = {v} must be below average_size = {a}"
                            ))
                        } else {
                            Ok(Fault::Slicer {
                                average_size: a,
                                size_variation: v,
                                delay: self.delay.map(|d| d.get()).unwrap_or_default(),
                            })
                        }
                    }),
            ),
            "limit_data" => (
                &["bytes"],
                self.bytes
                    .ok_or_else(|| missing("bytes", "e.g. bytes = 1024"))
                    .map(|bytes| Fault::LimitData { bytes }),
            ),
            "timeout" => (
                &["timeout"],
                Ok(Fault::Timeout {
                    timeout: self.timeout.map(|t| t.get()).unwrap_or_default(),
                }),
            ),
            "reset_peer" => (
                &["timeout"],
                Ok(Fault::ResetPeer {
                    timeout: self.timeout.map(|t| t.get()).unwrap_or_default(),
                }),
            ),
            "close" => (&[], Ok(Fault::Close)),
            "blackhole" => (&[], Ok(Fault::Blackhole)),
            "idle_drop" => (
                &["after", "mode"],
                need(self.after, "after").and_then(|after| {
                    if after.is_zero() {
                        return Err("after must be more than 0s".into());
                    }
                    let mode = match self.mode.as_deref() {
                        None | Some("silent") => IdleMode::Silent,
                        Some("rst") => IdleMode::Rst,
                        Some("fin") => IdleMode::Fin,
                        Some(m) => {
                            return Err(format!(
                                "mode = \"{m}\" is not one of \"silent\", \"rst\", \"fin\""
                            ))
                        }
                    };
                    Ok(Fault::IdleDrop { after, mode })
                }),
            ),
            "refuse" => (&[], Ok(Fault::Refuse)),
            "swallow" => (&[], Ok(Fault::Swallow)),
            "max_connections" => (
                &["limit", "mode"],
                self.limit
                    .ok_or_else(|| missing("limit", "open connections, e.g. limit = 1000"))
                    .and_then(|limit| {
                        let over = match self.mode.as_deref() {
                            None | Some("refuse") => OverLimit::Refuse,
                            Some("reset") => OverLimit::Reset,
                            Some(m) => {
                                return Err(format!(
                                    "mode = \"{m}\" is not one of \"refuse\", \"reset\""
                                ))
                            }
                        };
                        Ok(Fault::MaxConnections { limit, over })
                    }),
            ),
            other => {
                return Err(format!(
                    "fault = \"{other}\" is not one of {}",
                    FAULT_KINDS
                        .iter()
                        .map(|k| format!("\"{k}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        };
        if let Some(extra) = self.given().into_iter().find(|g| !allowed.contains(g)) {
            let takes = if allowed.is_empty() {
                "no parameters".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(format!(
                "`{extra}` is not a parameter of {} (it takes {takes})",
                self.fault
            ));
        }
        fault
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

/// Faults a Toxiproxy server can apply (`blackhole` as a `timeout` of 0 both ways).
pub const TOXIPROXY_KINDS: &[&str] = &[
    "latency",
    "bandwidth",
    "slicer",
    "limit_data",
    "timeout",
    "reset_peer",
    "blackhole",
];

impl Network {
    /// Checks every rule against a run of `duration` with `groups`; pushes what is wrong.
    pub(crate) fn check(&self, duration: Dur, groups: &[String], errs: &mut Vec<Invalid>) {
        let toxiproxy = self.backend == Backend::Toxiproxy;
        if toxiproxy && self.toxiproxy_url.is_none() {
            errs.push(Invalid::new(
                "network.toxiproxy_url",
                "(missing)",
                "is needed with backend = \"toxiproxy\", e.g. \"http://127.0.0.1:8474\"",
            ));
        }
        if let Some(u) = &self.toxiproxy_url {
            if !u.starts_with("http://") {
                errs.push(Invalid::new(
                    "network.toxiproxy_url",
                    u,
                    "must be an http:// URL of Toxiproxy's API",
                ));
            }
        }
        let mut names: Vec<String> = Vec::new();
        for (role, list) in [
            (PortRole::Primary, &self.primary),
            (PortRole::Fallback, &self.fallback),
        ] {
            let r = if role == PortRole::Primary {
                "primary"
            } else {
                "fallback"
            };
            for (i, rule) in list.iter().enumerate() {
                let at = format!("network.{r}[{i}]");
                let key = |k: &str| format!("{at}.{k}");
                if let Err(e) = rule.typed() {
                    errs.push(Invalid::new(&at, &rule.fault, &e));
                }
                if !(0.0..=1.0).contains(&rule.toxicity) {
                    errs.push(Invalid::new(
                        &key("toxicity"),
                        rule.toxicity,
                        "must be from 0 to 1",
                    ));
                }
                for g in &rule.groups {
                    if !groups.contains(g) {
                        errs.push(Invalid::new(
                            &key("groups"),
                            g,
                            &format!("is not a group of the scenario ({})", groups.join(", ")),
                        ));
                    }
                }
                if rule.at >= duration {
                    errs.push(Invalid::new(
                        &key("at"),
                        rule.at,
                        "must be before the end of the run",
                    ));
                }
                if rule.until.is_some_and(|u| u <= rule.at) {
                    errs.push(Invalid::new(
                        &key("until"),
                        rule.until.unwrap_or(rule.at),
                        "must be after `at`",
                    ));
                }
                let label = rule.label(role, i);
                if names.contains(&label) {
                    errs.push(Invalid::new(
                        &key("name"),
                        &label,
                        "names another rule too; names must be unique",
                    ));
                }
                names.push(label);
                if toxiproxy {
                    if !TOXIPROXY_KINDS.contains(&rule.fault.as_str()) {
                        errs.push(Invalid::new(
                            &at,
                            &rule.fault,
                            &format!(
                                "Toxiproxy cannot do this fault (it has {}); use backend = \"builtin\"",
                                TOXIPROXY_KINDS.join(", ")
                            ),
                        ));
                    }
                    if !rule.groups.is_empty() {
                        errs.push(Invalid::new(
                            &key("groups"),
                            rule.groups.join(","),
                            "Toxiproxy proxies are per port, not per group; use backend = \"builtin\"",
                        ));
                    }
                }
            }
        }
    }
}

fn need(d: Option<Dur>, name: &str) -> Result<Duration, String> {
    d.map(|d| d.get())
        .ok_or_else(|| missing(name, "a duration, e.g. \"20s\""))
}

fn missing(name: &str, what: &str) -> String {
    format!("needs `{name}` ({what})")
}

fn positive(v: u64, name: &str) -> Result<u64, String> {
    if v == 0 {
        Err(format!("{name} must be more than 0"))
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(toml_src: &str) -> NetRule {
        toml::from_str(toml_src).unwrap()
    }

    #[test]
    fn every_kind_types_with_its_parameters() {
        let r = rule("fault = \"idle_drop\"\nafter = \"20s\"\nmode = \"rst\"");
        assert_eq!(
            r.typed().unwrap(),
            Fault::IdleDrop {
                after: Duration::from_secs(20),
                mode: IdleMode::Rst
            }
        );
        for k in FAULT_KINDS {
            let mut r = NetRule::new(k);
            (r.latency, r.rate, r.average_size, r.bytes, r.after, r.limit) = (
                Some(Dur::secs(1)),
                Some(10),
                Some(8),
                Some(10),
                Some(Dur::secs(1)),
                Some(5),
            );
            let allowed = r.typed().err().unwrap_or_default();
            // With every required parameter set, the only complaint is an extra one.
            assert!(
                allowed.is_empty() || allowed.contains("is not a parameter of"),
                "{k}: {allowed}"
            );
        }
    }

    #[test]
    fn wrong_parameters_are_named() {
        let e = rule("fault = \"refuse\"\nafter = \"1s\"")
            .typed()
            .unwrap_err();
        assert!(e.contains("`after` is not a parameter of refuse"), "{e}");
        let e = rule("fault = \"idle_drop\"").typed().unwrap_err();
        assert!(e.contains("needs `after`"), "{e}");
        let e = rule("fault = \"idle_drop\"\nafter = \"1s\"\nmode = \"loud\"")
            .typed()
            .unwrap_err();
        assert!(e.contains("\"silent\", \"rst\", \"fin\""), "{e}");
        let e = rule("fault = \"nat\"").typed().unwrap_err();
        assert!(e.contains("\"idle_drop\""), "{e}");
        let e = rule("fault = \"slicer\"\naverage_size = 4\nsize_variation = 4")
            .typed()
            .unwrap_err();
        assert!(e.contains("below average_size"), "{e}");
    }

    fn errors(src: &str) -> String {
        let sc: crate::Scenario = toml::from_str(src).unwrap();
        sc.validate()
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    const HEAD: &str = "description = \"t\"\nduration = \"10s\"\n[agents]\ncount = 1\n";

    #[test]
    fn rules_are_checked_in_the_scenario() {
        let e = errors(&format!(
            "{HEAD}[network]\nfallback = [{{ fault = \"idle_drop\", after = \"1s\", groups = [\"x\"], toxicity = 2.0, at = \"20s\" }}]"
        ));
        assert!(e.contains("network.fallback[0].groups = x: is not a group"), "{e}");
        assert!(e.contains("network.fallback[0].toxicity = 2"), "{e}");
        assert!(e.contains("network.fallback[0].at = 20s"), "{e}");
        let e = errors(&format!(
            "{HEAD}[network]\nprimary = [{{ fault = \"close\", name = \"a\" }}, {{ fault = \"refuse\", name = \"a\" }}]"
        ));
        assert!(e.contains("names must be unique"), "{e}");
    }

    #[test]
    fn toxiproxy_backend_refuses_what_toxiproxy_cannot_do() {
        let e = errors(&format!(
            "{HEAD}[network]\nbackend = \"toxiproxy\"\nfallback = [{{ fault = \"idle_drop\", after = \"1s\" }}, {{ fault = \"swallow\" }}]"
        ));
        assert!(e.contains("network.toxiproxy_url"), "{e}");
        assert!(e.contains("network.fallback[0] = idle_drop: Toxiproxy cannot"), "{e}");
        assert!(e.contains("network.fallback[1] = swallow: Toxiproxy cannot"), "{e}");
        let ok: crate::Scenario = toml::from_str(&format!(
            "{HEAD}[network]\nbackend = \"toxiproxy\"\ntoxiproxy_url = \"http://127.0.0.1:8474\"\nprimary = [{{ fault = \"latency\", latency = \"1s\" }}]"
        ))
        .unwrap();
        assert!(ok.validate().is_ok());
    }

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
