//! A scenario's `[network]` as middlebox rules on the run clock.

use pushsim_scenario::Network;

use crate::rule::{Ns, Rule};

/// The rules of `net` for a run that starts at `t0_ns`, with `groups` naming the group indices.
/// Rule ids are positions in [`Network::entries`]; rules that do not validate are left out
/// (scenarios are validated before they run).
pub fn rules(net: &Network, groups: &[String], t0_ns: Ns) -> Vec<Rule> {
    let at = |d: pushsim_scenario::Dur| t0_ns + d.get().as_nanos() as u64;
    net.entries()
        .into_iter()
        .enumerate()
        .filter_map(|(id, (role, name, r))| {
            let fault = r.typed().ok()?;
            let only = (!r.groups.is_empty()).then(|| {
                r.groups
                    .iter()
                    .filter_map(|g| groups.iter().position(|x| x == g).map(|i| i as u16))
                    .collect()
            });
            Some(Rule {
                id: id as u32,
                name,
                fault,
                role: Some(role),
                groups: only,
                direction: r.direction,
                toxicity: r.toxicity,
                from_ns: at(r.at),
                until_ns: r.until.map(at),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushsim_scenario::{Fault, PortRole};

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
