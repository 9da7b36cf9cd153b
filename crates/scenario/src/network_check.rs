//! The checks of `[network]`: every rule's parameters, toxicity, groups and times, unique names,
//! and, with an external Toxiproxy, only what Toxiproxy can do.

use crate::model::PortRole;
use crate::network::{Backend, Network};
use crate::units::Dur;
use crate::validate::Invalid;

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

/// Where and when a rule applies, and its name: checked alike for every kind of rule.
pub(crate) struct Scope<'a> {
    pub groups: &'a [String],
    pub at: Dur,
    pub until: Option<Dur>,
    pub label: String,
}

impl Scope<'_> {
    /// Checks the rule at key `at` in a run of `duration` with `groups`; its name must not be in
    /// `names` (it is added).
    pub fn check(
        self,
        at: &str,
        duration: Dur,
        groups: &[String],
        names: &mut Vec<String>,
        errs: &mut Vec<Invalid>,
    ) {
        let key = |k: &str| format!("{at}.{k}");
        for g in self.groups {
            if !groups.contains(g) {
                errs.push(Invalid::new(
                    &key("groups"),
                    g,
                    &format!("is not a group of the scenario ({})", groups.join(", ")),
                ));
            }
        }
        if self.at >= duration {
            errs.push(Invalid::new(
                &key("at"),
                self.at,
                "must be before the end of the run",
            ));
        }
        if self.until.is_some_and(|u| u <= self.at) {
            errs.push(Invalid::new(
                &key("until"),
                self.until.unwrap_or(self.at),
                "must be after `at`",
            ));
        }
        if names.contains(&self.label) {
            errs.push(Invalid::new(
                &key("name"),
                &self.label,
                "names another rule too; names must be unique",
            ));
        }
        names.push(self.label);
    }
}

impl Network {
    /// Checks every rule against a run of `duration` with `groups`; pushes what is wrong. Rule
    /// names go into `names` (unique over every kind of rule).
    pub(crate) fn check(
        &self,
        duration: Dur,
        groups: &[String],
        names: &mut Vec<String>,
        errs: &mut Vec<Invalid>,
    ) {
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
                let scope = Scope {
                    groups: &rule.groups,
                    at: rule.at,
                    until: rule.until,
                    label: rule.label(role, i),
                };
                scope.check(&at, duration, groups, names, errs);
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

#[cfg(test)]
mod tests {
    use crate::validate::test_errors as errors;

    const HEAD: &str = "description = \"t\"\nduration = \"10s\"\n[agents]\ncount = 1\n";

    #[test]
    fn rules_are_checked_in_the_scenario() {
        let e = errors(&format!(
            "{HEAD}[network]\nfallback = [{{ fault = \"idle_drop\", after = \"1s\", groups = [\"x\"], toxicity = 2.0, at = \"20s\" }}]"
        ));
        assert!(
            e.contains("network.fallback[0].groups = x: is not a group"),
            "{e}"
        );
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
        assert!(
            e.contains("network.fallback[0] = idle_drop: Toxiproxy cannot"),
            "{e}"
        );
        assert!(
            e.contains("network.fallback[1] = swallow: Toxiproxy cannot"),
            "{e}"
        );
        let ok: crate::Scenario = toml::from_str(&format!(
            "{HEAD}[network]\nbackend = \"toxiproxy\"\ntoxiproxy_url = \"http://127.0.0.1:8474\"\nprimary = [{{ fault = \"latency\", latency = \"1s\" }}]"
        ))
        .unwrap();
        assert!(ok.validate().is_ok());
    }
}
