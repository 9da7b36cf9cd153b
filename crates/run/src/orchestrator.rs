//! One run, from a validated scenario to a written report.
//!
//! Order: plan the processes, write the run folder and its PKI, start rumqttd, the edges, the
//! check-in endpoint, the console and the sites (each reports ready before the next step), fix
//! the run start `t0`, let the timeline run (agents ramp, the console publishes its schedule,
//! service events fire), drain wake-ups in flight, stop every process collecting its
//! measurements, merge, classify every wake-up exactly once, and write report.json and the
//! histograms. Ctrl-C, a child that dies, or a service that does not come back ends the
//! timeline early; the report is still written and says why.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pushsim_agent::ids::{agent_id, site_agents};
use pushsim_agent::SiteProgress;
use pushsim_console::checkins::{self, Board};
use pushsim_console::schedule::Stream;
use pushsim_console::{Console, Schedule};
use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::{Ledger, Recorder, Snapshot};
use pushsim_pki::tls::ClientTls;
use pushsim_pki::{files, Ca};
use pushsim_report::build::{GroupInput, Inputs, OutageEvent};
use pushsim_report::model::Plan as ReportPlan;
use pushsim_report::{render, ProcessStats, RunReport};
use pushsim_scenario::{Scenario, ServiceAction};
use tokio::sync::{mpsc, watch};

use crate::children::{wait_ready, Child, Event};
use crate::ipc::{EdgeSpec, FromChild, Ready, SiteSpec, Spec, ToChild};
use crate::observer::{Observer, Phase, Status};
use crate::plan::{self, deal_groups, Plan};
use crate::{limits, procstat, RunError};

/// The name agents and console check the service certificate against.
const SERVER_NAME: &str = "localhost";
/// Bound for the service to be ready at the start of a run.
const SERVICE_READY: Duration = Duration::from_secs(30);
/// Bound for collecting a child's final measurements.
const COLLECT: Duration = Duration::from_secs(30);

/// How to run.
pub struct RunOptions {
    /// The pushsim binary (children are `exe __child <role>`).
    pub exe: PathBuf,
    /// The run folder; created if missing.
    pub dir: PathBuf,
    /// Site processes (default: as the open-files limit requires).
    pub sites: Option<u32>,
    /// Progress display.
    pub observer: Arc<dyn Observer>,
    /// Turns true on Ctrl-C.
    pub interrupt: watch::Receiver<bool>,
}

/// A finished run.
pub struct Outcome {
    /// The report (also written to `dir`).
    pub report: RunReport,
    /// The run folder.
    pub dir: PathBuf,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// Stopped by the environment (a process died, the service did not come back); the
    /// message says which and why.
    pub environment: Option<String>,
}

/// The default run folder: `<reports>/<scenario>-<UTC time>`.
pub fn default_dir(reports: &Path, scenario: &str) -> PathBuf {
    let ts = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    reports.join(format!("{scenario}-{ts}"))
}

