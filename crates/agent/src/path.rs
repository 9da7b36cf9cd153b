//! A site's network path: the middlebox in front of the service, one listener per group and
//! port role (so every connection is known by its group), and its events recorded into the
//! groups' recorders: drops on the timeline, detection times, connections hit per rule.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pushsim_metrics::Recorder;
use pushsim_netfault::api::proxy_rules;
use pushsim_netfault::toxics::ProxyJson;
use pushsim_netfault::{Counts, Events, Middlebox, Rule, RuleSet, Tag};

/// Rules set through the fault API have ids from here.
pub const API_RULE_IDS: u32 = 1_000_000;
use pushsim_scenario::PortRole;

/// Records the middlebox's events.
struct SiteEvents {
    recorders: Vec<Arc<Mutex<Recorder>>>,
    hits: Mutex<BTreeMap<u32, u64>>,
    /// The site is stopping: agents closing now are not detecting anything.
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Events for SiteEvents {
    fn hit(&self, tag: Tag, rule: u32, at_ns: u64, breaks: bool) {
        *lock(&self.hits).entry(rule).or_default() += 1;
        if breaks {
            if let Some(r) = self.recorders.get(usize::from(tag.group)) {
                lock(r).dropped(at_ns);
            }
        }
    }

    fn noticed(&self, tag: Tag, _rule: u32, hit_ns: u64, at_ns: u64) {
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        if let Some(r) = self.recorders.get(usize::from(tag.group)) {
            lock(r).drop_noticed(hit_ns, at_ns);
        }
    }
}

/// The middlebox of one site.
pub struct SitePath {
    mb: Middlebox,
    events: Arc<SiteEvents>,
    /// The scenario's rules, and those set through the fault API per role.
    rules: Mutex<(Vec<Rule>, [Vec<Rule>; 2])>,
    /// Ends the middlebox's thread.
    done: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// What a site's middlebox did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PathResult {
    /// Connections hit, per rule id.
    pub hits: BTreeMap<u32, u64>,
    /// Its counters.
    pub counts: Counts,
}

impl SitePath {
    /// Starts a middlebox applying `rules` in front of `targets` (primary, fallback), with a
    /// listener per group and role; returns it and each group's endpoints.
    pub async fn start(
        rules: RuleSet,
        recorders: Vec<Arc<Mutex<Recorder>>>,
        targets: [SocketAddr; 2],
    ) -> std::io::Result<(Self, Vec<[SocketAddr; 2]>)> {
        let groups = recorders.len();
        let base = rules.rules.clone();
        let events = Arc::new(SiteEvents {
            recorders,
            hits: Mutex::new(BTreeMap::new()),
            stopping: AtomicBool::new(false),
        });
        let mb = Middlebox::new(rules, events.clone());
        let (handle, done) = crate::netthread::own_thread("middlebox")?;
        let _in_its_runtime = handle.enter();
        let any = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let mut ends = Vec::with_capacity(groups);
        for g in 0..groups {
            let mut pair = targets;
            for (i, role) in [PortRole::Primary, PortRole::Fallback]
                .into_iter()
                .enumerate()
            {
                let tag = Tag {
                    role,
                    group: g as u16,
                };
                pair[i] = mb.listen(any, targets[i], tag)?;
            }
            ends.push(pair);
        }
        let rules = Mutex::new((base, [Vec::new(), Vec::new()]));
        let done = Mutex::new(Some(done));
        Ok((
            Self {
                mb,
                events,
                rules,
                done,
            },
            ends,
        ))
    }

    /// The fault API changed the proxy of a port role (`primary` or `fallback`): its rules
    /// apply after the scenario's.
    pub fn set_proxy(&self, proxy: &ProxyJson) {
        let role = match proxy.name.as_str() {
            "primary" => PortRole::Primary,
            "fallback" => PortRole::Fallback,
            _ => return,
        };
        let r = role as usize;
        let mut rules = lock(&self.rules);
        rules.1[r] = proxy_rules(proxy)
            .into_iter()
            .map(|x| Rule {
                // Ids apart from the scenario's (which count from 0).
                id: API_RULE_IDS + (r as u32) * 10_000 + x.id,
                role: Some(role),
                ..x
            })
            .collect();
        let all: Vec<Rule> = rules
            .0
            .iter()
            .chain(rules.1.iter().flatten())
            .cloned()
            .collect();
        self.mb.set_rules(all);
    }

    /// The site is stopping its agents: their closes from now on are not detections (a drop not
    /// noticed by then stays out of `latency_us.detect`).
    pub fn stopping(&self) {
        self.events.stopping.store(true, Ordering::Relaxed);
    }

    /// Stops the middlebox; returns what it did.
    pub fn stop(&self) -> PathResult {
        self.mb.stop();
        if let Some(d) = lock(&self.done).take() {
            let _ = d.send(());
        }
        PathResult {
            hits: lock(&self.events.hits).clone(),
            counts: self.mb.counts(),
        }
    }
}
