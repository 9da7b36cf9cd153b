//! The embedded HTTP CONNECT proxy's faults and request reading, pure: what the proxy answers
//! a new connection and a CONNECT request, given its rules, its open tunnels and the time.
//!
//! Requests are parsed with `httparse` (RFC 9110 §9.3.6: `CONNECT host:port HTTP/1.1`); anything
//! else gets a 4xx and the connection is closed.

use std::time::Duration;

use crate::rule::Ns;

pub use pushsim_scenario::ProxyFault;

/// A fault switched on between two times of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRule {
    /// Its id (its position in the scenario's `proxy.faults`), for counting what it hit.
    pub id: u32,
    /// The fault.
    pub fault: ProxyFault,
    /// Only connections from these groups (none: all).
    pub groups: Option<Vec<u16>>,
    /// On from.
    pub from_ns: Ns,
    /// Off at (none: never).
    pub until_ns: Option<Ns>,
}

impl ProxyRule {
    /// A rule on for the whole run.
    pub fn always(fault: ProxyFault) -> Self {
        Self {
            id: 0,
            fault,
            groups: None,
            from_ns: 0,
            until_ns: None,
        }
    }

    fn live(&self, group: u16, now: Ns) -> bool {
        now >= self.from_ns
            && self.until_ns.is_none_or(|u| now < u)
            && self.groups.as_ref().is_none_or(|g| g.contains(&group))
    }
}

/// What the proxy does with a new connection, before reading anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAccept {
    /// Read the request.
    Read,
    /// RST, as the rule with this id says.
    Refuse(u32),
}

/// The proxy's answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200 Connection established` after `delay`, then a tunnel to `target`.
    Tunnel {
        /// `host:port` to connect to.
        target: String,
        /// Added before the answer.
        delay: Duration,
    },
    /// A status line (and headers) after `delay`, then close.
    Status {
        /// The status code.
        code: u16,
        /// Added before the answer.
        delay: Duration,
        /// The rule that decided it (none: the request itself was bad).
        rule: Option<u32>,
    },
    /// Never answer, as the rule with this id says.
    Hang(u32),
}

/// The request head as read: method and target, or the status that refuses it.
pub fn parse_request(head: &[u8]) -> Result<(String, String), u16> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => return Err(400),
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default().to_string();
    if method != "CONNECT" {
        return Err(405);
    }
    Ok((method, target))
}

/// The port of an authority-form target (`host:port`), if it is one.
pub fn target_port(target: &str) -> Option<u16> {
    let (host, port) = target.rsplit_once(':')?;
    if host.is_empty() {
        return None;
    }
    port.parse().ok()
}

/// What to do with a new connection from `group` with `open` tunnels open.
pub fn on_accept(rules: &[ProxyRule], group: u16, open: usize, now: Ns) -> OnAccept {
    for r in rules.iter().filter(|r| r.live(group, now)) {
        match r.fault {
            ProxyFault::Down => return OnAccept::Refuse(r.id),
            ProxyFault::MaxTunnels {
                limit,
                refuse: true,
            } if open >= limit as usize => return OnAccept::Refuse(r.id),
            _ => {}
        }
    }
    OnAccept::Read
}

/// The answer to a CONNECT to `target` from `group` with `open` tunnels open.
pub fn answer(rules: &[ProxyRule], group: u16, target: &str, open: usize, now: Ns) -> Answer {
    let live: Vec<&ProxyRule> = rules.iter().filter(|r| r.live(group, now)).collect();
    let delay = live
        .iter()
        .filter_map(|r| match r.fault {
            ProxyFault::Latency(d) => Some(d),
            _ => None,
        })
        .sum();
    let Some(port) = target_port(target) else {
        return Answer::Status {
            code: 400,
            delay,
            rule: None,
        };
    };
    for r in &live {
        let code = match &r.fault {
            ProxyFault::Hang => return Answer::Hang(r.id),
            ProxyFault::AuthRequired => 407,
            ProxyFault::Error(c) => *c,
            ProxyFault::AllowPorts(ports) if !ports.contains(&port) => 403,
            ProxyFault::MaxTunnels { limit, .. } if open >= *limit as usize => 503,
            _ => continue,
        };
        return Answer::Status {
            code,
            delay,
            rule: Some(r.id),
        };
    }
    Answer::Tunnel {
        target: target.to_string(),
        delay,
    }
}

/// How long an idle tunnel of `group` may live, if a rule limits it, and that rule's id.
pub fn idle_timeout(rules: &[ProxyRule], group: u16, now: Ns) -> Option<(Duration, u32)> {
    rules
        .iter()
        .filter(|r| r.live(group, now))
        .filter_map(|r| match r.fault {
            ProxyFault::TunnelIdleTimeout(d) => Some((d, r.id)),
            _ => None,
        })
        .min()
}

