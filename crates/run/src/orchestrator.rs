//! One run, from a validated scenario to a written report.
//!
//! Order: plan the processes, write the run folder and its PKI, start rumqttd, the edges, the
//! console and the sites (each reports ready before the next step), fix the run start `t0`, let
//! the timeline run (agents ramp, console publishes its schedule), drain wake-ups in flight, stop
//! every process collecting its measurements, merge, classify every wake-up exactly once, and
//! write report.json and the histograms. Ctrl-C, or a child that dies, ends the timeline early;
//! the report is still written and says why.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pushsim_agent::ids::{agent_id, site_agents};
use pushsim_agent::SiteProgress;
use pushsim_console::schedule::Stream;
use pushsim_console::{Console, Schedule};
use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::{Ledger, Recorder, Snapshot};
use pushsim_pki::tls::ClientTls;
use pushsim_pki::{files, Ca};
use pushsim_report::build::Inputs;
use pushsim_report::model::Plan as ReportPlan;
use pushsim_report::{render, ProcessStats, RunReport};
use pushsim_scenario::{PortRole, Scenario};
use tokio::sync::{mpsc, watch};

use crate::children::{wait_ready, Child, Event};
use crate::ipc::{EdgeSpec, FromChild, Ready, SiteSpec, Spec, ToChild};
use crate::observer::{Observer, Phase, Status};
use crate::plan::{self, Plan};
use crate::{limits, procstat, RunError};

/// The name agents and console check the service certificate against.
const SERVER_NAME: &str = "localhost";
/// Bound for a service process to become ready.
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
    /// Stopped by the environment (a process died); the message says which and why.
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