fn env(what: impl std::fmt::Display) -> RunError {
    RunError::Environment(what.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `sc` (validated) from `origin` (for the report).
pub async fn execute(sc: Scenario, origin: String, opts: RunOptions) -> Result<Outcome, RunError> {
    let groups = sc.resolved_groups();
    let group_names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    pushsim_report::slo::check_paths(&sc.slo, &group_names)
        .map_err(|e| RunError::Usage(format!("{origin}: {e}")))?;
    let agents = sc.agent_count();
    let nofile = limits::raise_nofile();
    let listeners =
        (sc.service.broker_listeners > 0).then_some(u32::from(sc.service.broker_listeners));
    let plan = plan::make(
        agents,
        nofile,
        limits::ephemeral_ports(),
        opts.sites,
        listeners,
    )
    .map_err(|e| env(e.0))?;
    std::fs::create_dir_all(&opts.dir)
        .map_err(|e| env(format!("cannot create {}: {e}", opts.dir.display())))?;
    let scenario_file = opts.dir.join("scenario.toml");
    std::fs::write(&scenario_file, sc.to_toml())
        .map_err(|e| env(format!("{}: {e}", scenario_file.display())))?;
    let started_at = SystemTime::now();

    opts.observer.phase(Phase::Starting("certificates".into()));
    let ca = Ca::generate().map_err(env)?;
    let ips = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let server = ca.issue_server(&[SERVER_NAME], &ips).map_err(env)?;
    let pki = files::write(&opts.dir.join("pki"), &ca, &server).map_err(env)?;
    let console_tls = ClientTls::new(ca.cert())
        .and_then(|t| t.config(&ca.issue_client("console")?))
        .map_err(env)?;

    let mut run = Running::new(&sc, plan, opts.exe.clone(), pki.clone());
    opts.observer
        .phase(Phase::Starting("the service (rumqttd and TLS edge)".into()));
    let (primary, fallback) = run.start_service(SERVICE_READY).await?;

    // The management server: check-ins and the console's MQTT connection.
    let group_of = Arc::new(deal_groups(
        &groups.iter().map(|g| g.count).collect::<Vec<_>>(),
    ));
    let answers: Vec<Arc<Mutex<Recorder>>> = groups
        .iter()
        .map(|_| Arc::new(Mutex::new(Recorder::new(0))))
        .collect();
    let board = Board::new(group_of.clone(), answers.clone());
    let (checkin_listener, checkin_addr) = checkins::bind()
        .await
        .map_err(|e| env(format!("check-in endpoint: {e}")))?;
    let (stop_checkins, checkins_rx) = watch::channel(false);
    let checkin_task = tokio::spawn(checkins::serve(
        checkin_listener,
        board.clone(),
        checkins_rx,
    ));
    opts.observer.phase(Phase::Starting("console".into()));
    let agent_ids: Arc<Vec<String>> = Arc::new((0..agents).map(agent_id).collect());
    let console = Console::connect(
        primary,
        SERVER_NAME,
        console_tls,
        agent_ids,
        Duration::from_secs(10),
    )
    .await
    .map_err(env)?;

    opts.observer.phase(Phase::Starting(format!(
        "{} site process(es), issuing {agents} agent certificates",
        plan.sites
    )));
    let targets = if sc.service.reachable {
        [primary, fallback]
    } else {
        // Nothing listens there: every connect is refused, as on a blocked path.
        let closed = pushsim_service::ports::free_ports(2).map_err(env)?;
        [closed[0], closed[1]]
    };
    run.start_sites(&sc, &groups, &group_of, targets, checkin_addr)
        .await?;

    // The timeline.
    run.mark_setup();
    let setup_cpu_s = procstat::myself().map(|(cpu, _)| cpu).unwrap_or(0.0);
    let t0 = mono_ns() + 100_000_000;
    for s in &mut run.sites {
        s.send(&ToChild::Start { t0_ns: t0 }).await?;
    }
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let console_rec = Arc::new(Mutex::new(Recorder::new(t0)));
    for a in &answers {
        lock(a).set_t0(t0);
    }
    let schedule = plan_wakeups(&sc);
    let (stop_console, stop_rx) = watch::channel(false);
    let console_task = {
        let (ledger, rec, board) = (ledger.clone(), console_rec.clone(), board.clone());
        tokio::spawn(async move {
            console
                .run(&schedule, t0, &ledger, &rec, Some(&board), stop_rx)
                .await;
            console
        })
    };
    opts.observer.phase(Phase::Running {
        agents: u64::from(agents),
        duration_s: sc.duration.get().as_secs_f64(),
    });
    let mut interrupt = opts.interrupt.clone();
    let end = t0 + sc.duration.get().as_nanos() as u64;
    let sent = || lock(&ledger).len();
    let mut outages: Vec<OutageEvent> = Vec::new();
    let mut stop = None;
    for at in &sc.timeline {
        let at_ns = t0 + at.time.get().as_nanos() as u64;
        stop = run
            .watch(&*opts.observer, &mut interrupt, at_ns, t0, &sent, |_| false)
            .await;
        if stop.is_some() {
            break;
        }
        stop = run
            .service_event(at, t0, &mut outages, &*opts.observer, &mut interrupt, &sent)
            .await;
        if stop.is_some() {
            break;
        }
    }
    if stop.is_none() {
        stop = run
            .watch(&*opts.observer, &mut interrupt, end, t0, &sent, |_| false)
            .await;
    }
    let timeline_ns = mono_ns().min(end).saturating_sub(t0);
    let _ = stop_console.send(true);
    if stop.is_none() && run.service_up {
        opts.observer.phase(Phase::Draining);
        let drain_end = mono_ns() + sc.wakeups.drain.get().as_nanos() as u64;
        stop = run
            .watch(&*opts.observer, &mut interrupt, drain_end, t0, &sent, |p| {
                p.wakeups_received >= sent()
            })
            .await;
    }
    if stop == Some(Stop::Done) {
        stop = None;
    }
    opts.observer.phase(Phase::Stopping);
    if let Ok(console) = console_task.await {
        console.close().await;
    }
    let collected = run.stop_all(groups.len()).await;
    let _ = stop_checkins.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), checkin_task).await;

    // Accounting, per group.
    let late_after = sc.wakeups.late_after.as_us();
    let group_inputs: Vec<GroupInput> = {
        let l = lock(&ledger);
        groups
            .iter()
            .enumerate()
            .map(|(g, rg)| {
                let mut merged = Snapshot::merged(collected.groups[g].snapshots.iter());
                merged.merge(&lock(&answers[g]).snapshot());
                let wakeups = l.classify_where(
                    &merged.receipts,
                    late_after,
                    merged.counters.duplicates,
                    |a| {
                        group_of
                            .get(a as usize)
                            .is_some_and(|&x| usize::from(x) == g)
                    },
                );
                GroupInput {
                    name: rg.name.clone(),
                    configured: u64::from(rg.count),
                    merged,
                    wakeups,
                    connected_end: collected.groups[g].connected,
                    paths: collected.groups[g].paths,
                }
            })
            .collect()
    };
    let mut processes = collected.processes;
    let (cpu_s, peak_rss_kb) = procstat::myself().unwrap_or((0.0, 0));
    processes.insert(
        0,
        ProcessStats {
            role: "orchestrator+console".into(),
            pid: std::process::id(),
            cpu_s,
            setup_cpu_s,
            peak_rss_kb,
            agents: 0,
        },
    );
    let (interrupted, environment) = match stop {
        Some(Stop::Interrupted) => (true, None),
        Some(Stop::Environment(why)) => (false, Some(why)),
        _ => (false, None),
    };
    let console_snap = lock(&console_rec).snapshot();
    let report = RunReport::build(Inputs {
        scenario: &sc,
        origin,
        started_at: humantime::format_rfc3339_seconds(started_at).to_string(),
        duration_s: timeline_ns as f64 / 1e9,
        stopped_early: if interrupted {
            Some("interrupted (Ctrl-C)".into())
        } else {
            environment.clone()
        },
        plan: ReportPlan {
            sites: plan.sites,
            edges: plan.edges,
            broker_listeners: plan.broker_listeners,
            nofile_limit: plan.nofile,
        },
        groups: group_inputs,
        console: &console_snap,
        t0_ns: t0,
        outages,
        processes,
        edge: collected.edge,
    });
    let all = {
        let mut m = Snapshot::default();
        for g in &collected.groups {
            for s in &g.snapshots {
                m.merge(s);
            }
        }
        for a in &answers {
            m.merge(&lock(a).snapshot());
        }
        m
    };
    render::write_json(&report, &opts.dir.join("report.json")).map_err(env)?;
    render::write_hlog(
        &opts.dir.join("histograms.hlog"),
        started_at,
        Duration::from_nanos(timeline_ns),
        &[
            ("connect", &all.connect),
            ("wakeup", &all.wakeup),
            ("wakeup_cold", &all.wakeup_cold),
            ("detect", &all.detect),
            ("reconnect", &all.reconnect),
            ("checkin", &all.checkin),
            ("wakeup_to_checkin", &all.wakeup_to_checkin),
        ],
    )
    .map_err(env)?;
    Ok(Outcome {
        report,
        dir: opts.dir,
        interrupted,
        environment,
    })
}

