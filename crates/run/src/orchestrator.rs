//! One run, from a validated scenario to a written report.
//!
//! Order: plan the processes, write the run folder and its PKI, start rumqttd, the edges, the
//! check-in endpoint, the console and the sites (each reports ready before the next step), fix
//! the run start `t0`, let the timeline run (agents ramp, the console publishes its schedule,
//! service events fire), drain wake-ups in flight, stop every process collecting its
//! measurements, merge, classify every wake-up exactly once, and write report.json and the
//! histograms. Ctrl-C, a child that dies, or a service that does not come back ends the
//! timeline early; the report is still written and says why.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pushsim_agent::ids::agent_id;
use pushsim_console::checkins::{self, Board};
use pushsim_console::schedule::Stream;
use pushsim_console::{Console, Schedule};
use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::{Ledger, Recorder, Snapshot};
use pushsim_pki::tls::ClientTls;
use pushsim_pki::{files, Ca};
use pushsim_report::build::{GroupInput, Inputs, OutageEvent};
use pushsim_report::model::Plan as ReportPlan;
use pushsim_report::{hlog, render, ProcessStats, RunReport};
use pushsim_scenario::network::Backend;
use pushsim_scenario::{Broker, NetRule, Network, Scenario};
use tokio::sync::watch;

use crate::external::{switches, External, Switch};
use crate::ipc::ToChild;
use crate::observer::{Observer, Phase};
use crate::plan::{self, deal_groups};
use crate::running::{Running, Stop, Way, SERVER_NAME};
use crate::shard::Shard;
use crate::{limits, procstat, RunError};

