//! Renderers of a [`RunReport`]: report.json, report.html, the HdrHistogram interval log of the
//! run's histograms, and the terminal summary.

use std::fs;
use std::path::Path;

use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, CellAlignment, Table};
use pushsim_metrics::Summary;

use crate::model::{RunReport, SCHEMA_VERSION};
use crate::ReportError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes report.json (pretty).
pub fn write_json(report: &RunReport, path: &Path) -> Result<(), ReportError> {
    let text = serde_json::to_string_pretty(report)?;
    fs::write(path, text + "\n").map_err(io(path))
}

/// Writes report.html: the page of [`crate::html::page`].
pub fn write_html(report: &RunReport, path: &Path) -> Result<(), ReportError> {
    let page = crate::html::page(report)?;
    fs::write(path, page).map_err(io(path))
}

/// Reads a report.json, or the one in a run folder; refuses another `schema_version` before
/// reading any other field.
pub fn read_json(path: &Path) -> Result<RunReport, ReportError> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let name = file.display().to_string();
    let text = fs::read_to_string(&file).map_err(io(&file))?;
    let not_a_report = |why: String| ReportError::NotAReport {
        path: name.clone(),
        why,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| not_a_report(e.to_string()))?;
    let found = value.get("schema_version");
    if found.and_then(serde_json::Value::as_u64) != Some(u64::from(SCHEMA_VERSION)) {
        return Err(ReportError::Schema {
            path: name,
            found: found.map_or_else(|| "missing".into(), |v| v.to_string()),
            writer: value
                .get("pushsim_version")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown")
                .into(),
        });
    }
    serde_json::from_value(value).map_err(|e| not_a_report(e.to_string()))
}

/// What a shard's report, or a merged one, says of its shards (none for a whole run).
pub fn shard_line(r: &RunReport) -> Option<String> {
    let late = |s: &crate::model::ShardInfo| {
        if s.late_s > 0.0 {
            format!("started {:.1} s late", s.late_s)
        } else if s.start_at.is_some() {
            "started on time".to_string()
        } else {
            "no common start (--start-at)".to_string()
        }
    };
    if let Some(s) = &r.shard {
        return Some(format!(
            "shard    {}/{} · {} agents · {} · SLOs are judged on the merged report (pushsim report merge)",
            s.index,
            s.count,
            s.agents,
            late(s)
        ));
    }
    if r.shards.is_empty() {
        return None;
    }
    let late: Vec<String> = r
        .shards
        .iter()
        .filter(|s| s.late_s > 0.0)
        .map(|s| format!("{} by {:.1} s", s.index, s.late_s))
        .collect();
    Some(format!(
        "merged   {} shards · {}",
        r.shards.len(),
        if late.is_empty() {
            "none started late".to_string()
        } else {
            format!("late: {}", late.join(", "))
        }
    ))
}

/// A count with thousands separators: `12,345`.
pub fn fmt_count(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// µs as a short human figure: `850µs`, `12.3ms`, `4.21s`.
pub fn fmt_us(us: u64) -> String {
    match us {
        0..=999 => format!("{us}µs"),
        1_000..=999_999 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

fn latency_row(t: &mut Table, name: &str, s: &Summary) {
    let mut row = vec![
        Cell::new(name),
        Cell::new(s.count).set_alignment(CellAlignment::Right),
    ];
    for v in [s.min, s.p50, s.p90, s.p99, s.p999, s.max] {
        row.push(
            Cell::new(if s.count == 0 { "-".into() } else { fmt_us(v) })
                .set_alignment(CellAlignment::Right),
        );
    }
    t.add_row(row);
}

/// What the proxy did, on one line.
fn proxy_line(p: &crate::model::ProxyReport) -> String {
    if p.kind == "external" {
        return format!(
            "proxy    external {}\n",
            p.url.as_deref().unwrap_or("(no url)")
        );
    }
    let statuses: Vec<String> = p.statuses.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    let closed: Vec<String> = p.closed.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "proxy    {} connections · {} refused · {} unanswered · answers {} · tunnels closed by {} · max open {}\n",
        p.connections,
        p.refused,
        p.unanswered,
        if statuses.is_empty() { "-".into() } else { statuses.join(" ") },
        if closed.is_empty() { "-".into() } else { closed.join(", ") },
        p.max_open
    )
}

/// The middlebox's rules: where, when, and how many connections each hit.
fn faults_table(r: &RunReport) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "fault rule",
        "kind",
        "on",
        "groups",
        "from",
        "until",
        "connections hit",
    ]);
    for f in &r.faults {
        let on = if f.direction == "both" {
            f.target.clone()
        } else {
            format!("{} ({})", f.target, f.direction)
        };
        t.add_row(vec![
            Cell::new(&f.name),
            Cell::new(&f.kind),
            Cell::new(on),
            Cell::new(if f.groups.is_empty() {
                "all".to_string()
            } else {
                f.groups.join(", ")
            }),
            Cell::new(format!("{:.0}s", f.at_s)).set_alignment(CellAlignment::Right),
            Cell::new(
                f.until_s
                    .map(|u| format!("{u:.0}s"))
                    .unwrap_or("end".into()),
            )
            .set_alignment(CellAlignment::Right),
            Cell::new(f.connections_hit.map_or("-".into(), |n| n.to_string()))
                .set_alignment(CellAlignment::Right),
        ]);
    }
    format!("{t}\n")
}

