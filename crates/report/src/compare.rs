//! Runs side by side: every count and percentile of each run against the first (the baseline),
//! with the change marked a regression or an improvement when it passes a threshold. Pure: the
//! terminal table is here, the page in [`crate::compare_html`].

use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, CellAlignment, Color, Table};

use crate::model::{AgentCounts, Latencies, RunReport, LATENCY_KINDS};
use crate::render::{fmt_count, fmt_us};

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Latencies, losses, failures, CPU, memory.
    Lower,
    /// Deliveries, agents connected.
    Higher,
    /// Set by the scenario (agents configured, wake-ups sent): a change is not a verdict.
    Neither,
}

/// How a figure is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// Microseconds.
    Us,
    /// Seconds.
    Secs,
    /// KiB.
    Kib,
}

/// One figure across the runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its name (`wakeups.lost`, `latency_us.wakeup.p99`, `processes.site.cpu_s`).
    pub name: String,
    /// How it is written.
    pub unit: Unit,
    /// Which way is better.
    pub better: Better,
    /// One value per run (none: the run has no such figure, e.g. no samples).
    pub values: Vec<Option<f64>>,
}

/// A run's figure against the baseline's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Worse by more than the threshold.
    Regression,
    /// Better by more than the threshold.
    Improvement,
    /// Within the threshold, or a figure with no better side.
    Same,
}

/// The change from `base` to `v` for a figure where `better` is better: relative, past
/// `threshold_pct` percent (a count that was zero changes by any amount). None when either is
/// missing.
pub fn change(
    base: Option<f64>,
    v: Option<f64>,
    better: Better,
    threshold_pct: f64,
) -> Option<Change> {
    let (b, v) = (base?, v?);
    let worse_by = match better {
        Better::Lower => v - b,
        Better::Higher => b - v,
        Better::Neither => return Some(Change::Same),
    };
    let past = if b == 0.0 {
        worse_by != 0.0
    } else {
        (worse_by / b.abs()).abs() * 100.0 > threshold_pct
    };
    Some(match (past, worse_by > 0.0) {
        (false, _) => Change::Same,
        (true, true) => Change::Regression,
        (true, false) => Change::Improvement,
    })
}

/// A value as its unit writes it.
pub fn fmt(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Count => fmt_count(v.round().max(0.0) as u64),
        Unit::Us => fmt_us(v.round().max(0.0) as u64),
        Unit::Secs => format!("{v:.2}s"),
        Unit::Kib if v < 1024.0 => format!("{v:.1} KiB"),
        Unit::Kib => format!("{:.1} MiB", v / 1024.0),
    }
}

/// The relative change, `+12.5%`, or the absolute one when the base is zero.
pub fn delta(unit: Unit, base: f64, v: f64) -> String {
    if base == 0.0 {
        if v == 0.0 {
            "±0".into()
        } else {
            format!("+{}", fmt(unit, v))
        }
    } else {
        format!("{:+.1}%", (v - base) / base.abs() * 100.0)
    }
}

struct Figures(Vec<(String, Unit, Better, Option<f64>)>);

impl Figures {
    fn push(&mut self, name: String, unit: Unit, better: Better, v: Option<f64>) {
        self.0.push((name, unit, better, v));
    }

    fn count(&mut self, name: &str, better: Better, v: u64) {
        self.push(name.into(), Unit::Count, better, Some(v as f64));
    }

    fn agents(&mut self, p: &str, a: &AgentCounts) {
        use Better::*;
        self.count(&format!("{p}agents.configured"), Neither, a.configured);
        self.count(
            &format!("{p}agents.connected_peak"),
            Higher,
            a.connected_peak,
        );
        self.count(&format!("{p}agents.connected_end"), Higher, a.connected_end);
        self.count(
            &format!("{p}agents.connect_attempts"),
            Lower,
            a.connect_attempts,
        );
        self.count(
            &format!("{p}agents.connect_failures"),
            Lower,
            a.connect_failures,
        );
        self.count(&format!("{p}agents.disconnects"), Lower, a.disconnects);
        self.count(&format!("{p}agents.drops"), Neither, a.drops);
        self.count(
            &format!("{p}agents.pingresp_timeouts"),
            Lower,
            a.pingresp_timeouts,
        );
        self.count(
            &format!("{p}agents.subscribe_failures"),
            Lower,
            a.subscribe_failures,
        );
        self.count(
            &format!("{p}agents.checkin_failures"),
            Lower,
            a.checkin_failures,
        );
    }

    fn wakeups(&mut self, p: &str, w: &pushsim_metrics::WakeupCounts) {
        use Better::*;
        self.count(&format!("{p}wakeups.sent"), Neither, w.sent);
        self.count(&format!("{p}wakeups.delivered"), Higher, w.delivered);
        self.count(&format!("{p}wakeups.late"), Lower, w.late);
        self.count(&format!("{p}wakeups.lost"), Lower, w.lost);
        self.count(&format!("{p}wakeups.duplicate"), Lower, w.duplicate);
    }

