//! Toxiproxy's JSON shapes (proxies and toxics) and their translation to and from this project's
//! rules, pure. Toxiproxy's toxics keep Toxiproxy's attribute names and units (milliseconds;
//! `slicer.delay` in microseconds; `bandwidth.rate` in KB/s); the project's extra toxics
//! (`blackhole`, `close`, `idle_drop`, `refuse`, `swallow`, `max_connections`) use the same
//! conventions.

use std::time::Duration;

use pushsim_scenario::{Direction, Dur, NetRule};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A toxic, as Toxiproxy's API writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToxicJson {
    /// Unique per proxy (default `<type>_<stream>`).
    #[serde(default)]
    pub name: String,
    /// The toxic type (`latency`, `timeout`, ..., or one of this project's).
    #[serde(rename = "type")]
    pub kind: String,
    /// `upstream` (client to server) or `downstream`.
    #[serde(default = "downstream")]
    pub stream: String,
    /// Probability that it applies to a connection.
    #[serde(default = "one")]
    pub toxicity: f64,
    /// Its parameters.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

fn downstream() -> String {
    "downstream".into()
}
fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}

/// A proxy, as Toxiproxy's API writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProxyJson {
    /// Its name.
    pub name: String,
    /// Where it listens (`host:port`; port 0 picks one).
    #[serde(default)]
    pub listen: String,
    /// Where it forwards to.
    #[serde(default)]
    pub upstream: String,
    /// A disabled proxy refuses new connections and closes open ones.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Its toxics.
    #[serde(default)]
    pub toxics: Vec<ToxicJson>,
}

/// Fields of a proxy update (`POST`/`PATCH /proxies/{name}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyPatch {
    /// New listen address.
    #[serde(default)]
    pub listen: Option<String>,
    /// New upstream.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Enable or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Fields of a toxic update (`POST`/`PATCH /proxies/{name}/toxics/{toxic}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToxicPatch {
    /// New toxicity.
    #[serde(default)]
    pub toxicity: Option<f64>,
    /// Attributes to change.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

fn ms(attrs: &Map<String, Value>, key: &str) -> Result<Option<Dur>, String> {
    num(attrs, key).map(|v| v.map(Dur::millis))
}

fn num(attrs: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match attrs.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or_else(|| format!("attribute {key} = {v} must be a non-negative number")),
    }
}

/// The rule a toxic stands for (its parameters not yet checked: see [`NetRule::typed`]).
pub fn toxic_to_rule(t: &ToxicJson) -> Result<NetRule, String> {
    let dir = match t.stream.as_str() {
        "upstream" => Direction::Up,
        "downstream" => Direction::Down,
        s => {
            return Err(format!(
                "stream = \"{s}\" is not \"upstream\" or \"downstream\""
            ))
        }
    };
    let a = &t.attributes;
    let mut r = NetRule::new(&t.kind);
    r.name = Some(t.name.clone());
    r.toxicity = t.toxicity;
    let connection_level = !matches!(
        t.kind.as_str(),
        "latency" | "bandwidth" | "slicer" | "limit_data" | "timeout"
    );
    r.direction = if connection_level {
        Direction::Both
    } else {
        dir
    };
    let known: &[&str] = match t.kind.as_str() {
        "latency" => {
            r.latency = Some(ms(a, "latency")?.unwrap_or_default());
            r.jitter = ms(a, "jitter")?;
            &["latency", "jitter"]
        }
        "bandwidth" => {
            r.rate = num(a, "rate")?;
            &["rate"]
        }
        "slicer" => {
            r.average_size = num(a, "average_size")?;
            r.size_variation = num(a, "size_variation")?;
            r.delay = num(a, "delay")?.map(|us| Dur(Duration::from_micros(us)));
            &["average_size", "size_variation", "delay"]
        }
        "limit_data" => {
            r.bytes = num(a, "bytes")?;
            &["bytes"]
        }
        "timeout" | "reset_peer" => {
            r.timeout = ms(a, "timeout")?;
            &["timeout"]
        }
        "idle_drop" => {
            r.after = ms(a, "after")?;
            r.mode = mode(a)?;
            &["after", "mode"]
        }
        "max_connections" => {
            r.limit = num(a, "limit")?.map(|l| l.min(u64::from(u32::MAX)) as u32);
            r.mode = mode(a)?;
            &["limit", "mode"]
        }
        "slow_close" => {
            return Err("slow_close is not supported by pushsim's middlebox".into());
        }
        _ => &[],
    };
    if let Some(k) = a.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("attribute {k} is not one of {}'s", t.kind));
    }
    Ok(r)
}

fn mode(a: &Map<String, Value>) -> Result<Option<String>, String> {
    match a.get("mode") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("attribute mode = {v} must be a string")),
    }
}