/// The terminal summary: agents, wake-up accounting, latency table, SLO verdicts.
pub fn terminal(r: &RunReport) -> String {
    let mut out = String::new();
    let a = &r.agents;
    let w = &r.wakeups;
    out.push_str(&format!(
        "pushsim {} · scenario {} · broker {} · seed {} · {:.1}s{}\n",
        r.pushsim_version,
        r.scenario.name,
        r.plan.broker,
        r.seed,
        r.duration_s,
        r.stopped_early
            .as_ref()
            .map(|s| format!(" · stopped early: {s}"))
            .unwrap_or_default()
    ));
    if let Some(line) = shard_line(r) {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!(
        "agents   {} configured · {} peak connected · {} at end · {} connect failures · {} disconnects\n",
        a.configured, a.connected_peak, a.connected_end, a.connect_failures, a.disconnects
    ));
    out.push_str(&format!(
        "wake-ups {} sent · {} delivered · {} late · {} lost · {} duplicate\n",
        w.sent, w.delivered, w.late, w.lost, w.duplicate
    ));
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
        "latency", "count", "min", "p50", "p90", "p99", "p99.9", "max",
    ]);
    latency_row(&mut t, "connect", &r.latency_us.connect);
    latency_row(&mut t, "wake-up (warm)", &r.latency_us.wakeup);
    latency_row(&mut t, "wake-up (cold)", &r.latency_us.wakeup_cold);
    let l = &r.latency_us;
    for (name, sum) in [
        ("to connected", &l.first_connect),
        ("detect", &l.detect),
        ("reconnect", &l.reconnect),
        ("check-in", &l.checkin),
        ("wake-up→check-in", &l.wakeup_to_checkin),
    ] {
        if sum.count > 0 {
            latency_row(&mut t, name, sum);
        }
    }
    out.push_str(&t.to_string());
    out.push('\n');
    out.push_str(&format!(
        "paths    {} on primary · {} on fallback at the end ({})\n",
        r.paths.primary,
        r.paths.fallback,
        r.paths.describe()
    ));
    if let Some(p) = &r.proxy {
        out.push_str(&proxy_line(p));
    }
    if r.groups.len() > 1 {
        let mut g = Table::new();
        g.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
            "group",
            "agents",
            "at end",
            "disconnects",
            "drops",
            "sent",
            "delivered",
            "lost",
            "warm p99",
            "detect p99",
            "reconnect p99",
            "to connected p50",
            "to connected p99",
            "ends on",
        ]);
        let opt = |s: &Summary, v: u64| {
            if s.count == 0 {
                "-".to_string()
            } else {
                fmt_us(v)
            }
        };
        for (name, gr) in &r.groups {
            let right = |c: Cell| c.set_alignment(CellAlignment::Right);
            g.add_row(vec![
                Cell::new(name),
                right(Cell::new(gr.agents.configured)),
                right(Cell::new(gr.agents.connected_end)),
                right(Cell::new(gr.agents.disconnects)),
                right(Cell::new(gr.agents.drops)),
                right(Cell::new(gr.wakeups.sent)),
                right(Cell::new(gr.wakeups.delivered)),
                right(Cell::new(gr.wakeups.lost)),
                right(Cell::new(opt(
                    &gr.latency_us.wakeup,
                    gr.latency_us.wakeup.p99,
                ))),
                right(Cell::new(opt(
                    &gr.latency_us.detect,
                    gr.latency_us.detect.p99,
                ))),
                right(Cell::new(opt(
                    &gr.latency_us.reconnect,
                    gr.latency_us.reconnect.p99,
                ))),
                right(Cell::new(opt(
                    &gr.latency_us.first_connect,
                    gr.latency_us.first_connect.p50,
                ))),
                right(Cell::new(opt(
                    &gr.latency_us.first_connect,
                    gr.latency_us.first_connect.p99,
                ))),
                Cell::new(gr.paths.describe()),
            ]);
        }
        out.push_str(&g.to_string());
        out.push('\n');
    }
    if !r.faults.is_empty() {
        out.push_str(&faults_table(r));
    }
    if !r.recovery.is_empty() {
        let mut rt = Table::new();
        rt.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
            "outage",
            "at",
            "down",
            "before",
            "back",
            "50% back",
            "90%",
            "99%",
            "100%",
            "peak connects/s",
            "failed attempts",
        ]);
        let secs = |v: Option<f64>| {
            v.map(|v| format!("{v:.2}s"))
                .unwrap_or_else(|| "never".into())
        };
        for o in &r.recovery {
            let right = |c: Cell| c.set_alignment(CellAlignment::Right);
            rt.add_row(vec![
                Cell::new(&o.action),
                right(Cell::new(format!("{:.1}s", o.at_s))),
                right(Cell::new(
                    o.down_s
                        .map(|d| format!("{d:.1}s"))
                        .unwrap_or_else(|| "stays down".into()),
                )),
                right(Cell::new(o.connected_before)),
                right(Cell::new(o.reconnected)),
                right(Cell::new(secs(o.reconnected_50_s))),
                right(Cell::new(secs(o.reconnected_90_s))),
                right(Cell::new(secs(o.reconnected_99_s))),
                right(Cell::new(secs(o.reconnected_100_s))),
                right(Cell::new(o.peak_connects_per_s)),
                right(Cell::new(o.failed_attempts)),
            ]);
        }
        out.push_str("recovery (times from the outage's start)\n");
        out.push_str(&rt.to_string());
        out.push('\n');
    }
    if !r.processes.is_empty() {
        let mut p = Table::new();
        p.load_preset(UTF8_BORDERS_ONLY).set_header(vec![
            "process",
            "cpu",
            "of it set-up",
            "of it stopping",
            "peak RSS",
            "RSS at end",
            "agents",
        ]);
        for s in &r.processes {
            p.add_row(vec![
                Cell::new(&s.role),
                Cell::new(format!("{:.2}s", s.cpu_s)).set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.2}s", s.setup_cpu_s)).set_alignment(CellAlignment::Right),
                Cell::new(stopping_s(s).map_or("-".into(), |c| format!("{c:.2}s")))
                    .set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.1} MiB", s.peak_rss_kb as f64 / 1024.0))
                    .set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.1} MiB", s.rss_end_kb as f64 / 1024.0))
                    .set_alignment(CellAlignment::Right),
                Cell::new(if s.agents > 0 {
                    s.agents.to_string()
                } else {
                    String::new()
                })
                .set_alignment(CellAlignment::Right),
            ]);
        }
        out.push_str(&p.to_string());
        out.push('\n');
    }
    if r.slos.is_empty() && r.shard.is_none() {
        out.push_str("no SLOs in this scenario\n");
    }
    for s in &r.slos {
        let value = s
            .value
            .map(|v| v.to_string())
            .unwrap_or_else(|| "no value".into());
        out.push_str(&format!(
            "{} SLO {}  (value {value})\n",
            if s.passed { "PASS" } else { "FAIL" },
            s.name
        ));
    }
    out
}

