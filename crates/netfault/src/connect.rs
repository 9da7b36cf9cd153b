//! The embedded HTTP CONNECT proxy: reads a request head, answers as its rules say
//! (`crate::connect_rule`), and for a `200` carries bytes both ways until either side closes or
//! the tunnel stays idle past a `tunnel_idle_timeout`. It tunnels only to loopback addresses
//! (anything else gets 403), and records every request: target, status, bytes, open and close
//! times, and why it closed.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushsim_metrics::clock::mono_ns as now_ns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::connect_rule::{self, Answer, OnAccept, ProxyRule};
use crate::proxy::{reset, stopped, swallow};
use crate::rule::Ns;

/// Largest request head read.
const HEAD_MAX: usize = 8 * 1024;
/// Bound on a client sending its request head, and on connecting to the target.
const STEP: Duration = Duration::from_secs(10);

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TunnelRecord {
    /// The CONNECT target (empty when the request did not parse).
    pub target: String,
    /// The status answered (0: none, the proxy hung or the client left first).
    pub status: u16,
    /// Bytes client to target, and back.
    pub bytes: [u64; 2],
    /// Accepted at.
    pub open_ns: Ns,
    /// Closed at.
    pub close_ns: Ns,
    /// Why it closed: `client`, `target`, `idle`, `answered`, `hang`, `stop`.
    pub closed: String,
}

struct Inner {
    rules: watch::Sender<Arc<Vec<ProxyRule>>>,
    stop: watch::Sender<bool>,
    open: AtomicUsize,
    records: Mutex<Vec<TunnelRecord>>,
}

