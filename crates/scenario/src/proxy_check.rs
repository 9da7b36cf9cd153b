//! The checks of `[proxy]` and of the agents' routes: an external proxy's URL, every fault's
//! parameters, groups and times, and routes that need a proxy.

use crate::model::Scenario;
use crate::network_check::Scope;
use crate::proxy::{proxy_url, Route};
use crate::validate::Invalid;

impl Scenario {
    /// Checks `[proxy]` and every group's `route`; rule names go into `names`.
    pub(crate) fn check_proxy(&self, names: &mut Vec<String>, errs: &mut Vec<Invalid>) {
        let groups: Vec<String> = self.resolved_groups().into_iter().map(|g| g.name).collect();
        if let Some(p) = &self.proxy {
            if let Some(u) = &p.url {
                if let Err(e) = proxy_url(u) {
                    errs.push(Invalid::new("proxy.url", u, &e));
                }
                if !p.faults.is_empty() {
                    errs.push(Invalid::new(
                        "proxy.faults",
                        format!("[{} rules]", p.faults.len()),
                        "apply to the embedded proxy only; with an external proxy (proxy.url), put faults on its path in [network]",
                    ));
                }
            }
            for (i, rule) in p.faults.iter().enumerate() {
                let at = format!("proxy.faults[{i}]");
                if let Err(e) = rule.typed() {
                    errs.push(Invalid::new(&at, &rule.fault, &e));
                }
                let scope = Scope {
                    groups: &rule.groups,
                    at: rule.at,
                    until: rule.until,
                    label: rule.label(i),
                };
                scope.check(&at, self.duration, &groups, names, errs);
            }
        }
        let mut routes = vec![("agents.route".to_string(), self.agents.route)];
        for (i, g) in self.groups.iter().enumerate() {
            if let Some(r) = g.route {
                routes.push((format!("group[{i}].route"), r));
            }
        }
        for (key, route) in routes {
            if route == Route::ProxyOnly && self.proxy.is_none() {
                errs.push(Invalid::new(
                    &key,
                    "proxy-only",
                    "needs a proxy: add a [proxy] table (embedded) or proxy.url",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::test_errors as errors;

    const HEAD: &str = "description = \"t\"\nduration = \"10s\"\n";

    #[test]
    fn proxy_rules_urls_and_routes_are_checked() {
        let e = errors(&format!(
            "{HEAD}[agents]\ncount = 1\nroute = \"proxy-only\"\n"
        ));
        assert!(
            e.contains("agents.route = proxy-only: needs a proxy"),
            "{e}"
        );
        let e = errors(&format!(
            "{HEAD}[agents]\ncount = 1\n[proxy]\nfaults = [{{ fault = \"error\", groups = [\"x\"], at = \"20s\" }}, {{ fault = \"hang\", name = \"h\" }}, {{ fault = \"down\", name = \"h\" }}]\n"
        ));
        assert!(e.contains("proxy.faults[0] = error: needs `status`"), "{e}");
        assert!(
            e.contains("proxy.faults[0].groups = x: is not a group"),
            "{e}"
        );
        assert!(
            e.contains("proxy.faults[0].at = 20s: must be before the end"),
            "{e}"
        );
        assert!(
            e.contains("proxy.faults[2].name = h: names another rule"),
            "{e}"
        );
        let e = errors(&format!(
            "{HEAD}[agents]\ncount = 1\n[proxy]\nurl = \"http://me:secret@127.0.0.1:8888\"\nfaults = [{{ fault = \"hang\" }}]\n"
        ));
        assert!(
            e.contains(
                "proxy.url = http://me:secret@127.0.0.1:8888: proxy credentials are not supported"
            ),
            "{e}"
        );
        assert!(
            e.contains("proxy.faults = [1 rules]: apply to the embedded proxy only"),
            "{e}"
        );
    }
}
