//! The middlebox's listeners: a TCP proxy per listener that asks the rules (`crate::rule`) about
//! every new connection and refuses, swallows or proxies it (each proxied connection is a task
//! of `crate::conn`), with the rule set shared by every listener and replaceable at any time.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pushsim_scenario::PortRole;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::rule::{self, Admit, ConnInfo, Ns, Rule, RuleSet};
use pushsim_metrics::clock::mono_ns as now_ns;

/// How long an orphaned side (its peer gone through a broken path), or a swallowed
/// connection, is kept at most.
pub(crate) const ORPHAN: Duration = Duration::from_secs(600);

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

pub(crate) struct Inner {
    pub(crate) rules: watch::Sender<Arc<RuleSet>>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) events: Arc<dyn Events>,
    pub(crate) next_id: AtomicU64,
    pub(crate) open: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) swallowed: AtomicU64,
    pub(crate) upstream_failures: AtomicU64,
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

pub(crate) async fn sleep_until_ns(at: Option<Ns>) {
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
                crate::conn::proxy(&inner, sock, upstream, info, tag).await;
                inner.open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

/// Closes with RST (SO_LINGER 0; the socket is non-blocking, so the close does not block).
pub(crate) fn reset(sock: TcpStream) {
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    drop(sock);
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepted, never answered: reads and discards until the client gives up (at most
/// [`ORPHAN`]).
pub(crate) async fn swallow(mut sock: TcpStream, mut stop: watch::Receiver<bool>) {
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
