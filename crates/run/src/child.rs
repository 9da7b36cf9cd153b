//! The child side of a run: `pushsim __child <role>` reads its [`Spec`] from stdin and becomes a
//! broker, an edge or a site. It reports on stdout ([`FromChild`], one JSON line each) and stops
//! when told, or at once when its stdin closes (the orchestrator is gone).

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use pushsim_agent::driver::AgentRun;
use pushsim_agent::ids::{agent_id, start_offset_ns};
use pushsim_agent::{identity, ProxySetup, Site, SiteConfig};
use pushsim_netfault::RuleSet;
use pushsim_pki::files;
use pushsim_pki::tls::{server_config, ClientTls};
use pushsim_service::edge::{Edge, EdgeConfig};
use pushsim_service::{broker, ports};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio::sync::watch;

use crate::ipc::{Done, EdgeSpec, FromChild, Ready, SiteSpec, Spec, ToChild};
use crate::limits;

/// How long rumqttd gets to answer on every listener.
const BROKER_READY: Duration = Duration::from_secs(20);

fn emit(msg: &FromChild) {
    let Ok(line) = serde_json::to_string(msg) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    // The parent reading our stdout is gone if this fails; stdin EOF will end us.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs a child of `role` to completion; returns the exit code.
pub fn main(role: &str) -> i32 {
    limits::raise_nofile();
    let mut first = String::new();
    if std::io::stdin().lock().read_line(&mut first).is_err() || first.trim().is_empty() {
        eprintln!(
            "pushsim __child {role}: expected a spec line on stdin (this is an internal command)"
        );
        return 2;
    }
    let spec: Spec = match serde_json::from_str(&first) {
        Ok(s) => s,
        Err(e) => {
            emit(&FromChild::Error(format!("bad spec: {e}")));
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            emit(&FromChild::Error(format!("cannot start a runtime: {e}")));
            return 3;
        }
    };
    let result = rt.block_on(async move {
        match spec {
            Spec::Broker { listeners, agents } => run_broker(listeners, agents).await,
            Spec::Edge(e) => run_edge(e).await,
            Spec::Site(s) => run_site(*s).await,
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            emit(&FromChild::Error(e));
            3
        }
    }
}

type Commands = Lines<BufReader<Stdin>>;

fn commands() -> Commands {
    BufReader::new(tokio::io::stdin()).lines()
}

/// The next command; `None` when stdin closed or sent something unreadable.
async fn next(cmds: &mut Commands) -> Option<ToChild> {
    loop {
        match cmds.next_line().await {
            Ok(Some(line)) if line.trim().is_empty() => continue,
            Ok(Some(line)) => return serde_json::from_str(&line).ok(),
            _ => return None,
        }
    }
}

async fn until_eof(cmds: &mut Commands) {
    while let Ok(Some(_)) = cmds.next_line().await {}
}

async fn run_broker(listeners: u32, agents: u32) -> Result<(), String> {
    // rumqttd panics inside its listener tasks on some inputs and then refuses every later
    // connect (a poisoned lock; rumqtt issue #1062 is one). A broker in that state would make
    // the run's numbers meaningless: report the panic and end this process, so the run stops
    // with exit 3 and says why.
    std::panic::set_hook(Box::new(|info| {
        emit(&FromChild::Error(format!(
            "rumqttd panicked and cannot recover within this process: {info} (rumqttd 0.20; see rumqtt issue #1062)"
        )));
        std::process::exit(3);
    }));
    let addrs = ports::free_ports(listeners as usize).map_err(|e| e.to_string())?;
    broker::start(broker::config(&addrs, agents as usize)).map_err(|e| e.to_string())?;
    broker::wait_ready(&addrs, BROKER_READY)
        .await
        .map_err(|e| e.to_string())?;
    emit(&FromChild::Ready(Ready::Broker { listeners: addrs }));
    let mut cmds = commands();
    while let Some(cmd) = next(&mut cmds).await {
        if matches!(cmd, ToChild::Stop) {
            emit(&FromChild::Done(Box::default()));
        }
    }
    // rumqttd cannot be stopped: the process ends with it.
    std::process::exit(0);
}

async fn run_edge(spec: EdgeSpec) -> Result<(), String> {
    let ca = files::read_ca(&spec.pki).map_err(|e| e.to_string())?;
    let server = files::read_server(&spec.pki).map_err(|e| e.to_string())?;
    let tls = server_config(ca.cert(), &server).map_err(|e| e.to_string())?;
    let primary = ports::listen(spec.primary, spec.reuse_port).map_err(|e| e.to_string())?;
    let fallback = ports::listen(spec.fallback, spec.reuse_port).map_err(|e| e.to_string())?;
    let local = |l: &tokio::net::TcpListener| l.local_addr().map_err(|e| e.to_string());
    let ready = Ready::Edge {
        primary: local(&primary)?,
        fallback: local(&fallback)?,
    };
    let edge = Edge::new(EdgeConfig::new(
        tls,
        spec.upstreams,
        Duration::from_millis(spec.handshake_timeout_ms),
    ));
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(edge.clone().serve(primary, stop_rx.clone()));
    tokio::spawn(edge.clone().serve(fallback, stop_rx));
    emit(&FromChild::Ready(ready));
    let mut cmds = commands();
    while let Some(cmd) = next(&mut cmds).await {
        if matches!(cmd, ToChild::Stop) {
            emit(&FromChild::Done(Box::new(Done {
                edge: Some(edge.counts()),
                ..Default::default()
            })));
        }
    }
    // Stop accepting; let open pipes finish (their TLS sides close with close_notify when
    // rumqttd has gone), bounded.
    let _ = stop.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while edge.counts().active > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn run_site(spec: SiteSpec) -> Result<(), String> {
    let indices: Vec<u32> = spec.agents.iter().map(|(i, _)| *i).collect();
    let configs = match &spec.external_tls {
        Some(x) => vec![x.client_config()?; indices.len()],
        None => {
            let ca = Arc::new(files::read_ca(&spec.pki).map_err(|e| e.to_string())?);
            let tls = ClientTls::new(ca.cert()).map_err(|e| e.to_string())?;
            identity::issue(ca, tls, &indices)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    emit(&FromChild::Ready(Ready::Site));
    let mut cmds = commands();
    let t0_ns = match next(&mut cmds).await {
        Some(ToChild::Start { t0_ns }) => t0_ns,
        Some(_) => {
            emit(&FromChild::Done(Box::default()));
            until_eof(&mut cmds).await;
            return Ok(());
        }
        None => return Ok(()),
    };
    let cfg = SiteConfig {
        targets: spec.targets,
        server_name: spec.server_name.clone(),
        profiles: spec.profiles.clone(),
        checkin: spec.checkin,
        seed: spec.seed,
        network: spec.network.as_ref().map(|n| RuleSet {
            rules: pushsim_netfault::scenario::rules(n, &spec.group_names, t0_ns),
            seed: spec.seed,
        }),
        proxy: match &spec.proxy {
            None => None,
            Some(p) => Some(match &p.url {
                Some(u) => ProxySetup::External(pushsim_scenario::proxy_url(u)?),
                None => ProxySetup::Embedded(pushsim_netfault::scenario::proxy_rules(
                    p,
                    &spec.group_names,
                    t0_ns,
                )),
            }),
        },
    };
    let runs = spec
        .agents
        .iter()
        .zip(configs)
        .map(|(&(index, group), tls)| AgentRun {
            index,
            id: agent_id(index),
            tls,
            start_ns: t0_ns + start_offset_ns(index, spec.ramp_per_sec),
            group: usize::from(group),
        })
        .collect();
    let site = Site::start(cfg, runs, t0_ns)
        .await
        .map_err(|e| format!("middlebox or proxy: cannot listen on loopback: {e}"))?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            cmd = next(&mut cmds) => match cmd {
                Some(ToChild::Stop) => break,
                Some(ToChild::PathDown { at_ns }) => {
                    site.path_down(at_ns);
                    emit(&FromChild::Ack);
                }
                Some(ToChild::Proxy(p)) => site.set_proxy(&p),
                Some(ToChild::Start { .. }) => {}
                None => return Ok(()),
            },
            _ = tick.tick() => emit(&FromChild::Progress(site.progress())),
        }
    }
    let r = site.stop().await;
    emit(&FromChild::Done(Box::new(Done {
        groups: r.groups,
        edge: None,
        path: r.path,
        proxy: r.proxy,
        tunnels: r.tunnels,
    })));
    until_eof(&mut cmds).await;
    Ok(())
}