/// The Toxiproxy toxics that apply `r` (named `name`): one per stream it covers; `blackhole` is a
/// `timeout` of 0 on both streams. Errors name what Toxiproxy cannot do.
pub fn rule_to_toxics(name: &str, r: &NetRule) -> Result<Vec<ToxicJson>, String> {
    let mut attrs = Map::new();
    let ms = |d: Dur| Value::from(d.get().as_millis() as u64);
    let kind = match r.fault.as_str() {
        "latency" => {
            attrs.insert("latency".into(), ms(r.latency.unwrap_or_default()));
            attrs.insert("jitter".into(), ms(r.jitter.unwrap_or_default()));
            "latency"
        }
        "bandwidth" => {
            attrs.insert("rate".into(), Value::from(r.rate.unwrap_or(0)));
            "bandwidth"
        }
        "slicer" => {
            attrs.insert(
                "average_size".into(),
                Value::from(r.average_size.unwrap_or(0)),
            );
            attrs.insert(
                "size_variation".into(),
                Value::from(r.size_variation.unwrap_or(0)),
            );
            let us = r.delay.map(|d| d.get().as_micros() as u64).unwrap_or(0);
            attrs.insert("delay".into(), Value::from(us));
            "slicer"
        }
        "limit_data" => {
            attrs.insert("bytes".into(), Value::from(r.bytes.unwrap_or(0)));
            "limit_data"
        }
        "timeout" | "reset_peer" => {
            attrs.insert("timeout".into(), ms(r.timeout.unwrap_or_default()));
            r.fault.as_str()
        }
        "blackhole" => {
            attrs.insert("timeout".into(), Value::from(0));
            "timeout"
        }
        other => return Err(format!("Toxiproxy has no {other} toxic")),
    };
    let streams: &[&str] = match (kind, r.direction) {
        ("reset_peer", _) => &["downstream"],
        (_, Direction::Up) => &["upstream"],
        (_, Direction::Down) => &["downstream"],
        (_, Direction::Both) => &["upstream", "downstream"],
    };
    Ok(streams
        .iter()
        .map(|s| ToxicJson {
            name: format!("{name}_{s}"),
            kind: kind.into(),
            stream: (*s).into(),
            toxicity: r.toxicity,
            attributes: attrs.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pushsim_scenario::{Fault, IdleMode};

    fn toxic(src: &str) -> ToxicJson {
        serde_json::from_str(src).unwrap()
    }

    #[test]
    fn toxiproxy_toxics_become_rules_in_its_units() {
        let t = toxic(
            r#"{"name":"lat","type":"latency","stream":"upstream","toxicity":0.5,"attributes":{"latency":250,"jitter":10}}"#,
        );
        let r = toxic_to_rule(&t).unwrap();
        assert_eq!(r.direction, Direction::Up);
        assert_eq!(r.toxicity, 0.5);
        assert_eq!(
            r.typed().unwrap(),
            Fault::Latency {
                latency: Duration::from_millis(250),
                jitter: Duration::from_millis(10)
            }
        );
        let t = toxic(
            r#"{"type":"slicer","attributes":{"average_size":64,"size_variation":8,"delay":500}}"#,
        );
        assert_eq!(t.stream, "downstream");
        assert_eq!(
            toxic_to_rule(&t).unwrap().typed().unwrap(),
            Fault::Slicer {
                average_size: 64,
                size_variation: 8,
                delay: Duration::from_micros(500)
            }
        );
        let t = toxic(r#"{"type":"idle_drop","attributes":{"after":20000,"mode":"rst"}}"#);
        let r = toxic_to_rule(&t).unwrap();
        assert_eq!(
            r.direction,
            Direction::Both,
            "connection faults see both ways"
        );
        assert_eq!(
            r.typed().unwrap(),
            Fault::IdleDrop {
                after: Duration::from_secs(20),
                mode: IdleMode::Rst
            }
        );
    }

    #[test]
    fn bad_toxics_are_named() {
        let e = toxic_to_rule(&toxic(r#"{"type":"latency","stream":"sideways"}"#)).unwrap_err();
        assert!(e.contains("sideways"), "{e}");
        let e =
            toxic_to_rule(&toxic(r#"{"type":"latency","attributes":{"latency":-1}}"#)).unwrap_err();
        assert!(e.contains("non-negative"), "{e}");
        let e =
            toxic_to_rule(&toxic(r#"{"type":"timeout","attributes":{"bytes":1}}"#)).unwrap_err();
        assert!(e.contains("attribute bytes"), "{e}");
        let e = toxic_to_rule(&toxic(r#"{"type":"wormhole"}"#))
            .unwrap()
            .typed()
            .unwrap_err();
        assert!(e.contains("not one of"), "{e}");
    }

    #[test]
    fn what_validation_lets_through_to_toxiproxy_is_what_it_can_apply() {
        for kind in pushsim_scenario::fault::FAULT_KINDS {
            let fits = rule_to_toxics("r", &NetRule::new(kind)).is_ok();
            let allowed = pushsim_scenario::TOXIPROXY_KINDS.contains(kind);
            assert_eq!(fits, allowed, "{kind}");
        }
    }

    #[test]
    fn rules_become_toxiproxy_toxics_per_stream() {
        let mut r = NetRule::new("blackhole");
        let t = rule_to_toxics("bh", &r).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].kind.as_str(), t[0].stream.as_str()),
            ("timeout", "upstream")
        );
        assert_eq!(t[1].attributes["timeout"], 0);
        r = NetRule::new("latency");
        r.latency = Some(Dur::millis(40));
        r.direction = Direction::Down;
        let t = rule_to_toxics("l", &r).unwrap();
        assert_eq!((t.len(), t[0].name.as_str()), (1, "l_downstream"));
        assert_eq!(toxic_to_rule(&t[0]).unwrap().latency, Some(Dur::millis(40)));
        assert!(rule_to_toxics("x", &NetRule::new("idle_drop"))
            .unwrap_err()
            .contains("no idle_drop"));
    }
}
