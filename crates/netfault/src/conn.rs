//! One proxied connection: a task that reads both sides into per-direction queues of timed
//! chunks and writes them when due, asking the rules about every chunk and every deadline. So
//! `latency` keeps order without serialising, `bandwidth` paces, and `blackhole`/`timeout` hold
//! data (the sender sees nothing wrong) until the rule ends. A side's FIN or RST is passed on
//! unless the path is held or forgotten: then, as on a real broken path, the other side is not
//! told, and the middlebox reports when the agent gave up.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use pushsim_metrics::clock::mono_ns as now_ns;
use pushsim_scenario::IdleMode;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::proxy::{reset, sleep_until_ns, stopped, Inner, Tag, ORPHAN};
use crate::rule::{self, ConnInfo, ConnState, Dir, Ns, RuleSet, Verdict};

/// Bytes read per chunk at most: a TLS flight (the service's is over 1 KiB) passes in one read
/// and one write, as through Toxiproxy (32 KiB reads).
const CHUNK: usize = 16 * 1024;
/// A paced (bandwidth) chunk is released in pieces of this size, each when its bytes have
/// crossed the link, so a large read does not arrive as one late burst.
const PACE_PIECE: usize = 1024;
/// Bytes a direction may queue (held or delayed) before the proxy stops reading it.
const QUEUE_CAP: usize = 64 * 1024;
/// Bound on connecting upstream.
const UPSTREAM_CONNECT: Duration = Duration::from_secs(10);

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
#[derive(Debug, PartialEq)]
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
                let per_byte = t.as_nanos() as f64 / data.len().max(1) as f64;
                let mut at = q.last.max(now);
                for piece in data.chunks(PACE_PIECE) {
                    at += (per_byte * piece.len() as f64) as u64;
                    q.push(at, piece.to_vec());
                }
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
            Verdict::Close => {
                self.noticed(now);
                return Some(End::Close);
            }
            Verdict::CloseAfter(n) => {
                let n = (n as usize).min(data.len());
                q.push(now, data[..n].to_vec());
                self.st.bytes[d] += n as u64;
                self.noticed(now);
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
        if self.broken.is_some() && self.st.forgotten.is_none() && !self.cut() {
            // The hold ended before the agent gave up: the connection lives on, and its
            // agent has nothing to detect (the drop stays counted).
            self.broken = None;
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

pub(crate) async fn proxy(
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
    let (ar, mut aw) = agent.split();
    let (sr, mut sw) = server.split();
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
            r = ar.readable(), if read_up => {
                let now = now_ns();
                match read_chunk(&ar, r, |data| c.on_chunk(&rules, Dir::Up, data, now)) {
                    Got::Chunk(None) | Got::Nothing => {}
                    Got::Chunk(Some(end)) => break end,
                    got => {
                        // The agent closed: if its path was broken, this is when it gave up.
                        c.noticed(now);
                        if !c.cut() { break if got == Got::Reset { End::Reset } else { End::Close } }
                        c.q[0].eof = true;
                        if c.q[1].eof { break End::Close }
                    }
                }
            }
            r = sr.readable(), if read_down => {
                let now = now_ns();
                match read_chunk(&sr, r, |data| c.on_chunk(&rules, Dir::Down, data, now)) {
                    Got::Chunk(None) | Got::Nothing => {}
                    Got::Chunk(Some(end)) => break end,
                    got => {
                        if !c.cut() {
                            // Pass the close on after what is still queued for the agent.
                            let _ = flush_all(&mut c.q[1], &mut aw).await;
                            break if got == Got::Reset { End::Reset } else { End::Close };
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

/// What one read of a side found.
#[derive(Debug, PartialEq)]
enum Got {
    /// A chunk, handed to the rules: `Some` when they end the connection.
    Chunk(Option<End>),
    /// Readiness without data (another wake-up took it); read again later.
    Nothing,
    /// The side sent FIN.
    Closed,
    /// The side reset or failed.
    Reset,
}

thread_local! {
    /// The read buffer of every tunnel this thread serves (one thread serves a site's
    /// middlebox): filled and handed on within one synchronous call, so no tunnel holds one
    /// across an await, and it is zeroed once per thread, not once per read.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; CHUNK].into_boxed_slice());
}

/// Reads one chunk from a side that polled readable (`ready`) into this thread's read buffer
/// and hands it to `rules`. An idle tunnel holds no read buffer (10,000 tunnels: 20 MB less).
fn read_chunk(
    side: &tokio::net::tcp::ReadHalf<'_>,
    ready: io::Result<()>,
    rules: impl FnOnce(&[u8]) -> Option<End>,
) -> Got {
    if ready.is_err() {
        return Got::Reset;
    }
    READ_BUF.with_borrow_mut(|buf| match side.try_read(buf) {
        Ok(0) => Got::Closed,
        Ok(n) => Got::Chunk(rules(&buf[..n])),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Got::Nothing,
        Err(_) => Got::Reset,
    })
}

/// Writes everything queued (a close is being passed on).
async fn flush_all<W: AsyncWriteExt + Unpin>(q: &mut Queue, to: &mut W) -> io::Result<()> {
    while let Some((_, data)) = q.chunks.pop_front() {
        to.write_all(&data).await?;
    }
    Ok(())
}
