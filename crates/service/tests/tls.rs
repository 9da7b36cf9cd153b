//! The edge's TLS on real loopback sockets, with rumqttd behind it: who gets in and who does not,
//! and that a silent client holds nobody up.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pushsim_pki::tls::{server_config, ClientTls};
use pushsim_pki::{Ca, Identity};
use pushsim_service::edge::{Edge, EdgeConfig};
use pushsim_service::{broker, ports};
use rumqttc::{
    AsyncClient, ConnectionError, Event, MqttOptions, NetworkOptions, Packet, TlsConfiguration,
    Transport,
};
use tokio::sync::{watch, OnceCell};

const BOUND: Duration = Duration::from_secs(20);

/// One rumqttd per test process (it cannot be stopped).
async fn broker_listeners() -> Vec<SocketAddr> {
    static B: OnceCell<Vec<SocketAddr>> = OnceCell::const_new();
    B.get_or_init(|| async {
        let addrs = ports::free_ports(2).unwrap();
        broker::start(broker::config(&addrs, 1_000)).unwrap();
        broker::wait_ready(&addrs, BOUND).await.unwrap();
        addrs
    })
    .await
    .clone()
}

struct Service {
    ca: Ca,
    server: Identity,
    addr: SocketAddr,
    edge: Arc<Edge>,
    _stop: watch::Sender<bool>,
}

