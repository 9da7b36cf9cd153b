//! Every fault on real loopback sockets: an echo server behind the middlebox, a client in front.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pushsim_metrics::clock::mono_ns;
use pushsim_netfault::{Events, Middlebox, Rule, RuleSet, Tag};
use pushsim_scenario::{Direction, Fault, IdleMode, OverLimit, PortRole};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TAG: Tag = Tag {
    role: PortRole::Fallback,
    group: 0,
};

/// What the middlebox reported.
#[derive(Default)]
struct Seen {
    hits: Mutex<Vec<(u32, u64, bool)>>,
    noticed: Mutex<Vec<(u32, u64, u64)>>,
}

impl Events for Seen {
    fn hit(&self, _: Tag, rule: u32, at: u64, breaks: bool) {
        self.hits.lock().unwrap().push((rule, at, breaks));
    }
    fn noticed(&self, _: Tag, rule: u32, hit: u64, at: u64) {
        self.noticed.lock().unwrap().push((rule, hit, at));
    }
}

/// An echo server; returns its address and a channel of the byte counts it read per read.
async fn echo() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let _ = tx.send(n);
                }
            });
        }
    });
    (addr, rx)
}

struct Setup {
    mb: Middlebox,
    seen: Arc<Seen>,
    front: SocketAddr,
    reads: tokio::sync::mpsc::UnboundedReceiver<usize>,
}

async fn setup(rules: Vec<Rule>) -> Setup {
    let (up, reads) = echo().await;
    let seen = Arc::new(Seen::default());
    let mb = Middlebox::new(RuleSet { rules, seed: 3 }, seen.clone());
    let front = mb.listen("127.0.0.1:0".parse().unwrap(), up, TAG).unwrap();
    Setup {
        mb,
        seen,
        front,
        reads,
    }
}

fn rule(fault: Fault) -> Rule {
    Rule::new(1, "r", fault)
}

/// Reads exactly `n` bytes or fails within `bound`.
async fn read_n(s: &mut TcpStream, n: usize, bound: Duration) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    match tokio::time::timeout(bound, s.read_exact(&mut buf)).await {
        Ok(r) => r.map(|_| buf),
        Err(_) => Err(ErrorKind::TimedOut.into()),
    }
}

/// What the next read gives within `bound`: bytes, EOF (0), or an error kind.
async fn next_read(s: &mut TcpStream, bound: Duration) -> Result<usize, ErrorKind> {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(bound, s.read(&mut buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.kind()),
        Err(_) => Err(ErrorKind::TimedOut),
    }
}

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(5);