fn plan_wakeups(sc: &Scenario) -> Schedule {
    let w = &sc.wakeups;
    let stream = w.rate.map(|r| Stream {
        per_sec: r.per_sec,
        from: w.rate_from.get(),
        until: w.rate_until.map(|u| u.get()).unwrap_or(sc.duration.get()),
    });
    let broadcast: Vec<Duration> = w.broadcast.iter().map(|d| d.get()).collect();
    Schedule::plan(sc.agent_count(), &broadcast, stream, sc.seed)
}

/// Why the timeline ended before its end.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    Interrupted,
    Environment(String),
    /// The watch's own condition held.
    Done,
}

/// What stopping the sites produced for one group.
#[derive(Default)]
struct GroupCollected {
    snapshots: Vec<Snapshot>,
    connected: u64,
    paths: [u64; 2],
}

/// What stopping every child produced.
struct Collected {
    groups: Vec<GroupCollected>,
    processes: Vec<ProcessStats>,
    edge: BTreeMap<String, u64>,
}

/// The service's processes (rumqttd and the edges) and the channels their lines arrive on.
#[derive(Default)]
struct ServiceProcs {
    broker: Option<Child>,
    broker_rx: Option<mpsc::UnboundedReceiver<Event>>,
    edges: Vec<Child>,
    edge_rx: Option<mpsc::UnboundedReceiver<Event>>,
}

