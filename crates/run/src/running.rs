//! The run's children while it runs: the service's processes (started, taken down and started
//! again for outages), the sites, and following them all until a deadline, Ctrl-C, a death, or
//! a condition on the sites' counts.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use pushsim_agent::SiteProgress;
use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::Snapshot;
use pushsim_pki::files;
use pushsim_report::build::OutageEvent;
use pushsim_report::ProcessStats;
use pushsim_scenario::{Broker, Scenario, ServiceAction};
use tokio::sync::{mpsc, watch};

use crate::children::{wait_ready, Child, Event};
use crate::ipc::{EdgeSpec, ExternalTls, FromChild, Ready, SiteSpec, Spec, ToChild};
use crate::observer::{Observer, Status};
use crate::plan::Plan;
use crate::{procstat, RunError};

/// Bound for collecting a child's final measurements.
const COLLECT: Duration = Duration::from_secs(30);
/// The name agents and console check the service certificate against.
pub(crate) const SERVER_NAME: &str = "localhost";

fn env(what: impl std::fmt::Display) -> RunError {
    RunError::Environment(what.to_string())
}

/// Why the timeline ended before its end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Stop {
    Interrupted,
    Environment(String),
    /// The watch's own condition held.
    Done,
}

/// How agents reach the service.
pub(crate) struct Way<'a> {
    /// The service endpoints (primary, fallback), or what stands in front of them.
    pub(crate) targets: [SocketAddr; 2],
    /// The middlebox's rules, when sites run one.
    pub(crate) network: Option<&'a pushsim_scenario::Network>,
    /// The proxy, when agents have one.
    pub(crate) proxy: Option<&'a pushsim_scenario::Proxy>,
}

/// What stopping the sites produced for one group.
#[derive(Default)]
pub(crate) struct GroupCollected {
    pub(crate) snapshots: Vec<Snapshot>,
    pub(crate) connected: u64,
    pub(crate) paths: [u64; pushsim_metrics::recorder::PATHS],
}

/// What stopping every child produced.
pub(crate) struct Collected {
    pub(crate) groups: Vec<GroupCollected>,
    pub(crate) processes: Vec<ProcessStats>,
    pub(crate) edge: BTreeMap<String, u64>,
    /// Connections hit per fault rule, over every site.
    pub(crate) fault_hits: BTreeMap<u32, u64>,
    /// Middlebox counters over every site.
    pub(crate) middlebox: BTreeMap<String, u64>,
    /// The embedded proxies' figures over every site (none: no embedded proxy).
    pub(crate) proxy: Option<pushsim_netfault::connect::ProxyStats>,
    /// Every request the embedded proxies saw, with the site's index.
    pub(crate) tunnels: Vec<(usize, pushsim_netfault::connect::TunnelRecord)>,
    /// This process's CPU seconds when the timeline ended (0: not read).
    pub(crate) own_cpu_end_s: f64,
}

/// The service's processes (rumqttd and the edges, or mosquitto alone) and the channels their
/// lines arrive on.
#[derive(Default)]
struct ServiceProcs {
    broker: Option<Child>,
    broker_rx: Option<mpsc::UnboundedReceiver<Event>>,
    edges: Vec<Child>,
    edge_rx: Option<mpsc::UnboundedReceiver<Event>>,
}

/// The run's children.
pub(crate) struct Running {
    exe: PathBuf,
    /// The run folder (mosquitto's configuration and log go there).
    dir: PathBuf,
    broker: Broker,
    external_tls: Option<ExternalTls>,
    plan: Plan,
    agents: u32,
    /// The shard of the agents this run holds ([`crate::shard::Shard::WHOLE`] for a whole run).
    pub(crate) shard: crate::shard::Shard,
    pki: files::PkiPaths,
    primary: SocketAddr,
    fallback: SocketAddr,
    handshake_timeout_ms: u64,
    start_timeout: Duration,
    service: ServiceProcs,
    pub(crate) service_up: bool,
    /// Processes of earlier service incarnations (for CPU and memory in the report).
    retired: Vec<ProcessStats>,
    edge_counts: BTreeMap<String, u64>,
    pub(crate) sites: Vec<Child>,
    site_rx: Option<mpsc::UnboundedReceiver<Event>>,
    progress: Vec<SiteProgress>,
    /// Proxy changes from the fault API, for the sites.
    pub(crate) api_rx: Option<mpsc::UnboundedReceiver<pushsim_netfault::toxics::ProxyJson>>,
}

/// The sites' counts added up.
fn total(progress: &[SiteProgress]) -> SiteProgress {
    let mut t = SiteProgress::default();
    for p in progress {
        t.add(p);
    }
    t
}

