//! Fault rules and their verdicts, pure: every function takes the connection, its state and the
//! time, and says what the middlebox does. The first rule that is not [`Verdict::Pass`] decides
//! (turmoil's `Rule`/`Verdict` is the model).
//!
//! Three moments ask the rules: a new connection ([`admit`]), a chunk read from one side
//! ([`chunk`]), and time passing ([`due`], with [`next_due`] saying when to ask again), so that
//! idle timers, `close`, `reset_peer` and rules switching on and off act on open connections
//! without any data flowing.

use std::time::Duration;

use pushsim_scenario::{Direction, Fault, IdleMode, OverLimit, PortRole};

/// Nanoseconds on the run clock.
pub type Ns = u64;

/// The rules in force and the seed of their rolls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    /// In order; the first that is not pass decides.
    pub rules: Vec<Rule>,
    /// Seed of toxicity rolls.
    pub seed: u64,
}

/// One rule: a fault, where it applies, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Stable id (the report's and the API's handle).
    pub id: u32,
    /// Name.
    pub name: String,
    /// What it does.
    pub fault: Fault,
    /// Only connections of this port role (none: every one).
    pub role: Option<PortRole>,
    /// Only these groups (none: every one).
    pub groups: Option<Vec<u16>>,
    /// Which direction's chunks it looks at.
    pub direction: Direction,
    /// Probability that it applies to a connection.
    pub toxicity: f64,
    /// Switched on at.
    pub from_ns: Ns,
    /// Switched off at (none: never).
    pub until_ns: Option<Ns>,
}

impl Rule {
    /// A rule of `fault` on every connection, always on.
    pub fn new(id: u32, name: impl Into<String>, fault: Fault) -> Self {
        Self {
            id,
            name: name.into(),
            fault,
            role: None,
            groups: None,
            direction: Direction::Both,
            toxicity: 1.0,
            from_ns: 0,
            until_ns: None,
        }
    }

    /// Whether it is switched on at `now`.
    pub fn live(&self, now: Ns) -> bool {
        now >= self.from_ns && self.until_ns.is_none_or(|u| now < u)
    }

    /// Whether it applies to `c` at all (role, group, toxicity roll).
    pub fn applies(&self, c: &ConnInfo, seed: u64) -> bool {
        self.role.is_none_or(|r| r == c.role)
            && self.groups.as_ref().is_none_or(|g| g.contains(&c.group))
            && (self.toxicity >= 1.0 || unit(seed ^ c.id, self.id) < self.toxicity)
    }

    /// Whether it looks at chunks going `dir`.
    pub fn covers(&self, dir: Dir) -> bool {
        match self.direction {
            Direction::Both => true,
            Direction::Up => dir == Dir::Up,
            Direction::Down => dir == Dir::Down,
        }
    }

    /// When it started to act on `c`.
    fn start(&self, c: &ConnInfo) -> Ns {
        self.from_ns.max(c.opened_ns)
    }
}

/// A uniform draw in [0, 1) from two words (splitmix64): the same connection and rule always
/// roll the same.
pub fn unit(a: u64, b: u32) -> f64 {
    let mut z = a ^ (u64::from(b) << 32 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Which way a chunk goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Agent to service.
    Up = 0,
    /// Service to agent.
    Down = 1,
}

/// What is fixed about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// Unique in its middlebox.
    pub id: u64,
    /// The port role it came in on.
    pub role: PortRole,
    /// Its agent's group.
    pub group: u16,
    /// Accepted at.
    pub opened_ns: Ns,
}

/// What changes about a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnState {
    /// Last chunk read, per direction (0: none yet).
    pub last: [Ns; 2],
    /// Bytes let through, per direction.
    pub bytes: [u64; 2],
    /// Forgotten by an idle drop: how, and which rule.
    pub forgotten: Option<(IdleMode, u32)>,
}

impl ConnState {
    /// Last traffic either way, or the open time.
    fn last_any(&self, c: &ConnInfo) -> Ns {
        self.last[0].max(self.last[1]).max(c.opened_ns)
    }
}