/// The run's children.
struct Running {
    exe: PathBuf,
    plan: Plan,
    agents: u32,
    pki: files::PkiPaths,
    primary: SocketAddr,
    fallback: SocketAddr,
    handshake_timeout_ms: u64,
    start_timeout: Duration,
    service: ServiceProcs,
    service_up: bool,
    /// Processes of earlier service incarnations (for CPU and memory in the report).
    retired: Vec<ProcessStats>,
    edge_counts: BTreeMap<String, u64>,
    sites: Vec<Child>,
    site_rx: Option<mpsc::UnboundedReceiver<Event>>,
    progress: Vec<SiteProgress>,
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

/// Next event on an optional channel; pending forever when there is none.
async fn recv_opt(rx: &mut Option<mpsc::UnboundedReceiver<Event>>) -> Option<Event> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn add_edge_counts(
    into: &mut BTreeMap<String, u64>,
    counts: Option<pushsim_service::edge::EdgeCounts>,
) {
    if let Some(v) = counts.and_then(|e| serde_json::to_value(e).ok()) {
        for (k, v) in v.as_object().into_iter().flatten() {
            *into.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
        }
    }
}

impl Running {
    fn new(sc: &Scenario, plan: Plan, exe: PathBuf, pki: files::PkiPaths) -> Self {
        Self {
            exe,
            plan,
            agents: sc.agent_count(),
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
        }
    }

    /// Starts rumqttd and the edges (on the run's primary and fallback ports once they are
    /// known); returns the edge's addresses.
    async fn start_service(
        &mut self,
        bound: Duration,
    ) -> Result<(SocketAddr, SocketAddr), RunError> {
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
        self.service_up = true;
        Ok((self.primary, self.fallback))
    }