async fn service(handshake_timeout: Duration) -> Service {
    let ca = Ca::generate().unwrap();
    let server = ca
        .issue_server(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let cfg = EdgeConfig::new(
        server_config(ca.cert(), &server).unwrap(),
        broker_listeners().await,
        handshake_timeout,
    );
    let edge = Edge::new(cfg);
    let listener = ports::listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = watch::channel(false);
    tokio::spawn(edge.clone().serve(listener, rx));
    Service {
        ca,
        server,
        addr,
        edge,
        _stop: stop,
    }
}

/// Waits (bounded) until the edge's counters satisfy `f`: the client may see the TLS alert a
/// moment before the edge's task counts it.
async fn counts_reach(edge: &Edge, f: impl Fn(&pushsim_service::edge::EdgeCounts) -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !f(&edge.counts()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "edge counts never reached: {:?}",
            edge.counts()
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Connects one MQTT client over TLS; Ok when CONNACK arrives.
async fn connect(
    addr: SocketAddr,
    id: &str,
    tls: Arc<rustls::ClientConfig>,
) -> Result<(), ConnectionError> {
    let mut o = MqttOptions::new(id, "localhost", addr.port());
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
    o.set_keep_alive(Duration::from_secs(30));
    let (_client, mut ev) = AsyncClient::new(o, 2);
    let mut net = NetworkOptions::new();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(10);
    ev.set_network_options(net);
    match tokio::time::timeout(BOUND, ev.poll())
        .await
        .expect("bounded")
    {
        Ok(Event::Incoming(Packet::ConnAck(_))) => Ok(()),
        Ok(other) => panic!("unexpected first event {other:?}"),
        Err(e) => Err(e),
    }
}

#[tokio::test]
async fn agent_with_run_certificate_connects() {
    let s = service(Duration::from_secs(10)).await;
    let tls = ClientTls::new(s.ca.cert()).unwrap();
    let id = s.ca.issue_client("agent-000001").unwrap();
    connect(s.addr, "agent-000001", tls.config(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(s.edge.counts().handshakes, 1);
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let s = service(Duration::from_secs(10)).await;
    let other = Ca::generate().unwrap();
    let id = other.issue_client("agent-000002").unwrap();
    // Trusts the service, but presents a certificate the service's CA did not sign.
    let tls = ClientTls::new(s.ca.cert()).unwrap();
    let r = connect(s.addr, "agent-000002", tls.config(&id).unwrap()).await;
    assert!(r.is_err(), "foreign client certificate accepted");
    counts_reach(&s.edge, |c| c.handshake_failures == 1).await;
    assert_eq!(s.edge.counts().handshakes, 0);
}

#[tokio::test]
async fn agent_without_certificate_is_refused() {
    let s = service(Duration::from_secs(10)).await;
    let tls = ClientTls::new(s.ca.cert()).unwrap();
    let r = connect(s.addr, "agent-000003", tls.config_without_cert().unwrap()).await;
    assert!(r.is_err(), "client without certificate accepted");
    counts_reach(&s.edge, |c| c.handshake_failures == 1).await;
    assert_eq!(s.edge.counts().handshakes, 0);
}

#[tokio::test]
async fn agent_that_does_not_trust_the_service_refuses_it() {
    let s = service(Duration::from_secs(10)).await;
    let other = Ca::generate().unwrap();
    let id = s.ca.issue_client("agent-000004").unwrap();
    let tls = ClientTls::new(other.cert()).unwrap();
    let r = connect(s.addr, "agent-000004", tls.config(&id).unwrap()).await;
    let e = r.expect_err("agent accepted a service it does not trust");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
}

#[tokio::test]
async fn silent_client_does_not_delay_other_agents() {
    // The silent client's handshake can only end by the timeout, long after the others connect.
    let s = service(Duration::from_secs(60)).await;
    let silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let tls = ClientTls::new(s.ca.cert()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let id = s.ca.issue_client(&format!("agent-{i:06}")).unwrap();
        let cfg = tls.config(&id).unwrap();
        let addr = s.addr;
        tasks.push(tokio::spawn(async move {
            connect(addr, &format!("silent-test-{i}"), cfg).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let c = s.edge.counts();
    assert_eq!(c.accepted, 51);
    assert_eq!(c.handshakes, 50);
    assert_eq!(
        c.handshake_timeouts, 0,
        "the silent client was still waiting when all 50 got in"
    );
    drop(silent);
}

#[tokio::test]
async fn silent_client_is_dropped_at_the_handshake_timeout() {
    let s = service(Duration::from_millis(300)).await;
    let mut silent = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let mut buf = [0u8; 1];
    // The edge closes it: read returns EOF (or reset) instead of waiting forever.
    let n = tokio::time::timeout(BOUND, tokio::io::AsyncReadExt::read(&mut silent, &mut buf))
        .await
        .expect("edge never closed the silent client");
    assert!(matches!(n, Ok(0) | Err(_)));
    counts_reach(&s.edge, |c| c.handshake_timeouts == 1).await;
}

/// Presents the service's certificate with a key of its own, not the certificate's.
#[derive(Debug)]
struct Impostor(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Impostor {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn a_remembered_chain_does_not_let_an_impostor_without_the_key_in() {
    let s = service(Duration::from_secs(10)).await;
    let tls = ClientTls::new(s.ca.cert()).unwrap();
    let id = s.ca.issue_client("agent-000005").unwrap();
    let cfg = tls.config(&id).unwrap();
    // The real service: the chain is verified and remembered.
    connect(s.addr, "agent-000005", cfg.clone()).await.unwrap();
    // Same certificate bytes, another key (the key of another certificate of the same CA).
    let other_key = s.ca.issue_server(&["localhost"], &[]).unwrap().key_der();
    let provider = pushsim_pki::tls::provider();
    let signer = provider.key_provider.load_private_key(other_key).unwrap();
    let key = rustls::sign::CertifiedKey::new(vec![s.server.cert.clone()], signer);
    let impostor_cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Impostor(Arc::new(key))));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(impostor_cfg));
    let listener = ports::listen("127.0.0.1:0".parse().unwrap(), false).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.map(|_| ())
    });
    let e = connect(addr, "agent-000005", cfg)
        .await
        .expect_err("an impostor with the service's certificate but not its key got in");
    assert!(e.to_string().to_lowercase().contains("signature"), "{e}");
    assert_eq!(
        tls.chains_verified(),
        1,
        "the impostor's chain was the remembered one: only the signature refused it"
    );
    let served = tokio::time::timeout(BOUND, server)
        .await
        .expect("bounded")
        .unwrap();
    assert!(served.is_err(), "the impostor's handshake completed");
}
