//! report.html: one self-contained page per run, rendered from the [`RunReport`] alone (no
//! number is recomputed). Charts are inline SVG; a Content-Security-Policy forbids every load,
//! so the page opens from disk and a browser complains of anything that would reach out.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::charts::{self, Band, ChartError, Distribution, Line};
use crate::model::{FaultReport, Latencies, RunReport, SloResult, LATENCY_KINDS};
use crate::render::{fmt_count as n, fmt_us};
use pushsim_metrics::recorder::{PATHS, PATH_NAMES};
use pushsim_metrics::Summary;

/// A distribution's points: the report's, or for a report.json written before distributions
/// were kept, the summary's six percentiles.
pub fn points(dist: Option<&Vec<(f64, u64)>>, s: &Summary) -> Vec<(f64, u64)> {
    match dist {
        Some(d) if !d.is_empty() => d.clone(),
        _ if s.count > 0 => vec![
            (0.0, s.min),
            (50.0, s.p50),
            (90.0, s.p90),
            (99.0, s.p99),
            (99.9, s.p999),
            (100.0, s.max),
        ],
        _ => Vec::new(),
    }
}

/// A legend entry: name, count, p50, p99 and max.
pub fn legend(name: &str, s: &Summary) -> String {
    format!(
        "{name} · n {} · p50 {} · p99 {} · max {}",
        n(s.count),
        fmt_us(s.p50),
        fmt_us(s.p99),
        fmt_us(s.max)
    )
}

