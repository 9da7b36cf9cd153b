//! The spine: one wake-up broadcast to 1,000 connected TLS agents through the edge and rumqttd,
//! from the first publish to the last agent's receipt, warm rounds only (the first publish to
//! each topic is rumqttd's cold scan).
//!
//! - `spine/broadcast_1000/direct`: agents connect to the edge.
//! - `spine/broadcast_1000/middlebox`: agents go through their site's middlebox with no rule
//!   active; the difference is what the middlebox costs a broadcast.
//!
//! Everything runs in this process: rumqttd on its threads, edge, agents (and the middlebox on
//! its thread) and console on one tokio runtime.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pushsim_agent::ids::agent_id;
use pushsim_console::{Console, Schedule};
use pushsim_metrics::clock::mono_ns;
use pushsim_metrics::{Ledger, Recorder};
use tokio::runtime::Runtime;
use tokio::sync::watch;

mod common;

const AGENTS: u32 = 1_000;

fn broadcast(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let mut g = c.benchmark_group("spine");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(u64::from(AGENTS)));
    for middlebox in [false, true] {
        let (site, console) = rt.block_on(async {
            let svc = common::service(AGENTS as usize).await;
            let site = common::site(&svc, 0, AGENTS, middlebox).await;
            let console_tls = svc
                .client_tls
                .config(&svc.ca.issue_client("console").expect("console cert"))
                .expect("console TLS");
            let ids = Arc::new((0..AGENTS).map(agent_id).collect());
            let console = Console::connect(
                svc.addr,
                "localhost",
                console_tls,
                "pushsim-console",
                ids,
                Duration::from_secs(10),
            )
            .await
            .expect("console");
            // The service lives as long as the process (rumqttd cannot stop).
            std::mem::forget(svc);
            (site, console)
        });
        let ledger = Mutex::new(Ledger::new());
        let rec = Mutex::new(Recorder::new(mono_ns()));
        let round = Schedule::plan(AGENTS, &[Duration::ZERO], None, 1);
        let (_never, stop) = watch::channel(false);
        let mut delivered = 0u64;
        // The cold round first, outside the measurement.
        rt.block_on(async {
            console
                .run(&round, mono_ns(), &ledger, &rec, None, stop.clone())
                .await;
            delivered += u64::from(AGENTS);
            common::until("cold round delivered", || {
                site.progress().wakeups_received >= delivered
            })
            .await;
        });
        let path = if middlebox { "middlebox" } else { "direct" };
        g.bench_function(BenchmarkId::new("broadcast_1000", path), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        delivered += u64::from(AGENTS);
                        let start = Instant::now();
                        console
                            .run(&round, mono_ns(), &ledger, &rec, None, stop.clone())
                            .await;
                        common::until("round delivered", || {
                            site.progress().wakeups_received >= delivered
                        })
                        .await;
                        total += start.elapsed();
                    }
                    total
                })
            })
        });
        rt.block_on(site.stop());
    }
    g.finish();
}

criterion_group!(benches, broadcast);
criterion_main!(benches);
