//! The checks a scenario passes before a run: every value in its valid range, every offset
//! inside the run. Errors name the key, the value and what is allowed.

use std::time::Duration;

use crate::model::Scenario;

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

fn invalid(key: &str, value: impl ToString, allowed: &str) -> Invalid {
    Invalid {
        key: key.into(),
        value: value.to_string(),
        allowed: allowed.into(),
    }
}

/// The largest run a scenario may ask for (agents).
pub const MAX_AGENTS: u32 = 1_000_000;
/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

impl Scenario {
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
        let a = &self.agents;
        if a.count == 0 || a.count > MAX_AGENTS {
            errs.push(invalid("agents.count", a.count, "must be 1 to 1000000"));
        }
        if a.ramp.per_sec <= 0.0 {
            errs.push(invalid(
                "agents.ramp",
                a.ramp,
                "must be more than 0/s, e.g. \"500/s\"",
            ));
        }
        if a.connect_timeout.get() < Duration::from_millis(10) {
            errs.push(invalid(
                "agents.connect_timeout",
                a.connect_timeout,
                "must be at least 10ms",
            ));
        }
        let ka = a.keep_alive.get();
        if ka < Duration::from_secs(1) || ka > Duration::from_secs(65_535) || ka.subsec_nanos() != 0
        {
            errs.push(invalid(
                "agents.keep_alive",
                a.keep_alive,
                "must be whole seconds from 1s to 65535s (MQTT keep-alive; 0 would disable dead-link detection and rumqttd refuses it)",
            ));
        }
        if a.reconnect_delay.get().is_zero() {
            errs.push(invalid(
                "agents.reconnect_delay",
                a.reconnect_delay,
                "must be more than 0s",
            ));
        }
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
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}