    /// Takes the service down: `kill` SIGKILLs every process; otherwise rumqttd goes first and
    /// the edges close their TLS sessions cleanly before they exit.
    async fn stop_service(&mut self, kill: bool) {
        let mut procs = std::mem::take(&mut self.service);
        if let Some(b) = procs.broker.take() {
            self.retired.push(b.stats());
            b.kill().await;
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
                        add_edge_counts(&mut self.edge_counts, d.edge);
                    }
                }
            }
        }
        self.service_up = false;
    }

    /// Carries out one `[[at]]` event.
    async fn service_event(
        &mut self,
        at: &pushsim_scenario::At,
        t0: u64,
        outages: &mut Vec<OutageEvent>,
        obs: &dyn Observer,
        interrupt: &mut watch::Receiver<bool>,
        sent: &dyn Fn() -> u64,
    ) -> Option<Stop> {
        let action = match at.action {
            ServiceAction::Kill => "service.kill",
            ServiceAction::Stop => "service.stop",
            ServiceAction::Start => "service.start",
            ServiceAction::Restart => "service.restart",
        };
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

    async fn start_sites(
        &mut self,
        sc: &Scenario,
        groups: &[pushsim_scenario::ResolvedGroup],
        group_of: &[u16],
        targets: [SocketAddr; 2],
        checkin: SocketAddr,
    ) -> Result<(), RunError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let n = self.plan.sites;
        let profiles: Vec<_> = groups.iter().map(|g| g.profile.clone()).collect();
        for i in 0..n {
            let agents: Vec<(u32, u16)> = site_agents(self.agents, i, n)
                .into_iter()
                .map(|a| (a, group_of.get(a as usize).copied().unwrap_or(0)))
                .collect();
            let count = agents.len() as u64;
            let spec = Spec::Site(SiteSpec {
                agents,
                targets,
                server_name: SERVER_NAME.into(),
                profiles: profiles.clone(),
                checkin: Some(checkin),
                seed: sc.seed,
                ramp_per_sec: sc.agents.ramp.per_sec,
                pki: self.pki.clone(),
            });
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
    fn mark_setup(&mut self) {
        let s = &mut self.service;
        for c in s
            .broker
            .iter_mut()
            .chain(s.edges.iter_mut())
            .chain(self.sites.iter_mut())
        {
            c.mark_setup();
        }
    }

    /// Follows the children until `until_ns`, Ctrl-C, a child's death, or `done(total)` holds.
    async fn watch(
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
                ev = recv_opt(&mut self.service.broker_rx) => if let Some((_, None)) = ev {
                    return Some(Stop::Environment("rumqttd's process exited during the run".into()));
                },
                _ = tick.tick() => obs.status(status(&self.progress, t0, sent())),
            }
        }
    }

    /// Stops sites (collecting their measurements), then the service; reads every process's
    /// CPU and memory before it exits.
    async fn stop_all(&mut self, groups: usize) -> Collected {
        let mut c = Collected {
            groups: (0..groups).map(|_| GroupCollected::default()).collect(),
            processes: Vec::new(),
            edge: BTreeMap::new(),
        };
        for s in &mut self.sites {
            let _ = s.send(&ToChild::Stop).await;
        }
        if let Some(rx) = self.site_rx.as_mut() {
            let mut pending = self.sites.len();
            let deadline = tokio::time::Instant::now() + COLLECT;
            while pending > 0 {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((i, Some(FromChild::Done(d))))) => {
                        pending -= 1;
                        for (g, r) in d.groups.into_iter().enumerate() {
                            if let Some(slot) = c.groups.get_mut(g) {
                                slot.connected += r.connected;
                                slot.paths[0] += r.paths[0];
                                slot.paths[1] += r.paths[1];
                                slot.snapshots.push(r.snapshot);
                            }
                        }
                        if let Some(site) = self.sites.get(i) {
                            c.processes.push(site.stats());
                        }
                    }
                    Ok(Some((i, None))) => {
                        pending -= 1;
                        tracing::warn!("site-{i} exited without its measurements");
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => {
                        tracing::warn!("{pending} site(s) did not report their measurements within {COLLECT:?}");
                        break;
                    }
                }
            }
        }
        for s in self.sites.drain(..) {
            s.finish(Duration::from_secs(5)).await;
        }
        let mut procs = std::mem::take(&mut self.service);
        for e in &mut procs.edges {
            let _ = e.send(&ToChild::Stop).await;
        }
        if let Some(rx) = procs.edge_rx.as_mut() {
            let mut pending = procs.edges.len();
            let deadline = tokio::time::Instant::now() + COLLECT;
            while pending > 0 {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((_, Some(FromChild::Done(d))))) => {
                        pending -= 1;
                        add_edge_counts(&mut self.edge_counts, d.edge);
                    }
                    Ok(Some((_, None))) => pending -= 1,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
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
