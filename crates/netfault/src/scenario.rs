//! A scenario's `[network]` as middlebox rules, and its `[proxy]` faults as the embedded
//! proxy's rules, on the run clock.

use pushsim_scenario::{Dur, Network, Proxy};

use crate::connect_rule::ProxyRule;
use crate::rule::{Ns, Rule};

/// The indices of the groups a rule names (none named: every group).
fn group_ids(named: &[String], groups: &[String]) -> Option<Vec<u16>> {
    (!named.is_empty()).then(|| {
        named
            .iter()
            .filter_map(|g| groups.iter().position(|x| x == g).map(|i| i as u16))
            .collect()
    })
}

fn on_clock(t0_ns: Ns, d: Dur) -> Ns {
    t0_ns + d.get().as_nanos() as u64
}

/// The embedded proxy's rules of `proxy` for a run that starts at `t0_ns`; ids are positions in
/// `proxy.faults` (rules that do not validate are left out).
pub fn proxy_rules(proxy: &Proxy, groups: &[String], t0_ns: Ns) -> Vec<ProxyRule> {
    proxy
        .faults
        .iter()
        .enumerate()
        .filter_map(|(id, r)| {
            Some(ProxyRule {
                id: id as u32,
                fault: r.typed().ok()?,
                groups: group_ids(&r.groups, groups),
                from_ns: on_clock(t0_ns, r.at),
                until_ns: r.until.map(|u| on_clock(t0_ns, u)),
            })
        })
        .collect()
}

/// The rules of `net` for a run that starts at `t0_ns`, with `groups` naming the group indices.
/// Rule ids are positions in [`Network::entries`]; rules that do not validate are left out
/// (scenarios are validated before they run).
pub fn rules(net: &Network, groups: &[String], t0_ns: Ns) -> Vec<Rule> {
    net.entries()
        .into_iter()
        .enumerate()
        .filter_map(|(id, (role, name, r))| {
            let fault = r.typed().ok()?;
            let only = group_ids(&r.groups, groups);
            Some(Rule {
                id: id as u32,
                name,
                fault,
                role: Some(role),
                groups: only,
                direction: r.direction,
                toxicity: r.toxicity,
                from_ns: on_clock(t0_ns, r.at),
                until_ns: r.until.map(|u| on_clock(t0_ns, u)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushsim_scenario::{Fault, PortRole};

    #[test]
    fn proxy_faults_get_ids_groups_and_times() {
        let p: Proxy = toml::from_str(
            r#"
            faults = [{ fault = "hang", groups = ["b"], at = "1s", until = "2s" }, { fault = "down" }]
            "#,
        )
        .unwrap();
        let r = proxy_rules(&p, &["a".into(), "b".into()], 1_000);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].id, r[0].groups.clone(), r[0].from_ns, r[0].until_ns),
            (0, Some(vec![1]), 1_000_001_000, Some(2_000_001_000))
        );
        assert_eq!((r[1].id, r[1].groups.clone()), (1, None));
    }

    #[test]
    fn rules_get_ids_roles_groups_and_times() {
        let net: Network = toml::from_str(
            r#"
            primary = [{ fault = "refuse", groups = ["b"] }]
            fallback = [{ fault = "close", at = "2s", until = "3s", name = "cut" }]
            "#,
        )
        .unwrap();
        let r = rules(&net, &["a".into(), "b".into()], 1_000);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].id, r[0].role, r[0].groups.clone()),
            (0, Some(PortRole::Primary), Some(vec![1]))
        );
        assert_eq!(r[0].name, "primary.0.refuse");
        assert_eq!(
            (r[1].id, r[1].name.as_str(), r[1].fault),
            (1, "cut", Fault::Close)
        );
        assert_eq!(
            (r[1].from_ns, r[1].until_ns),
            (2_000_001_000, Some(3_000_001_000))
        );
    }
}