/// Runs `sc` (validated) from `origin` (for the report).
pub async fn execute(sc: Scenario, origin: String, opts: RunOptions) -> Result<Outcome, RunError> {
    pushsim_report::slo::check_paths(&sc.slo)
        .map_err(|e| RunError::Usage(format!("{origin}: {e}")))?;
    let nofile = limits::raise_nofile();
    let listeners =
        (sc.service.broker_listeners > 0).then_some(u32::from(sc.service.broker_listeners));
    let plan = plan::make(
        sc.agents.count,
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

    let mut run = Running::new(&sc, plan, opts.exe.clone());
    opts.observer.phase(Phase::Starting("rumqttd".into()));
    let upstreams = run.start_broker().await?;
    opts.observer
        .phase(Phase::Starting(format!("{} edge process(es)", plan.edges)));
    let (primary, fallback) = run.start_edges(&sc, upstreams, &pki).await?;
    opts.observer.phase(Phase::Starting("console".into()));
    let agent_ids: Arc<Vec<String>> = Arc::new((0..sc.agents.count).map(agent_id).collect());
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
        "{} site process(es), issuing {} agent certificates",
        plan.sites, sc.agents.count
    )));
    let target = match sc.agents.port {
        PortRole::Primary => primary,
        PortRole::Fallback => fallback,
    };
    run.start_sites(&sc, target, &pki).await?;

    // The timeline.
    run.mark_setup();
    let setup_cpu_s = procstat::myself().map(|(cpu, _)| cpu).unwrap_or(0.0);
    let t0 = mono_ns() + 100_000_000;
    for s in &mut run.sites {
        s.send(&ToChild::Start { t0_ns: t0 }).await?;
    }
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let console_rec = Arc::new(Mutex::new(Recorder::new(t0)));
    let schedule = plan_wakeups(&sc);
    let (stop_console, stop_rx) = watch::channel(false);
    let console_task = {
        let (ledger, rec) = (ledger.clone(), console_rec.clone());
        tokio::spawn(async move {
            console.run(&schedule, t0, &ledger, &rec, stop_rx).await;
            console
        })
    };
    opts.observer.phase(Phase::Running {
        agents: u64::from(sc.agents.count),
        duration_s: sc.duration.get().as_secs_f64(),
    });
    let mut interrupt = opts.interrupt.clone();
    let end = t0 + sc.duration.get().as_nanos() as u64;
    let sent = || ledger.lock().map(|l| l.len()).unwrap_or(0);
    let mut stop = run
        .watch(&*opts.observer, &mut interrupt, end, t0, &sent, |_| false)
        .await;
    let timeline_ns = mono_ns().min(end).saturating_sub(t0);
    let _ = stop_console.send(true);
    if stop.is_none() {
        opts.observer.phase(Phase::Draining);
        let drain_end = mono_ns() + sc.wakeups.drain.get().as_nanos() as u64;
        stop = run
            .watch(&*opts.observer, &mut interrupt, drain_end, t0, &sent, |p| {
                p.wakeups_received >= sent()
            })
            .await;
        if stop == Some(Stop::Done) {
            stop = None;
        }
    }
    opts.observer.phase(Phase::Stopping);
    if let Ok(console) = console_task.await {
        console.close().await;
    }
    let collected = run.stop_all().await;

    let mut merged = Snapshot::merged(collected.snapshots.iter());
    merged.merge(&console_rec.lock().map(|r| r.snapshot()).unwrap_or_default());
    let late_after = sc.wakeups.late_after.as_us();
    let wakeups = ledger
        .lock()
        .map(|l| l.classify(&merged.receipts, late_after, merged.counters.duplicates))
        .unwrap_or_default();
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
        Some(Stop::ChildDied(why)) => (false, Some(why)),
        _ => (false, None),
    };
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
        merged: &merged,
        wakeups,
        connected_end: collected.connected_end,
        processes,
        edge: collected.edge,
    });
    render::write_json(&report, &opts.dir.join("report.json")).map_err(env)?;
    render::write_hlog(
        &opts.dir.join("histograms.hlog"),
        started_at,
        Duration::from_nanos(timeline_ns),
        &[
            ("connect", &merged.connect),
            ("wakeup", &merged.wakeup),
            ("wakeup_cold", &merged.wakeup_cold),
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
    Schedule::plan(sc.agents.count, &broadcast, stream, sc.seed)
}

/// The sites' counts added up.
fn total(progress: &[SiteProgress]) -> SiteProgress {
    SiteProgress {
        connected: progress.iter().map(|p| p.connected).sum(),
        wakeups_received: progress.iter().map(|p| p.wakeups_received).sum(),
        connect_failures: progress.iter().map(|p| p.connect_failures).sum(),
    }
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

/// Why the timeline ended before its end.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    Interrupted,
    ChildDied(String),
    /// The watch's own condition held.
    Done,
}

/// What stopping every child produced.
struct Collected {
    snapshots: Vec<Snapshot>,
    processes: Vec<ProcessStats>,
    edge: BTreeMap<String, u64>,
    connected_end: u64,
}

/// The run's children and the channels their lines arrive on.
struct Running {
    exe: PathBuf,
    plan: Plan,
    agents: u32,
    broker: Option<Child>,
    broker_rx: Option<mpsc::UnboundedReceiver<Event>>,
    edges: Vec<Child>,
    edge_rx: Option<mpsc::UnboundedReceiver<Event>>,
    sites: Vec<Child>,
    site_rx: Option<mpsc::UnboundedReceiver<Event>>,
    progress: Vec<SiteProgress>,
}

impl Running {
    fn new(sc: &Scenario, plan: Plan, exe: PathBuf) -> Self {
        Self {
            exe,
            plan,
            agents: sc.agents.count,
            broker: None,
            broker_rx: None,
            edges: Vec::new(),
            edge_rx: None,
            sites: Vec::new(),
            site_rx: None,
            progress: Vec::new(),
        }
    }

    async fn start_broker(&mut self) -> Result<Vec<SocketAddr>, RunError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let spec = Spec::Broker {
            listeners: self.plan.broker_listeners,
            agents: self.agents,
        };
        self.broker = Some(Child::spawn(&self.exe, "broker".into(), 0, &spec, tx).await?);
        let ready = wait_ready("broker", &mut rx, SERVICE_READY).await?;
        self.broker_rx = Some(rx);
        match ready {
            Ready::Broker { listeners } => Ok(listeners),
            other => Err(env(format!("broker: unexpected readiness {other:?}"))),
        }
    }

    async fn start_edges(
        &mut self,
        sc: &Scenario,
        upstreams: Vec<SocketAddr>,
        pki: &files::PkiPaths,
    ) -> Result<(SocketAddr, SocketAddr), RunError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut primary = SocketAddr::from((Ipv4Addr::LOCALHOST, sc.service.primary_port));
        let mut fallback = SocketAddr::from((Ipv4Addr::LOCALHOST, sc.service.fallback_port));
        for i in 0..self.plan.edges as usize {
            let spec = Spec::Edge(EdgeSpec {
                primary,
                fallback,
                reuse_port: self.plan.edges > 1,
                upstreams: upstreams.clone(),
                pki: pki.clone(),
                handshake_timeout_ms: sc.service.handshake_timeout.get().as_millis() as u64,
            });
            let role = format!("edge-{i}");
            self.edges
                .push(Child::spawn(&self.exe, role.clone(), i, &spec, tx.clone()).await?);
            // The first edge picks the ports; the others share them.
            match wait_ready(&role, &mut rx, SERVICE_READY).await? {
                Ready::Edge {
                    primary: p,
                    fallback: f,
                } => (primary, fallback) = (p, f),
                other => return Err(env(format!("{role}: unexpected readiness {other:?}"))),
            }
        }
        self.edge_rx = Some(rx);
        Ok((primary, fallback))
    }

    async fn start_sites(
        &mut self,
        sc: &Scenario,
        target: SocketAddr,
        pki: &files::PkiPaths,
    ) -> Result<(), RunError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let n = self.plan.sites;
        for i in 0..n {
            let agents = site_agents(sc.agents.count, i, n);
            let count = agents.len() as u64;
            let spec = Spec::Site(SiteSpec {
                agents,
                target,
                server_name: SERVER_NAME.into(),
                keep_alive_ms: sc.agents.keep_alive.get().as_millis() as u64,
                connect_timeout_ms: sc.agents.connect_timeout.get().as_millis() as u64,
                reconnect_delay_ms: sc.agents.reconnect_delay.get().as_millis() as u64,
                ramp_per_sec: sc.agents.ramp.per_sec,
                pki: pki.clone(),
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
        let bound = Duration::from_secs(60 + u64::from(sc.agents.count) / 500);
        for _ in 0..n {
            wait_ready("site", &mut rx, bound).await?;
        }
        self.progress = vec![SiteProgress::default(); n as usize];
        self.site_rx = Some(rx);
        Ok(())
    }

    /// Notes every child's set-up CPU.
    fn mark_setup(&mut self) {
        for c in self
            .broker
            .iter_mut()
            .chain(self.edges.iter_mut())
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
        let (Some(site_rx), Some(edge_rx), Some(broker_rx)) = (
            self.site_rx.as_mut(),
            self.edge_rx.as_mut(),
            self.broker_rx.as_mut(),
        ) else {
            return Some(Stop::ChildDied("run started without its processes".into()));
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
                    Some((i, Some(FromChild::Error(e)))) => return Some(Stop::ChildDied(format!("site-{i} failed: {e}"))),
                    Some((i, None)) => return Some(Stop::ChildDied(format!("site-{i} exited during the run"))),
                    _ => {}
                },
                ev = edge_rx.recv() => if let Some((i, None)) = ev {
                    return Some(Stop::ChildDied(format!("edge-{i} exited during the run")));
                },
                ev = broker_rx.recv() => if let Some((_, None)) = ev {
                    return Some(Stop::ChildDied("rumqttd's process exited during the run".into()));
                },
                _ = tick.tick() => obs.status(status(&self.progress, t0, sent())),
            }
        }
    }

    /// Stops sites (collecting snapshots), then edges, then the broker; reads every process's
    /// CPU and memory before it exits.
    async fn stop_all(&mut self) -> Collected {
        let mut c = Collected {
            snapshots: Vec::new(),
            processes: Vec::new(),
            edge: BTreeMap::new(),
            connected_end: 0,
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
                        c.connected_end += d.connected;
                        if let Some(s) = d.snapshot {
                            c.snapshots.push(s);
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
        for e in &mut self.edges {
            let _ = e.send(&ToChild::Stop).await;
        }
        if let Some(rx) = self.edge_rx.as_mut() {
            let mut pending = self.edges.len();
            let deadline = tokio::time::Instant::now() + COLLECT;
            while pending > 0 {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some((_, Some(FromChild::Done(d))))) => {
                        pending -= 1;
                        if let Some(counts) = d.edge.and_then(|e| serde_json::to_value(e).ok()) {
                            for (k, v) in counts.as_object().into_iter().flatten() {
                                *c.edge.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
                            }
                        }
                    }
                    Ok(Some((_, None))) => pending -= 1,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        for e in self.edges.drain(..) {
            c.processes.push(e.stats());
            e.finish(Duration::from_secs(5)).await;
        }
        if let Some(b) = self.broker.take() {
            c.processes.push(b.stats());
            b.finish(Duration::from_secs(5)).await;
        }
        c
    }
}
