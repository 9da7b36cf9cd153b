//! Runs side by side: one column per run (a sweep's values), one row per figure.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, CellAlignment, Table};

use crate::model::RunReport;
use crate::render::fmt_us;

type Row = (&'static str, fn(&RunReport) -> String);

fn us_or_dash(count: u64, v: u64) -> String {
    if count == 0 {
        "-".into()
    } else {
        fmt_us(v)
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}s")).unwrap_or_else(|| "-".into())
}

const ROWS: &[Row] = &[
    ("SLOs", |r| {
        if r.passed() {
            "pass".into()
        } else {
            "FAIL".into()
        }
    }),
    ("agents connected at end", |r| {
        format!("{}/{}", r.agents.connected_end, r.agents.configured)
    }),
    ("connect failures", |r| {
        r.agents.connect_failures.to_string()
    }),
    ("disconnects", |r| r.agents.disconnects.to_string()),
    ("wake-ups sent", |r| r.wakeups.sent.to_string()),
    ("wake-ups delivered", |r| r.wakeups.delivered.to_string()),
    ("wake-ups lost", |r| r.wakeups.lost.to_string()),
    ("wake-up p50 (warm)", |r| {
        us_or_dash(r.latency_us.wakeup.count, r.latency_us.wakeup.p50)
    }),
    ("wake-up p99 (warm)", |r| {
        us_or_dash(r.latency_us.wakeup.count, r.latency_us.wakeup.p99)
    }),
    ("wake-up p50 (cold)", |r| {
        us_or_dash(r.latency_us.wakeup_cold.count, r.latency_us.wakeup_cold.p50)
    }),
    ("detect p99", |r| {
        us_or_dash(r.latency_us.detect.count, r.latency_us.detect.p99)
    }),
    ("reconnect p50", |r| {
        us_or_dash(r.latency_us.reconnect.count, r.latency_us.reconnect.p50)
    }),
    ("reconnect p99", |r| {
        us_or_dash(r.latency_us.reconnect.count, r.latency_us.reconnect.p99)
    }),
    ("wake-up→check-in p50", |r| {
        us_or_dash(
            r.latency_us.wakeup_to_checkin.count,
            r.latency_us.wakeup_to_checkin.p50,
        )
    }),
    ("wake-up→check-in p99", |r| {
        us_or_dash(
            r.latency_us.wakeup_to_checkin.count,
            r.latency_us.wakeup_to_checkin.p99,
        )
    }),
    ("outage 1: 50% back", |r| {
        secs(r.recovery.first().and_then(|o| o.reconnected_50_s))
    }),
    ("outage 1: 99% back", |r| {
        secs(r.recovery.first().and_then(|o| o.reconnected_99_s))
    }),
    ("outage 1: 100% back", |r| {
        secs(r.recovery.first().and_then(|o| o.reconnected_100_s))
    }),
    ("outage 1: peak connects/s", |r| {
        r.recovery
            .first()
            .map(|o| o.peak_connects_per_s.to_string())
            .unwrap_or_else(|| "-".into())
    }),
    ("outage 1: failed attempts", |r| {
        r.recovery
            .first()
            .map(|o| o.failed_attempts.to_string())
            .unwrap_or_else(|| "-".into())
    }),
    ("service CPU", |r| {
        let cpu: f64 = r
            .processes
            .iter()
            .filter(|p| p.role.starts_with("broker") || p.role.starts_with("edge"))
            .map(|p| p.cpu_s)
            .sum();
        format!("{cpu:.2}s")
    }),
];

/// A table with one column per `(label, report)`; `title` heads the first column.
pub fn table(title: &str, runs: &[(String, &RunReport)]) -> String {
    let mut t = Table::new();
    let mut header = vec![Cell::new(title)];
    header.extend(runs.iter().map(|(l, _)| Cell::new(l)));
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header);
    for (name, f) in ROWS {
        let mut row = vec![Cell::new(name)];
        row.extend(
            runs.iter()
                .map(|(_, r)| Cell::new(f(r)).set_alignment(CellAlignment::Right)),
        );
        t.add_row(row);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_column_per_run() {
        let mut a = RunReport::default();
        a.wakeups.lost = 3;
        let b = RunReport::default();
        let t = table(
            "agents.backoff.policy",
            &[("none".into(), &a), ("full-jitter".into(), &b)],
        );
        let header = t.lines().nth(1).unwrap();
        assert!(
            header.contains("agents.backoff.policy")
                && header.contains("none")
                && header.contains("full-jitter"),
            "{t}"
        );
        let lost = t.lines().find(|l| l.contains("wake-ups lost")).unwrap();
        let cells: Vec<&str> = lost.split_whitespace().collect();
        assert_eq!(cells[cells.len() - 3..], ["3", "0", "│"], "{t}");
    }
}