/// The status line and headers of a refusal.
pub fn status_head(code: u16) -> String {
    let reason = match code {
        400 => "Bad Request",
        403 => "Forbidden",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    };
    let extra = if code == 407 {
        "Proxy-Authenticate: Basic realm=\"pushsim\"\r\n"
    } else {
        ""
    };
    format!("HTTP/1.1 {code} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECT: &[u8] = b"CONNECT 127.0.0.1:8883 HTTP/1.1\r\nHost: 127.0.0.1:8883\r\n\r\n";

    #[test]
    fn connect_requests_parse_and_others_are_refused() {
        assert_eq!(
            parse_request(CONNECT),
            Ok(("CONNECT".into(), "127.0.0.1:8883".into()))
        );
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\n\r\n"), Err(405));
        assert_eq!(parse_request(b"CONNECT\r\n\r\n"), Err(400));
        assert_eq!(parse_request(b"\xff\xfe garbage\r\n\r\n"), Err(400));
        assert_eq!(target_port("localhost:443"), Some(443));
        assert_eq!(target_port(":443"), None);
        assert_eq!(target_port("localhost"), None);
        assert_eq!(target_port("h:99999"), None);
    }

    proptest::proptest! {
        /// Whatever a client sends, reading it answers (never panics), and only a complete
        /// CONNECT request is accepted.
        #[test]
        fn any_request_bytes_get_an_answer(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let r = parse_request(&bytes);
            if r.is_ok() {
                // (httparse tolerates empty lines before the request line)
                proptest::prop_assert!(bytes.windows(8).any(|w| w == b"CONNECT "));
            }
            if let Ok((_, target)) = r {
                let _ = target_port(&target);
                let _ = answer(&[], 0, &target, 0, 0);
            }
        }

        #[test]
        fn connect_lines_with_any_target_are_read(target in "[!-~]{0,80}") {
            let req = format!("CONNECT {target} HTTP/1.1\r\nHost: x\r\n\r\n");
            let r = parse_request(req.as_bytes());
            if let Ok((m, t)) = r {
                proptest::prop_assert_eq!(m, "CONNECT");
                proptest::prop_assert_eq!(t, target);
            }
        }
    }

    #[test]
    fn faults_decide_the_answer() {
        let t = "127.0.0.1:8883";
        assert!(matches!(answer(&[], 0, t, 0, 0), Answer::Tunnel { .. }));
        let code = |f: ProxyFault| match answer(&[ProxyRule::always(f)], 0, t, 0, 0) {
            Answer::Status { code, .. } => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(ProxyFault::AuthRequired), 407);
        assert_eq!(code(ProxyFault::Error(502)), 502);
        assert_eq!(code(ProxyFault::AllowPorts(vec![443, 563])), 403);
        assert!(matches!(
            answer(
                &[ProxyRule::always(ProxyFault::AllowPorts(vec![8883]))],
                0,
                t,
                0,
                0
            ),
            Answer::Tunnel { .. }
        ));
        assert_eq!(
            answer(&[ProxyRule::always(ProxyFault::Hang)], 0, t, 0, 0),
            Answer::Hang(0)
        );
        let max = ProxyRule::always(ProxyFault::MaxTunnels {
            limit: 2,
            refuse: false,
        });
        assert!(matches!(
            answer(std::slice::from_ref(&max), 0, t, 1, 0),
            Answer::Tunnel { .. }
        ));
        assert!(matches!(
            answer(&[max], 0, t, 2, 0),
            Answer::Status { code: 503, .. }
        ));
        let lat = ProxyRule::always(ProxyFault::Latency(Duration::from_millis(30)));
        assert_eq!(
            answer(&[lat], 0, t, 0, 0),
            Answer::Tunnel {
                target: t.into(),
                delay: Duration::from_millis(30)
            }
        );
    }

    #[test]
    fn down_and_refusing_limits_act_at_accept_and_rules_switch() {
        let down = ProxyRule {
            id: 3,
            fault: ProxyFault::Down,
            groups: Some(vec![1]),
            from_ns: 10,
            until_ns: Some(20),
        };
        let rules = [down];
        assert_eq!(on_accept(&rules, 1, 0, 5), OnAccept::Read);
        assert_eq!(on_accept(&rules, 1, 0, 10), OnAccept::Refuse(3));
        assert_eq!(on_accept(&rules, 0, 0, 10), OnAccept::Read, "other group");
        assert_eq!(on_accept(&rules, 1, 0, 20), OnAccept::Read);
        let max = [ProxyRule::always(ProxyFault::MaxTunnels {
            limit: 1,
            refuse: true,
        })];
        assert_eq!(on_accept(&max, 0, 0, 0), OnAccept::Read);
        assert_eq!(on_accept(&max, 0, 1, 0), OnAccept::Refuse(0));
        let idle = [
            ProxyRule::always(ProxyFault::TunnelIdleTimeout(Duration::from_secs(9))),
            ProxyRule::always(ProxyFault::TunnelIdleTimeout(Duration::from_secs(4))),
        ];
        assert_eq!(idle_timeout(&idle, 0, 0), Some((Duration::from_secs(4), 0)));
        assert!(status_head(407).contains("Proxy-Authenticate: Basic"));
    }
}