/// What happens to a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Proxied.
    Accept,
    /// Refused (RST at once).
    Refuse,
    /// Accepted, never answered.
    Swallow,
}

/// What happens to a chunk, or to a connection as time passes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Forward now.
    Pass,
    /// Forward after this long (order kept).
    Delay(Duration),
    /// Forward this long after the previous chunk (a rate).
    Pace(Duration),
    /// Forward in pieces around `size` bytes (± `variation`), `delay` apart.
    Slice {
        /// Mean piece.
        size: u64,
        /// Spread.
        variation: u64,
        /// Pause between pieces.
        delay: Duration,
    },
    /// Keep it until the rule ends (the sender sees nothing wrong).
    Hold,
    /// Discard it.
    Drop,
    /// RST both sides.
    Reset,
    /// FIN both sides.
    Close,
    /// Forward this many bytes of it, then FIN both sides.
    CloseAfter(u64),
    /// The connection is forgotten (idle drop).
    Forget(IdleMode),
}

/// The first deciding rule's verdict for a new connection with `open` others open.
pub fn admit(set: &RuleSet, c: &ConnInfo, open: usize, now: Ns) -> (Admit, Option<u32>) {
    let (rules, seed) = (&set.rules, set.seed);
    for r in rules.iter().filter(|r| r.live(now) && r.applies(c, seed)) {
        let a = match r.fault {
            Fault::Refuse => Admit::Refuse,
            Fault::Swallow => Admit::Swallow,
            Fault::MaxConnections { limit, over } if open >= limit as usize => match over {
                OverLimit::Refuse | OverLimit::Reset => Admit::Refuse,
            },
            _ => continue,
        };
        return (a, Some(r.id));
    }
    (Admit::Accept, None)
}

/// The first deciding rule's verdict for `len` bytes read going `dir`; `roll` is a fresh
/// uniform draw in [0, 1) (jitter, slice sizes).
pub fn chunk(
    set: &RuleSet,
    c: &ConnInfo,
    st: &ConnState,
    dir: Dir,
    len: u64,
    now: Ns,
    roll: f64,
) -> (Verdict, Option<u32>) {
    let (rules, seed) = (&set.rules, set.seed);
    if let Some((mode, id)) = st.forgotten {
        let v = match mode {
            IdleMode::Silent => Verdict::Drop,
            IdleMode::Rst | IdleMode::Fin => Verdict::Reset,
        };
        return (v, Some(id));
    }
    for r in rules
        .iter()
        .filter(|r| r.live(now) && r.covers(dir) && r.applies(c, seed))
    {
        let v = match r.fault {
            Fault::Latency { latency, jitter } => {
                let j = jitter.as_secs_f64() * (2.0 * roll - 1.0);
                Verdict::Delay(Duration::from_secs_f64(
                    (latency.as_secs_f64() + j).max(0.0),
                ))
            }
            Fault::Bandwidth { kb_per_s } => Verdict::Pace(Duration::from_secs_f64(
                len as f64 / (kb_per_s as f64 * 1000.0),
            )),
            Fault::Slicer {
                average_size,
                size_variation,
                delay,
            } => Verdict::Slice {
                size: average_size,
                variation: size_variation,
                delay,
            },
            Fault::LimitData { bytes } => {
                let sent = st.bytes[dir as usize];
                if sent + len <= bytes {
                    continue;
                }
                Verdict::CloseAfter(bytes.saturating_sub(sent))
            }
            Fault::Timeout { .. } | Fault::Blackhole => Verdict::Hold,
            _ => continue,
        };
        return (v, Some(r.id));
    }
    (Verdict::Pass, None)
}