/// An HTTP CONNECT proxy with faults.
#[derive(Clone)]
pub struct ConnectProxy {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConnectProxy {
    /// A proxy applying `rules`.
    pub fn new(rules: Vec<ProxyRule>) -> Self {
        Self {
            inner: Arc::new(Inner {
                rules: watch::Sender::new(Arc::new(rules)),
                stop: watch::Sender::new(false),
                open: AtomicUsize::new(0),
                records: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Listens on `addr` (port 0: any); returns the bound address. Inside a tokio runtime.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let std = std::net::TcpListener::bind(addr)?;
        std.set_nonblocking(true)?;
        let l = TcpListener::from_std(std)?;
        let local = l.local_addr()?;
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut stop = inner.stop.subscribe();
            loop {
                tokio::select! {
                    a = l.accept() => match a {
                        Ok((sock, _)) => {
                            let _ = sock.set_nodelay(true);
                            tokio::spawn(serve(inner.clone(), sock));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "connect proxy accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                    _ = stopped(&mut stop) => return,
                }
            }
        });
        Ok(local)
    }

    /// Replaces the rules (new requests and open tunnels' idle timeout follow them).
    pub fn set_rules(&self, rules: Vec<ProxyRule>) {
        let _ = self.inner.rules.send(Arc::new(rules));
    }

    /// Every request so far.
    pub fn records(&self) -> Vec<TunnelRecord> {
        lock(&self.inner.records).clone()
    }

    /// Tunnels open now.
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Closes the listener and every tunnel.
    pub fn stop(&self) {
        let _ = self.inner.stop.send(true);
    }
}

/// Reads a request head (up to the blank line); returns it and any bytes after it.
async fn read_head(sock: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        if buf.len() > HEAD_MAX {
            return Some((buf, Vec::new()));
        }
    }
}

/// Whether `target` (`host:port`) is on loopback; returns its address.
async fn loopback(target: &str) -> Option<SocketAddr> {
    let addrs = tokio::net::lookup_host(target).await.ok()?;
    let all: Vec<SocketAddr> = addrs.collect();
    let ok = |ip: IpAddr| ip.is_loopback();
    all.into_iter().find(|a| ok(a.ip()))
}

async fn serve(inner: Arc<Inner>, mut sock: TcpStream) {
    let open_ns = now_ns();
    let mut rec = TunnelRecord {
        target: String::new(),
        status: 0,
        bytes: [0, 0],
        open_ns,
        close_ns: 0,
        closed: "client".into(),
    };
    let rules = Arc::clone(&inner.rules.borrow());
    if connect_rule::on_accept(&rules, inner.open.load(Ordering::Relaxed), open_ns)
        == OnAccept::Refuse
    {
        rec.closed = "refused".into();
        rec.close_ns = now_ns();
        lock(&inner.records).push(rec);
        reset(sock);
        return;
    }
    let mut stop = inner.stop.subscribe();
    let head = tokio::select! {
        h = tokio::time::timeout(STEP, read_head(&mut sock)) => h.ok().flatten(),
        _ = stopped(&mut stop) => None,
    };
    let Some((head, rest)) = head else {
        rec.close_ns = now_ns();
        lock(&inner.records).push(rec);
        return;
    };
    let answer = match connect_rule::parse_request(&head) {
        Err(code) => Answer::Status {
            code,
            delay: Duration::ZERO,
        },
        Ok((_, target)) => {
            rec.target = target.clone();
            let rules = Arc::clone(&inner.rules.borrow());
            connect_rule::answer(
                &rules,
                &target,
                inner.open.load(Ordering::Relaxed),
                now_ns(),
            )
        }
    };
    match answer {
        Answer::Hang => {
            rec.closed = "hang".into();
            swallow(sock, stop).await;
        }
        Answer::Status { code, delay } => {
            tokio::time::sleep(delay).await;
            answer_status(&mut sock, &mut rec, code).await;
        }
        Answer::Tunnel { target, delay } => {
            let up = match loopback(&target).await {
                None => Err(403),
                Some(addr) => match tokio::time::timeout(STEP, TcpStream::connect(addr)).await {
                    Ok(Ok(s)) => Ok(s),
                    _ => Err(502),
                },
            };
            match up {
                Err(code) => answer_status(&mut sock, &mut rec, code).await,
                Ok(mut up) => {
                    let _ = up.set_nodelay(true);
                    tokio::time::sleep(delay).await;
                    rec.status = 200;
                    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
                    if sock.write_all(ok).await.is_ok()
                        && (rest.is_empty() || up.write_all(&rest).await.is_ok())
                    {
                        rec.bytes[0] = rest.len() as u64;
                        inner.open.fetch_add(1, Ordering::Relaxed);
                        rec.closed =
                            tunnel(&inner, &mut sock, &mut up, &mut rec.bytes, &mut stop).await;
                        inner.open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    rec.close_ns = now_ns();
    lock(&inner.records).push(rec);
}

/// Answers `code` and closes.
async fn answer_status(sock: &mut TcpStream, rec: &mut TunnelRecord, code: u16) {
    rec.status = code;
    rec.closed = "answered".into();
    let _ = sock
        .write_all(connect_rule::status_head(code).as_bytes())
        .await;
    let _ = sock.shutdown().await;
}

/// Carries bytes both ways; returns why it ended.
async fn tunnel(
    inner: &Inner,
    client: &mut TcpStream,
    target: &mut TcpStream,
    bytes: &mut [u64; 2],
    stop: &mut watch::Receiver<bool>,
) -> String {
    let (mut cr, mut cw) = client.split();
    let (mut tr, mut tw) = target.split();
    let mut ub = [0u8; 2048];
    let mut db = [0u8; 2048];
    let mut rules = inner.rules.subscribe();
    loop {
        let idle = connect_rule::idle_timeout(&rules.borrow_and_update(), now_ns());
        let idle_sleep = async {
            match idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = cr.read(&mut ub) => match r {
                Ok(n) if n > 0 => {
                    if tw.write_all(&ub[..n]).await.is_err() { return "target".into() }
                    bytes[0] += n as u64;
                }
                _ => { let _ = tw.shutdown().await; return "client".into() }
            },
            r = tr.read(&mut db) => match r {
                Ok(n) if n > 0 => {
                    if cw.write_all(&db[..n]).await.is_err() { return "client".into() }
                    bytes[1] += n as u64;
                }
                _ => { let _ = cw.shutdown().await; return "target".into() }
            },
            _ = idle_sleep => {
                let _ = cw.shutdown().await;
                let _ = tw.shutdown().await;
                return "idle".into();
            }
            _ = rules.changed() => {}
            _ = stopped(stop) => return "stop".into(),
        }
    }
}
