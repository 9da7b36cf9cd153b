//! Criterion benchmarks of the spine.
//!
//! - `spine/broadcast_500_tls_agents`: one wake-up broadcast to 500 connected TLS agents through
//!   the edge and rumqttd, from the first publish to the last agent's receipt (all in this
//!   process: rumqttd on its threads, edge, agents and console on one tokio runtime).
//! - `metrics/record_wakeup` and `metrics/merge_snapshots`: the recorder's hot path and the
//!   orchestrator's merge.
//! - `middlebox/round_trip_{direct,via_middlebox}`: a 16-byte ping-pong over loopback TCP to an
//!   echo server, straight and through a middlebox with no rule active; the difference is what
//!   the middlebox adds per round trip (two passes through it).
//!
//! `cargo bench` runs them; `cargo bench -- --quick` is the short mode CI uses.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use pushsim_agent::driver::AgentRun;
use pushsim_agent::ids::agent_id;
use pushsim_agent::{identity, Site, SiteConfig};
use pushsim_console::{Console, Schedule};
use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::{Ledger, Recorder, Snapshot};
use pushsim_netfault::{Middlebox, NoEvents, RuleSet, Tag};
use pushsim_pki::tls::{server_config, ClientTls};
use pushsim_pki::Ca;
use pushsim_scenario::PortRole;
use pushsim_service::edge::{Edge, EdgeConfig};
use pushsim_service::{broker, ports};
use tokio::runtime::Runtime;
use tokio::sync::watch;

const AGENTS: u32 = 500;
const BOUND: Duration = Duration::from_secs(60);

struct Fixture {
    site: Site,
    console: Console,
    _stop: watch::Sender<bool>,
}

/// Polls `f` until it holds (the bench's only way to see the site's counters), bounded.
async fn until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < BOUND,
            "{what} did not happen within {BOUND:?}"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

async fn fixture() -> Fixture {
    let upstreams = ports::free_ports(2).expect("free ports");
    broker::start(broker::config(&upstreams, AGENTS as usize)).expect("rumqttd");
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
    let indices: Vec<u32> = (0..AGENTS).collect();
    let configs = identity::issue(ca.clone(), client_tls.clone(), &indices)
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
    // No check-ins: the benchmark measures push alone.
    let cfg = SiteConfig {
        targets: [addr, addr],
        server_name: "localhost".into(),
        profiles: vec![profile],
        checkin: None,
        seed: 1,
        network: None,
        proxy: None,
    };
    let site = Site::start(cfg, runs, t0).await.expect("site");
    until("500 agents connected", || {
        site.progress().connected == u64::from(AGENTS)
    })
    .await;
    let console_tls = client_tls
        .config(&ca.issue_client("console").expect("console cert"))
        .expect("console TLS");
    let ids = Arc::new((0..AGENTS).map(agent_id).collect());
    let console = Console::connect(addr, "localhost", console_tls, ids, Duration::from_secs(10))
        .await
        .expect("console");
    Fixture {
        site,
        console,
        _stop: stop,
    }
}

fn broadcast(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let fx = rt.block_on(fixture());
    let ledger = Mutex::new(Ledger::new());
    let rec = Mutex::new(Recorder::new(mono_ns()));
    let round = Schedule::plan(AGENTS, &[Duration::ZERO], None, 1);
    let (_never, stop) = watch::channel(false);
    // The first round is cold (rumqttd's first publish per topic); measure warm rounds.
    rt.block_on(async {
        fx.console
            .run(&round, mono_ns(), &ledger, &rec, None, stop.clone())
            .await;
        until("cold round delivered", || {
            fx.site.progress().wakeups_received >= u64::from(AGENTS)
        })
        .await;
    });
    let mut g = c.benchmark_group("spine");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("broadcast_500_tls_agents", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let target = fx.site.progress().wakeups_received + u64::from(AGENTS);
                    let start = Instant::now();
                    fx.console
                        .run(&round, mono_ns(), &ledger, &rec, None, stop.clone())
                        .await;
                    until("round delivered", || {
                        fx.site.progress().wakeups_received >= target
                    })
                    .await;
                    total += start.elapsed();
                }
                total
            })
        })
    });
    g.finish();
}

fn metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics");
    g.bench_function("record_wakeup", |b| {
        let mut r = Recorder::new(0);
        let mut seq = 0u64;
        b.iter(|| {
            seq += 1;
            r.wakeup_received(seq, 1_000, 1_000 + seq % 50_000_000, false)
        })
    });
    let parts: Vec<Snapshot> = (0..4)
        .map(|p| {
            let mut r = Recorder::new(0);
            for i in 0..10_000u64 {
                r.wakeup_received(p * 10_000 + i, 0, (i % 5_000 + 1) * 1_000, i % 7 == 0);
                r.connected(0, (i % 900 + 1) * 10_000, 0, None);
            }
            r.snapshot()
        })
        .collect();
    g.bench_function("merge_snapshots_4x10000", |b| {
        b.iter(|| Snapshot::merged(parts.iter()))
    });
    g.finish();
}

fn middlebox(c: &mut Criterion) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = Runtime::new().expect("runtime");
    let (direct, via) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let echo = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.set_nodelay(true);
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let mb = Middlebox::new(RuleSet::default(), Arc::new(NoEvents));
        let tag = Tag {
            role: PortRole::Fallback,
            group: 0,
        };
        let front = mb
            .listen("127.0.0.1:0".parse().expect("addr"), echo, tag)
            .expect("listen");
        // Kept for the whole bench (its listener lives as long as the process).
        std::mem::forget(mb);
        let connect = |a| async move {
            let s = tokio::net::TcpStream::connect(a).await.expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s
        };
        (connect(echo).await, connect(front).await)
    });
    let mut g = c.benchmark_group("middlebox");
    for (name, stream) in [
        ("round_trip_direct", direct),
        ("round_trip_via_middlebox", via),
    ] {
        let mut s = stream;
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut buf = [0u8; 16];
                    s.write_all(&buf).await.expect("write");
                    s.read_exact(&mut buf).await.expect("read");
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, metrics, middlebox, broadcast);
criterion_main!(benches);