/// Whether chunks going `dir` are held at `now`, and by which rule.
pub fn holding(set: &RuleSet, c: &ConnInfo, st: &ConnState, dir: Dir, now: Ns) -> Option<u32> {
    let (rules, seed) = (&set.rules, set.seed);
    if st.forgotten.is_some() {
        return None;
    }
    rules
        .iter()
        .find(|r| {
            matches!(r.fault, Fault::Timeout { .. } | Fault::Blackhole)
                && r.live(now)
                && r.covers(dir)
                && r.applies(c, seed)
        })
        .map(|r| r.id)
}

/// When a time-driven rule comes due on `c`, if one does: its time and its verdict.
fn deadline(r: &Rule, c: &ConnInfo, st: &ConnState) -> Option<(Ns, Verdict)> {
    let start = r.start(c);
    let ns = |d: Duration| d.as_nanos() as u64;
    match r.fault {
        Fault::Close => Some((start, Verdict::Close)),
        Fault::ResetPeer { timeout } => Some((start + ns(timeout), Verdict::Reset)),
        Fault::Timeout { timeout } if !timeout.is_zero() => {
            let last = match r.direction {
                Direction::Both => st.last[0].max(st.last[1]),
                Direction::Up => st.last[0],
                Direction::Down => st.last[1],
            };
            Some((start.max(last) + ns(timeout), Verdict::Close))
        }
        Fault::IdleDrop { after, mode } if st.forgotten.is_none() => {
            Some((start.max(st.last_any(c)) + ns(after), Verdict::Forget(mode)))
        }
        _ => None,
    }
}

/// The first rule due on `c` at `now`, with its verdict.
pub fn due(set: &RuleSet, c: &ConnInfo, st: &ConnState, now: Ns) -> (Verdict, Option<u32>) {
    let (rules, seed) = (&set.rules, set.seed);
    for r in rules.iter().filter(|r| r.live(now) && r.applies(c, seed)) {
        if let Some((at, v)) = deadline(r, c, st) {
            if now >= at {
                return (v, Some(r.id));
            }
        }
    }
    (Verdict::Pass, None)
}

