//! What the benchmarks share: the service in this process (rumqttd on its threads, the TLS edge
//! on the caller's runtime), connected sites of agents, and a bounded wait on their counters.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushsim_agent::driver::AgentRun;
use pushsim_agent::ids::agent_id;
use pushsim_agent::{identity, Site, SiteConfig};
use pushsim_metrics::clock::mono_ns;
use pushsim_netfault::RuleSet;
use pushsim_pki::tls::{server_config, ClientTls};
use pushsim_pki::Ca;
use pushsim_service::edge::{Edge, EdgeConfig};
use pushsim_service::{broker, ports};
use tokio::sync::watch;

/// Bound of every wait in a benchmark.
pub const BOUND: Duration = Duration::from_secs(120);

/// Polls `f` until it holds (the only way to see a site's counters), bounded by [`BOUND`].
pub async fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < BOUND,
            "{what} did not happen within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// The service: rumqttd for `agents` behind an edge on a loopback port, with a fresh CA.
pub struct Service {
    /// The edge's TLS listener.
    pub addr: SocketAddr,
    /// The run's CA.
    pub ca: Arc<Ca>,
    /// What clients of this CA share.
    pub client_tls: ClientTls,
    _stop: watch::Sender<bool>,
}

/// Starts the service (call inside a tokio runtime; rumqttd cannot be stopped and stays until
/// the process ends).
pub async fn service(agents: usize) -> Service {
    pushsim_run::limits::raise_nofile();
    let upstreams = ports::free_ports(broker::listeners_for(agents)).expect("free ports");
    broker::start(broker::config(&upstreams, agents + 16)).expect("rumqttd");
    broker::wait_ready(&upstreams, BOUND)
        .await
        .expect("rumqttd ready");
    let ca = Arc::new(Ca::generate().expect("CA"));
    let server = ca
        .issue_server(&["localhost"], &["127.0.0.1".parse().expect("ip")])
        .expect("server cert");
    let tls = server_config(ca.cert(), &server).expect("server TLS");
    let edge = Edge::new(EdgeConfig::new(tls, upstreams, Duration::from_secs(10)));
    let listener = ports::listen("127.0.0.1:0".parse().expect("addr"), false).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = watch::channel(false);
    tokio::spawn(edge.serve(listener, rx));
    let client_tls = ClientTls::new(ca.cert()).expect("client TLS");
    Service {
        addr,
        ca,
        client_tls,
        _stop: stop,
    }
}

/// `count` agents (indices from `first`) connected to `svc`, through a middlebox with no rule
/// when `middlebox`; no check-ins. Returns once every one is connected.
pub async fn site(svc: &Service, first: u32, count: u32, middlebox: bool) -> Site {
    let indices: Vec<u32> = (first..first + count).collect();
    let configs = identity::issue(svc.ca.clone(), svc.client_tls.clone(), &indices)
        .await
        .expect("identities");
    let t0 = mono_ns();
    let runs = indices
        .iter()
        .zip(configs)
        .map(|(&i, tls)| AgentRun {
            index: i,
            id: agent_id(i),
            tls,
            start_ns: t0,
            group: 0,
        })
        .collect();
    let profile = pushsim_scenario::parse(
        "description = \"bench\"\nduration = \"1s\"\n[agents]\ncount = 1\nkeep_alive = \"60s\"\nendpoints = [\"primary\"]\n",
        "bench",
        "bench",
    )
    .expect("bench profile")
    .agents
    .profile();
    let cfg = SiteConfig {
        targets: [svc.addr, svc.addr],
        server_name: "localhost".into(),
        profiles: vec![profile],
        checkin: None,
        seed: 1,
        network: middlebox.then(RuleSet::default),
        proxy: None,
    };
    let site = Site::start(cfg, runs, t0).await.expect("site");
    until("agents connected", || {
        site.progress().connected == u64::from(count)
    })
    .await;
    site
}