/// The page's style: plain, readable, printable.
const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#1d2733;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin:0.2em 0}h2{font-size:1.25em;margin:1.6em 0 0.5em;border-bottom:1px solid #d8dee6;padding-bottom:4px}
h3{font-size:1.05em;margin:1em 0 0.3em}
.meta{color:#4d5b6a;font-size:0.92em}.desc{margin:0.3em 0 0.6em}
.verdict{display:inline-block;font-weight:700;font-size:1.15em;padding:4px 14px;border-radius:6px;color:#fff;margin-right:10px}
.pass{background:#1e8e3e}.fail{background:#c5221f}.warn{background:#b06000}
.banner{background:#fdf0e0;border:1px solid #e0a050;padding:8px 12px;border-radius:6px;margin:8px 0}
.grid{display:grid;grid-template-columns:minmax(0,4fr) minmax(0,8fr);gap:12px 28px;align-items:start}
@media (max-width:900px){.grid{grid-template-columns:1fr}}
.grid>div{overflow-x:auto}
.cards{display:flex;flex-wrap:wrap;gap:6px}.card{border:1px solid #d8dee6;border-radius:6px;padding:3px 8px;min-width:56px}
.card b{display:block;font-size:1.15em}.card span{color:#4d5b6a;font-size:0.85em}.card.bad b{color:#c5221f}
table{border-collapse:collapse;font-size:0.9em;margin:4px 0 8px}th,td{padding:3px 7px;border-bottom:1px solid #e6eaef;text-align:right;vertical-align:top}
th{background:#f3f5f8;font-weight:600}td:first-child,th:first-child{text-align:left}
td.l{text-align:left}tr.failed td{background:#fce8e6}tr.passed td:last-child{color:#1e8e3e;font-weight:600}tr.failed td:last-child{color:#c5221f;font-weight:700}
.regression{background:#fce8e6;color:#a50e0e;font-weight:600}.improvement{background:#e6f4ea;color:#0d652d}
figure{margin:10px 0 18px}figure svg{width:100%;height:auto}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:0.88em;padding-left:70px}.legend i{display:inline-block;width:18px;height:4px;margin:0 6px 3px 0;vertical-align:middle}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:10px;overflow:auto;font-size:0.85em;max-height:480px}
footer{margin-top:2em;color:#6b7785;font-size:0.85em}
"#;

/// Everything may be loaded from nowhere: styles inline, no scripts, images only as data.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// A whole page around `body`.
pub fn document(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(CSP);
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                (body)
                footer { "Written by pushsim " (env!("CARGO_PKG_VERSION")) ". Latencies in µs from HDR histograms; wake-up latency from the intended send time." }
            }
        }
    }
    .into_string()
}

/// A chart and its legend: the lines' labels in the chart's order and colours.
pub fn figure<'a>(id: &str, svg: String, labels: impl IntoIterator<Item = &'a str>) -> Markup {
    html! {
        figure id=(id) class="chart" {
            (PreEscaped(svg))
            figcaption.legend {
                @for (i, l) in labels.into_iter().enumerate() {
                    span { i style=(format!("background:{}", charts::css_color(i))) {} (l) }
                }
            }
        }
    }
}

fn slo_table(slos: &[SloResult]) -> Markup {
    html! {
        @if slos.is_empty() {
            p { "No SLOs in this scenario." }
        } @else {
            table id="slos" {
                tr { th { "SLO" } th { "limit" } th { "value" } th { "verdict" } }
                @for s in slos {
                    tr class=(if s.passed { "passed" } else { "failed" }) {
                        td.l { code { (s.name) } }
                        td { (s.limit) }
                        td { (s.value.map(fmt_value).unwrap_or_else(|| "no value".into())) }
                        td { (if s.passed { "pass" } else { "FAIL" }) }
                    }
                }
            }
        }
    }
}

/// An SLO's value: an integer with thousands separators (its sign kept), else three decimals.
fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let sign = if v < 0.0 { "-" } else { "" };
        format!("{sign}{}", n(v.abs() as u64))
    } else {
        format!("{v:.3}")
    }
}

fn card(label: &str, value: u64, bad: bool) -> Markup {
    html! { div class=(if bad { "card bad" } else { "card" }) { b { (n(value)) } span { (label) } } }
}

/// The latency table: one row per histogram with samples.
pub fn latency_table(l: &Latencies, id: &str) -> Markup {
    html! {
        table id=(id) {
            tr { th { "latency" } th { "count" } th { "min" } th { "p50" } th { "p90" } th { "p99" } th { "p99.9" } th { "max" } }
            @for (kind, title) in LATENCY_KINDS {
                @let s = l.get(kind);
                @if s.count > 0 {
                    tr {
                        td.l title=(title) { (kind) }
                        td { (n(s.count)) }
                        @for v in [s.min, s.p50, s.p90, s.p99, s.p999, s.max] { td { (fmt_us(v)) } }
                    }
                }
            }
        }
    }
}

fn verdict(r: &RunReport) -> Markup {
    let failed = r.slos.iter().filter(|s| !s.passed).count();
    html! {
        @if r.shard.is_some() {
            span.verdict.warn id="verdict" { "SHARD" }
        } @else if r.slos.is_empty() {
            span.verdict.warn id="verdict" { "NO SLOs" }
        } @else if failed == 0 {
            span.verdict.pass id="verdict" { "PASS" }
        } @else {
            span.verdict.fail id="verdict" { "FAIL" }
        }
        @if r.shard.is_some() {
            "SLOs hold for the whole run: `pushsim report merge` judges them"
        } @else if r.slos.is_empty() {
            "nothing to hold the run to"
        } @else if failed == 0 {
            "every SLO held (" (r.slos.len()) ")"
        } @else {
            (failed) " of " (r.slos.len()) " SLOs failed"
        }
    }
}

fn window(f: &FaultReport) -> String {
    match f.until_s {
        Some(u) => format!("{:.1}–{u:.1} s", f.at_s),
        None => format!("from {:.1} s", f.at_s),
    }
}

/// A rule on from the start to the end: the setting of the run, not a window in it.
fn always_on(f: &FaultReport) -> bool {
    f.at_s == 0.0 && f.until_s.is_none()
}

fn rule_label(f: &FaultReport) -> String {
    format!("{} ({} on {})", f.name, f.kind, f.target)
}

/// The shaded windows: every fault rule's and every service outage's.
pub fn bands(r: &RunReport) -> Vec<Band> {
    let end = r.duration_s;
    let mut out: Vec<Band> = r
        .faults
        .iter()
        .filter(|f| !always_on(f))
        .map(|f| Band {
            from_s: f.at_s,
            until_s: f.until_s.unwrap_or(end),
            label: rule_label(f),
            outage: false,
        })
        .collect();
    out.extend(r.recovery.iter().map(|o| Band {
        from_s: o.at_s,
        until_s: o.down_s.map(|d| o.at_s + d).unwrap_or(end),
        label: o.action.clone(),
        outage: true,
    }));
    out
}

fn percentile_charts(r: &RunReport) -> Result<Vec<Markup>, ChartError> {
    let mut out = Vec::new();
    for (kind, title) in LATENCY_KINDS {
        let all = r.latency_us.get(kind);
        if all.count == 0 {
            continue;
        }
        let mut series = vec![(legend("all", &all), points(r.distributions.get(kind), &all))];
        if r.groups.len() > 1 {
            for (g, gr) in &r.groups {
                let s = gr.latency_us.get(kind);
                if s.count > 0 {
                    series.push((legend(g, &s), points(gr.distributions.get(kind), &s)));
                }
            }
        }
        out.push(distribution_figure(kind, title, &series)?);
    }
    Ok(out)
}

/// The percentile chart of histogram `kind` with one line per `(label, points)`, and its legend.
pub fn distribution_figure(
    kind: &str,
    title: &str,
    series: &[(String, Vec<(f64, u64)>)],
) -> Result<Markup, ChartError> {
    let d: Vec<Distribution<'_>> = series
        .iter()
        .map(|(label, p)| Distribution {
            label: label.clone(),
            points: p,
        })
        .collect();
    let svg = charts::percentiles(title, &d)?;
    Ok(figure(
        &format!("dist-{kind}"),
        svg,
        d.iter().map(|s| s.label.as_str()),
    ))
}

/// A timeline line: `f` of each second, drawn at the second's end.
pub fn line(label: &str, r: &RunReport, f: impl Fn(&crate::model::TimelinePoint) -> u64) -> Line {
    Line {
        label: label.to_string(),
        points: r
            .timeline
            .iter()
            .map(|p| (p.t_s as f64 + 1.0, f(p) as f64))
            .collect(),
    }
}

fn timeline_charts(r: &RunReport) -> Result<Vec<Markup>, ChartError> {
    let b = bands(r);
    let mut connected = vec![line("connected", r, |p| p.connected)];
    let used: Vec<usize> = (0..PATHS)
        .filter(|&k| r.timeline.iter().any(|p| p.paths.each()[k].1 > 0))
        .collect();
    if used.len() > 1 {
        for k in used {
            connected.push(line(PATH_NAMES[k], r, |p| p.paths.each()[k].1));
        }
    }
    let mut events = vec![
        line("connects", r, |p| p.connects),
        line("disconnects", r, |p| p.disconnects),
        line("connect failures", r, |p| p.connect_failures),
    ];
    if r.timeline.iter().any(|p| p.drops > 0) {
        events.push(line("drops (fault rules)", r, |p| p.drops));
    }
    let wakeups = vec![
        line("sent", r, |p| p.wakeups_sent),
        line("delivered", r, |p| p.wakeups_delivered),
    ];
    [
        (
            "connected",
            "Agents connected, by path",
            "agents",
            connected,
        ),
        (
            "events",
            "Connects, disconnects and drops per second",
            "per second",
            events,
        ),
        (
            "wakeups",
            "Wake-ups sent and delivered per second",
            "per second",
            wakeups,
        ),
    ]
    .into_iter()
    .map(|(id, title, y, lines)| {
        let svg = charts::timeline(title, y, r.duration_s, &b, &lines)?;
        Ok(figure(
            &format!("timeline-{id}"),
            svg,
            lines.iter().map(|l| l.label.as_str()),
        ))
    })
    .collect()
}

/// The whole report.html of one run.
pub fn page(r: &RunReport) -> Result<String, ChartError> {
    let dists = percentile_charts(r)?;
    let timelines = timeline_charts(r)?;
    let a = &r.agents;
    let w = &r.wakeups;
    let body = html! {
        header {
            h1 { "pushsim · " (r.scenario.name) }
            p.desc { (r.scenario.description) }
            p { (verdict(r)) }
            @if let Some(why) = &r.stopped_early {
                div.banner id="stopped" { "The run stopped early: " (why) }
            }
            @if let Some(line) = crate::render::shard_line(r) {
                p.meta id="shards" { (line) }
            }
            p.meta {
                "started " (r.started_at) " · " (format!("{:.1}", r.duration_s)) " s · broker " (r.plan.broker) " · seed " (r.seed)
                " · " (n(a.configured)) " agents · pushsim " (r.pushsim_version)
                " · " (r.scenario.origin)
            }
        }
        section id="first-screen" {
          h3 { "SLOs" }
          (slo_table(&r.slos))
          div.grid {
            div {
                h3 { "Agents" }
                div.cards {
                    (card("configured", a.configured, false))
                    (card("peak connected", a.connected_peak, false))
                    (card("connected at end", a.connected_end, a.connected_end < a.configured))
                    (card("connect failures", a.connect_failures, false))
                    (card("disconnects", a.disconnects, false))
                    (card("drops by faults", a.drops, false))
                }
                h3 { "Wake-ups" }
                div.cards id="wakeups" {
                    (card("sent", w.sent, false))
                    (card("delivered", w.delivered, false))
                    (card("late", w.late, w.late > 0))
                    (card("lost", w.lost, w.lost > 0))
                    (card("duplicate", w.duplicate, w.duplicate > 0))
                }
            }
            div {
                h3 { "Latency" }
                (latency_table(&r.latency_us, "latency"))
                h3 { "Faults and outages" }
                @if r.faults.is_empty() && r.recovery.is_empty() {
                    p { "None: the network path and the service stayed healthy." }
                } @else {
                    table id="fault-summary" {
                        tr { th { "what" } th { "when" } th { "effect" } }
                        @for f in &r.faults {
                            tr {
                                td.l { (f.name) " (" (f.kind) " on " (f.target) ")" }
                                td { (window(f)) }
                                td { (f.connections_hit.map(|h| format!("{} connections hit", n(h))).unwrap_or_else(|| "hits not known".into())) }
                            }
                        }
                        @for o in &r.recovery {
                            tr {
                                td.l { (o.action) }
                                td { (format!("{:.1} s", o.at_s)) }
                                td { (n(o.reconnected)) " of " (n(o.connected_before)) " back"
                                    @if let Some(t) = o.reconnected_99_s { ", 99 % in " (format!("{t:.2}")) " s" } }
                            }
                        }
                    }
                    p.meta { "Drops by fault rules: " (n(a.drops)) "; detection p99 "
                        (if r.latency_us.detect.count > 0 { fmt_us(r.latency_us.detect.p99) } else { "-".into() }) "." }
                }
            }
          }
        }
        h2 id="distributions" { "Latency percentile distributions" }
        p.meta { "x: percentile on a log \"nines\" scale (90 %, 99 %, 99.9 % … equally spaced); y: latency, log scale. Each line ends at its maximum."
            @if r.groups.len() > 1 { " One line per group, and all agents together." } }
        @for f in dists { (f) }
        h2 id="timeline" { "Timeline" }
        p.meta { "Amber: fault rules switched on; red: the service down. Per-second counts, at the end of each second."
            @let always: Vec<String> = r.faults.iter().filter(|f| always_on(f)).map(rule_label).collect();
            @if !always.is_empty() { " On for the whole run (not shaded): " (always.join(", ")) "." } }
        @for f in timelines { (f) }
        @if r.groups.len() > 1 {
            h2 id="groups" { "Groups" }
            table {
                tr { th { "group" } th { "agents" } th { "connected at end" } th { "connect failures" } th { "drops" }
                     th { "wake-ups sent" } th { "delivered" } th { "late" } th { "lost" }
                     th { "warm p50" } th { "warm p99" } th { "cold p99" } th { "to connected p99" } th { "ends on" } }
                @for (g, gr) in &r.groups {
                    tr {
                        td.l { (g) }
                        td { (n(gr.agents.configured)) } td { (n(gr.agents.connected_end)) }
                        td { (n(gr.agents.connect_failures)) } td { (n(gr.agents.drops)) }
                        td { (n(gr.wakeups.sent)) } td { (n(gr.wakeups.delivered)) } td { (n(gr.wakeups.late)) } td { (n(gr.wakeups.lost)) }
                        @for s in [gr.latency_us.wakeup.p50, gr.latency_us.wakeup.p99, gr.latency_us.wakeup_cold.p99, gr.latency_us.first_connect.p99] {
                            td { (fmt_us(s)) }
                        }
                        td.l { (gr.paths.describe()) }
                    }
                }
            }
        }
        h2 id="recovery" { "Recovery after outages" }
        @if r.recovery.is_empty() {
            p { "No service outage in this run." }
        } @else {
            table {
                tr { th { "outage" } th { "at" } th { "down for" } th { "connected before" } th { "back" }
                     th { "50 %" } th { "90 %" } th { "99 %" } th { "100 %" } th { "peak connects/s" } th { "failed attempts" } }
                @for o in &r.recovery {
                    tr {
                        td.l { (o.action) } td { (format!("{:.1} s", o.at_s)) }
                        td { (secs(o.down_s)) } td { (n(o.connected_before)) } td { (n(o.reconnected)) }
                        @for v in [o.reconnected_50_s, o.reconnected_90_s, o.reconnected_99_s, o.reconnected_100_s] { td { (secs(v)) } }
                        td { (n(o.peak_connects_per_s)) } td { (n(o.failed_attempts)) }
                    }
                }
            }
            p.meta { "Times from the outage's start; \"-\": that share never came back before the run ended." }
        }
        h2 id="faults" { "Fault rules" }
        @if r.faults.is_empty() {
            p { "No fault rule in this run." }
        } @else {
            table {
                tr { th { "rule" } th { "kind" } th { "on" } th { "direction" } th { "groups" } th { "from" } th { "until" } th { "connections hit" } }
                @for f in &r.faults {
                    tr {
                        td.l { (f.name) } td.l { (f.kind) } td.l { (f.target) } td.l { (f.direction) }
                        td.l { (if f.groups.is_empty() { "all".to_string() } else { f.groups.join(", ") }) }
                        td { (format!("{:.1} s", f.at_s)) } td { (secs(f.until_s)) }
                        td { (f.connections_hit.map(n).unwrap_or_else(|| "not known".into())) }
                    }
                }
            }
        }
        @if let Some(p) = &r.proxy {
            h3 { "HTTP proxy" }
            table {
                tr { th { "kind" } th { "connections" } th { "refused" } th { "unanswered" } th { "answers" } th { "closed by" } th { "max open" } }
                tr {
                    td.l { (p.kind) @if let Some(u) = &p.url { " " code { (u) } } }
                    td { (n(p.connections)) } td { (n(p.refused)) } td { (n(p.unanswered)) }
                    td.l { (join(p.statuses.iter().map(|(k, v)| format!("{k} × {}", n(*v))))) }
                    td.l { (join(p.closed.iter().map(|(k, v)| format!("{k} {}", n(*v))))) }
                    td { (n(p.max_open)) }
                }
            }
        }
        @if !r.middlebox.is_empty() || !r.edge.is_empty() {
            h3 { "Middlebox and edge counters" }
            table {
                tr { th { "counter" } th { "value" } }
                @for (k, v) in &r.middlebox { tr { td.l { "middlebox." (k) } td { (n(*v)) } } }
                @for (k, v) in &r.edge { tr { td.l { "edge." (k) } td { (n(*v)) } } }
            }
        }
        h2 id="processes" { "Processes" }
        table {
            tr { th { "role" } th { "pid" } th { "CPU" } th { "of it, start-up" } th { "of it, stopping" } th { "peak RSS" } th { "RSS at end" } th { "agents" } th { "per agent, peak" } th { "per agent, at end" } }
            @for p in &r.processes {
                tr {
                    td.l { (p.role) } td { (p.pid) }
                    td { (format!("{:.2} s", p.cpu_s)) } td { (format!("{:.2} s", p.setup_cpu_s)) }
                    td { (crate::render::stopping_s(p).map_or("-".into(), |c| format!("{c:.2} s"))) }
                    td { (format!("{:.1} MiB", p.peak_rss_kb as f64 / 1024.0)) }
                    td { (format!("{:.1} MiB", p.rss_end_kb as f64 / 1024.0)) }
                    td { (if p.agents > 0 { n(p.agents) } else { "-".into() }) }
                    @for kb in [p.peak_rss_kb, p.rss_end_kb] {
                        td { (if p.agents > 0 { format!("{:.1} KiB", kb as f64 / p.agents as f64) } else { "-".into() }) }
                    }
                }
            }
        }
        h2 id="run" { "The run" }
        table {
            tr { th { "" } th { "" } }
            tr { td.l { "scenario" } td.l { (r.scenario.name) " — " (r.scenario.origin) } }
            tr { td.l { "seed" } td.l { (r.seed) } }
            tr { td.l { "started" } td.l { (r.started_at) } }
            tr { td.l { "pushsim" } td.l { (r.pushsim_version) } }
            tr { td.l { "processes" } td.l { (r.plan.sites) " sites · " (r.plan.edges) " edges · " (r.plan.broker_listeners) " broker listeners · open files " (n(r.plan.nofile_limit)) } }
            tr { td.l { "machine" } td.l { (r.machine.cores) " cores · " (r.machine.cpu) " · " (n(r.machine.memory_mib)) " MiB · kernel " (r.machine.kernel) " · open files (hard) " (n(r.machine.nofile_hard)) } }
        }
        @if let Some(sh) = &r.shard {
            h3 id="shard" { "This shard" }
            (shards_table(std::slice::from_ref(sh)))
        }
        @if !r.shards.is_empty() {
            h3 id="shards-table" { "Shards merged" }
            (shards_table(&r.shards))
        }
        h3 { "Scenario as run" }
        @if r.scenario.text.is_empty() {
            p { "Not in this report.json (written before the scenario text was kept); see scenario.toml beside it." }
        } @else {
            pre id="scenario" { (r.scenario.text) }
        }
    };
    Ok(document(&format!("pushsim · {}", r.scenario.name), body))
}

/// Shards: index, agents, host, the common start and how late each started.
fn shards_table(shards: &[crate::model::ShardInfo]) -> Markup {
    html! {
        table {
            tr { th { "shard" } th { "agents" } th { "host" } th { "common start" } th { "timeline started (UTC ms)" } th { "late" } }
            @for s in shards {
                tr {
                    td.l { (s.index) "/" (s.count) }
                    td { (n(s.agents)) }
                    td.l { (s.host) }
                    td.l { (s.start_at.as_deref().unwrap_or("-")) }
                    td { (s.t0_unix_ms) }
                    td { (if s.late_s > 0.0 { format!("{:.1} s", s.late_s) } else { "-".into() }) }
                }
            }
        }
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2} s")).unwrap_or_else(|| "-".into())
}

fn join(it: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = it.collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_values_keep_their_sign() {
        assert_eq!(fmt_value(-3.0), "-3");
        assert_eq!(fmt_value(1234.0), "1,234");
        assert_eq!(fmt_value(0.5), "0.500");
    }

    #[test]
    fn summary_points_stand_in_for_a_missing_distribution() {
        let s = Summary {
            count: 10,
            min: 1,
            mean: 5,
            p50: 5,
            p90: 9,
            p99: 10,
            p999: 10,
            max: 10,
        };
        assert_eq!(points(None, &s).len(), 6);
        assert_eq!(points(Some(&vec![(0.0, 3), (100.0, 4)]), &s).len(), 2);
        assert!(points(None, &Summary::default()).is_empty());
    }
}