/// Bound for the service to be ready at the start of a run.
const SERVICE_READY: Duration = Duration::from_secs(30);

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
    /// Serve Toxiproxy's API for the run's middlebox here (`--fault-api`).
    pub fault_api: Option<SocketAddr>,
    /// Run only this shard of the agents (`--shard i/N`); the report is then a shard's, for
    /// `pushsim report merge`.
    pub shard: Option<Shard>,
    /// Start the timeline at this wall-clock time (`--start-at`), so shards line up.
    pub start_at: Option<SystemTime>,
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
    let total = sc.agent_count();
    let shard = opts.shard.unwrap_or(Shard::WHOLE);
    shard
        .check(total, &sc.service.broker, opts.start_at, SystemTime::now())
        .map_err(|e| RunError::Usage(format!("{origin}: {e}")))?;
    // This process's agents: all of them, or its shard's.
    let mine = shard.agents(total);
    let agents = mine.len() as u32;
    let nofile = limits::raise_nofile();
    let listeners =
        (sc.service.broker_listeners > 0).then_some(u32::from(sc.service.broker_listeners));
    let mut network = effective_network(&sc);
    let toxiproxy = network.backend == Backend::Toxiproxy;
    if toxiproxy && opts.fault_api.is_some() {
        return Err(RunError::Usage(format!(
            "{origin}: --fault-api serves pushsim's own middlebox; with network.backend = \"toxiproxy\" use Toxiproxy's API"
        )));
    }
    // The fault API needs the middlebox in the path even when the scenario has no rules.
    network.middlebox |= opts.fault_api.is_some();
    // With Toxiproxy applying the rules, the agents' sites have no middlebox of their own.
    let site_middlebox = network.in_path() && !toxiproxy;
    // The embedded proxy only when some agent's route goes through it.
    let proxy = sc.proxy.as_ref().filter(|_| groups_route_proxy(&sc));
    let needs = plan::Needs {
        agents,
        middlebox: site_middlebox,
        proxy: proxy.is_some_and(|p| p.url.is_none()),
        sites: opts.sites,
        listeners,
    };
    let mut plan = plan::make(needs, nofile, limits::ephemeral_ports()).map_err(|e| env(e.0))?;
    if sc.service.broker != Broker::Rumqttd {
        // Edges and plain listeners are rumqttd's; mosquitto (one process) terminates TLS itself.
        (plan.edges, plan.broker_listeners) = (0, 0);
    }
    std::fs::create_dir_all(&opts.dir)
        .map_err(|e| env(format!("cannot create {}: {e}", opts.dir.display())))?;
    let scenario_file = opts.dir.join("scenario.toml");
    std::fs::write(&scenario_file, sc.to_toml())
        .map_err(|e| env(format!("{}: {e}", scenario_file.display())))?;
    let started_at = SystemTime::now();
    // This process may have run other scenarios (a sweep): count its CPU from here, and reset its
    // peak RSS (Linux: writing 5 to clear_refs resets VmHWM).
    let cpu_before = procstat::myself().map(|(cpu, _)| cpu).unwrap_or(0.0);
    let _ = std::fs::write("/proc/self/clear_refs", "5");

    opts.observer.phase(Phase::Starting("certificates".into()));
    let ca = Ca::generate().map_err(env)?;
    let ips = [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let server = ca.issue_server(&[SERVER_NAME], &ips).map_err(env)?;
    let pki = files::write(&opts.dir.join("pki"), &ca, &server).map_err(env)?;
    let console_tls = match crate::ipc::ExternalTls::of(&sc.service) {
        Some(x) => x.client_config().map_err(env)?,
        None => ClientTls::new(ca.cert())
            .and_then(|t| t.config(&ca.issue_client("console")?))
            .map_err(env)?,
    };

    let mut run = Running::new(&sc, plan, opts.exe.clone(), opts.dir.clone(), pki.clone());
    run.shard = shard;
    opts.observer
        .phase(Phase::Starting(match &sc.service.broker {
            Broker::Rumqttd => "the service (rumqttd and TLS edge)".into(),
            Broker::Mosquitto => "the service (mosquitto)".into(),
            b => format!("the external broker {b}"),
        }));
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
    let agent_ids: Arc<Vec<String>> = Arc::new((0..total).map(agent_id).collect());
    // One console per shard on a shared broker: each its own client id.
    let console_id = match opts.shard {
        Some(s) => format!("pushsim-console-{}-of-{}", s.index, s.count),
        None => "pushsim-console".into(),
    };
    let console = Console::connect(
        primary,
        &run.server_name(),
        console_tls,
        &console_id,
        agent_ids,
        Duration::from_secs(10),
    )
    .await
    .map_err(env)?;

    opts.observer
        .phase(Phase::Starting(if sc.service.broker.managed() {
            format!(
                "{} site process(es), issuing {agents} agent certificates",
                plan.sites
            )
        } else {
            format!(
                "{} site process(es), {agents} agents with the given client certificate",
                plan.sites
            )
        }));
    let (stop_api, api_stop_rx) = watch::channel(false);
    if let Some(addr) = opts.fault_api {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| env(format!("cannot listen for the fault API on {addr}: {e}")))?;
        let bound = l.local_addr().map_err(env)?;
        opts.observer.phase(Phase::Starting(format!(
            "the fault API (Toxiproxy's) on http://{bound}: proxies \"primary\" and \"fallback\""
        )));
        run.api_rx = Some(crate::fault_api::serve(l, primary, fallback, api_stop_rx));
    }
    let mut targets = [primary, fallback];
    let mut external = None;
    if toxiproxy {
        let url = network.toxiproxy_url.clone().unwrap_or_default();
        opts.observer
            .phase(Phase::Starting(format!("proxies on Toxiproxy at {url}")));
        let (ext, ends) = External::start(&url, &network, targets).await?;
        targets = ends;
        external = Some(ext);
    }
    let path = site_middlebox.then_some(&network);
    let started = run
        .start_sites(
            &sc,
            &groups,
            Way {
                targets,
                network: path,
                proxy,
            },
            &group_of,
            checkin_addr,
        )
        .await;
    if let Err(e) = started {
        // Leave nothing behind on an external Toxiproxy.
        if let Some(ext) = external {
            ext.close().await;
        }
        return Err(e);
    }

    // The timeline.
    run.mark_setup();
    let setup_cpu_s = procstat::myself()
        .map(|(cpu, _)| cpu - cpu_before)
        .unwrap_or(0.0);
    let (t0, late_s) = match opts.start_at {
        None => (mono_ns() + 100_000_000, 0.0),
        Some(at) => match wait_for(at, &*opts.observer, &mut opts.interrupt.clone()).await {
            Some(t) => t,
            None => {
                run.stop_all(groups.len()).await;
                if let Some(ext) = external {
                    ext.close().await;
                }
                return Err(RunError::Interrupted);
            }
        },
    };
    let t0_unix_ms = unix_ms(SystemTime::now()) + (t0.saturating_sub(mono_ns())) / 1_000_000;
    for s in &mut run.sites {
        s.send(&ToChild::Start { t0_ns: t0 }).await?;
    }
    let ledger = Arc::new(Mutex::new(Ledger::new()));
    let console_rec = Arc::new(Mutex::new(Recorder::new(t0)));
    for a in &answers {
        lock(a).set_t0(t0);
    }
    let mut schedule = plan_wakeups(&sc);
    // A shard sends the whole run's wake-ups to its own agents: the shards' sends add up to
    // the schedule of one run.
    schedule.items.retain(|p| shard.holds(p.agent));
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
    // The timeline: service events, and Toxiproxy's toxics switching on and off.
    let mut steps: Vec<(Duration, Step)> = sc
        .timeline
        .iter()
        .map(|a| (a.time.get(), Step::Service(a)))
        .collect();
    if external.is_some() {
        steps.extend(
            switches(&network)
                .into_iter()
                .map(|s| (s.at, Step::Toxic(s))),
        );
        steps.sort_by_key(|(t, _)| *t);
    }
    for (time, step) in steps {
        let at_ns = t0 + time.as_nanos() as u64;
        stop = run
            .watch(&*opts.observer, &mut interrupt, at_ns, t0, &sent, |_| false)
            .await;
        if stop.is_some() {
            break;
        }
        stop = match (step, &external) {
            (Step::Service(at), _) => {
                run.service_event(at, t0, &mut outages, &*opts.observer, &mut interrupt, &sent)
                    .await
            }
            (Step::Toxic(s), Some(ext)) => ext
                .switch(s.rule, s.on)
                .await
                .err()
                .map(|e| Stop::Environment(e.to_string())),
            (Step::Toxic(_), None) => None,
        };
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
    let _ = stop_api.send(true);
    let mut collected = run.stop_all(groups.len()).await;
    let tunnels = std::mem::take(&mut collected.tunnels);
    if let Some(ext) = external {
        ext.close().await;
    }
    let _ = stop_checkins.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), checkin_task).await;

    // Accounting, per group.
    let late_after = sc.wakeups.late_after.as_us();
    // This process's agents per group (the scenario's counts for a whole run).
    let mut configured = vec![0u64; groups.len()];
    for &a in &mine {
        if let Some(c) = group_of
            .get(a as usize)
            .and_then(|&g| configured.get_mut(usize::from(g)))
        {
            *c += 1;
        }
    }
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
                    configured: configured[g],
                    merged,
                    wakeups,
                    connected_end: collected.groups[g].connected,
                    paths: collected.groups[g].paths,
                }
            })
            .collect()
    };
    let mut processes = collected.processes;
    let (cpu_s, peak_rss_kb) = procstat::myself()
        .map(|(cpu, rss)| (cpu - cpu_before, rss))
        .unwrap_or((0.0, 0));
    processes.insert(
        0,
        ProcessStats {
            role: "orchestrator+console".into(),
            pid: std::process::id(),
            cpu_s,
            setup_cpu_s,
            peak_rss_kb,
            rss_end_kb: procstat::rss(std::process::id()).unwrap_or(0),
            cpu_end_s: (collected.own_cpu_end_s - cpu_before).max(0.0),
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
            broker: sc.service.broker.name(),
            sites: plan.sites,
            edges: plan.edges,
            broker_listeners: plan.broker_listeners,
            nofile_limit: plan.nofile,
        },
        groups: &group_inputs,
        console: &console_snap,
        t0_ns: t0,
        outages,
        processes,
        edge: collected.edge,
        network: &network,
        // Toxiproxy does not say which connections its toxics hit.
        fault_hits: (!toxiproxy).then_some(collected.fault_hits),
        middlebox: collected.middlebox,
        proxy: proxy.map(|p| (p, proxy_report(p, collected.proxy.as_ref()))),
        proxy_hits: collected.proxy.as_ref().map(|s| s.hits.clone()),
        machine: crate::limits::machine(),
        shard: opts.shard.map(|s| pushsim_report::model::ShardInfo {
            index: s.index,
            count: s.count,
            agents: u64::from(agents),
            start_at: opts
                .start_at
                .map(|at| humantime::format_rfc3339_millis(at).to_string()),
            t0_unix_ms,
            late_s,
            host: crate::limits::host(),
        }),
    });
    // The histograms of the whole run and of each group, for histograms.hlog.
    let all = Snapshot::merged(group_inputs.iter().map(|g| &g.merged));
    render::write_json(&report, &opts.dir.join("report.json")).map_err(env)?;
    render::write_html(&report, &opts.dir.join("report.html")).map_err(env)?;
    if let Some(p) = proxy.filter(|p| p.url.is_none()) {
        let rules: Vec<String> = p
            .faults
            .iter()
            .enumerate()
            .map(|(i, r)| r.label(i))
            .collect();
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let path = opts.dir.join("proxy-tunnels.csv");
        crate::tunnels::write(&path, tunnels, t0, &names, &rules)
            .map_err(|e| env(format!("cannot write {}: {e}", path.display())))?;
    }
    let mut tagged = all.tagged();
    for g in &group_inputs {
        tagged.extend(
            g.merged
                .tagged()
                .into_iter()
                .map(|(name, h)| (hlog::group_tag(&g.name, &name), h)),
        );
    }
    hlog::write(
        &opts.dir.join("histograms.hlog"),
        started_at,
        Duration::from_nanos(timeline_ns),
        &tagged,
    )
    .map_err(env)?;
    Ok(Outcome {
        report,
        dir: opts.dir,
        interrupted,
        environment,
    })
}

