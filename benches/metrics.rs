//! The recorder's cost: `metrics/record_wakeup` (the hot path on every wake-up an agent gets)
//! and `metrics/merge_snapshots_4x10000` (the orchestrator merging four sites' snapshots).

use criterion::{criterion_group, criterion_main, Criterion};
use pushsim_metrics::{Recorder, Snapshot};

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

criterion_group!(benches, metrics);
criterion_main!(benches);
