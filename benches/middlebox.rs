//! The middlebox's cost per round trip: a 16-byte ping-pong over loopback TCP to an echo
//! server, straight (`middlebox/round_trip_direct`) and through a middlebox with no rule active
//! (`middlebox/round_trip_via_middlebox`); the difference is two passes through it.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use pushsim_netfault::{Middlebox, NoEvents, RuleSet, Tag};
use pushsim_scenario::PortRole;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

fn middlebox(c: &mut Criterion) {
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

criterion_group!(benches, middlebox);
criterion_main!(benches);