/// One step of the timeline.
enum Step<'a> {
    Service(&'a pushsim_scenario::At),
    Toxic(Switch),
}

/// The network the run applies: the scenario's rules, plus a `refuse` on both roles when the
/// service is unreachable (`service.reachable = false`: a blocked path from the start).
/// Whether any group's route goes through the proxy.
fn groups_route_proxy(sc: &Scenario) -> bool {
    sc.resolved_groups()
        .iter()
        .any(|g| g.profile.route.vias(true).contains(&true))
}

/// The report's proxy figures: the embedded proxies' summed, or the external proxy's URL.
fn proxy_report(
    p: &pushsim_scenario::Proxy,
    stats: Option<&pushsim_netfault::connect::ProxyStats>,
) -> pushsim_report::model::ProxyReport {
    let mut r = pushsim_report::model::ProxyReport {
        kind: if p.url.is_some() {
            "external"
        } else {
            "embedded"
        }
        .into(),
        url: p.url.clone(),
        ..Default::default()
    };
    if let Some(s) = stats {
        r.connections = s.connections;
        r.refused = s.refused;
        r.statuses = s
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        r.unanswered = s.unanswered;
        r.closed = s.closed.clone();
        r.bytes_up = s.bytes[0];
        r.bytes_down = s.bytes[1];
        r.max_open = s.max_open;
    }
    r
}