fn status(progress: &[SiteProgress], t0: u64, sent: u64) -> Status {
    let t = total(progress);
    Status {
        elapsed_s: mono_ns().saturating_sub(t0) as f64 / 1e9,
        connected: t.connected,
        wakeups_sent: sent,
        wakeups_received: t.wakeups_received,
        connect_failures: t.connect_failures,
    }
}

/// Next change from the fault API; pending forever without one.
async fn recv_api(
    rx: &mut Option<mpsc::UnboundedReceiver<pushsim_netfault::toxics::ProxyJson>>,
) -> pushsim_netfault::toxics::ProxyJson {
    match rx {
        Some(r) => match r.recv().await {
            Some(p) => p,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Next event on an optional channel; pending forever when there is none.
async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<Event>>) -> Option<Event> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Adds a child's counters (any struct of numbers) into `into`, field by field.
fn add_counts(into: &mut BTreeMap<String, u64>, counts: Option<impl serde::Serialize>) {
    if let Some(v) = counts.and_then(|e| serde_json::to_value(e).ok()) {
        for (k, v) in v.as_object().into_iter().flatten() {
            *into.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
    }
}

impl Running {
    pub(crate) fn new(
        sc: &Scenario,
        plan: Plan,
        exe: PathBuf,
        dir: PathBuf,
        pki: files::PkiPaths,
    ) -> Self {
        Self {
            exe,
            dir,
            broker: sc.service.broker.clone(),
            external_tls: ExternalTls::of(&sc.service),
            plan,
            agents: sc.agent_count(),
            shard: crate::shard::Shard::WHOLE,
            pki,
            primary: SocketAddr::from((Ipv4Addr::LOCALHOST, sc.service.primary_port)),
            fallback: SocketAddr::from((Ipv4Addr::LOCALHOST, sc.service.fallback_port)),
            handshake_timeout_ms: sc.service.handshake_timeout.get().as_millis() as u64,
            start_timeout: sc.service.start_timeout.get(),
            service: ServiceProcs::default(),
            service_up: false,
            retired: Vec::new(),
            edge_counts: BTreeMap::new(),
            sites: Vec::new(),
            site_rx: None,
            progress: Vec::new(),
            api_rx: None,
        }
    }

    /// The name agents and console check the service certificate against.
    pub(crate) fn server_name(&self) -> String {
        match &self.broker {
            Broker::External(e) => e.host.clone(),
            _ => SERVER_NAME.into(),
        }
    }

    /// Starts the service (the same ports every time); returns its primary and fallback
    /// addresses. An external broker is only looked up.
    pub(crate) async fn start_service(
        &mut self,
        bound: Duration,
    ) -> Result<(SocketAddr, SocketAddr), RunError> {
        match self.broker.clone() {
            Broker::Rumqttd => self.start_rumqttd(bound).await?,
            Broker::Mosquitto => self.start_mosquitto(bound).await?,
            Broker::External(e) => {
                let addr = tokio::net::lookup_host((e.host.as_str(), e.port))
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        env(format!("broker {}: cannot resolve {}", self.broker, e.host))
                    })?;
                (self.primary, self.fallback) = (addr, addr);
            }
        }
        self.service_up = true;
        Ok((self.primary, self.fallback))
    }

    /// mosquitto on the run's ports (picked at the first start when the scenario leaves them
    /// to pushsim).
    async fn start_mosquitto(&mut self, bound: Duration) -> Result<(), RunError> {
        if self.primary.port() == 0 || self.fallback.port() == 0 {
            let free = pushsim_service::ports::free_ports(2).map_err(env)?;
            if self.primary.port() == 0 {
                self.primary = free[0];
            }
            if self.fallback.port() == 0 {
                self.fallback = free[1];
            }
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let child = crate::mosquitto::start(
            &self.dir,
            [self.primary, self.fallback],
            &self.pki,
            tx,
            &mut rx,
            bound,
        )
        .await?;
        self.service.broker = Some(child);
        self.service.broker_rx = Some(rx);
        Ok(())
    }

    /// rumqttd, then the edges (on the run's primary and fallback ports once they are known).
    async fn start_rumqttd(&mut self, bound: Duration) -> Result<(), RunError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let spec = Spec::Broker {
            listeners: self.plan.broker_listeners,
            agents: self.agents,
        };
        self.service.broker = Some(Child::spawn(&self.exe, "broker".into(), 0, &spec, tx).await?);
        let upstreams = match wait_ready("broker", &mut rx, bound).await? {
            Ready::Broker { listeners } => listeners,
            other => return Err(env(format!("broker: unexpected readiness {other:?}"))),
        };
        self.service.broker_rx = Some(rx);
        let (tx, mut rx) = mpsc::unbounded_channel();
        for i in 0..self.plan.edges as usize {
            let spec = Spec::Edge(EdgeSpec {
                primary: self.primary,
                fallback: self.fallback,
                reuse_port: self.plan.edges > 1,
                upstreams: upstreams.clone(),
                pki: self.pki.clone(),
                handshake_timeout_ms: self.handshake_timeout_ms,
            });
            let role = format!("edge-{i}");
            self.service
                .edges
                .push(Child::spawn(&self.exe, role.clone(), i, &spec, tx.clone()).await?);
            // The first edge picks the ports; the others, and later incarnations, share them.
            match wait_ready(&role, &mut rx, bound).await? {
                Ready::Edge { primary, fallback } => {
                    (self.primary, self.fallback) = (primary, fallback)
                }
                other => return Err(env(format!("{role}: unexpected readiness {other:?}"))),
            }
        }
        self.service.edge_rx = Some(rx);
        Ok(())
    }

    /// Takes the service down: `kill` SIGKILLs every process; otherwise rumqttd goes first
    /// (it cannot stop) and the edges close their TLS sessions cleanly before they exit, or
    /// mosquitto gets SIGTERM.
    async fn stop_service(&mut self, kill: bool) {
        let mut procs = std::mem::take(&mut self.service);
        if let Some(b) = procs.broker.take() {
            self.retired.push(b.stats());
            if kill || self.broker == Broker::Rumqttd {
                b.kill().await;
            } else {
                b.finish(Duration::from_secs(5)).await;
            }
        }
        for mut e in procs.edges.drain(..) {
            self.retired.push(e.stats());
            if kill {
                e.kill().await;
            } else {
                let _ = e.send(&ToChild::Stop).await;
                e.finish(Duration::from_secs(5)).await;
            }
        }
        if !kill {
            // Counters of gracefully stopped edges.
            if let Some(rx) = procs.edge_rx.as_mut() {
                while let Ok(Some((_, Some(msg)))) =
                    tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
                {
                    if let FromChild::Done(d) = msg {
                        add_counts(&mut self.edge_counts, d.edge);
                    }
                }
            }
        }
        self.service_up = false;
    }

    /// Carries out one `[[at]]` event.
    pub(crate) async fn service_event(
        &mut self,
        at: &pushsim_scenario::At,
        t0: u64,
        outages: &mut Vec<OutageEvent>,
        obs: &dyn Observer,
        interrupt: &mut watch::Receiver<bool>,
        sent: &dyn Fn() -> u64,
    ) -> Option<Stop> {
        let action = at.action.name();
        match at.action {
            ServiceAction::Kill | ServiceAction::Stop | ServiceAction::Restart => {
                // Sites learn the moment first, so they count who was connected and time every
                // agent's detection from the moment the service really goes.
                let at_ns = mono_ns() + 100_000_000;
                for s in &mut self.sites {
                    let _ = s.send(&ToChild::PathDown { at_ns }).await;
                }
                if let Some(stop) = self.wait_acks(obs, interrupt, t0, sent).await {
                    return Some(stop);
                }
                pushsim_agent::driver::sleep_until_ns(at_ns).await;
                self.stop_service(at.action != ServiceAction::Stop).await;
                outages.push(OutageEvent {
                    action: action.into(),
                    at_ns,
                    up_ns: None,
                });
                if at.action == ServiceAction::Restart {
                    let up_at = at_ns + at.down.map(|d| d.get().as_nanos() as u64).unwrap_or(0);
                    if let Some(stop) = self.watch(obs, interrupt, up_at, t0, sent, |_| false).await
                    {
                        return Some(stop);
                    }
                    return self.bring_back(outages).await;
                }
                None
            }
            ServiceAction::Start => self.bring_back(outages).await,
        }
    }

    async fn bring_back(&mut self, outages: &mut [OutageEvent]) -> Option<Stop> {
        match self.start_service(self.start_timeout).await {
            Ok(_) => {
                if let Some(o) = outages.last_mut() {
                    o.up_ns = Some(mono_ns());
                }
                None
            }
            Err(e) => Some(Stop::Environment(format!(
                "the service did not come back within {:?} (service.start_timeout): {e}",
                self.start_timeout
            ))),
        }
    }

    pub(crate) async fn start_sites(
        &mut self,
        sc: &Scenario,
        groups: &[pushsim_scenario::ResolvedGroup],
        way: Way<'_>,
        group_of: &[u16],
        checkin: SocketAddr,
    ) -> Result<(), RunError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let n = self.plan.sites;
        let profiles: Vec<_> = groups.iter().map(|g| g.profile.clone()).collect();
        for i in 0..n {
            let agents: Vec<(u32, u16)> = self
                .shard
                .site_agents(self.agents, i, n)
                .into_iter()
                .map(|a| (a, group_of.get(a as usize).copied().unwrap_or(0)))
                .collect();
            let count = agents.len() as u64;
            let spec = Spec::Site(Box::new(SiteSpec {
                agents,
                targets: way.targets,
                server_name: self.server_name(),
                profiles: profiles.clone(),
                checkin: Some(checkin),
                seed: sc.seed,
                ramp_per_sec: sc.agents.ramp.per_sec,
                pki: self.pki.clone(),
                external_tls: self.external_tls.clone(),
                network: way.network.cloned(),
                group_names: groups.iter().map(|g| g.name.clone()).collect(),
                proxy: way.proxy.cloned(),
            }));
            let mut child = Child::spawn(
                &self.exe,
                format!("site-{i}"),
                i as usize,
                &spec,
                tx.clone(),
            )
            .await?;
            child.agents = count;
            self.sites.push(child);
        }
        // Issuing certificates takes about 0.1 ms per agent per core; allow plenty.
        let bound = Duration::from_secs(60 + u64::from(self.agents) / 500);
        for _ in 0..n {
            wait_ready("site", &mut rx, bound).await?;
        }
        self.progress = vec![SiteProgress::default(); n as usize];
        self.site_rx = Some(rx);
        Ok(())
    }

    /// Waits (at most 5 s) until every site acknowledged a [`ToChild::PathDown`].
    async fn wait_acks(
        &mut self,
        obs: &dyn Observer,
        interrupt: &mut watch::Receiver<bool>,
        t0: u64,
        sent: &dyn Fn() -> u64,
    ) -> Option<Stop> {
        let mut pending = self.sites.len();
        let rx = self.site_rx.as_mut()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while pending > 0 {
            tokio::select! {
                ev = tokio::time::timeout_at(deadline, rx.recv()) => match ev {
                    Ok(Some((_, Some(FromChild::Ack)))) => pending -= 1,
                    Ok(Some((i, Some(FromChild::Progress(p))))) => {
                        if let Some(slot) = self.progress.get_mut(i) { *slot = p; }
                        obs.status(status(&self.progress, t0, sent()));
                    }
                    Ok(Some((i, None))) => return Some(Stop::Environment(format!("site-{i} exited during the run"))),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        tracing::warn!("{pending} site(s) did not acknowledge the outage in time");
                        return None;
                    }
                },
                r = interrupt.changed() => if r.is_err() || *interrupt.borrow() { return Some(Stop::Interrupted) },
            }
        }
        None
    }

    /// Notes every child's set-up CPU.
    pub(crate) fn mark_setup(&mut self) {
        self.children().for_each(Child::mark_setup);
    }

    /// Every child process: the service's, then the sites.
    fn children(&mut self) -> impl Iterator<Item = &mut Child> {
        let s = &mut self.service;
        s.broker
            .iter_mut()
            .chain(s.edges.iter_mut())
            .chain(self.sites.iter_mut())
    }

    /// Follows the children until `until_ns`, Ctrl-C, a child's death, or `done(total)` holds.
    pub(crate) async fn watch(
        &mut self,
        obs: &dyn Observer,
        interrupt: &mut watch::Receiver<bool>,
        until_ns: u64,
        t0: u64,
        sent: &dyn Fn() -> u64,
        done: impl Fn(&SiteProgress) -> bool,
    ) -> Option<Stop> {
        let Some(site_rx) = self.site_rx.as_mut() else {
            return Some(Stop::Environment("run started without its sites".into()));
        };
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let deadline = tokio::time::sleep(Duration::from_nanos(until_ns.saturating_sub(mono_ns())));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return None,
                r = interrupt.changed() => if r.is_err() || *interrupt.borrow() { return Some(Stop::Interrupted) },
                ev = site_rx.recv() => match ev {
                    Some((i, Some(FromChild::Progress(p)))) => {
                        if let Some(slot) = self.progress.get_mut(i) { *slot = p; }
                        if done(&total(&self.progress)) { return Some(Stop::Done); }
                    }
                    Some((i, Some(FromChild::Error(e)))) => return Some(Stop::Environment(format!("site-{i} failed: {e}"))),
                    Some((i, None)) => return Some(Stop::Environment(format!("site-{i} exited during the run"))),
                    _ => {}
                },
                ev = recv_opt(&mut self.service.edge_rx) => if let Some((i, None)) = ev {
                    return Some(Stop::Environment(format!("edge-{i} exited during the run")));
                },
                ev = recv_opt(&mut self.service.broker_rx) => match ev {
                    Some((_, Some(FromChild::Error(e)))) => return Some(Stop::Environment(e)),
                    Some((_, None)) => return Some(Stop::Environment(format!("{}'s process exited during the run", self.broker))),
                    _ => {}
                },
                p = recv_api(&mut self.api_rx) => {
                    for s in &mut self.sites {
                        let _ = s.send(&ToChild::Proxy(p.clone())).await;
                    }
                }
                _ = tick.tick() => obs.status(status(&self.progress, t0, sent())),
            }
        }
    }

    /// Stops sites (collecting their measurements), then the service; reads every process's
    /// CPU and memory before it exits.
    pub(crate) async fn stop_all(&mut self, groups: usize) -> Collected {
        let mut c = Collected {
            groups: (0..groups).map(|_| GroupCollected::default()).collect(),
            processes: Vec::new(),
            edge: BTreeMap::new(),
            fault_hits: BTreeMap::new(),
            middlebox: BTreeMap::new(),
            proxy: None,
            tunnels: Vec::new(),
            own_cpu_end_s: procstat::myself().map(|(cpu, _)| cpu).unwrap_or(0.0),
        };
        // Memory and CPU while the agents still hold their connections.
        self.children().for_each(Child::mark_end);
        for s in &mut self.sites {
            let _ = s.send(&ToChild::Stop).await;
        }
        let sites = &self.sites;
        collect_done("site", self.site_rx.as_mut(), sites.len(), |i, d| {
            for (g, r) in d.groups.into_iter().enumerate() {
                if let Some(slot) = c.groups.get_mut(g) {
                    slot.connected += r.connected;
                    for (mine, n) in slot.paths.iter_mut().zip(r.paths) {
                        *mine += n;
                    }
                    slot.snapshots.push(r.snapshot);
                }
            }
            if let Some(p) = d.proxy {
                c.proxy.get_or_insert_with(Default::default).add(&p);
            }
            c.tunnels.extend(d.tunnels.into_iter().map(|t| (i, t)));
            if let Some(path) = d.path {
                for (rule, n) in path.hits {
                    *c.fault_hits.entry(rule).or_default() += n;
                }
                add_counts(&mut c.middlebox, Some(path.counts));
            }
            if let Some(site) = sites.get(i) {
                c.processes.push(site.stats());
            }
        })
        .await;
        for s in self.sites.drain(..) {
            s.finish(Duration::from_secs(5)).await;
        }
        let mut procs = std::mem::take(&mut self.service);
        for e in &mut procs.edges {
            let _ = e.send(&ToChild::Stop).await;
        }
        let counts = &mut self.edge_counts;
        collect_done("edge", procs.edge_rx.as_mut(), procs.edges.len(), |_, d| {
            add_counts(counts, d.edge)
        })
        .await;
        for e in procs.edges.drain(..) {
            c.processes.push(e.stats());
            e.finish(Duration::from_secs(5)).await;
        }
        if let Some(b) = procs.broker.take() {
            c.processes.push(b.stats());
            b.finish(Duration::from_secs(5)).await;
        }
        for p in self.retired.drain(..) {
            c.processes.push(ProcessStats {
                role: format!("{} (until an outage)", p.role),
                ..p
            });
        }
        c.edge = std::mem::take(&mut self.edge_counts);
        c
    }
}

/// Hands every `Done` of `expected` children to `on_done`, at most [`COLLECT`] long; a child that
/// exits without one is counted and named.
async fn collect_done(
    what: &str,
    rx: Option<&mut mpsc::UnboundedReceiver<Event>>,
    expected: usize,
    mut on_done: impl FnMut(usize, Box<crate::ipc::Done>),
) {
    let Some(rx) = rx else { return };
    let mut pending = expected;
    let deadline = tokio::time::Instant::now() + COLLECT;
    while pending > 0 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((i, Some(FromChild::Done(d))))) => {
                pending -= 1;
                on_done(i, d);
            }
            Ok(Some((i, None))) => {
                pending -= 1;
                tracing::warn!("{what}-{i} exited without its measurements");
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                tracing::warn!(
                    "{pending} {what}(s) did not report their measurements within {COLLECT:?}"
                );
                return;
            }
        }
    }
}
