//! The middlebox's sockets: a TCP proxy per listener that asks the rules (`crate::rule`) about
//! every new connection, every chunk and every deadline, and carries out the verdict.
//!
//! Each connection is one task that reads both sides into per-direction queues of timed chunks
//! and writes them when due, so `latency` keeps order without serialising, `bandwidth` paces and
//! `blackhole`/`timeout` hold data (the sender sees nothing wrong) until the rule ends. A side's
//! FIN or RST is passed on unless the path is held or forgotten: then, as on a real broken path,
//! the other side is not told.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pushsim_scenario::{IdleMode, PortRole};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::rule::{self, Admit, ConnInfo, ConnState, Dir, Ns, Rule, RuleSet, Verdict};
use pushsim_metrics::clock::mono_ns as now_ns;

/// Bytes read per chunk.
const CHUNK: usize = 2048;
/// Bytes a direction may queue (held or delayed) before the proxy stops reading it.
const QUEUE_CAP: usize = 64 * 1024;
/// Bound on connecting upstream.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(10);
/// How long an orphaned side (its peer gone through a broken path) is kept at most.
const ORPHAN: Duration = Duration::from_secs(600);

/// Where a listener sits: which port role and which agents' group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// The port role it stands in front of.
    pub role: PortRole,
    /// The group whose agents connect to it.
    pub group: u16,
}

/// What the middlebox tells its owner (the site records it).
pub trait Events: Send + Sync + 'static {
    /// Rule `rule` hit a connection at `at_ns` for the first time; `breaks` when the connection
    /// is broken by it (held, forgotten, closed or reset), not just slowed.
    fn hit(&self, tag: Tag, rule: u32, at_ns: Ns, breaks: bool);
    /// A connection broken by `rule` at `hit_ns` was given up by its agent, or its agent was
    /// told (FIN or RST on loopback), at `at_ns`.
    fn noticed(&self, tag: Tag, rule: u32, hit_ns: Ns, at_ns: Ns);
}

/// Events nobody listens to.
pub struct NoEvents;

impl Events for NoEvents {
    fn hit(&self, _: Tag, _: u32, _: Ns, _: bool) {}
    fn noticed(&self, _: Tag, _: u32, _: Ns, _: Ns) {}
}

/// Counts of a middlebox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Connections accepted from agents.
    pub accepted: u64,
    /// Refused by a rule (RST as soon as accepted).
    pub refused: u64,
    /// Swallowed by a rule.
    pub swallowed: u64,
    /// Upstream connects that failed.
    pub upstream_failures: u64,
    /// Open now (live only: not carried in reports, where it would be a race with the stop).
    #[serde(skip)]
    pub open: u64,
}

struct Inner {
    rules: watch::Sender<Arc<RuleSet>>,
    stop: watch::Sender<bool>,
    events: Arc<dyn Events>,
    next_id: AtomicU64,
    open: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    swallowed: AtomicU64,
    upstream_failures: AtomicU64,
}

/// A fault-injecting TCP proxy with any number of listeners sharing one rule set.
#[derive(Clone)]
pub struct Middlebox {
    inner: Arc<Inner>,
}

impl Middlebox {
    /// A middlebox applying `rules`, telling `events`.
    pub fn new(rules: RuleSet, events: Arc<dyn Events>) -> Self {
        Self {
            inner: Arc::new(Inner {
                rules: watch::Sender::new(Arc::new(rules)),
                stop: watch::Sender::new(false),
                events,
                next_id: AtomicU64::new(1),
                open: AtomicUsize::new(0),
                accepted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                swallowed: AtomicU64::new(0),
                upstream_failures: AtomicU64::new(0),
            }),
        }
    }

    /// Replaces the rules; open connections apply the new ones at once.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        self.inner.rules.send_modify(|r| {
            *r = Arc::new(RuleSet {
                rules,
                seed: r.seed,
            })
        });
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.inner.rules.borrow().clone()
    }

    /// Listens on `addr` (port 0: any) in front of `upstream`; returns the bound address. Must
    /// be called inside a tokio runtime.
    pub fn listen(
        &self,
        addr: SocketAddr,
        upstream: SocketAddr,
        tag: Tag,
    ) -> io::Result<SocketAddr> {
        let listener = bind(addr)?;
        let local = listener.local_addr()?;
        tokio::spawn(accept_loop(self.inner.clone(), listener, upstream, tag));
        Ok(local)
    }

    /// Counts so far.
    pub fn counts(&self) -> Counts {
        let i = &self.inner;
        Counts {
            accepted: i.accepted.load(Ordering::Relaxed),
            refused: i.refused.load(Ordering::Relaxed),
            swallowed: i.swallowed.load(Ordering::Relaxed),
            upstream_failures: i.upstream_failures.load(Ordering::Relaxed),
            open: i.open.load(Ordering::Relaxed) as u64,
        }
    }

    /// Closes every listener and connection.
    pub fn stop(&self) {
        let _ = self.inner.stop.send(true);
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // A run's listeners come and go on loopback; do not wait for TIME_WAIT.
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    TcpListener::from_std(s.into())
}

