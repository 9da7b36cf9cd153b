//! Durations and rates as written in scenario files.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Serde as a string, through `Display` and `FromStr` (a parse error keeps its message, and
/// the TOML reader adds where it happened).
macro_rules! serde_as_str {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use serde_as_str;

serde_as_str!(Dur);
serde_as_str!(Rate);

/// A duration written like `"30s"`, `"1m 30s"`, `"250ms"` (humantime syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    /// From whole seconds.
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }

    /// From milliseconds.
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }

    /// As a std duration.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Whole microseconds.
    pub fn as_us(self) -> u64 {
        u64::try_from(self.0.as_micros()).unwrap_or(u64::MAX)
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            format!("invalid duration {s:?} ({e}); write it like \"30s\", \"1m 30s\" or \"250ms\"")
        })
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A rate written like `"500/s"`, `"30/m"` or `"0.5/s"`; stored per second.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Rate {
    /// Events per second.
    pub per_sec: f64,
}

impl Rate {
    /// Events per second.
    pub const fn per_sec(per_sec: f64) -> Self {
        Rate { per_sec }
    }

    /// The time between events at this rate; `None` for a zero rate.
    pub fn interval(self) -> Option<Duration> {
        (self.per_sec > 0.0).then(|| Duration::from_secs_f64(1.0 / self.per_sec))
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid rate {s:?}; write it like \"500/s\", \"30/m\" or \"0.5/s\"");
        let (num, unit) = s.trim().split_once('/').ok_or_else(bad)?;
        let n: f64 = num.trim().parse().map_err(|_| bad())?;
        if !n.is_finite() || n < 0.0 {
            return Err(bad());
        }
        let per = match unit.trim() {
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        Ok(Rate { per_sec: n / per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.per_sec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("30s".parse::<Dur>().unwrap(), Dur::secs(30));
        assert_eq!("1m 30s".parse::<Dur>().unwrap(), Dur::secs(90));
        assert_eq!("250ms".parse::<Dur>().unwrap(), Dur::millis(250));
        let e = "thirty".parse::<Dur>().unwrap_err();
        assert!(e.contains("\"thirty\"") && e.contains("30s"), "{e}");
        assert_eq!(Dur::secs(90).to_string(), "1m 30s");
    }

    #[test]
    fn rates() {
        assert_eq!("500/s".parse::<Rate>().unwrap().per_sec, 500.0);
        assert_eq!("30/m".parse::<Rate>().unwrap().per_sec, 0.5);
        assert_eq!(
            Rate::per_sec(4.0).interval(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(Rate::per_sec(0.0).interval(), None);
        for bad in ["500", "x/s", "-1/s", "5/day", "NaN/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
