//! `swallow` as a TLS client meets it: the TCP connect succeeds, the handshake never completes;
//! through a rule-less middlebox the same handshake (with client certificate) does.

use std::sync::Arc;
use std::time::Duration;

use pushsim_netfault::{Middlebox, NoEvents, Rule, RuleSet, Tag};
use pushsim_pki::tls::{server_config, ClientTls};
use pushsim_pki::Ca;
use pushsim_scenario::{Fault, PortRole};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[tokio::test]
async fn swallow_lets_tcp_connect_and_never_lets_tls_finish() {
    let ca = Ca::generate().unwrap();
    let server = ca
        .issue_server(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let acceptor = TlsAcceptor::from(server_config(ca.cert(), &server).unwrap());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let mut b = [0u8; 4];
                    if tls.read_exact(&mut b).await.is_ok() {
                        let _ = tls.write_all(&b).await;
                        let _ = tls.flush().await;
                    }
                }
            });
        }
    });
    let client = ClientTls::new(ca.cert())
        .unwrap()
        .config(&ca.issue_client("agent-000001").unwrap())
        .unwrap();
    let connector = TlsConnector::from(client);
    let name = ServerName::try_from("localhost").unwrap();
    let tag = Tag {
        role: PortRole::Primary,
        group: 0,
    };
    let any = "127.0.0.1:0".parse().unwrap();

    let open = Middlebox::new(RuleSet::default(), Arc::new(NoEvents));
    let open_at = open.listen(any, up, tag).unwrap();
    let tcp = TcpStream::connect(open_at).await.unwrap();
    let mut tls =
        tokio::time::timeout(Duration::from_secs(5), connector.connect(name.clone(), tcp))
            .await
            .expect("handshake in time")
            .expect("handshake through a rule-less middlebox");
    tls.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    tls.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");

    let swallowing = Middlebox::new(
        RuleSet {
            rules: vec![Rule::new(0, "blocked", Fault::Swallow)],
            seed: 1,
        },
        Arc::new(NoEvents),
    );
    let at = swallowing.listen(any, up, tag).unwrap();
    let tcp = TcpStream::connect(at).await.expect("TCP connect succeeds");
    let handshake =
        tokio::time::timeout(Duration::from_millis(700), connector.connect(name, tcp)).await;
    assert!(handshake.is_err(), "the handshake must still be waiting");
    assert_eq!(swallowing.counts().swallowed, 1);
}
