//! The agents' connection policy (the pure state machine each agent's driver asks what to do):
//! `policy/steps` runs one cycle of a real agent's life — first decision, primary fails,
//! fallback fails (backoff drawn), next round connects, the connection is lost (backoff
//! drawn again) — and criterion reports steps per second (five per cycle).

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pushsim_agent::policy::{Decision, Policy};

fn policy(c: &mut Criterion) {
    let profile = pushsim_scenario::parse(
        "description = \"bench\"\nduration = \"1s\"\n[agents]\ncount = 1\n\
         endpoints = [\"primary\", \"fallback\"]\n\
         backoff = { policy = \"decorrelated-jitter\", base = \"1s\", cap = \"30s\" }\n",
        "bench",
        "bench",
    )
    .expect("bench profile")
    .agents
    .profile();
    let mut p = Policy::new(&profile, 1, 7, false);
    let mut now = Duration::ZERO;
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(5));
    g.bench_function("steps", |b| {
        b.iter(|| {
            let first = p.decide();
            let fallback = p.connect_failed();
            let wait = p.connect_failed();
            let Decision::Connect(e) = p.decide() else {
                panic!("a new round starts with a connect")
            };
            now += Duration::from_secs(60);
            p.connected(e, now);
            black_box((first, fallback, wait, p.lost(now + Duration::from_secs(1))))
        })
    });
    g.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