/// CPU seconds a process spent after the timeline ended (stopping); `None` when not read.
pub(crate) fn stopping_s(p: &crate::model::ProcessStats) -> Option<f64> {
    (p.cpu_end_s > 0.0).then(|| (p.cpu_s - p.cpu_end_s).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SloResult;

    #[test]
    fn terminal_shows_counts_and_verdicts() {
        let mut r = RunReport::default();
        r.scenario.name = "t".into();
        r.wakeups.sent = 10;
        r.wakeups.delivered = 9;
        r.wakeups.lost = 1;
        r.latency_us.wakeup = Summary {
            count: 9,
            min: 100,
            mean: 200,
            p50: 180,
            p90: 1_500,
            p99: 2_000_000,
            p999: 2_000_000,
            max: 2_000_000,
        };
        r.slos.push(SloResult {
            name: "wakeups.lost == 0".into(),
            limit: "== 0".into(),
            value: Some(1.0),
            passed: false,
        });
        r.processes.push(crate::model::ProcessStats {
            role: "site-0".into(),
            cpu_s: 2.5,
            setup_cpu_s: 0.5,
            peak_rss_kb: 2048,
            rss_end_kb: 1536,
            cpu_end_s: 2.25,
            agents: 7,
            ..Default::default()
        });
        // A process whose end was not read shows no stopping figure.
        r.processes.push(crate::model::ProcessStats {
            role: "edge-0".into(),
            cpu_s: 1.0,
            ..Default::default()
        });
        let t = terminal(&r);
        let row = t
            .lines()
            .find(|l| l.contains("site-0"))
            .expect("process row");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells[1..],
            ["site-0", "2.50s", "0.50s", "0.25s", "2.0", "MiB", "1.5", "MiB", "7", "│"],
            "{t}"
        );
        let edge = t.lines().find(|l| l.contains("edge-0")).expect("edge row");
        let cells: Vec<&str> = edge.split_whitespace().collect();
        assert_eq!(cells[2..5], ["1.00s", "0.00s", "-"], "{t}");
        assert!(
            t.contains("of it set-up") && t.contains("of it stopping"),
            "{t}"
        );
        assert!(t.contains("10 sent · 9 delivered · 0 late · 1 lost"), "{t}");
        assert!(
            t.contains("180µs") && t.contains("1.50ms") && t.contains("2.00s"),
            "{t}"
        );
        assert!(t.contains("FAIL SLO wakeups.lost == 0  (value 1)"), "{t}");
    }

    #[test]
    fn thousands() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(1000), "1,000");
        assert_eq!(fmt_count(1234567), "1,234,567");
    }

    #[test]
    fn another_schema_version_or_no_report_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        fs::write(
            &p,
            r#"{"schema_version": 2, "pushsim_version": "9.0.0", "new": true}"#,
        )
        .unwrap();
        let e = read_json(&p).unwrap_err().to_string();
        assert!(
            e.contains("schema_version 2")
                && e.contains(&format!("reads schema_version {SCHEMA_VERSION}"))
                && e.contains("9.0.0"),
            "{e}"
        );
        fs::write(&p, r#"{"wakeups": 3}"#).unwrap();
        let e = read_json(&p).unwrap_err().to_string();
        assert!(e.contains("schema_version missing"), "{e}");
        fs::write(&p, "<html>").unwrap();
        let e = read_json(&p).unwrap_err().to_string();
        assert!(e.contains("not a pushsim report.json"), "{e}");
        fs::write(&p, r#"{"schema_version": 1, "seed": "x"}"#).unwrap();
        let e = read_json(&p).unwrap_err().to_string();
        assert!(e.contains("not a pushsim report.json"), "{e}");
    }

    #[test]
    fn json_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = RunReport {
            schema_version: SCHEMA_VERSION,
            ..Default::default()
        };
        r.wakeups.sent = 3;
        write_json(&r, &dir.path().join("report.json")).unwrap();
        assert_eq!(read_json(&dir.path().join("report.json")).unwrap(), r);
        assert_eq!(
            read_json(dir.path()).unwrap(),
            r,
            "a run folder reads its report.json"
        );
    }
}
