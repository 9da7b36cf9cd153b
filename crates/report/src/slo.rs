//! SLOs evaluated on report.json paths (`wakeups.lost`, `latency_us.wakeup.p99`, ...).

use pushsim_scenario::{Limit, Slo};
use serde_json::Value;

use crate::model::{RunReport, SloResult};

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, key| v.get(key))
}

/// Evaluates every SLO against `report`. A path without a number fails its SLO.
pub fn evaluate(report: &RunReport, slos: &[Slo]) -> Vec<SloResult> {
    let v = serde_json::to_value(report).unwrap_or(Value::Null);
    slos.iter()
        .map(|s| {
            let value = lookup(&v, &s.path).and_then(Value::as_f64);
            let limit = match &s.limit {
                Limit::Value(x) => Some(*x),
                Limit::Path(p) => lookup(&v, p).and_then(Value::as_f64),
            };
            SloResult {
                name: s.to_string(),
                limit: match (&s.limit, limit) {
                    (Limit::Path(p), Some(x)) => format!("{} {p} ({x})", s.op.symbol()),
                    _ => s.limit_text(),
                },
                value,
                passed: matches!((value, limit), (Some(x), Some(l)) if s.op.holds(x, l)),
            }
        })
        .collect()
}

/// Every numeric path of report.json an SLO may name, for a scenario with `groups`.
pub fn numeric_paths(groups: &[String]) -> Vec<String> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            Value::Number(_) => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut skeleton = RunReport::default();
    for g in groups {
        skeleton.groups.insert(g.clone(), Default::default());
    }
    let v = serde_json::to_value(skeleton).unwrap_or(Value::Null);
    walk("", &v, &mut out);
    out.retain(|p| !matches!(p.as_str(), "schema_version" | "seed"));
    out
}

/// Checks that every SLO names a numeric report.json path; the error lists the valid ones.
pub fn check_paths(slos: &[Slo], groups: &[String]) -> Result<(), String> {
    let valid = numeric_paths(groups);
    let bad: Vec<&str> = slos
        .iter()
        .flat_map(|s| s.paths())
        .filter(|p| !valid.iter().any(|v| v == p))
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    Err(format!(
        "SLO path{} {} not in report.json; valid paths: {}",
        if bad.len() > 1 { "s" } else { "" },
        bad.join(", "),
        valid.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_on_report_paths() {
        let mut r = RunReport::default();
        r.wakeups.lost = 2;
        r.latency_us.wakeup.p99 = 900;
        let slos: Vec<Slo> = [
            "wakeups.lost == 0",
            "latency_us.wakeup.p99 < 1ms",
            "agents.nope > 1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let res = evaluate(&r, &slos);
        assert_eq!(
            res.iter().map(|s| s.passed).collect::<Vec<_>>(),
            vec![false, true, false]
        );
        assert_eq!(res[0].value, Some(2.0));
        assert_eq!(res[1].limit, "< 1000");
        assert_eq!(res[2].value, None);
        let rel: Slo = "agents.connected_end == agents.configured".parse().unwrap();
        r.agents.configured = 4;
        r.agents.connected_end = 4;
        let res = evaluate(&r, std::slice::from_ref(&rel));
        assert!(res[0].passed);
        assert_eq!(res[0].limit, "== agents.configured (4)");
        r.agents.connected_end = 3;
        assert!(!evaluate(&r, &[rel])[0].passed);
    }

    #[test]
    fn path_check_names_the_bad_path_and_valid_ones() {
        let ok: Slo = "latency_us.wakeup_cold.p999 < 5s".parse().unwrap();
        assert!(check_paths(&[ok], &[]).is_ok());
        let grouped: Slo = "groups.ka-15s.wakeups.lost == 0".parse().unwrap();
        assert!(check_paths(std::slice::from_ref(&grouped), &["ka-15s".into()]).is_ok());
        assert!(check_paths(&[grouped], &["other".into()]).is_err());
        let bad: Slo = "wakeups.lst == 0".parse().unwrap();
        let e = check_paths(&[bad], &[]).unwrap_err();
        assert!(
            e.contains("wakeups.lst") && e.contains("wakeups.lost"),
            "{e}"
        );
    }
}
