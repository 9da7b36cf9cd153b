//! Toxiproxy compatibility: the `toxiproxy_rust` client drives pushsim's API, and the toxics it
//! sets act on real connections.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use toxiproxy_rust::client::Client;
use toxiproxy_rust::proxy::ProxyPack;

/// A blocking echo server on loopback.
fn echo() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Round trip of `msg` through `addr`: what came back (until `want` bytes, EOF, or an error)
/// and how long it took.
fn round_trip(addr: &str, msg: &[u8], want: usize) -> (Result<Vec<u8>, ErrorKind>, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.write_all(msg);
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < want {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (Err(e.kind()), t.elapsed()),
        }
    }
    (Ok(got), t.elapsed())
}

/// A raw HTTP request (for what the client crate cannot send); returns the status line and body.
fn http(api: SocketAddr, method: &str, path: &str, body: &str) -> (String, String) {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.lines().next().unwrap_or_default().to_string();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_toxiproxy_rust_client_drives_the_api_and_its_toxics_act() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = l.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(pushsim_netfault::standalone::serve(l, async {
        let _ = stopped.await;
    }));
    let upstream = echo();

    let checks = tokio::task::spawn_blocking(move || {
        let c = Client::new(api);
        assert!(c.is_running());
        assert!(c.version().unwrap().contains("2.12"), "{:?}", c.version());
        let proxies = c
            .populate(vec![ProxyPack::new(
                "echo".into(),
                "127.0.0.1:0".into(),
                upstream.to_string(),
            )])
            .unwrap();
        assert_eq!(proxies.len(), 1);
        let listen = proxies[0].proxy_pack.listen.clone();
        assert!(
            !listen.ends_with(":0"),
            "the bound port is reported: {listen}"
        );
        assert!(c.all().unwrap().contains_key("echo"));
        assert!(c.find_proxy("nope").is_err());

        let (r, quick) = round_trip(&listen, b"hi", 2);
        assert_eq!(r.unwrap(), b"hi");

        // latency downstream, 300 ms
        let p = c.find_and_reset_proxy("echo").unwrap();
        p.with_latency("downstream".into(), 300, 0, 1.0);
        assert_eq!(p.toxics().unwrap().len(), 1);
        let (r, slow) = round_trip(&listen, b"hi", 2);
        assert_eq!(r.unwrap(), b"hi");
        assert!(slow >= Duration::from_millis(290), "{slow:?}");
        assert!(slow < quick + Duration::from_secs(2), "{slow:?}");
        p.delete_all_toxics().unwrap();
        assert!(p.toxics().unwrap().is_empty());

        // limit_data: 3 bytes, then the connection closes
        p.with_limit_data("downstream".into(), 3, 1.0);
        let (r, _) = round_trip(&listen, b"hello", 5);
        assert_eq!(r.unwrap(), b"hel");
        c.reset().unwrap();

        // a disabled proxy takes no connections
        p.with_down(|| {
            let (r, _) = round_trip(&listen, b"x", 1);
            assert!(matches!(r.as_deref(), Err(_) | Ok([])), "{r:?}");
        })
        .unwrap();
        assert_eq!(round_trip(&listen, b"x", 1).0.unwrap(), b"x");

        // This project's extra toxics go through the same routes.
        let (status, body) = http(
            api,
            "POST",
            "/proxies/echo/toxics",
            r#"{"name":"nat","type":"idle_drop","attributes":{"after":200,"mode":"fin"}}"#,
        );
        assert!(status.contains("200"), "{status} {body}");
        let mut s = TcpStream::connect(&listen).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let t = Instant::now();
        assert_eq!(s.read(&mut [0u8; 8]).unwrap(), 0, "idle 200 ms: FIN");
        assert!(t.elapsed() >= Duration::from_millis(190));

        // Errors in Toxiproxy's shape.
        let (status, body) = http(
            api,
            "POST",
            "/proxies/echo/toxics",
            r#"{"type":"latency","stream":"sideways"}"#,
        );
        assert!(status.contains("400"), "{status}");
        assert!(
            body.contains("sideways") && body.contains("\"status\":400"),
            "{body}"
        );
        let (status, _) = http(
            api,
            "POST",
            "/proxies/echo/toxics",
            r#"{"name":"nat","type":"close"}"#,
        );
        assert!(status.contains("409"), "{status}");
        let (status, _) = http(api, "GET", "/proxies/echo/toxics/none", "");
        assert!(status.contains("404"), "{status}");
        let (status, _) = http(api, "DELETE", "/proxies/echo", "");
        assert!(status.contains("204"), "{status}");
        assert!(c.all().unwrap().is_empty());
    });
    tokio::time::timeout(Duration::from_secs(60), checks)
        .await
        .expect("bounded")
        .expect("checks passed");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