    fn latencies(&mut self, p: &str, l: &Latencies) {
        for (kind, _) in LATENCY_KINDS {
            let s = l.get(kind);
            let has = |v: u64| (s.count > 0).then_some(v as f64);
            self.push(
                format!("{p}latency_us.{kind}.count"),
                Unit::Count,
                Better::Neither,
                Some(s.count as f64),
            );
            for (q, v) in [
                ("p50", s.p50),
                ("p90", s.p90),
                ("p99", s.p99),
                ("p999", s.p999),
                ("max", s.max),
            ] {
                self.push(
                    format!("{p}latency_us.{kind}.{q}"),
                    Unit::Us,
                    Better::Lower,
                    has(v),
                );
            }
        }
    }
}

/// Every figure of one run worth comparing, in report order.
fn figures(r: &RunReport) -> Figures {
    let mut f = Figures(Vec::new());
    f.count(
        "slos.failed",
        Better::Lower,
        r.slos.iter().filter(|s| !s.passed).count() as u64,
    );
    f.agents("", &r.agents);
    f.wakeups("", &r.wakeups);
    f.latencies("", &r.latency_us);
    for (i, o) in r.recovery.iter().enumerate() {
        let p = format!("recovery[{}].", i + 1);
        for (q, v) in [
            ("reconnected_50_s", o.reconnected_50_s),
            ("reconnected_90_s", o.reconnected_90_s),
            ("reconnected_99_s", o.reconnected_99_s),
            ("reconnected_100_s", o.reconnected_100_s),
        ] {
            f.push(format!("{p}{q}"), Unit::Secs, Better::Lower, v);
        }
        f.count(&format!("{p}reconnected"), Better::Higher, o.reconnected);
        f.count(
            &format!("{p}peak_connects_per_s"),
            Better::Neither,
            o.peak_connects_per_s,
        );
        f.count(
            &format!("{p}failed_attempts"),
            Better::Lower,
            o.failed_attempts,
        );
    }
    // Processes by role kind (`site-3` → `site`, a merge's `shard-1/site-0` too): CPU summed,
    // peak RSS summed.
    let mut roles: std::collections::BTreeMap<String, (f64, f64, u64)> = Default::default();
    for p in &r.processes {
        let role = p.role.rsplit('/').next().unwrap_or(&p.role);
        let kind = role
            .split(['-', ' ', '+'])
            .next()
            .unwrap_or(role)
            .to_string();
        let e = roles.entry(kind).or_default();
        e.0 += p.cpu_s;
        e.1 += p.peak_rss_kb as f64;
        e.2 += p.agents;
    }
    for (kind, (cpu, rss, agents)) in roles {
        f.push(
            format!("processes.{kind}.cpu_s"),
            Unit::Secs,
            Better::Lower,
            Some(cpu),
        );
        f.push(
            format!("processes.{kind}.peak_rss"),
            Unit::Kib,
            Better::Lower,
            Some(rss),
        );
        if agents > 0 {
            f.push(
                format!("processes.{kind}.rss_per_agent"),
                Unit::Kib,
                Better::Lower,
                Some(rss / agents as f64),
            );
        }
    }
    if r.groups.len() > 1 {
        for (g, gr) in &r.groups {
            let p = format!("groups.{g}.");
            f.agents(&p, &gr.agents);
            f.wakeups(&p, &gr.wakeups);
            f.latencies(&p, &gr.latency_us);
        }
    }
    f
}

/// Every figure across `runs`, in the order they first appear; a figure a run lacks is `None`
/// there.
pub fn rows(runs: &[&RunReport]) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = Default::default();
    for (k, r) in runs.iter().enumerate() {
        for (name, unit, better, v) in figures(r).0 {
            let i = *index.entry(name.clone()).or_insert_with(|| {
                out.push(Row {
                    name,
                    unit,
                    better,
                    values: vec![None; runs.len()],
                });
                out.len() - 1
            });
            out[i].values[k] = v;
        }
    }
    out
}

/// Regressions of each run against the first, over every row.
pub fn regressions(rows: &[Row], threshold_pct: f64) -> usize {
    rows.iter()
        .map(|r| {
            r.values[1..]
                .iter()
                .filter(|v| {
                    change(r.values[0], **v, r.better, threshold_pct) == Some(Change::Regression)
                })
                .count()
        })
        .sum()
}

