//! The checks a scenario passes before a run: every value in its valid range, every offset
//! inside the run. Errors name the key, the value and what is allowed.

use std::time::Duration;

use crate::broker::Broker;
use crate::model::{BackoffPolicy, Every, Profile, Scenario, ServiceAction};
use crate::units::Dur;

/// One invalid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} = {value}: {allowed}")]
pub struct Invalid {
    /// Dotted key, e.g. `agents.count`.
    pub key: String,
    /// The value as given.
    pub value: String,
    /// What would be valid.
    pub allowed: String,
}

impl Invalid {
    /// `key = value: allowed`.
    pub fn new(key: &str, value: impl ToString, allowed: &str) -> Self {
        Self {
            key: key.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

fn invalid(key: &str, value: impl ToString, allowed: &str) -> Invalid {
    Invalid::new(key, value, allowed)
}

/// The largest run a scenario may ask for (agents).
pub const MAX_AGENTS: u32 = 1_000_000;
/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

fn check_profile(errs: &mut Vec<Invalid>, at: &str, p: &Profile) {
    let key = |k: &str| format!("{at}.{k}");
    if p.connect_timeout.get() < Duration::from_millis(10) {
        errs.push(invalid(
            &key("connect_timeout"),
            p.connect_timeout,
            "must be at least 10ms",
        ));
    }
    let ka = p.keep_alive.get();
    if ka < Duration::from_secs(1) || ka > Duration::from_secs(65_535) || ka.subsec_nanos() != 0 {
        errs.push(invalid(
            &key("keep_alive"),
            p.keep_alive,
            "must be whole seconds from 1s to 65535s (MQTT keep-alive; 0 would disable dead-link detection and rumqttd refuses it)",
        ));
    }
    if p.pingresp_timeout.get() < Duration::from_millis(100) {
        errs.push(invalid(
            &key("pingresp_timeout"),
            p.pingresp_timeout,
            "must be at least 100ms",
        ));
    }
    if p.endpoints.is_empty() {
        errs.push(invalid(
            &key("endpoints"),
            "[]",
            "must list at least one of \"primary\", \"fallback\"",
        ));
    }
    for (i, e) in p.endpoints.iter().enumerate() {
        if p.endpoints[..i].contains(e) {
            errs.push(invalid(
                &key("endpoints"),
                format!("{e:?}").to_lowercase(),
                "lists an endpoint twice",
            ));
        }
    }
    if let Every(Some(r)) = p.primary_retry {
        if r.get() < Duration::from_secs(1) {
            errs.push(invalid(
                &key("primary_retry"),
                r,
                "must be at least 1s, or \"off\"",
            ));
        }
    }
    let b = &p.backoff;
    if b.policy != BackoffPolicy::None && b.base.get().is_zero() {
        errs.push(invalid(
            &key("backoff.base"),
            b.base,
            "must be more than 0s (or use policy \"none\")",
        ));
    }
    if b.base > b.cap {
        errs.push(invalid(
            &key("backoff.base"),
            b.base,
            &format!("must not exceed backoff.cap ({})", b.cap),
        ));
    }
    if p.stable_after.get().is_zero() {
        errs.push(invalid(
            &key("stable_after"),
            p.stable_after,
            "must be more than 0s",
        ));
    }
    if p.replication_interval.get() < Duration::from_secs(1) {
        errs.push(invalid(
            &key("replication_interval"),
            p.replication_interval,
            "must be at least 1s",
        ));
    }
}

impl Scenario {
    fn validate_agents(&self, errs: &mut Vec<Invalid>) {
        let a = &self.agents;
        if a.ramp.per_sec <= 0.0 {
            errs.push(invalid(
                "agents.ramp",
                a.ramp,
                "must be more than 0/s, e.g. \"500/s\"",
            ));
        }
        if self.groups.is_empty() {
            match a.count {
                None => errs.push(invalid(
                    "agents.count",
                    "(missing)",
                    "set the number of agents, or add [[group]] tables",
                )),
                Some(n) if n == 0 || n > MAX_AGENTS => {
                    errs.push(invalid("agents.count", n, "must be 1 to 1000000"))
                }
                Some(_) => {}
            }
            check_profile(errs, "agents", &a.profile());
            return;
        }
        if let Some(n) = a.count {
            errs.push(invalid(
                "agents.count",
                n,
                "remove it: with [[group]] tables each group sets its own agents",
            ));
        }
        for (i, g) in self.groups.iter().enumerate() {
            let at = format!("group[{i}]");
            if g.name.is_empty()
                || !g
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                errs.push(invalid(
                    &format!("{at}.name"),
                    format!("{:?}", g.name),
                    "must be letters, digits, - or _",
                ));
            }
            if self.groups[..i].iter().any(|o| o.name == g.name) {
                errs.push(invalid(
                    &format!("{at}.name"),
                    format!("{:?}", g.name),
                    "is used by another group",
                ));
            }
            if g.agents == 0 {
                errs.push(invalid(&format!("{at}.agents"), 0, "must be at least 1"));
            }
            check_profile(errs, &at, &g.profile(a));
        }
        if self.agent_count() > MAX_AGENTS {
            errs.push(invalid(
                "group[].agents",
                self.agent_count(),
                "must add up to at most 1000000",
            ));
        }
    }

    /// The TLS files go with an external broker only (and its CA is required); events that act
    /// on the service's process need a process pushsim runs.
    fn validate_broker(&self, errs: &mut Vec<Invalid>) {
        let s = &self.service;
        if s.broker_listeners != 0 && s.broker != Broker::Rumqttd {
            errs.push(invalid(
                "service.broker_listeners",
                s.broker_listeners,
                &format!("only goes with rumqttd (service.broker = \"{}\")", s.broker),
            ));
        }
        if !s.broker.managed() {
            for (key, port) in [
                ("primary_port", s.primary_port),
                ("fallback_port", s.fallback_port),
            ] {
                if port != 0 {
                    errs.push(invalid(
                        &format!("service.{key}"),
                        port,
                        "an external broker's port is in its URL (service.broker = \"mqtts://host:port\")",
                    ));
                }
            }
        }
        let files = [("ca", &s.ca), ("cert", &s.cert), ("key", &s.key)];
        if s.broker.managed() {
            for (key, v) in files {
                if let Some(p) = v {
                    errs.push(invalid(
                        &format!("service.{key}"),
                        p.display(),
                        &format!(
                            "only goes with an external broker (service.broker = \"mqtts://host:port\"); {} uses the run's own PKI",
                            s.broker
                        ),
                    ));
                }
            }
            return;
        }
        if s.ca.is_none() {
            errs.push(invalid(
                "service.ca",
                "(none)",
                "an external broker needs the CA certificate (PEM) its certificate is checked against (--ca)",
            ));
        }
        if s.cert.is_some() != s.key.is_some() {
            errs.push(invalid(
                if s.cert.is_some() {
                    "service.key"
                } else {
                    "service.cert"
                },
                "(none)",
                "service.cert and service.key go together (--cert, --key)",
            ));
        }
        for (i, at) in self.timeline.iter().enumerate() {
            errs.push(invalid(
                &format!("at[{i}].do"),
                at.action.name(),
                &format!(
                    "needs the service's process, and pushsim does not run the external broker {}; use service.broker = \"rumqttd\" or \"mosquitto\"",
                    s.broker
                ),
            ));
        }
    }

    fn validate_timeline(&self, errs: &mut Vec<Invalid>) {
        let mut up = true;
        let mut last = Dur::secs(0);
        for (i, at) in self.timeline.iter().enumerate() {
            let key = format!("at[{i}]");
            if at.time >= self.duration {
                errs.push(invalid(
                    &format!("{key}.time"),
                    at.time,
                    &format!(
                        "must be before the end of the run (duration = {})",
                        self.duration
                    ),
                ));
            }
            if at.time < last {
                errs.push(invalid(
                    &format!("{key}.time"),
                    at.time,
                    "events must be in time order",
                ));
            }
            last = at.time;
            match (at.action, up) {
                (ServiceAction::Start, true) => errs.push(invalid(
                    &format!("{key}.do"),
                    "service.start",
                    "the service is already running then",
                )),
                (ServiceAction::Kill | ServiceAction::Stop | ServiceAction::Restart, false) => errs
                    .push(invalid(
                        &format!("{key}.do"),
                        at.action.name(),
                        "the service is down then; start it first",
                    )),
                _ => {}
            }
            match at.action {
                ServiceAction::Kill | ServiceAction::Stop => up = false,
                ServiceAction::Start => up = true,
                ServiceAction::Restart => {}
            }
            if at.down.is_some() && at.action != ServiceAction::Restart {
                errs.push(invalid(
                    &format!("{key}.down"),
                    at.down.unwrap_or_default(),
                    "only goes with service.restart",
                ));
            }
            if at.action == ServiceAction::Restart
                && at
                    .down
                    .is_some_and(|d| at.time.get() + d.get() >= self.duration.get())
            {
                errs.push(invalid(
                    &format!("{key}.down"),
                    at.down.unwrap_or_default(),
                    "the service must be back before the end of the run",
                ));
            }
        }
    }

    /// Checks every value; returns all problems, not just the first.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut errs = Vec::new();
        let d = self.duration.get();
        if d.is_zero() || d > MAX_DURATION {
            errs.push(invalid(
                "duration",
                self.duration,
                "must be more than 0s and at most 24h",
            ));
        }
        self.validate_agents(&mut errs);
        let s = &self.service;
        if s.handshake_timeout.get().is_zero() {
            errs.push(invalid(
                "service.handshake_timeout",
                s.handshake_timeout,
                "must be more than 0s",
            ));
        }
        if s.primary_port != 0 && s.primary_port == s.fallback_port {
            errs.push(invalid(
                "service.fallback_port",
                s.fallback_port,
                "must differ from service.primary_port",
            ));
        }
        self.validate_broker(&mut errs);
        if s.broker_listeners > 64 {
            errs.push(invalid(
                "service.broker_listeners",
                s.broker_listeners,
                "must be 0 (auto) to 64",
            ));
        }
        let w = &self.wakeups;
        for (i, b) in w.broadcast.iter().enumerate() {
            if b.get() >= d {
                errs.push(invalid(
                    &format!("wakeups.broadcast[{i}]"),
                    b,
                    &format!(
                        "must be before the end of the run (duration = {})",
                        self.duration
                    ),
                ));
            }
        }
        if let Some(r) = w.rate {
            if r.per_sec <= 0.0 {
                errs.push(invalid(
                    "wakeups.rate",
                    r,
                    "must be more than 0/s; leave it out for no steady stream",
                ));
            }
            if w.rate_from.get() >= d {
                errs.push(invalid(
                    "wakeups.rate_from",
                    w.rate_from,
                    "must be before the end of the run",
                ));
            }
            if let Some(u) = w.rate_until {
                if u <= w.rate_from || u.get() > d {
                    errs.push(invalid(
                        "wakeups.rate_until",
                        u,
                        "must be after rate_from and at most the duration",
                    ));
                }
            }
        }
        if w.late_after.get().is_zero() {
            errs.push(invalid(
                "wakeups.late_after",
                w.late_after,
                "must be more than 0s",
            ));
        }
        self.validate_timeline(&mut errs);
        let names: Vec<String> = self.resolved_groups().into_iter().map(|g| g.name).collect();
        let mut rule_names = Vec::new();
        self.network
            .check(self.duration, &names, &mut rule_names, &mut errs);
        self.check_proxy(&mut rule_names, &mut errs);
        if let Some(sw) = &self.sweep {
            if sw.key.trim().is_empty() || sw.key == "sweep" || sw.key.starts_with("sweep.") {
                errs.push(invalid(
                    "sweep.key",
                    &sw.key,
                    "must name a key of the scenario, e.g. \"agents.backoff.policy\"",
                ));
            }
            if sw.values.is_empty() {
                errs.push(invalid(
                    "sweep.values",
                    "[]",
                    "must list at least one value",
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// Every validation error of scenario `src`, one per line (for tests).
#[cfg(test)]
pub(crate) fn test_errors(src: &str) -> String {
    let sc: crate::Scenario = toml::from_str(src).expect("test scenario parses");
    sc.validate()
        .expect_err("test scenario is invalid")
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
