//! The embedded CONNECT proxy on real loopback sockets: a tunnel to an echo server, and every
//! fault as a client sees it.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use pushsim_netfault::connect::{ConnectProxy, NoProxyEvents, ProxyEvents};
use pushsim_netfault::connect_rule::{ProxyFault, ProxyRule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LONG: Duration = Duration::from_secs(5);

async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn proxy(faults: Vec<ProxyFault>) -> (ConnectProxy, SocketAddr, SocketAddr) {
    let up = echo().await;
    let p = ConnectProxy::new(
        faults.into_iter().map(ProxyRule::always).collect(),
        Arc::new(NoProxyEvents),
    );
    let at = p
        .listen("127.0.0.1:0".parse().unwrap(), 0, Vec::new())
        .unwrap();
    (p, at, up)
}

/// Sends `req`; returns the answer's head (or the read error kind) and the stream.
async fn ask(at: SocketAddr, req: &str, bound: Duration) -> (Result<String, ErrorKind>, TcpStream) {
    let mut s = TcpStream::connect(at).await.unwrap();
    let _ = s.write_all(req.as_bytes()).await;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(bound, async {
        loop {
            match s.read(&mut b).await {
                Ok(0) => return Ok(String::from_utf8_lossy(&head).into_owned()),
                Ok(_) => {
                    head.push(b[0]);
                    if head.ends_with(b"\r\n\r\n") {
                        return Ok(String::from_utf8_lossy(&head).into_owned());
                    }
                }
                Err(e) => return Err(e.kind()),
            }
        }
    })
    .await
    .unwrap_or(Err(ErrorKind::TimedOut));
    (r, s)
}

fn connect(up: SocketAddr) -> String {
    format!("CONNECT {up} HTTP/1.1\r\nHost: {up}\r\n\r\n")
}

#[tokio::test]
async fn a_tunnel_carries_bytes_and_is_recorded() {
    let (p, at, up) = proxy(vec![]).await;
    let (r, mut s) = ask(at, &connect(up), LONG).await;
    assert!(r.unwrap().starts_with("HTTP/1.1 200"));
    s.write_all(b"wake").await.unwrap();
    let mut b = [0u8; 4];
    tokio::time::timeout(LONG, s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"wake");
    assert_eq!(p.open(), 1);
    drop(s);
    let t = Instant::now();
    while p.records().is_empty() && t.elapsed() < LONG {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = &p.records()[0];
    assert_eq!(
        (r.status, r.bytes, r.closed.as_str()),
        (200, [4, 4], "client")
    );
    assert_eq!(r.target, up.to_string());
}

#[tokio::test]
async fn each_fault_answers_as_a_real_proxy_would() {
    let statuses = [
        (ProxyFault::AuthRequired, "HTTP/1.1 407"),
        (ProxyFault::Error(502), "HTTP/1.1 502"),
        (ProxyFault::Error(503), "HTTP/1.1 503"),
        (ProxyFault::AllowPorts(vec![443, 563]), "HTTP/1.1 403"),
    ];
    for (fault, want) in statuses {
        let (_p, at, up) = proxy(vec![fault.clone()]).await;
        let head = ask(at, &connect(up), LONG).await.0.unwrap();
        assert!(head.starts_with(want), "{fault:?}: {head}");
        if want.ends_with("407") {
            assert!(head.contains("Proxy-Authenticate: Basic"), "{head}");
        }
    }
    let (_p, at, up) = proxy(vec![ProxyFault::Down]).await;
    let r = ask(at, &connect(up), LONG).await.0;
    assert!(
        matches!(r, Err(ErrorKind::ConnectionReset) | Ok(_)),
        "{r:?}"
    );
    assert_ne!(r.as_deref().ok().map(|h| h.starts_with("HTTP")), Some(true));
    let (_p, at, up) = proxy(vec![ProxyFault::Hang]).await;
    let r = ask(at, &connect(up), Duration::from_millis(300)).await.0;
    assert_eq!(r, Err(ErrorKind::TimedOut));
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let (_p, at, up) = proxy(vec![ProxyFault::Latency(Duration::from_millis(200))]).await;
    let t = Instant::now();
    let head = ask(at, &connect(up), LONG).await.0.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"));
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn max_tunnels_answers_503_or_refuses_over_the_limit() {
    for refuse in [false, true] {
        let (p, at, up) = proxy(vec![ProxyFault::MaxTunnels { limit: 1, refuse }]).await;
        let (first, _keep) = ask(at, &connect(up), LONG).await;
        assert!(first.unwrap().starts_with("HTTP/1.1 200"));
        assert_eq!(p.open(), 1);
        let second = ask(at, &connect(up), LONG).await.0;
        if refuse {
            assert!(
                !matches!(&second, Ok(h) if h.starts_with("HTTP")),
                "{second:?}"
            );
        } else {
            assert!(second.unwrap().starts_with("HTTP/1.1 503"));
        }
    }
}

/// Cuts and notices, as a site records them.
#[derive(Default)]
struct Seen(Mutex<Vec<(&'static str, u16, u64)>>);

impl ProxyEvents for Seen {
    fn cut(&self, group: u16, at_ns: u64) {
        self.0.lock().unwrap().push(("cut", group, at_ns));
    }
    fn noticed(&self, group: u16, cut_ns: u64, at_ns: u64) {
        self.0
            .lock()
            .unwrap()
            .push(("noticed", group, at_ns - cut_ns));
    }
}

#[tokio::test]
async fn idle_tunnels_are_closed() {
    let up = echo().await;
    let seen = Arc::new(Seen::default());
    let rule = ProxyRule {
        id: 7,
        ..ProxyRule::always(ProxyFault::TunnelIdleTimeout(Duration::from_millis(300)))
    };
    let p = ConnectProxy::new(vec![rule], seen.clone());
    let at = p
        .listen("127.0.0.1:0".parse().unwrap(), 2, Vec::new())
        .unwrap();
    let (r, mut s) = ask(at, &connect(up), LONG).await;
    assert!(r.unwrap().starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    let mut b = [0u8; 8];
    let n = tokio::time::timeout(LONG, s.read(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed by the proxy");
    assert!(t.elapsed() >= Duration::from_millis(280));
    // The client notices 200 ms after the cut, and closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let deadline = Instant::now() + LONG;
    while p.records().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = &p.records()[0];
    assert_eq!((r.closed.as_str(), r.rule, r.group), ("idle", Some(7), 2));
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].0, seen[0].1), ("cut", 2));
    assert_eq!((seen[1].0, seen[1].1), ("noticed", 2));
    let noticed_after = Duration::from_nanos(seen[1].2);
    assert!(
        noticed_after >= Duration::from_millis(190) && noticed_after < LONG,
        "{noticed_after:?}"
    );
    let stats = p.stats();
    assert_eq!(stats.statuses.get(&200), Some(&1));
    assert_eq!(stats.closed.get("idle"), Some(&1));
    assert_eq!(stats.hits.get(&7), Some(&1));
}

#[tokio::test]
async fn rules_apply_to_their_groups_only() {
    let up = echo().await;
    let rule = ProxyRule {
        id: 4,
        groups: Some(vec![1]),
        ..ProxyRule::always(ProxyFault::Error(502))
    };
    let p = ConnectProxy::new(vec![rule], Arc::new(NoProxyEvents));
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (g0, g1) = (
        p.listen(any, 0, Vec::new()).unwrap(),
        p.listen(any, 1, Vec::new()).unwrap(),
    );
    let (a, _s0) = ask(g0, &connect(up), LONG).await;
    assert!(a.unwrap().starts_with("HTTP/1.1 200"));
    let (b, _s1) = ask(g1, &connect(up), LONG).await;
    assert!(b.unwrap().starts_with("HTTP/1.1 502"));
    let deadline = Instant::now() + LONG;
    while !p.stats().hits.contains_key(&4) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = p.stats();
    assert_eq!(s.hits.get(&4), Some(&1));
    assert_eq!(s.statuses.get(&502), Some(&1));
    assert_eq!(p.open(), 1);
}

#[tokio::test]
async fn bad_requests_get_4xx_and_only_loopback_is_tunnelled() {
    let (_p, at, up) = proxy(vec![]).await;
    let head = ask(at, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", LONG)
        .await
        .0
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    let head = ask(at, "CONNECT\r\n\r\n", LONG).await.0.unwrap();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let head = ask(at, "\u{1}\u{2} nonsense\r\n\r\n", LONG)
        .await
        .0
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let head = ask(at, "CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", LONG)
        .await
        .0
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 400"), "no port: {head}");
    // A documentation address (RFC 5737): refused before any connect is tried.
    let head = ask(at, "CONNECT 192.0.2.1:443 HTTP/1.1\r\n\r\n", LONG)
        .await
        .0
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    // The proxy still serves.
    let head = ask(at, &connect(up), LONG).await.0.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn allow_ports_sees_the_nominal_port_of_the_target() {
    let up = echo().await;
    let p = ConnectProxy::new(
        vec![ProxyRule::always(ProxyFault::AllowPorts(vec![443, 563]))],
        Arc::new(NoProxyEvents),
    );
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // The echo server stands for the 443 role here, for the 8883 role there.
    let as_443 = p.listen(any, 0, vec![(up.port(), 443)]).unwrap();
    let as_8883 = p.listen(any, 1, vec![(up.port(), 8883)]).unwrap();
    let (a, mut s) = ask(as_443, &connect(up), LONG).await;
    assert!(a.unwrap().starts_with("HTTP/1.1 200"));
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    tokio::time::timeout(LONG, s.read_exact(&mut b))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&b, b"ping", "tunnelled to the real port");
    let (r, _) = ask(as_8883, &connect(up), LONG).await;
    assert!(r.unwrap().starts_with("HTTP/1.1 403"));
}