/// The terminal table: one column per `(label, report)`, the first the baseline; only the
/// figures that differ between runs (every figure is on the page), changes past
/// `threshold_pct` marked `▲` (worse) and `▼` (better).
pub fn table(title: &str, runs: &[(String, &RunReport)], threshold_pct: f64) -> String {
    let reports: Vec<&RunReport> = runs.iter().map(|(_, r)| *r).collect();
    let all = rows(&reports);
    let mut t = Table::new();
    let mut header = vec![Cell::new(title)];
    header.extend(runs.iter().map(|(l, _)| Cell::new(l)));
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header);
    let mut same = 0;
    for row in &all {
        if row.values.iter().all(|v| *v == row.values[0]) {
            same += 1;
            continue;
        }
        let mut cells = vec![Cell::new(&row.name)];
        for (k, v) in row.values.iter().enumerate() {
            let Some(v) = v else {
                cells.push(Cell::new("-").set_alignment(CellAlignment::Right));
                continue;
            };
            let mut text = fmt(row.unit, *v);
            let mut cell_color = None;
            if k > 0 {
                if let Some(base) = row.values[0] {
                    text = format!("{text} ({})", delta(row.unit, base, *v));
                    match change(Some(base), Some(*v), row.better, threshold_pct) {
                        Some(Change::Regression) => {
                            text.push_str(" ▲");
                            cell_color = Some(Color::Red);
                        }
                        Some(Change::Improvement) => {
                            text.push_str(" ▼");
                            cell_color = Some(Color::Green);
                        }
                        _ => {}
                    }
                }
            }
            let mut c = Cell::new(text).set_alignment(CellAlignment::Right);
            if let Some(col) = cell_color {
                c = c.fg(col);
            }
            cells.push(c);
        }
        t.add_row(cells);
    }
    format!(
        "{t}\n{same} figures the same in every run; ▲ worse, ▼ better than {} by more than {threshold_pct}%\n",
        runs.first().map(|(l, _)| l.as_str()).unwrap_or("the first")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_by_direction_and_threshold() {
        use Better::*;
        assert_eq!(
            change(Some(100.0), Some(111.0), Lower, 10.0),
            Some(Change::Regression)
        );
        assert_eq!(
            change(Some(100.0), Some(109.0), Lower, 10.0),
            Some(Change::Same)
        );
        assert_eq!(
            change(Some(100.0), Some(80.0), Lower, 10.0),
            Some(Change::Improvement)
        );
        assert_eq!(
            change(Some(100.0), Some(80.0), Higher, 10.0),
            Some(Change::Regression)
        );
        assert_eq!(
            change(Some(0.0), Some(1.0), Lower, 10.0),
            Some(Change::Regression)
        );
        assert_eq!(
            change(Some(0.0), Some(0.0), Lower, 10.0),
            Some(Change::Same)
        );
        assert_eq!(
            change(Some(5.0), Some(500.0), Neither, 10.0),
            Some(Change::Same)
        );
        assert_eq!(change(None, Some(1.0), Lower, 10.0), None);
    }

    #[test]
    fn rows_line_up_figures_and_mark_regressions() {
        let mut a = RunReport::default();
        a.wakeups.sent = 100;
        a.wakeups.delivered = 100;
        a.latency_us.wakeup.count = 100;
        a.latency_us.wakeup.p99 = 1_000;
        let mut b = a.clone();
        b.wakeups.delivered = 97;
        b.wakeups.lost = 3;
        b.latency_us.wakeup.p99 = 2_000;
        let rows = rows(&[&a, &b]);
        let get = |n: &str| {
            rows.iter()
                .find(|r| r.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        assert_eq!(get("wakeups.lost").values, vec![Some(0.0), Some(3.0)]);
        assert_eq!(
            get("latency_us.wakeup.p99").values,
            vec![Some(1000.0), Some(2000.0)]
        );
        assert_eq!(
            get("latency_us.detect.p99").values,
            vec![None, None],
            "no samples"
        );
        // lost 0→3, delivered 100→97, p99 doubled; delivered -3% is within 10%.
        assert_eq!(regressions(&rows, 10.0), 2);
        assert_eq!(regressions(&rows, 2.0), 3);
        let t = table("run", &[("a".into(), &a), ("b".into(), &b)], 10.0);
        let line = t.lines().find(|l| l.contains("wakeups.lost")).expect(&t);
        assert!(line.contains("▲") && line.contains("+3"), "{t}");
        assert!(
            !t.contains("wakeups.sent"),
            "unchanged rows are left out: {t}"
        );
    }

    #[test]
    fn a_merged_run_compares_by_role_with_a_whole_one() {
        let site = |role: &str, rss: u64| crate::model::ProcessStats {
            role: role.into(),
            cpu_s: 2.0,
            peak_rss_kb: rss,
            agents: 1000,
            ..Default::default()
        };
        let whole = RunReport {
            processes: vec![site("site-0", 40_000), site("site-1", 40_000)],
            ..Default::default()
        };
        let merged = RunReport {
            processes: vec![
                site("shard-0/site-0", 30_000),
                site("shard-1/site-0", 30_000),
            ],
            ..Default::default()
        };
        let rows = rows(&[&whole, &merged]);
        let per_agent = rows
            .iter()
            .find(|r| r.name == "processes.site.rss_per_agent")
            .expect("one site row for both");
        assert_eq!(per_agent.values, vec![Some(40.0), Some(30.0)]);
        assert!(!rows.iter().any(|r| r.name.starts_with("processes.shard")));
        assert_eq!(fmt(Unit::Kib, 40.0), "40.0 KiB");
    }
}
