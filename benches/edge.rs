//! The edge's TLS handshakes: full TLS 1.3 handshakes with client-certificate verification (the
//! agents turn resumption off, as a fleet after a restart has nothing to resume), counted done
//! when the edge has verified the client, not when the client thinks it is through.
//!
//! - `edge/tls_handshake/sequential`: one at a time (latency of one handshake, both sides).
//! - `edge/tls_handshake/concurrent_64`: 64 at once, the connect storm case; criterion's
//!   throughput is handshakes per second of this process doing both sides on this machine.
//!
//! The edge's upstream is a loopback listener that closes what it accepts: rumqttd is not in
//! this measurement.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pushsim_pki::tls::{server_config, ClientTls};
use pushsim_pki::Ca;
use pushsim_service::edge::{Edge, EdgeConfig};
use pushsim_service::ports;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

mod common;

async fn handshake(addr: std::net::SocketAddr, tls: TlsConnector) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let stream = tls.connect(name, tcp).await.expect("TLS handshake");
    drop(stream);
}

fn handshakes(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let (edge, addr, tls, _stop) = rt.block_on(async {
        pushsim_run::limits::raise_nofile();
        let sink = TcpListener::bind("127.0.0.1:0").await.expect("sink");
        let upstream = sink.local_addr().expect("addr");
        tokio::spawn(async move { while sink.accept().await.is_ok() {} });
        let ca = Ca::generate().expect("CA");
        let server = ca
            .issue_server(&["localhost"], &["127.0.0.1".parse().expect("ip")])
            .expect("server cert");
        let edge = Edge::new(EdgeConfig::new(
            server_config(ca.cert(), &server).expect("server TLS"),
            vec![upstream],
            Duration::from_secs(10),
        ));
        let listener = ports::listen("127.0.0.1:0".parse().expect("addr"), false).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let (stop, rx) = watch::channel(false);
        tokio::spawn(edge.clone().serve(listener, rx));
        let client = ClientTls::new(ca.cert())
            .expect("client TLS")
            .config(&ca.issue_client("agent-0").expect("client cert"))
            .expect("client config");
        (edge, addr, TlsConnector::from(client), stop)
    });
    let mut g = c.benchmark_group("edge/tls_handshake");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for concurrent in [1u64, 64] {
        let id = if concurrent == 1 {
            BenchmarkId::from_parameter("sequential")
        } else {
            BenchmarkId::from_parameter(format!("concurrent_{concurrent}"))
        };
        g.throughput(Throughput::Elements(concurrent));
        g.bench_function(id, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let target = edge.counts().handshakes + concurrent;
                    let tasks: Vec<_> = (0..concurrent)
                        .map(|_| tokio::spawn(handshake(addr, tls.clone())))
                        .collect();
                    for t in tasks {
                        t.await.expect("handshake task");
                    }
                    // The server side ends microseconds after the client's: yield, do not
                    // sleep (a tokio sleep is a whole millisecond).
                    let start = std::time::Instant::now();
                    while edge.counts().handshakes < target {
                        assert!(start.elapsed() < common::BOUND, "edge did not verify");
                        tokio::task::yield_now().await;
                    }
                })
            })
        });
    }
    g.finish();
    assert_eq!(edge.counts().handshake_failures, 0, "{:?}", edge.counts());
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
