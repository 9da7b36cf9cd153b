//! The embedded HTTP CONNECT proxy: reads a request head, answers as its rules say
//! (`crate::connect_rule`), and for a `200` carries bytes both ways until either side closes or
//! the tunnel stays idle past a `tunnel_idle_timeout`. It tunnels only to loopback addresses
//! (anything else gets 403), and records every request: target, status, bytes, open and close
//! times, and why it closed. Each listener belongs to a group of agents; rules may name groups.
//! A tunnel the proxy closes (`tunnel_idle_timeout`) is reported, and so is the moment its
//! client noticed.

use std::collections::BTreeMap;
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
/// How long a tunnel the proxy closed waits for its client to close too.
const NOTICE: Duration = Duration::from_secs(60);

/// What a proxy tells about the tunnels it cuts.
pub trait ProxyEvents: Send + Sync + 'static {
    /// A tunnel of `group` was closed by the proxy at `at_ns`.
    fn cut(&self, group: u16, at_ns: Ns);
    /// The client of a tunnel cut at `cut_ns` closed its side at `at_ns`.
    fn noticed(&self, group: u16, cut_ns: Ns, at_ns: Ns);
}

/// Events nobody listens to.
pub struct NoProxyEvents;

impl ProxyEvents for NoProxyEvents {
    fn cut(&self, _: u16, _: Ns) {}
    fn noticed(&self, _: u16, _: Ns, _: Ns) {}
}

/// What a proxy did, summed (mergeable over sites).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProxyStats {
    /// Connections accepted (including those refused at once).
    pub connections: u64,
    /// Connections refused (RST) at accept.
    pub refused: u64,
    /// Answers by status (`200` for tunnels opened).
    pub statuses: BTreeMap<u16, u64>,
    /// Requests never answered (the proxy hung, or the client left first).
    pub unanswered: u64,
    /// Tunnels by why they closed (`client`, `target`, `idle`, `stop`).
    pub closed: BTreeMap<String, u64>,
    /// Bytes through tunnels, client to target and back.
    pub bytes: [u64; 2],
    /// Most tunnels open at once.
    pub max_open: u64,
    /// Requests decided by each rule, by rule id.
    pub hits: BTreeMap<u32, u64>,
}

