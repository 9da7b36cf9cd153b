//! A site: many agents in one process, one recorder per group, one stop signal.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pushsim_metrics::recorder::PATHS;
use pushsim_metrics::{Recorder, Snapshot};
use pushsim_netfault::connect::{ProxyStats, TunnelRecord};
use pushsim_scenario::{Profile, ProxyAddr};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::checkin::Checkin;
use crate::driver::{self, AgentRun};
use crate::path::{PathResult, SitePath};
use crate::proxy::{ProxySetup, SiteProxy};
use pushsim_netfault::RuleSet;

/// What every agent of a site shares.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The service endpoints: primary, fallback.
    pub targets: [SocketAddr; 2],
    /// The name the service's certificate is checked against.
    pub server_name: String,
    /// Settings per group (index = group).
    pub profiles: Vec<Profile>,
    /// The management server's check-in endpoint (none: no replication).
    pub checkin: Option<SocketAddr>,
    /// The run's seed.
    pub seed: u64,
    /// Fault rules of a middlebox between the agents and the service (none: direct).
    pub network: Option<RuleSet>,
    /// The HTTP proxy on the agents' path (none: agents go direct).
    pub proxy: Option<ProxySetup>,
}

/// What the agents of a site share while running.
pub struct Shared {
    /// Endpoints per group (through the middlebox when there is one).
    pub(crate) targets: Vec<[SocketAddr; 2]>,
    /// The proxy per group, when there is one.
    pub(crate) proxies: Vec<Option<ProxyAddr>>,
    pub(crate) server_name: String,
    pub(crate) profiles: Vec<Profile>,
    pub(crate) recorders: Vec<Arc<Mutex<Recorder>>>,
    pub(crate) checkin: Option<Arc<Checkin>>,
    pub(crate) seed: u64,
    pub(crate) t0_ns: u64,
    path_down: AtomicU64,
}

impl Shared {
    /// When the service path last went down (ns on the run clock), if it did.
    pub(crate) fn path_down_ns(&self) -> Option<u64> {
        Some(self.path_down.load(Ordering::Relaxed)).filter(|&t| t != 0)
    }
}

/// A site's live counts, for progress display and the run's end conditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SiteProgress {
    /// Agents connected now.
    pub connected: u64,
    /// Distinct wake-ups received.
    pub wakeups_received: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
    /// Agents connected now per path (`pushsim_metrics::recorder::PATH_NAMES`).
    pub paths: [u64; PATHS],
}

impl SiteProgress {
    /// Adds another site's counts.
    pub fn add(&mut self, o: &SiteProgress) {
        self.connected += o.connected;
        self.wakeups_received += o.wakeups_received;
        self.connect_failures += o.connect_failures;
        for (mine, o) in self.paths.iter_mut().zip(o.paths) {
            *mine += o;
        }
    }
}

/// One group's final measurements in one site.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct GroupResult {
    /// What it measured.
    pub snapshot: Snapshot,
    /// Its agents connected at the stop.
    pub connected: u64,
    /// Of those, per path (`pushsim_metrics::recorder::PATH_NAMES`).
    pub paths: [u64; PATHS],
}

/// What a site measured, at its stop.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SiteResult {
    /// Per group.
    pub groups: Vec<GroupResult>,
    /// What its middlebox did, when it had one.
    pub path: Option<PathResult>,
    /// What its embedded proxy did, when it had one.
    pub proxy: Option<ProxyStats>,
    /// Every request its embedded proxy saw.
    pub tunnels: Vec<TunnelRecord>,
}

/// A running site.
pub struct Site {
    shared: Arc<Shared>,
    path: Option<SitePath>,
    proxy: Option<SiteProxy>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

fn lock(rec: &Mutex<Recorder>) -> std::sync::MutexGuard<'_, Recorder> {
    rec.lock().unwrap_or_else(|p| p.into_inner())
}