async fn sleep_until_ns(at: Option<Ns>) {
    match at {
        Some(at) => tokio::time::sleep(Duration::from_nanos(at.saturating_sub(now_ns()))).await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, upstream: SocketAddr, tag: Tag) {
    let mut rules_rx = inner.rules.subscribe();
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            a = listener.accept() => match a {
                Ok((sock, _)) => {
                    let rules = Arc::clone(&rules_rx.borrow_and_update());
                    admit(&inner, &rules, sock, upstream, tag);
                }
                Err(e) => {
                    // Out of files, most likely: wait a little rather than spin.
                    tracing::warn!(error = %e, "middlebox accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Asks the rules about a new connection and carries out the answer.
fn admit(inner: &Arc<Inner>, rules: &RuleSet, sock: TcpStream, upstream: SocketAddr, tag: Tag) {
    let _ = sock.set_nodelay(true);
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    inner.accepted.fetch_add(1, Ordering::Relaxed);
    let info = ConnInfo {
        id,
        role: tag.role,
        group: tag.group,
        opened_ns: now_ns(),
    };
    let open = inner.open.load(Ordering::Relaxed);
    let (verdict, by) = rule::admit(rules, &info, open, info.opened_ns);
    if let Some(r) = by {
        inner.events.hit(tag, r, info.opened_ns, false);
    }
    match verdict {
        Admit::Refuse => {
            // RST as soon as it is accepted: the agent's attempt fails within a loopback round
            // trip, as behind a REJECT rule.
            inner.refused.fetch_add(1, Ordering::Relaxed);
            reset(sock);
        }
        Admit::Swallow => {
            inner.swallowed.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(swallow(sock, inner.stop.subscribe()));
        }
        Admit::Accept => {
            let inner = inner.clone();
            inner.open.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                proxy(&inner, sock, upstream, info, tag).await;
                inner.open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

/// Closes with RST (SO_LINGER 0; the socket is non-blocking, so the close does not block).
fn reset(sock: TcpStream) {
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    drop(sock);
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepted, never answered: reads and discards until the client gives up.
async fn swallow(mut sock: TcpStream, mut stop: watch::Receiver<bool>) {
    let mut buf = [0u8; 512];
    let _ = tokio::time::timeout(ORPHAN, async {
        loop {
            tokio::select! {
                r = sock.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return },
                _ = stopped(&mut stop) => return,
            }
        }
    })
    .await;
}

/// One direction's queue of timed chunks.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<(Ns, Vec<u8>)>,
    bytes: usize,
    /// Release time of the last queued chunk (order is kept).
    last: Ns,
    /// Chunks held by a rule (released when it ends).
    held: bool,
    /// This side sent FIN or RST.
    eof: bool,
}

impl Queue {
    fn push(&mut self, at: Ns, data: Vec<u8>) {
        let at = at.max(self.last);
        self.last = at;
        self.bytes += data.len();
        self.chunks.push_back((at, data));
    }

    /// The next release time, unless held.
    fn next(&self) -> Option<Ns> {
        if self.held {
            None
        } else {
            self.chunks.front().map(|c| c.0)
        }
    }
}

/// How a connection ends.
enum End {
    /// Both sides closed (FIN).
    Close,
    /// Both sides reset.
    Reset,
    /// The middlebox stops.
    Stop,
}

struct Conn<'a> {
    inner: &'a Inner,
    info: ConnInfo,
    tag: Tag,
    st: ConnState,
    q: [Queue; 2],
    /// Rules that hit this connection already.
    hit: Vec<u32>,
    /// The rule that broke it, and when.
    broken: Option<(u32, Ns)>,
    rng: rand::rngs::SmallRng,
}

impl Conn<'_> {
    fn record(&mut self, rule: u32, at: Ns, breaks: bool) {
        if breaks && self.broken.is_none() {
            self.broken = Some((rule, at));
        }
        if !self.hit.contains(&rule) {
            self.hit.push(rule);
            self.inner.events.hit(self.tag, rule, at, breaks);
        }
    }

    /// The agent gave up on (or was told of) a broken connection at `at`.
    fn noticed(&mut self, at: Ns) {
        if let Some((rule, hit)) = self.broken.take() {
            self.inner.events.noticed(self.tag, rule, hit, at);
        }
    }

    /// Queues a chunk read going `dir` as the rules say; `Some(end)` ends the connection.
    fn on_chunk(&mut self, rules: &RuleSet, dir: Dir, data: &[u8], now: Ns) -> Option<End> {
        let d = dir as usize;
        let roll = self.rng.random::<f64>();
        let (v, by) = rule::chunk(
            rules,
            &self.info,
            &self.st,
            dir,
            data.len() as u64,
            now,
            roll,
        );
        self.st.last[d] = now;
        if let Some(r) = by {
            let breaks = matches!(
                v,
                Verdict::Hold | Verdict::Reset | Verdict::Close | Verdict::CloseAfter(_)
            );
            if self.st.forgotten.is_none() {
                self.record(r, now, breaks);
            }
        }
        let q = &mut self.q[d];
        match v {
            Verdict::Pass => q.push(now, data.to_vec()),
            Verdict::Delay(t) => q.push(now + t.as_nanos() as u64, data.to_vec()),
            Verdict::Pace(t) => {
                let at = q.last.max(now) + t.as_nanos() as u64;
                q.push(at, data.to_vec())
            }
            Verdict::Slice {
                size,
                variation,
                delay,
            } => {
                let mut at = q.last.max(now);
                let mut rest = data;
                while !rest.is_empty() {
                    let spread = if variation > 0 {
                        self.rng.random_range(0..=2 * variation) as i64 - variation as i64
                    } else {
                        0
                    };
                    let n = ((size as i64 + spread).max(1) as usize).min(rest.len());
                    self.q[d].push(at, rest[..n].to_vec());
                    rest = &rest[n..];
                    at += delay.as_nanos() as u64;
                }
            }
            Verdict::Hold => {
                q.push(now, data.to_vec());
                q.held = true;
            }
            Verdict::Drop => {}
            Verdict::Reset => {
                self.noticed(now);
                return Some(End::Reset);
            }
            Verdict::Close => return Some(End::Close),
            Verdict::CloseAfter(n) => {
                let n = (n as usize).min(data.len());
                q.push(now, data[..n].to_vec());
                self.st.bytes[d] += n as u64;
                return Some(End::Close);
            }
            Verdict::Forget(_) => {}
        }
        if !matches!(v, Verdict::Drop | Verdict::Hold) {
            self.st.bytes[d] += data.len() as u64;
        }
        None
    }

    /// Applies time-driven verdicts and holds at `now`.
    fn on_time(&mut self, rules: &RuleSet, now: Ns) -> Option<End> {
        let (v, by) = rule::due(rules, &self.info, &self.st, now);
        if let Some(r) = by {
            match v {
                Verdict::Close | Verdict::Reset => {
                    self.record(r, now, true);
                    self.noticed(now);
                    return Some(if v == Verdict::Close {
                        End::Close
                    } else {
                        End::Reset
                    });
                }
                Verdict::Forget(mode) => {
                    self.record(r, now, true);
                    self.st.forgotten = Some((mode, r));
                    for q in &mut self.q {
                        q.chunks.clear();
                        q.bytes = 0;
                    }
                    if mode == IdleMode::Fin {
                        self.noticed(now);
                        return Some(End::Close);
                    }
                }
                _ => {}
            }
        }
        for dir in [Dir::Up, Dir::Down] {
            let held = rule::holding(rules, &self.info, &self.st, dir, now);
            if let Some(r) = held {
                self.record(r, now, true);
            }
            let q = &mut self.q[dir as usize];
            if q.held && held.is_none() {
                // Released: what was held goes now, in order.
                for c in &mut q.chunks {
                    c.0 = c.0.min(now);
                }
            }
            q.held = held.is_some();
        }
        None
    }

    /// Whether a side's FIN or RST must not reach the other side (held or forgotten path).
    fn cut(&self) -> bool {
        self.st.forgotten.is_some() || self.q.iter().any(|q| q.held)
    }
}

/// Writes every chunk of `q` due at `now` to `to`.
async fn flush<W: AsyncWriteExt + Unpin>(q: &mut Queue, to: &mut W, now: Ns) -> io::Result<()> {
    while q.next().is_some_and(|at| at <= now) {
        if let Some((_, data)) = q.chunks.pop_front() {
            q.bytes -= data.len();
            to.write_all(&data).await?;
        }
    }
    Ok(())
}

async fn proxy(
    inner: &Inner,
    mut agent: TcpStream,
    upstream: SocketAddr,
    info: ConnInfo,
    tag: Tag,
) {
    let mut server =
        match tokio::time::timeout(UPSTREAM_CONNECT, TcpStream::connect(upstream)).await {
            Ok(Ok(s)) => s,
            _ => {
                // The service is not there: the agent sees its connect refused.
                inner.upstream_failures.fetch_add(1, Ordering::Relaxed);
                reset(agent);
                return;
            }
        };
    let _ = server.set_nodelay(true);
    let mut rules_rx = inner.rules.subscribe();
    let mut stop = inner.stop.subscribe();
    let rules0 = rules_rx.borrow_and_update().clone();
    let mut c = Conn {
        inner,
        info,
        tag,
        st: ConnState::default(),
        q: [Queue::default(), Queue::default()],
        hit: Vec::new(),
        broken: None,
        rng: rand::rngs::SmallRng::seed_from_u64(rules0.seed ^ info.id),
    };
    let mut rules = rules0;
    let (mut ar, mut aw) = agent.split();
    let (mut sr, mut sw) = server.split();
    let mut ub = vec![0u8; CHUNK];
    let mut db = vec![0u8; CHUNK];
    let mut orphan_until: Option<tokio::time::Instant> = None;
    let end = loop {
        let now = now_ns();
        if let Some(end) = c.on_time(&rules, now) {
            break end;
        }
        if flush(&mut c.q[0], &mut sw, now).await.is_err()
            || flush(&mut c.q[1], &mut aw, now).await.is_err()
        {
            break End::Close;
        }
        let wake = [
            rule::next_due(&rules, &c.info, &c.st, now),
            c.q[0].next(),
            c.q[1].next(),
        ]
        .into_iter()
        .flatten()
        .min();
        let read_up = !c.q[0].eof && c.q[0].bytes < QUEUE_CAP;
        let read_down = !c.q[1].eof && c.q[1].bytes < QUEUE_CAP;
        if c.q[0].eof || c.q[1].eof {
            if !c.cut() {
                // The path is whole again: pass the close on after what is queued.
                let _ = flush_all(&mut c.q[0], &mut sw).await;
                let _ = flush_all(&mut c.q[1], &mut aw).await;
                break End::Close;
            }
            orphan_until.get_or_insert(tokio::time::Instant::now() + ORPHAN);
        }
        tokio::select! {
            r = ar.read(&mut ub), if read_up => {
                let now = now_ns();
                match r {
                    Ok(n) if n > 0 => if let Some(end) = c.on_chunk(&rules, Dir::Up, &ub[..n], now) { break end },
                    _ => {
                        // The agent closed: if its path was broken, this is when it gave up.
                        c.noticed(now);
                        if !c.cut() { break if r.is_err() { End::Reset } else { End::Close } }
                        c.q[0].eof = true;
                        if c.q[1].eof { break End::Close }
                    }
                }
            }
            r = sr.read(&mut db), if read_down => {
                let now = now_ns();
                match r {
                    Ok(n) if n > 0 => if let Some(end) = c.on_chunk(&rules, Dir::Down, &db[..n], now) { break end },
                    _ => {
                        if !c.cut() {
                            // Pass the close on after what is still queued for the agent.
                            let _ = flush_all(&mut c.q[1], &mut aw).await;
                            break if r.is_err() { End::Reset } else { End::Close };
                        }
                        c.q[1].eof = true;
                        if c.q[0].eof { break End::Close }
                    }
                }
            }
            _ = sleep_until_ns(wake) => {}
            _ = rules_rx.changed() => rules = Arc::clone(&rules_rx.borrow_and_update()),
            _ = tokio::time::sleep_until(orphan_until.unwrap_or_else(tokio::time::Instant::now)), if orphan_until.is_some() => break End::Close,
            _ = stopped(&mut stop) => break End::Stop,
        }
    };
    match end {
        End::Reset => {
            reset(agent);
            reset(server);
        }
        End::Close | End::Stop => {
            if !c.cut() {
                // What a rule let through before it closed the connection (limit_data).
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    let _ = flush_all(&mut c.q[0], &mut sw).await;
                    let _ = flush_all(&mut c.q[1], &mut aw).await;
                })
                .await;
            }
            let _ = aw.shutdown().await;
            let _ = sw.shutdown().await;
        }
    }
}

/// Writes everything queued (a close is being passed on).
async fn flush_all<W: AsyncWriteExt + Unpin>(q: &mut Queue, to: &mut W) -> io::Result<()> {
    while let Some((_, data)) = q.chunks.pop_front() {
        to.write_all(&data).await?;
    }
    Ok(())
}
