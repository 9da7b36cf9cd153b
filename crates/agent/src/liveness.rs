//! Dead-link detection, as an agent can do it: a client learns that its path died only from a
//! PINGRESP that does not come. rumqttc sends PINGREQ every keep-alive; this decides when an
//! unanswered one means the link is dead. Pure: times are passed in.
//!
//! On a path that dies silently at `t`, the next PINGREQ goes out at most one keep-alive later
//! and the agent gives up `pingresp_timeout` after it: detection takes at most
//! `keep_alive + pingresp_timeout` (see [`detection_bound`]).

use std::time::Duration;

/// PINGREQ/PINGRESP bookkeeping of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    timeout: Duration,
    deadline: Option<Duration>,
}

impl Liveness {
    /// Gives up on a PINGREQ unanswered for `pingresp_timeout`.
    pub fn new(pingresp_timeout: Duration) -> Self {
        Self {
            timeout: pingresp_timeout,
            deadline: None,
        }
    }

    /// A PINGREQ went out at `now`; an earlier unanswered one keeps its deadline.
    pub fn ping_sent(&mut self, now: Duration) {
        self.deadline.get_or_insert(now + self.timeout);
    }

    /// PINGRESP arrived.
    pub fn pong(&mut self) {
        self.deadline = None;
    }

    /// When the link will be declared dead unless PINGRESP comes first.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Whether the link is dead at `now`.
    pub fn dead(&self, now: Duration) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }
}

/// The longest a silent path can stay unnoticed.
pub fn detection_bound(keep_alive: Duration, pingresp_timeout: Duration) -> Duration {
    keep_alive + pingresp_timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Pings every `ka` from 0; the path dies at `death` (no PINGRESP after it). Returns when
    /// the agent declares the link dead.
    fn detect_at(ka: Duration, timeout: Duration, death: Duration) -> Duration {
        let mut l = Liveness::new(timeout);
        let mut t = Duration::ZERO;
        loop {
            t += ka;
            l.ping_sent(t);
            if t < death {
                l.pong();
                continue;
            }
            let d = l.deadline().expect("deadline set");
            assert!(!l.dead(d - ms(1)) && l.dead(d));
            return d;
        }
    }

    #[test]
    fn silent_death_is_noticed_within_keep_alive_plus_timeout() {
        let (ka, to) = (Duration::from_secs(5), Duration::from_secs(2));
        assert_eq!(
            detect_at(ka, to, ms(7_000)),
            ms(12_000),
            "ping at 10 s, gives up at 12 s"
        );
        assert_eq!(detect_at(ka, to, ms(10_000)), ms(12_000));
        assert_eq!(detect_at(ka, to, ms(10_001)), ms(17_000));
        for death in (1..200).map(|k| ms(k * 137)) {
            let took = detect_at(ka, to, death) - death;
            assert!(
                took <= detection_bound(ka, to),
                "death at {death:?} took {took:?}"
            );
            assert!(took >= to, "never before the PINGRESP timeout");
        }
    }

    #[test]
    fn an_answer_clears_and_a_second_ping_keeps_the_first_deadline() {
        let mut l = Liveness::new(ms(500));
        l.ping_sent(ms(1_000));
        l.ping_sent(ms(1_400));
        assert_eq!(l.deadline(), Some(ms(1_500)));
        l.pong();
        assert!(!l.dead(ms(10_000)));
        assert_eq!(l.deadline(), None);
    }
}
