//! What a real management agent does about its push connection, as plain logic over
//! (state, event, now): which endpoint to try next (through the proxy or direct, then the port
//! role), how long to wait after a failed round,
//! when to go back to the primary, when past failures are forgotten. The rumqttc driver asks it
//! and does the I/O; nothing here touches a socket or a clock.

use std::time::Duration;

use pushsim_scenario::{PortRole, Profile};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::backoff::Backoff;

/// Where an attempt goes: a port role of the service, through the HTTP proxy or direct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Through the proxy.
    pub proxy: bool,
    /// The port role.
    pub role: PortRole,
}

impl Endpoint {
    /// Direct to `role`.
    pub fn direct(role: PortRole) -> Self {
        Self { proxy: false, role }
    }

    /// Through the proxy to `role`.
    pub fn proxied(role: PortRole) -> Self {
        Self { proxy: true, role }
    }

    /// Its path index in the recorders (`pushsim_metrics::recorder::path_index`).
    pub fn path(self) -> usize {
        pushsim_metrics::recorder::path_index(self.proxy, self.role == PortRole::Fallback)
    }
}

/// The endpoints of `profile` in the order tried: each route (proxy, direct) of its
/// `route` over every port role of its `endpoints`; `proxy` when a proxy is configured.
pub fn endpoint_order(profile: &Profile, proxy: bool) -> Vec<Endpoint> {
    profile
        .route
        .vias(proxy)
        .iter()
        .flat_map(|&via| {
            profile
                .endpoints
                .iter()
                .map(move |&role| Endpoint { proxy: via, role })
        })
        .collect()
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try this endpoint, bounded by the connect timeout.
    Connect(Endpoint),
    /// Wait this long, then ask again with [`Policy::decide`].
    Wait(Duration),
}

/// One agent's connection policy.
#[derive(Debug, Clone)]
pub struct Policy {
    endpoints: Vec<Endpoint>,
    primary_retry: Option<Duration>,
    stable_after: Duration,
    backoff: Backoff,
    rng: SmallRng,
    /// Index of the endpoint the next attempt goes to.
    next: usize,
    /// When the current connection was made, and on which endpoint.
    connected: Option<(Duration, usize)>,
}

/// The random stream of agent `index` under run seed `seed` (independent per agent).
pub fn agent_rng(seed: u64, index: u32) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl Policy {
    /// The policy for agent `index` of a run seeded `seed`, with `profile`'s settings; `proxy`
    /// when a proxy is configured.
    pub fn new(profile: &Profile, seed: u64, index: u32, proxy: bool) -> Self {
        Self {
            endpoints: endpoint_order(profile, proxy),
            primary_retry: profile.primary_retry.0.map(|d| d.get()),
            stable_after: profile.stable_after.get(),
            backoff: Backoff::new(profile.backoff),
            rng: agent_rng(seed, index),
            next: 0,
            connected: None,
        }
    }

    /// The first decision of a round (at start, after a wait).
    pub fn decide(&mut self) -> Decision {
        match self.endpoints.get(self.next) {
            Some(e) => Decision::Connect(*e),
            None => {
                self.next = 0;
                self.endpoints
                    .first()
                    .map(|e| Decision::Connect(*e))
                    .unwrap_or(Decision::Wait(Duration::MAX))
            }
        }
    }

    /// The attempt failed: the next endpoint of the round, or the backoff wait when the round
    /// is over.
    pub fn connect_failed(&mut self) -> Decision {
        self.next += 1;
        if let Some(e) = self.endpoints.get(self.next) {
            return Decision::Connect(*e);
        }
        self.next = 0;
        Decision::Wait(self.backoff.next(&mut self.rng))
    }

    /// Connected on `endpoint` at `now`.
    pub fn connected(&mut self, endpoint: Endpoint, now: Duration) {
        let i = self
            .endpoints
            .iter()
            .position(|e| *e == endpoint)
            .unwrap_or(0);
        self.connected = Some((now, i));
        self.next = 0;
    }

    /// The connection was lost at `now`: after a stable connection the backoff starts over;
    /// the wait before the next round follows the backoff either way.
    pub fn lost(&mut self, now: Duration) -> Decision {
        if let Some((since, _)) = self.connected.take() {
            if now.saturating_sub(since) >= self.stable_after {
                self.backoff.reset();
            }
        }
        self.next = 0;
        Decision::Wait(self.backoff.next(&mut self.rng))
    }

    /// When a connection on a later endpoint should give way to a new try of the first one.
    pub fn primary_retry_at(&self) -> Option<Duration> {
        match (self.connected, self.primary_retry) {
            (Some((since, i)), Some(every)) if i > 0 => Some(since + every),
            _ => None,
        }
    }

    /// The agent leaves its connection on purpose to retry the first endpoint (no backoff).
    pub fn retry_primary(&mut self) -> Decision {
        self.connected = None;
        self.next = 0;
        self.decide()
    }

    /// Failed rounds since the last reset.
    pub fn failed_rounds(&self) -> u32 {
        self.backoff.attempt()
    }
}

#[cfg(test)]
mod tests {
    use pushsim_scenario::{Backoff as B, BackoffPolicy, Dur, Every, Route, Session};

    use super::*;