fn effective_network(sc: &Scenario) -> Network {
    let mut n = sc.network.clone();
    if !sc.service.reachable {
        for (list, name) in [
            (&mut n.primary, "unreachable.primary"),
            (&mut n.fallback, "unreachable.fallback"),
        ] {
            let mut r = NetRule::new("refuse");
            r.name = Some(name.into());
            list.insert(0, r);
        }
    }
    n
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Waits until wall-clock `at` (showing why); returns the run start on the run clock and how
/// late it is against `at` in seconds (0 when on time), or none on Ctrl-C.
async fn wait_for(
    at: SystemTime,
    obs: &dyn Observer,
    interrupt: &mut watch::Receiver<bool>,
) -> Option<(u64, f64)> {
    // Wake a little early and start on the run clock, which is finer than the sleep.
    const EARLY: Duration = Duration::from_millis(100);
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        obs.phase(Phase::Waiting(format!(
            "ready; waiting for the common start at {} (in {:.1} s)",
            humantime::format_rfc3339_millis(at),
            wait.as_secs_f64()
        )));
        if wait > EARLY {
            tokio::select! {
                _ = tokio::time::sleep(wait - EARLY) => {}
                r = interrupt.wait_for(|i| *i) => if r.is_ok() { return None },
            }
        }
    }
    match at.duration_since(SystemTime::now()) {
        Ok(rest) => Some((mono_ns() + rest.as_nanos() as u64, 0.0)),
        Err(late) => {
            let late = late.duration();
            obs.phase(Phase::Waiting(format!(
                "this shard is {:.1} s late for the common start at {}; its report says so",
                late.as_secs_f64(),
                humantime::format_rfc3339_millis(at)
            )));
            Some((mono_ns(), late.as_secs_f64()))
        }
    }
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
