//! `network.backend = "toxiproxy"`: the run's fault rules applied by an external Toxiproxy
//! server. Two proxies are created there in front of the service's primary and fallback
//! listeners; agents connect to them; each rule's toxics are added when it switches on and
//! removed when it switches off; the proxies are deleted at the end.

use std::net::SocketAddr;
use std::time::Duration;

use pushsim_netfault::client::Toxiproxy;
use pushsim_netfault::toxics::{rule_to_toxics, ProxyJson};
use pushsim_scenario::{Network, PortRole};

use crate::RunError;

fn env(what: impl std::fmt::Display) -> RunError {
    RunError::Environment(what.to_string())
}

/// A rule switching on or off at an offset of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Switch {
    /// Offset from the run start.
    pub(crate) at: Duration,
    /// Rule id (position in [`Network::entries`]).
    pub(crate) rule: usize,
    /// On or off.
    pub(crate) on: bool,
}

/// Every rule's switches after the start, in time order (rules on from 0 are switched on
/// before the agents start).
pub(crate) fn switches(net: &Network) -> Vec<Switch> {
    let mut out: Vec<Switch> = net
        .entries()
        .iter()
        .enumerate()
        .flat_map(|(rule, (_, _, r))| {
            let on = (!r.at.get().is_zero()).then_some(Switch {
                at: r.at.get(),
                rule,
                on: true,
            });
            let off = r.until.map(|u| Switch {
                at: u.get(),
                rule,
                on: false,
            });
            on.into_iter().chain(off)
        })
        .collect();
    out.sort_by_key(|s| s.at);
    out
}

/// The run's proxies on a Toxiproxy server.
pub(crate) struct External {
    tp: Toxiproxy,
    names: [String; 2],
    net: Network,
}

impl External {
    /// Creates the proxies in front of `service` (primary, fallback) and switches on the rules
    /// that apply from the start; returns the addresses agents connect to.
    pub(crate) async fn start(
        url: &str,
        net: &Network,
        service: [SocketAddr; 2],
    ) -> Result<(Self, [SocketAddr; 2]), RunError> {
        let tp = Toxiproxy::new(url).map_err(env)?;
        let id = std::process::id();
        let names = [
            format!("pushsim-{id}-primary"),
            format!("pushsim-{id}-fallback"),
        ];
        let mut ends = service;
        for i in 0..2 {
            let p = ProxyJson {
                name: names[i].clone(),
                listen: "127.0.0.1:0".into(),
                upstream: service[i].to_string(),
                enabled: true,
                toxics: Vec::new(),
            };
            let got = tp.create_proxy(&p).await.map_err(env)?;
            ends[i] = got
                .listen
                .parse::<SocketAddr>()
                .ok()
                .filter(|a| a.port() != 0)
                .ok_or_else(|| {
                    env(format!(
                        "Toxiproxy reported proxy {} listening on {:?}, not a bound host:port",
                        p.name, got.listen
                    ))
                })?;
        }
        let ext = Self {
            tp,
            names,
            net: net.clone(),
        };
        for (rule, (_, _, r)) in net.entries().iter().enumerate() {
            if r.at.get().is_zero() {
                ext.switch(rule, true).await?;
            }
        }
        Ok((ext, ends))
    }

    /// Adds (`on`) or removes the toxics of rule `rule`.
    pub(crate) async fn switch(&self, rule: usize, on: bool) -> Result<(), RunError> {
        let entries = self.net.entries();
        let Some((role, name, r)) = entries.get(rule) else {
            return Ok(());
        };
        let proxy = &self.names[if *role == PortRole::Primary { 0 } else { 1 }];
        // Validation refused what Toxiproxy cannot do; a rule that still fails is an error.
        let toxics = rule_to_toxics(name, r).map_err(env)?;
        for t in toxics {
            let r = if on {
                self.tp.add_toxic(proxy, &t).await
            } else {
                self.tp.remove_toxic(proxy, &t.name).await
            };
            r.map_err(env)?;
        }
        Ok(())
    }

    /// Deletes the proxies (failures are logged: the run's results stand).
    pub(crate) async fn close(self) {
        for n in &self.names {
            if let Err(e) = self.tp.delete_proxy(n).await {
                tracing::warn!(error = %e, "could not delete Toxiproxy proxy {n}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_come_in_time_order() {
        let net: Network = toml::from_str(
            r#"
            primary = [{ fault = "latency", latency = "1s", at = "5s", until = "9s" }]
            fallback = [{ fault = "timeout", until = "3s" }, { fault = "reset_peer", at = "7s" }]
            "#,
        )
        .unwrap();
        let s = switches(&net);
        let got: Vec<(u64, usize, bool)> =
            s.iter().map(|s| (s.at.as_secs(), s.rule, s.on)).collect();
        assert_eq!(
            got,
            vec![(3, 1, false), (5, 0, true), (7, 2, true), (9, 0, false)]
        );
    }
}