#[tokio::test]
async fn without_rules_bytes_pass_both_ways() {
    let s = setup(vec![]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    c.write_all(b"wake up").await.unwrap();
    assert_eq!(read_n(&mut c, 7, LONG).await.unwrap(), b"wake up");
    drop(c);
    assert_eq!(s.mb.counts().accepted, 1);
    assert!(s.seen.hits.lock().unwrap().is_empty());
}

#[tokio::test]
async fn latency_delays_every_chunk_in_order() {
    let s = setup(vec![rule(Fault::Latency {
        latency: Duration::from_millis(100),
        jitter: Duration::ZERO,
    })])
    .await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    let t = Instant::now();
    c.write_all(b"ab").await.unwrap();
    assert_eq!(read_n(&mut c, 2, LONG).await.unwrap(), b"ab");
    // up and down: two delays
    let rtt = t.elapsed();
    assert!(rtt >= Duration::from_millis(200), "{rtt:?}");
    assert!(rtt < Duration::from_millis(1500), "{rtt:?}");
}

#[tokio::test]
async fn bandwidth_caps_the_rate() {
    let mut r = rule(Fault::Bandwidth { kb_per_s: 100 });
    r.direction = Direction::Up;
    let s = setup(vec![r]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    let t = Instant::now();
    c.write_all(&[7u8; 40_000]).await.unwrap();
    read_n(&mut c, 40_000, LONG).await.unwrap();
    // 40 KB at 100 KB/s: 0.4 s
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(380), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn bandwidth_releases_a_large_read_bit_by_bit() {
    // 16 KB at 10 KB/s takes 1.6 s to cross; its first kilobyte is through after 0.1 s, not
    // in one burst at the end of a 16 KiB read.
    let mut r = rule(Fault::Bandwidth { kb_per_s: 10 });
    r.direction = Direction::Up;
    let s = setup(vec![r]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    let t = Instant::now();
    c.write_all(&[3u8; 16_384]).await.unwrap();
    read_n(&mut c, 1, LONG).await.unwrap();
    let first = t.elapsed();
    read_n(&mut c, 16_383, LONG).await.unwrap();
    let all = t.elapsed();
    assert!(
        first < Duration::from_millis(800),
        "first byte after {first:?}"
    );
    assert!(all >= Duration::from_millis(1_550), "{all:?}");
}

#[tokio::test]
async fn slicer_cuts_chunks_into_pieces() {
    let mut r = rule(Fault::Slicer {
        average_size: 10,
        size_variation: 0,
        delay: Duration::from_millis(5),
    });
    r.direction = Direction::Up;
    let mut s = setup(vec![r]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    c.write_all(&[1u8; 100]).await.unwrap();
    read_n(&mut c, 100, LONG).await.unwrap();
    let mut reads = Vec::new();
    while let Ok(n) = s.reads.try_recv() {
        reads.push(n);
    }
    assert_eq!(reads.iter().sum::<usize>(), 100);
    assert!(reads.len() >= 5, "the server read {reads:?}");
    assert!(reads.iter().all(|&n| n <= 20), "{reads:?}");
}

#[tokio::test]
async fn limit_data_closes_after_the_limit() {
    let mut r = rule(Fault::LimitData { bytes: 10 });
    r.direction = Direction::Down;
    let s = setup(vec![r]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    c.write_all(&[5u8; 25]).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(LONG, c.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len(), 10);
    assert!(s.seen.hits.lock().unwrap()[0].2, "limit_data breaks");
}

#[tokio::test]
async fn timeout_holds_data_then_closes() {
    let s = setup(vec![rule(Fault::Timeout {
        timeout: Duration::from_millis(400),
    })])
    .await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    let t = Instant::now();
    c.write_all(b"x").await.unwrap();
    assert_eq!(
        next_read(&mut c, LONG).await,
        Ok(0),
        "closed, nothing passed"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(380),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn reset_peer_resets_the_client() {
    let s = setup(vec![rule(Fault::ResetPeer {
        timeout: Duration::from_millis(100),
    })])
    .await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    assert_eq!(
        next_read(&mut c, LONG).await,
        Err(ErrorKind::ConnectionReset)
    );
    let n = s.seen.noticed.lock().unwrap().clone();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].1, n[0].2, "a reset is noticed when it is sent");
}

#[tokio::test]
async fn close_switched_on_closes_open_connections() {
    let s = setup(vec![]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    c.write_all(b"hi").await.unwrap();
    read_n(&mut c, 2, LONG).await.unwrap();
    s.mb.set_rules(vec![rule(Fault::Close)]);
    assert_eq!(next_read(&mut c, LONG).await, Ok(0));
    // New connections are closed too.
    let mut c = TcpStream::connect(s.front).await.unwrap();
    assert_eq!(next_read(&mut c, LONG).await, Ok(0));
}

#[tokio::test]
async fn blackhole_holds_both_ways_until_it_ends() {
    let s = setup(vec![]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    let mut bh = rule(Fault::Blackhole);
    bh.until_ns = Some(mono_ns() + 600_000_000);
    s.mb.set_rules(vec![bh]);
    c.write_all(b"held").await.unwrap();
    assert_eq!(next_read(&mut c, SHORT).await, Err(ErrorKind::TimedOut));
    // After the rule ends the held bytes arrive: nothing was lost, as TCP would retransmit.
    assert_eq!(read_n(&mut c, 4, LONG).await.unwrap(), b"held");
    assert!(s.seen.hits.lock().unwrap()[0].2);
    // The connection lived on: closing it later is not a detection.
    drop(c);
    let deadline = Instant::now() + LONG;
    while s.mb.counts().open > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(s.mb.counts().open, 0);
    assert!(s.seen.noticed.lock().unwrap().is_empty());
}

fn idle(mode: IdleMode) -> Rule {
    rule(Fault::IdleDrop {
        after: Duration::from_millis(300),
        mode,
    })
}

#[tokio::test]
async fn idle_drop_silent_swallows_the_next_write_and_times_detection() {
    let mut s = setup(vec![idle(IdleMode::Silent)]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    c.write_all(b"ping").await.unwrap();
    read_n(&mut c, 4, LONG).await.unwrap();
    s.reads.recv().await.unwrap();
    // Traffic keeps it alive.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        c.write_all(b"k").await.unwrap();
        read_n(&mut c, 1, LONG).await.unwrap();
    }
    assert!(s.seen.hits.lock().unwrap().is_empty());
    // Idle past 300 ms: forgotten. The client sees nothing; its next write goes nowhere.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.write_all(b"ping").await.unwrap();
    assert_eq!(next_read(&mut c, SHORT).await, Err(ErrorKind::TimedOut));
    let server_reads = std::iter::from_fn(|| s.reads.try_recv().ok()).count();
    assert_eq!(
        server_reads, 3,
        "the swallowed write never reached the server"
    );
    let hit = s.seen.hits.lock().unwrap()[0];
    assert!(hit.2);
    // The agent gives up: detection is timed from the drop to this close.
    let closed = mono_ns();
    drop(c);
    let deadline = Instant::now() + LONG;
    while s.seen.noticed.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let n = s.seen.noticed.lock().unwrap()[0];
    assert_eq!(n.1, hit.1);
    assert!(n.2 >= closed && n.2 - closed < 1_000_000_000, "{n:?}");
    assert!(
        n.2 - n.1 >= 300_000_000,
        "idle drop was at least 300 ms before the close"
    );
}

#[tokio::test]
async fn idle_drop_rst_resets_on_the_next_packet() {
    let s = setup(vec![idle(IdleMode::Rst)]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Nothing yet: a NAT answers RST only when the inside host sends again.
    assert_eq!(
        next_read(&mut c, Duration::from_millis(50)).await,
        Err(ErrorKind::TimedOut)
    );
    c.write_all(b"ping").await.unwrap();
    assert_eq!(
        next_read(&mut c, LONG).await,
        Err(ErrorKind::ConnectionReset)
    );
}

#[tokio::test]
async fn idle_drop_fin_closes_at_the_idle_time() {
    let s = setup(vec![idle(IdleMode::Fin)]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    let t = Instant::now();
    assert_eq!(next_read(&mut c, LONG).await, Ok(0));
    assert!(
        t.elapsed() >= Duration::from_millis(280),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn refuse_fails_the_connection_at_once() {
    let s = setup(vec![rule(Fault::Refuse)]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    let _ = c.write_all(b"hello").await;
    assert_eq!(
        next_read(&mut c, LONG).await,
        Err(ErrorKind::ConnectionReset)
    );
    assert_eq!(s.mb.counts().refused, 1);
}

#[tokio::test]
async fn swallow_accepts_and_never_answers() {
    let s = setup(vec![rule(Fault::Swallow)]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    c.write_all(b"hello").await.unwrap();
    assert_eq!(next_read(&mut c, SHORT).await, Err(ErrorKind::TimedOut));
    assert_eq!(s.mb.counts().swallowed, 1);
}

#[tokio::test]
async fn max_connections_refuses_over_the_limit() {
    let s = setup(vec![rule(Fault::MaxConnections {
        limit: 1,
        over: OverLimit::Reset,
    })])
    .await;
    let mut a = TcpStream::connect(s.front).await.unwrap();
    a.write_all(b"1").await.unwrap();
    read_n(&mut a, 1, LONG).await.unwrap();
    let mut b = TcpStream::connect(s.front).await.unwrap();
    let _ = b.write_all(b"2").await;
    assert_eq!(
        next_read(&mut b, LONG).await,
        Err(ErrorKind::ConnectionReset)
    );
    a.write_all(b"3").await.unwrap();
    read_n(&mut a, 1, LONG).await.unwrap();
}

#[tokio::test]
async fn toxicity_applies_a_rule_to_a_share_of_connections() {
    let mut r = rule(Fault::Refuse);
    r.toxicity = 0.5;
    let s = setup(vec![r]).await;
    let mut ok = 0;
    for _ in 0..40 {
        let mut c = TcpStream::connect(s.front).await.unwrap();
        let _ = c.write_all(b"x").await;
        if next_read(&mut c, LONG).await == Ok(1) {
            ok += 1;
        }
    }
    assert!((8..=32).contains(&ok), "{ok} of 40 passed");
    assert_eq!(s.mb.counts().refused, 40 - ok);
}

#[tokio::test]
async fn rules_for_another_role_or_group_do_not_apply() {
    let mut r = rule(Fault::Refuse);
    r.role = Some(PortRole::Primary);
    let mut g = rule(Fault::Refuse);
    g.groups = Some(vec![1]);
    let s = setup(vec![r, g]).await;
    let mut c = TcpStream::connect(s.front).await.unwrap();
    c.write_all(b"x").await.unwrap();
    assert_eq!(read_n(&mut c, 1, LONG).await.unwrap(), b"x");
}