    fn profile(endpoints: Vec<PortRole>, policy: BackoffPolicy) -> Profile {
        Profile {
            connect_timeout: Dur::secs(5),
            keep_alive: Dur::secs(30),
            pingresp_timeout: Dur::secs(10),
            endpoints,
            route: Route::ProxyFirst,
            primary_retry: Every(Some(Dur::secs(300))),
            backoff: B {
                policy,
                base: Dur::secs(1),
                cap: Dur::secs(8),
            },
            stable_after: Dur::secs(10),
            replication_interval: Dur::secs(1200),
            session: Session::Clean,
        }
    }

    const PRIMARY: Endpoint = Endpoint {
        proxy: false,
        role: PortRole::Primary,
    };
    const FALLBACK: Endpoint = Endpoint {
        proxy: false,
        role: PortRole::Fallback,
    };
    use PortRole::{Fallback, Primary};

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn with_a_proxy_every_endpoint_is_tried_through_it_first() {
        let prof = profile(vec![Primary, Fallback], BackoffPolicy::Fixed);
        let mut p = Policy::new(&prof, 1, 0, true);
        let order: Vec<Decision> = std::iter::once(p.decide())
            .chain((0..4).map(|_| p.connect_failed()))
            .collect();
        assert_eq!(
            order,
            vec![
                Decision::Connect(Endpoint::proxied(Primary)),
                Decision::Connect(Endpoint::proxied(Fallback)),
                Decision::Connect(PRIMARY),
                Decision::Connect(FALLBACK),
                Decision::Wait(s(1)),
            ]
        );
        let direct_first = Profile {
            route: Route::DirectFirst,
            endpoints: vec![Fallback],
            ..prof.clone()
        };
        assert_eq!(
            endpoint_order(&direct_first, true),
            vec![FALLBACK, Endpoint::proxied(Fallback)]
        );
        assert_eq!(endpoint_order(&prof, false), vec![PRIMARY, FALLBACK]);
        assert_eq!(Endpoint::proxied(Fallback).path(), 3);
        assert_eq!(FALLBACK.path(), 1);
        // connected through the proxy's fallback, later than first: the primary retry applies
        p.decide();
        p.connect_failed();
        p.connected(Endpoint::proxied(Fallback), s(5));
        assert_eq!(p.primary_retry_at(), Some(s(305)));
    }

    #[test]
    fn endpoints_in_order_then_backoff() {
        let mut p = Policy::new(
            &profile(vec![Primary, Fallback], BackoffPolicy::Exponential),
            1,
            0,
            false,
        );
        assert_eq!(p.decide(), Decision::Connect(PRIMARY));
        assert_eq!(p.connect_failed(), Decision::Connect(FALLBACK));
        assert_eq!(p.connect_failed(), Decision::Wait(s(1)));
        assert_eq!(p.decide(), Decision::Connect(PRIMARY));
        assert_eq!(p.connect_failed(), Decision::Connect(FALLBACK));
        assert_eq!(p.connect_failed(), Decision::Wait(s(2)));
        assert_eq!(p.failed_rounds(), 2);
    }

    #[test]
    fn primary_retry_only_on_fallback() {
        let mut p = Policy::new(
            &profile(vec![Primary, Fallback], BackoffPolicy::Fixed),
            1,
            0,
            false,
        );
        p.decide();
        p.connected(PRIMARY, s(10));
        assert_eq!(p.primary_retry_at(), None);
        p.lost(s(20));
        p.decide();
        p.connect_failed();
        p.connected(FALLBACK, s(22));
        assert_eq!(p.primary_retry_at(), Some(s(322)));
        assert_eq!(p.retry_primary(), Decision::Connect(PRIMARY));
        assert_eq!(p.primary_retry_at(), None);
        let mut off = Policy::new(
            &Profile {
                primary_retry: Every(None),
                ..profile(vec![Primary, Fallback], BackoffPolicy::Fixed)
            },
            1,
            0,
            false,
        );
        off.connected(FALLBACK, s(1));
        assert_eq!(off.primary_retry_at(), None);
    }

    #[test]
    fn stable_connection_resets_backoff_and_short_one_does_not() {
        let mut p = Policy::new(
            &profile(vec![Primary], BackoffPolicy::Exponential),
            1,
            0,
            false,
        );
        assert_eq!(p.connect_failed(), Decision::Wait(s(1)));
        assert_eq!(p.connect_failed(), Decision::Wait(s(2)));
        p.connected(PRIMARY, s(100));
        // lost after 5 s (< stable_after 10 s): the backoff goes on growing
        assert_eq!(p.lost(s(105)), Decision::Wait(s(4)));
        p.connected(PRIMARY, s(110));
        // lost after 30 s: starts over
        assert_eq!(p.lost(s(140)), Decision::Wait(s(1)));
    }

    #[test]
    fn no_backoff_retries_at_once() {
        let mut p = Policy::new(&profile(vec![Primary], BackoffPolicy::None), 1, 0, false);
        assert_eq!(p.connect_failed(), Decision::Wait(Duration::ZERO));
        assert_eq!(p.lost(s(3)), Decision::Wait(Duration::ZERO));
    }

    #[test]
    fn jitter_is_seeded_per_agent() {
        let prof = profile(vec![Primary], BackoffPolicy::FullJitter);
        let waits = |seed, idx| {
            let mut p = Policy::new(&prof, seed, idx, false);
            (0..5).map(|_| p.connect_failed()).collect::<Vec<_>>()
        };
        assert_eq!(waits(1, 7), waits(1, 7));
        assert_ne!(waits(1, 7), waits(1, 8));
        assert_ne!(waits(1, 7), waits(2, 7));
    }
}