/// When to ask [`due`] (and [`holding`]) again: the next deadline or rule switch after `now`.
pub fn next_due(set: &RuleSet, c: &ConnInfo, st: &ConnState, now: Ns) -> Option<Ns> {
    let (rules, seed) = (&set.rules, set.seed);
    let mut next: Option<Ns> = None;
    let mut take = |t: Ns| {
        if t > now {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
    };
    for r in rules.iter().filter(|r| r.applies(c, seed)) {
        take(r.from_ns);
        if let Some(u) = r.until_ns {
            take(u);
        }
        if let Some((at, _)) = deadline(r, c, st) {
            take(at.max(r.from_ns));
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 7;
    const SEC: Ns = 1_000_000_000;

    fn set(rules: &[Rule]) -> RuleSet {
        RuleSet {
            rules: rules.to_vec(),
            seed: S,
        }
    }

    fn conn() -> ConnInfo {
        ConnInfo {
            id: 1,
            role: PortRole::Fallback,
            group: 0,
            opened_ns: 10 * SEC,
        }
    }

    fn rule(fault: Fault) -> Rule {
        Rule::new(1, "r", fault)
    }

    #[test]
    fn refuse_swallow_and_limits_decide_new_connections() {
        let c = conn();
        assert_eq!(
            admit(&set(&[rule(Fault::Refuse)]), &c, 0, SEC).0,
            Admit::Refuse
        );
        assert_eq!(
            admit(&set(&[rule(Fault::Swallow)]), &c, 0, SEC).0,
            Admit::Swallow
        );
        let max = rule(Fault::MaxConnections {
            limit: 2,
            over: OverLimit::Reset,
        });
        assert_eq!(
            admit(&set(std::slice::from_ref(&max)), &c, 1, SEC).0,
            Admit::Accept
        );
        assert_eq!(admit(&set(&[max]), &c, 2, SEC), (Admit::Refuse, Some(1)));
        // Another role, another group, or not yet on: no effect.
        let mut r = rule(Fault::Refuse);
        r.role = Some(PortRole::Primary);
        assert_eq!(admit(&set(&[r]), &c, 0, SEC).0, Admit::Accept);
        let mut r = rule(Fault::Refuse);
        r.groups = Some(vec![3]);
        assert_eq!(admit(&set(&[r]), &c, 0, SEC).0, Admit::Accept);
        let mut r = rule(Fault::Refuse);
        r.from_ns = 2 * SEC;
        assert_eq!(
            admit(&set(std::slice::from_ref(&r)), &c, 0, SEC).0,
            Admit::Accept
        );
        assert_eq!(admit(&set(&[r]), &c, 0, 2 * SEC).0, Admit::Refuse);
    }

    #[test]
    fn first_non_pass_rule_decides_a_chunk() {
        let c = conn();
        let st = ConnState::default();
        let lat = rule(Fault::Latency {
            latency: Duration::from_millis(100),
            jitter: Duration::from_millis(10),
        });
        let mut down_only = rule(Fault::Blackhole);
        down_only.direction = Direction::Down;
        down_only.id = 2;
        let rules = [down_only, lat];
        assert_eq!(
            chunk(&set(&rules), &c, &st, Dir::Down, 10, 11 * SEC, 0.5),
            (Verdict::Hold, Some(2))
        );
        assert_eq!(
            chunk(&set(&rules), &c, &st, Dir::Up, 10, 11 * SEC, 1.0),
            (Verdict::Delay(Duration::from_millis(110)), Some(1))
        );
        assert_eq!(
            chunk(&set(&rules), &c, &st, Dir::Up, 10, 11 * SEC, 0.0).0,
            Verdict::Delay(Duration::from_millis(90))
        );
        assert_eq!(
            chunk(&set(&[]), &c, &st, Dir::Up, 10, 0, 0.0),
            (Verdict::Pass, None)
        );
    }

    #[test]
    fn slicer_cuts_in_its_direction_only() {
        let c = conn();
        let st = ConnState::default();
        let mut sl = rule(Fault::Slicer {
            average_size: 64,
            size_variation: 8,
            delay: Duration::from_micros(500),
        });
        sl.direction = Direction::Up;
        let want = Verdict::Slice {
            size: 64,
            variation: 8,
            delay: Duration::from_micros(500),
        };
        assert_eq!(
            chunk(&set(&[sl.clone()]), &c, &st, Dir::Up, 1000, 0, 0.3).0,
            want
        );
        assert_eq!(
            chunk(&set(&[sl]), &c, &st, Dir::Down, 1000, 0, 0.3).0,
            Verdict::Pass
        );
    }

    #[test]
    fn bandwidth_paces_and_limit_data_cuts() {
        let c = conn();
        let mut st = ConnState::default();
        let bw = rule(Fault::Bandwidth { kb_per_s: 10 });
        assert_eq!(
            chunk(&set(&[bw]), &c, &st, Dir::Up, 1000, 0, 0.0).0,
            Verdict::Pace(Duration::from_millis(100))
        );
        let lim = [rule(Fault::LimitData { bytes: 100 })];
        assert_eq!(
            chunk(&set(&lim), &c, &st, Dir::Up, 60, 0, 0.0).0,
            Verdict::Pass
        );
        st.bytes[0] = 60;
        assert_eq!(
            chunk(&set(&lim), &c, &st, Dir::Up, 60, 0, 0.0).0,
            Verdict::CloseAfter(40)
        );
        // Each direction counts its own bytes.
        assert_eq!(
            chunk(&set(&lim), &c, &st, Dir::Down, 60, 0, 0.0).0,
            Verdict::Pass
        );
    }

    #[test]
    fn idle_drop_forgets_after_silence_and_then_drops_or_resets() {
        let c = conn();
        let mut st = ConnState::default();
        let idle = [rule(Fault::IdleDrop {
            after: Duration::from_secs(20),
            mode: IdleMode::Silent,
        })];
        assert_eq!(next_due(&set(&idle), &c, &st, 10 * SEC), Some(30 * SEC));
        st.last[1] = 25 * SEC; // traffic re-arms the timer
        assert_eq!(due(&set(&idle), &c, &st, 30 * SEC).0, Verdict::Pass);
        assert_eq!(next_due(&set(&idle), &c, &st, 30 * SEC), Some(45 * SEC));
        assert_eq!(
            due(&set(&idle), &c, &st, 45 * SEC),
            (Verdict::Forget(IdleMode::Silent), Some(1))
        );
        st.forgotten = Some((IdleMode::Silent, 1));
        assert_eq!(
            chunk(&set(&idle), &c, &st, Dir::Up, 2, 46 * SEC, 0.0).0,
            Verdict::Drop
        );
        assert_eq!(
            due(&set(&idle), &c, &st, 99 * SEC).0,
            Verdict::Pass,
            "forgotten once"
        );
        st.forgotten = Some((IdleMode::Rst, 1));
        assert_eq!(
            chunk(&set(&[]), &c, &st, Dir::Down, 2, 46 * SEC, 0.0).0,
            Verdict::Reset
        );
    }

    #[test]
    fn close_reset_and_timeout_act_on_open_connections() {
        let c = conn();
        let mut st = ConnState::default();
        let mut close = rule(Fault::Close);
        close.from_ns = 30 * SEC;
        assert_eq!(
            next_due(&set(std::slice::from_ref(&close)), &c, &st, 12 * SEC),
            Some(30 * SEC)
        );
        assert_eq!(
            due(&set(std::slice::from_ref(&close)), &c, &st, 29 * SEC).0,
            Verdict::Pass
        );
        assert_eq!(due(&set(&[close]), &c, &st, 30 * SEC).0, Verdict::Close);
        let rst = [rule(Fault::ResetPeer {
            timeout: Duration::from_secs(1),
        })];
        assert_eq!(due(&set(&rst), &c, &st, 10 * SEC).0, Verdict::Pass);
        assert_eq!(due(&set(&rst), &c, &st, 11 * SEC).0, Verdict::Reset);
        let to = [rule(Fault::Timeout {
            timeout: Duration::from_secs(5),
        })];
        assert_eq!(holding(&set(&to), &c, &st, Dir::Up, 12 * SEC), Some(1));
        st.last[0] = 14 * SEC;
        assert_eq!(
            due(&set(&to), &c, &st, 18 * SEC).0,
            Verdict::Pass,
            "re-armed by data"
        );
        assert_eq!(due(&set(&to), &c, &st, 19 * SEC).0, Verdict::Close);
        let zero = [rule(Fault::Timeout {
            timeout: Duration::ZERO,
        })];
        assert_eq!(
            due(&set(&zero), &c, &st, 999 * SEC).0,
            Verdict::Pass,
            "0: held, never closed"
        );
    }

    #[test]
    fn rules_switch_off() {
        let c = conn();
        let st = ConnState::default();
        let mut bh = rule(Fault::Blackhole);
        bh.until_ns = Some(20 * SEC);
        assert_eq!(
            holding(&set(std::slice::from_ref(&bh)), &c, &st, Dir::Up, 19 * SEC),
            Some(1)
        );
        assert_eq!(
            holding(&set(std::slice::from_ref(&bh)), &c, &st, Dir::Up, 20 * SEC),
            None
        );
        assert_eq!(next_due(&set(&[bh]), &c, &st, 15 * SEC), Some(20 * SEC));
    }

    #[test]
    fn toxicity_picks_a_stable_share_of_connections() {
        let mut r = rule(Fault::Blackhole);
        r.toxicity = 0.25;
        let hit = (0..10_000u64)
            .filter(|&id| {
                let c = ConnInfo { id, ..conn() };
                r.applies(&c, S)
            })
            .count();
        assert!((2_300..2_700).contains(&hit), "{hit}");
        let c = conn();
        assert_eq!(r.applies(&c, S), r.applies(&c, S));
    }
}
