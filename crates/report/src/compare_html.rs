//! The comparison page: several runs side by side, the first the baseline — every figure with
//! its change, regressions marked, and the runs' distributions and timelines overlaid.

use maud::{html, Markup};

use crate::charts::{self, ChartError, Line};
use crate::compare::{change, delta, fmt, regressions, rows, Change};
use crate::html::{distribution_figure, document, figure, legend, line, points};
use crate::model::{RunReport, LATENCY_KINDS};
use crate::render::fmt_count;

fn overlays(runs: &[(String, &RunReport)]) -> Result<Vec<Markup>, ChartError> {
    let mut out = Vec::new();
    for (kind, title) in LATENCY_KINDS {
        let series: Vec<(String, Vec<(f64, u64)>)> = runs
            .iter()
            .filter_map(|(label, r)| {
                let s = r.latency_us.get(kind);
                (s.count > 0).then(|| (legend(label, &s), points(r.distributions.get(kind), &s)))
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        out.push(distribution_figure(kind, title, &series)?);
    }
    let connected: Vec<Line> = runs
        .iter()
        .map(|(label, r)| line(label, r, |p| p.connected))
        .collect();
    let longest = runs.iter().map(|(_, r)| r.duration_s).fold(1.0, f64::max);
    let svg = charts::timeline("Agents connected", "agents", longest, &[], &connected)?;
    out.push(figure(
        "timeline-connected",
        svg,
        connected.iter().map(|l| l.label.as_str()),
    ));
    Ok(out)
}

/// The comparison of `runs` (label, report), the first the baseline; changes past
/// `threshold_pct` percent are marked.
pub fn page(runs: &[(String, &RunReport)], threshold_pct: f64) -> Result<String, ChartError> {
    let reports: Vec<&RunReport> = runs.iter().map(|(_, r)| *r).collect();
    let all = rows(&reports);
    let regressed = regressions(&all, threshold_pct);
    let charts = overlays(runs)?;
    let base = runs.first().map(|(l, _)| l.as_str()).unwrap_or("");
    let body = html! {
        header {
            h1 { "pushsim · comparison of " (runs.len()) " runs" }
            p {
                @if regressed == 0 {
                    span.verdict.pass id="verdict" { "NO REGRESSION" }
                } @else {
                    span.verdict.fail id="verdict" { (regressed) " REGRESSED" }
                }
                "against " b { (base) } ", threshold " (threshold_pct) " %"
            }
        }
        table id="runs" {
            tr { th { "run" } th { "scenario" } th { "started" } th { "seed" } th { "agents" } th { "duration" } th { "SLOs" } th { "pushsim" } }
            @for (label, r) in runs {
                tr {
                    td.l { b { (label) } }
                    td.l { (r.scenario.name) " — " (r.scenario.origin) }
                    td.l { (r.started_at) }
                    td { (r.seed) }
                    td { (fmt_count(r.agents.configured)) }
                    td { (format!("{:.1} s", r.duration_s)) }
                    td { (if r.passed() { "pass" } else { "FAIL" }) }
                    td { (r.pushsim_version) }
                }
            }
        }
        h2 { "Every figure" }
        p.meta { "Each run against " b { (base) } ": red, worse by more than " (threshold_pct) " % (a count that was 0 by any amount); green, better by as much. Figures set by the scenario (configured, sent) are never marked." }
        table id="figures" {
            tr { th { "figure" } @for (label, _) in runs { th { (label) } } }
            @for row in &all {
                @if row.values.iter().any(Option::is_some) {
                    tr {
                        td.l { code { (row.name) } }
                        @for (k, v) in row.values.iter().enumerate() {
                            @let c = if k == 0 { None } else { change(row.values[0], *v, row.better, threshold_pct) };
                            td class=(match c { Some(Change::Regression) => "regression", Some(Change::Improvement) => "improvement", _ => "" }) {
                                @match v {
                                    None => "-",
                                    Some(v) => {
                                        (fmt(row.unit, *v))
                                        @if let (true, Some(b)) = (k > 0, row.values[0]) { " (" (delta(row.unit, b, *v)) ")" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Distributions and timeline" }
        @for f in charts { (f) }
    };
    Ok(document("pushsim · comparison", body))
}