impl Site {
    /// Starts `agents` against `cfg`, recording against run start `t0_ns` (the middlebox's and
    /// the proxy's listeners first, when there are). Must be called inside a tokio runtime.
    pub async fn start(
        cfg: SiteConfig,
        agents: Vec<AgentRun>,
        t0_ns: u64,
    ) -> std::io::Result<Self> {
        let recorders: Vec<_> = cfg
            .profiles
            .iter()
            .map(|_| Arc::new(Mutex::new(Recorder::new(t0_ns))))
            .collect();
        let (path, targets) = match cfg.network {
            Some(rules) => {
                let (p, t) = SitePath::start(rules, recorders.clone(), cfg.targets).await?;
                (Some(p), t)
            }
            None => (None, vec![cfg.targets; recorders.len()]),
        };
        let (proxy, proxies) = match cfg.proxy {
            None => (None, vec![None; recorders.len()]),
            Some(ProxySetup::External(a)) => (None, vec![Some(a); recorders.len()]),
            Some(ProxySetup::Embedded(rules)) => {
                let (p, addrs) = SiteProxy::start(rules, recorders.clone(), &targets)?;
                (Some(p), addrs.into_iter().map(Some).collect())
            }
        };
        let shared = Arc::new(Shared {
            targets,
            proxies,
            server_name: cfg.server_name,
            profiles: cfg.profiles,
            recorders,
            checkin: cfg.checkin.map(Checkin::new),
            seed: cfg.seed,
            t0_ns,
            path_down: AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for a in agents {
            tasks.spawn(driver::run(shared.clone(), a, stop_rx.clone()));
        }
        Ok(Self {
            shared,
            path,
            proxy,
            stop,
            tasks,
        })
    }

    /// The fault API changed a port role's proxy (no effect without a middlebox).
    pub fn set_proxy(&self, proxy: &pushsim_netfault::toxics::ProxyJson) {
        if let Some(p) = &self.path {
            p.set_proxy(proxy);
        }
    }

    /// Live counts over every group.
    pub fn progress(&self) -> SiteProgress {
        let mut p = SiteProgress::default();
        for rec in &self.shared.recorders {
            let r = lock(rec);
            p.add(&SiteProgress {
                connected: r.connected_now(),
                wakeups_received: r.wakeups_received(),
                connect_failures: r.counters().connect_failures,
                paths: r.paths(),
            });
        }
        p
    }

    /// The service path went down at `at_ns` (the service was killed or stopped): losses after
    /// it time their detection from it, and returns are counted against this outage.
    pub fn path_down(&self, at_ns: u64) {
        self.shared.path_down.store(at_ns, Ordering::Relaxed);
        for rec in &self.shared.recorders {
            lock(rec).outage(at_ns);
        }
    }

    /// Stops every agent (MQTT DISCONNECT, bounded), then the middlebox and the proxy; returns
    /// what each group measured and what the middlebox and the proxy did.
    pub async fn stop(mut self) -> SiteResult {
        let at_stop: Vec<(u64, [u64; PATHS])> = self
            .shared
            .recorders
            .iter()
            .map(|r| {
                let r = lock(r);
                (r.connected_now(), r.paths())
            })
            .collect();
        if let Some(p) = &self.path {
            p.stopping();
        }
        if let Some(p) = &self.proxy {
            p.stopping();
        }
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let path = self.path.as_ref().map(|p| p.stop());
        let (proxy, tunnels) = match &self.proxy {
            Some(p) => {
                let (stats, records) = p.stop().await;
                (Some(stats), records)
            }
            None => (None, Vec::new()),
        };
        let groups = self
            .shared
            .recorders
            .iter()
            .zip(at_stop)
            .map(|(r, (connected, paths))| GroupResult {
                snapshot: lock(r).snapshot(),
                connected,
                paths,
            })
            .collect();
        SiteResult {
            groups,
            path,
            proxy,
            tunnels,
        }
    }
}
