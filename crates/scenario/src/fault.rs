//! The typed faults of the middlebox ([`Fault`], Toxiproxy's semantics where it has the toxic)
//! and their reading from a scenario's flat rule tables: each kind takes its own parameters; a
//! parameter that does not belong to the kind, or a missing one, is an error naming both.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::network::NetRule;
use crate::units::Dur;

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

impl NetRule {
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
            other => return Err(unknown_kind(other, FAULT_KINDS)),
        };
        only_params(&self.fault, &self.given(), allowed)?;
        fault
    }
}

/// The error for a fault kind not among `kinds`.
pub(crate) fn unknown_kind(kind: &str, kinds: &[&str]) -> String {
    format!(
        "fault = \"{kind}\" is not one of {}",
        kinds
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Whether every parameter `given` to fault `kind` is one it takes (`allowed`).
pub(crate) fn only_params(kind: &str, given: &[&str], allowed: &[&str]) -> Result<(), String> {
    match given.iter().find(|g| !allowed.contains(g)) {
        None => Ok(()),
        Some(extra) => {
            let takes = if allowed.is_empty() {
                "no parameters".to_string()
            } else {
                allowed.join(", ")
            };
            Err(format!(
                "`{extra}` is not a parameter of {kind} (it takes {takes})"
            ))
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
}