impl ProxyStats {
    /// Adds another proxy's figures (`max_open` adds too: the proxies ran side by side).
    pub fn add(&mut self, o: &ProxyStats) {
        self.connections += o.connections;
        self.refused += o.refused;
        for (k, v) in &o.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        self.unanswered += o.unanswered;
        for (k, v) in &o.closed {
            *self.closed.entry(k.clone()).or_default() += v;
        }
        self.bytes[0] += o.bytes[0];
        self.bytes[1] += o.bytes[1];
        self.max_open += o.max_open;
        for (k, v) in &o.hits {
            *self.hits.entry(*k).or_default() += v;
        }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TunnelRecord {
    /// The group of the listener it came in on.
    pub group: u16,
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
    /// Why it closed: `client`, `target`, `idle`, `answered`, `hang`, `refused`, `stop`.
    pub closed: String,
    /// The rule that decided it, if one did.
    pub rule: Option<u32>,
}

struct Inner {
    rules: watch::Sender<Arc<Vec<ProxyRule>>>,
    stop: watch::Sender<bool>,
    open: AtomicUsize,
    max_open: AtomicUsize,
    /// Connections being served (until their record is kept).
    active: watch::Sender<usize>,
    /// Held while a request is answered and its tunnel slot taken, so `max_tunnels` is exact.
    admit: Mutex<()>,
    records: Mutex<Vec<TunnelRecord>>,
    events: Arc<dyn ProxyEvents>,
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
    /// A proxy applying `rules`, telling `events` of the tunnels it cuts.
    pub fn new(rules: Vec<ProxyRule>, events: Arc<dyn ProxyEvents>) -> Self {
        Self {
            inner: Arc::new(Inner {
                rules: watch::Sender::new(Arc::new(rules)),
                stop: watch::Sender::new(false),
                open: AtomicUsize::new(0),
                max_open: AtomicUsize::new(0),
                active: watch::Sender::new(0),
                admit: Mutex::new(()),
                records: Mutex::new(Vec::new()),
                events,
            }),
        }
    }

    /// Listens on `addr` (port 0: any) for the agents of `group`; returns the bound address.
    /// `nominal` maps target ports to the ports rules see (the service's real ports are picked
    /// at run time; rules speak of 8883 and 443). Inside a tokio runtime.
    pub fn listen(
        &self,
        addr: SocketAddr,
        group: u16,
        nominal: Vec<(u16, u16)>,
    ) -> io::Result<SocketAddr> {
        let nominal = Arc::new(nominal);
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
                            inner.active.send_modify(|n| *n += 1);
                            tokio::spawn(serve(inner.clone(), sock, group, nominal.clone()));
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

    /// Resolves once no connection is being served (tunnels, requests, hung ones): after
    /// [`Self::stop`], when each has been closed and recorded.
    pub async fn drained(&self) {
        let mut active = self.inner.active.subscribe();
        let _ = active.wait_for(|n| *n == 0).await;
    }

    /// What it did so far, summed.
    pub fn stats(&self) -> ProxyStats {
        let mut s = ProxyStats {
            max_open: self.inner.max_open.load(Ordering::Relaxed) as u64,
            ..ProxyStats::default()
        };
        for r in lock(&self.inner.records).iter() {
            s.connections += 1;
            if let Some(id) = r.rule {
                *s.hits.entry(id).or_default() += 1;
            }
            match (r.closed.as_str(), r.status) {
                ("refused", _) => s.refused += 1,
                (_, 0) => s.unanswered += 1,
                (why, 200) => {
                    *s.statuses.entry(200).or_default() += 1;
                    *s.closed.entry(why.to_string()).or_default() += 1;
                    s.bytes[0] += r.bytes[0];
                    s.bytes[1] += r.bytes[1];
                }
                (_, code) => *s.statuses.entry(code).or_default() += 1,
            }
        }
        s
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

/// The loopback addresses of `target` (`host:port`); none when it names anything else.
async fn loopback(target: &str) -> Vec<SocketAddr> {
    let Ok(addrs) = tokio::net::lookup_host(target).await else {
        return Vec::new();
    };
    let all: Vec<SocketAddr> = addrs.collect();
    let ok = |ip: IpAddr| ip.is_loopback();
    if all.iter().all(|a| ok(a.ip())) {
        all
    } else {
        Vec::new()
    }
}

/// Connects to the first of `addrs` that answers (as `localhost` may be `::1` and `127.0.0.1`).
async fn connect_any(addrs: &[SocketAddr]) -> Option<TcpStream> {
    for a in addrs {
        if let Ok(Ok(s)) = tokio::time::timeout(STEP, TcpStream::connect(a)).await {
            return Some(s);
        }
    }
    None
}

/// `target` with its port as rules see it.
fn as_nominal(target: &str, nominal: &[(u16, u16)]) -> String {
    let port = connect_rule::target_port(target);
    let alias = nominal.iter().find(|(real, _)| Some(*real) == port);
    match (target.rsplit_once(':'), alias) {
        (Some((host, _)), Some((_, n))) => format!("{host}:{n}"),
        _ => target.to_string(),
    }
}

/// A tunnel's place among the open ones, from the answer to the close.
struct Slot<'a>(&'a Inner);

impl<'a> Slot<'a> {
    fn take(inner: &'a Inner) -> Self {
        let open = inner.open.fetch_add(1, Ordering::Relaxed) + 1;
        inner.max_open.fetch_max(open, Ordering::Relaxed);
        Slot(inner)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(inner: Arc<Inner>, mut sock: TcpStream, group: u16, nominal: Arc<Vec<(u16, u16)>>) {
    let open_ns = now_ns();
    let mut rec = TunnelRecord {
        group,
        target: String::new(),
        status: 0,
        bytes: [0, 0],
        open_ns,
        close_ns: 0,
        closed: "client".into(),
        rule: None,
    };
    let rules = Arc::clone(&inner.rules.borrow());
    if let OnAccept::Refuse(id) =
        connect_rule::on_accept(&rules, group, inner.open.load(Ordering::Relaxed), open_ns)
    {
        rec.rule = Some(id);
        rec.closed = "refused".into();
        keep(&inner, rec);
        reset(sock);
        return;
    }
    let mut stop = inner.stop.subscribe();
    let head = tokio::select! {
        h = tokio::time::timeout(STEP, read_head(&mut sock)) => h.ok().flatten(),
        _ = stopped(&mut stop) => None,
    };
    let Some((head, rest)) = head else {
        keep(&inner, rec);
        return;
    };
    let admitted = lock(&inner.admit);
    let answer = match connect_rule::parse_request(&head) {
        Err(code) => Answer::Status {
            code,
            delay: Duration::ZERO,
            rule: None,
        },
        Ok((_, target)) => {
            rec.target = target.clone();
            let rules = Arc::clone(&inner.rules.borrow());
            match connect_rule::answer(
                &rules,
                group,
                &as_nominal(&target, &nominal),
                inner.open.load(Ordering::Relaxed),
                now_ns(),
            ) {
                Answer::Tunnel { delay, .. } => Answer::Tunnel { target, delay },
                other => other,
            }
        }
    };
    let slot = matches!(answer, Answer::Tunnel { .. }).then(|| Slot::take(&inner));
    drop(admitted);
    match answer {
        Answer::Hang(id) => {
            rec.rule = Some(id);
            rec.closed = "hang".into();
            swallow(sock, stop).await;
        }
        Answer::Status { code, delay, rule } => {
            rec.rule = rule;
            tokio::time::sleep(delay).await;
            answer_status(&mut sock, &mut rec, code).await;
        }
        Answer::Tunnel { target, delay } => {
            let addrs = loopback(&target).await;
            let up = if addrs.is_empty() {
                Err(403)
            } else {
                connect_any(&addrs).await.ok_or(502)
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
                        let end =
                            tunnel(&inner, group, &mut sock, &mut up, &mut rec.bytes, &mut stop)
                                .await;
                        drop(slot);
                        rec.closed = end.why.into();
                        if let Some(id) = end.rule {
                            rec.rule = Some(id);
                            let cut_ns = now_ns();
                            inner.events.cut(group, cut_ns);
                            if client_closes(&mut sock, &mut stop).await {
                                inner.events.noticed(group, cut_ns, now_ns());
                            }
                        }
                    }
                }
            }
        }
    }
    keep(&inner, rec);
}

/// Keeps the record of a connection served to its end.
fn keep(inner: &Inner, mut rec: TunnelRecord) {
    rec.close_ns = now_ns();
    lock(&inner.records).push(rec);
    inner.active.send_modify(|n| *n = n.saturating_sub(1));
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

/// Waits (bounded) for a client whose tunnel was cut to close its side; whether it did.
async fn client_closes(sock: &mut TcpStream, stop: &mut watch::Receiver<bool>) -> bool {
    let mut b = [0u8; 512];
    let closed = async {
        loop {
            match sock.read(&mut b).await {
                Ok(n) if n > 0 => {}
                _ => return true,
            }
        }
    };
    tokio::select! {
        r = tokio::time::timeout(NOTICE, closed) => r.unwrap_or(false),
        _ = stopped(stop) => false,
    }
}

/// How a tunnel ended: why, and the rule that cut it, if one did.
struct End {
    why: &'static str,
    rule: Option<u32>,
}

impl End {
    fn by(why: &'static str) -> Self {
        Self { why, rule: None }
    }
}

/// Carries bytes both ways; returns how it ended.
async fn tunnel(
    inner: &Inner,
    group: u16,
    client: &mut TcpStream,
    target: &mut TcpStream,
    bytes: &mut [u64; 2],
    stop: &mut watch::Receiver<bool>,
) -> End {
    let (mut cr, mut cw) = client.split();
    let (mut tr, mut tw) = target.split();
    let mut ub = [0u8; 2048];
    let mut db = [0u8; 2048];
    let mut rules = inner.rules.subscribe();
    loop {
        let idle = connect_rule::idle_timeout(&rules.borrow_and_update(), group, now_ns());
        let idle_sleep = async {
            match idle {
                Some((d, _)) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = cr.read(&mut ub) => match r {
                Ok(n) if n > 0 => {
                    if tw.write_all(&ub[..n]).await.is_err() { return End::by("target") }
                    bytes[0] += n as u64;
                }
                _ => { let _ = tw.shutdown().await; return End::by("client") }
            },
            r = tr.read(&mut db) => match r {
                Ok(n) if n > 0 => {
                    if cw.write_all(&db[..n]).await.is_err() { return End::by("client") }
                    bytes[1] += n as u64;
                }
                _ => { let _ = cw.shutdown().await; return End::by("target") }
            },
            _ = idle_sleep => {
                let _ = cw.shutdown().await;
                let _ = tw.shutdown().await;
                return End { why: "idle", rule: idle.map(|(_, id)| id) };
            }
            _ = rules.changed() => {}
            _ = stopped(stop) => return End::by("stop"),
        }
    }
}
