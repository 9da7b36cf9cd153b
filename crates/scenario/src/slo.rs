//! SLO expressions: `<report.json path> <op> <limit>`, e.g. `"wakeups.lost == 0"` or
//! `"latency_us.wakeup.p99 < 250ms"`. A duration limit is turned into µs, the unit of every
//! latency in the report.

use std::fmt;
use std::str::FromStr;

use crate::units::{serde_as_str, Dur};

serde_as_str!(Slo);

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    const ALL: [(&'static str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    /// Whether `value op limit` holds.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Eq => value == limit,
            Op::Ne => value != limit,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(_, o)| *o == self)
            .map(|(s, _)| *s)
            .unwrap_or("?")
    }
}

/// One SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Dotted path into report.json, e.g. `latency_us.wakeup.p99`.
    pub path: String,
    /// The comparison.
    pub op: Op,
    /// The limit, in the unit of the path (µs for durations).
    pub limit: Limit,
}

/// The right side of an SLO.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// A number (durations already in µs).
    Value(f64),
    /// Another report.json path, e.g. `agents.configured`.
    Path(String),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Value(v) => write!(f, "{v}"),
            Limit::Path(p) => f.write_str(p),
        }
    }
}

fn is_path(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.contains('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

impl Slo {
    /// The limit as written back (`< 250000`).
    pub fn limit_text(&self) -> String {
        format!("{} {}", self.op.symbol(), self.limit)
    }

    /// Every report.json path the SLO reads.
    pub fn paths(&self) -> Vec<&str> {
        match &self.limit {
            Limit::Path(p) => vec![self.path.as_str(), p.as_str()],
            Limit::Value(_) => vec![self.path.as_str()],
        }
    }
}

impl FromStr for Slo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            format!("invalid SLO {s:?}: {why}; write it like \"wakeups.lost == 0\" or \"latency_us.wakeup.p99 < 250ms\" (operators < <= > >= == !=)")
        };
        let (pos, sym, op) = Op::ALL
            .iter()
            .filter_map(|(sym, op)| s.find(sym).map(|p| (p, *sym, *op)))
            .min_by_key(|(p, sym, _)| (*p, usize::MAX - sym.len()))
            .ok_or_else(|| bad("no comparison operator"))?;
        let path = s[..pos].trim();
        let limit = s[pos + sym.len()..].trim();
        if path.is_empty()
            || !path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(bad("the left side must be a report.json path"));
        }
        let limit = match limit.parse::<f64>() {
            Ok(v) if v.is_finite() => Limit::Value(v),
            _ if is_path(limit) => Limit::Path(limit.to_string()),
            _ => limit
                .parse::<Dur>()
                .map(|d| Limit::Value(d.as_us() as f64))
                .map_err(|_| {
                    bad("the right side must be a number, a duration or a report.json path")
                })?,
        };
        Ok(Slo {
            path: path.to_string(),
            op,
            limit,
        })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.path, self.op.symbol(), self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_durations() {
        let s: Slo = "wakeups.lost == 0".parse().unwrap();
        assert_eq!(
            (s.path.as_str(), s.op, s.limit),
            ("wakeups.lost", Op::Eq, Limit::Value(0.0))
        );
        let s: Slo = "latency_us.wakeup.p99 <= 250ms".parse().unwrap();
        assert_eq!((s.op, s.limit), (Op::Le, Limit::Value(250_000.0)));
        let s: Slo = "agents.connected_peak>=1000".parse().unwrap();
        assert_eq!(
            (s.path.as_str(), s.op, s.limit),
            ("agents.connected_peak", Op::Ge, Limit::Value(1000.0))
        );
        assert!(Op::Le.holds(1.0, 1.0) && !Op::Lt.holds(1.0, 1.0) && Op::Ne.holds(1.0, 2.0));
    }

    #[test]
    fn another_path_as_the_limit() {
        let s: Slo = "agents.connected_end == agents.configured".parse().unwrap();
        assert_eq!(s.limit, Limit::Path("agents.configured".into()));
        assert_eq!(s.paths(), vec!["agents.connected_end", "agents.configured"]);
        assert_eq!(s.to_string().parse::<Slo>().unwrap(), s);
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["wakeups.lost", "== 3", "a b == 1", "x < soon"] {
            let e = bad.parse::<Slo>().unwrap_err();
            assert!(e.contains("invalid SLO"), "{e}");
        }
    }

    #[test]
    fn displays_round_trip() {
        let s: Slo = "latency_us.wakeup.p99 < 1s".parse().unwrap();
        assert_eq!(s.to_string(), "latency_us.wakeup.p99 < 1000000");
        assert_eq!(s.to_string().parse::<Slo>().unwrap(), s);
    }
}
