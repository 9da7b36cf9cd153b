//! report.html and the comparison page from a fixed `RunReport`: the verdict, every chart, the
//! tables, and user text escaped — checked on the parsed document.

use std::collections::BTreeMap;

use pushsim_metrics::{Summary, WakeupCounts};
use pushsim_report::compare_html;
use pushsim_report::html::page;
use pushsim_report::model::*;
use scraper::{Html, Selector};

const EVIL: &str = r#"<script>alert("x")</script> & <b>bold</b>"#;

fn summary(count: u64, p50: u64, p99: u64, max: u64) -> Summary {
    Summary {
        count,
        min: p50 / 2,
        mean: p50,
        p50,
        p90: (p50 + p99) / 2,
        p99,
        p999: max,
        max,
    }
}

fn dist(p50: u64, max: u64) -> Vec<(f64, u64)> {
    vec![
        (0.0, p50 / 2),
        (50.0, p50),
        (90.0, p50 * 2),
        (99.0, p50 * 4),
        (99.9, max),
        (100.0, max),
    ]
}

fn group(agents: u64, p50: u64) -> GroupReport {
    let lat = Latencies {
        connect: summary(agents, 3_000, 9_000, 20_000),
        wakeup: summary(agents * 10, p50, p50 * 5, p50 * 9),
        wakeup_cold: summary(agents, p50 * 20, p50 * 60, p50 * 90),
        ..Default::default()
    };
    GroupReport {
        agents: AgentCounts {
            configured: agents,
            connected_end: agents,
            ..Default::default()
        },
        wakeups: WakeupCounts {
            sent: agents * 11,
            delivered: agents * 11,
            ..Default::default()
        },
        latency_us: lat,
        paths: Paths {
            primary: agents,
            direct_primary: agents,
            ..Default::default()
        },
        distributions: BTreeMap::from([
            ("wakeup".to_string(), dist(p50, p50 * 9)),
            ("wakeup_cold".to_string(), dist(p50 * 20, p50 * 90)),
            ("connect".to_string(), dist(3_000, 20_000)),
        ]),
        connected_per_s: vec![agents / 2, agents],
    }
}

/// A run with two groups (one named to break HTML), a fault rule, an outage and a failed SLO.
fn fixed() -> RunReport {
    let a = group(100, 400);
    let b = group(50, 900);
    let mut r = RunReport {
        schema_version: SCHEMA_VERSION,
        pushsim_version: "0.1.0".into(),
        scenario: ScenarioInfo {
            name: EVIL.into(),
            description: format!("description {EVIL}"),
            origin: "/tmp/<evil>.toml".into(),
            text: format!("description = '{EVIL}'\n"),
        },
        seed: 7,
        started_at: "2026-12-05T06:00:00Z".into(),
        duration_s: 30.0,
        agents: AgentCounts {
            configured: 150,
            connected_peak: 150,
            connected_end: 149,
            disconnects: 150,
            drops: 12,
            ..Default::default()
        },
        wakeups: WakeupCounts {
            sent: 1650,
            delivered: 1648,
            lost: 2,
            ..Default::default()
        },
        latency_us: Latencies {
            connect: summary(300, 3_000, 9_000, 20_000),
            wakeup: summary(1500, 500, 3_000, 9_000),
            wakeup_cold: summary(150, 9_000, 40_000, 60_000),
            detect: summary(12, 20_000, 90_000, 95_000),
            reconnect: summary(150, 500_000, 1_900_000, 2_000_000),
            ..Default::default()
        },
        recovery: vec![Recovery {
            action: "service.kill".into(),
            at_s: 10.0,
            down_s: Some(3.0),
            connected_before: 150,
            reconnected: 149,
            reconnected_50_s: Some(3.5),
            reconnected_90_s: Some(4.0),
            reconnected_99_s: Some(4.6),
            reconnected_100_s: None,
            peak_connects_per_s: 80,
            failed_attempts: 40,
        }],
        slos: vec![
            SloResult {
                name: "wakeups.lost == 0".into(),
                limit: "== 0".into(),
                value: Some(2.0),
                passed: false,
            },
            SloResult {
                name: "latency_us.wakeup.p99 <= 5ms".into(),
                limit: "<= 5000".into(),
                value: Some(3000.0),
                passed: true,
            },
        ],
        processes: vec![ProcessStats {
            role: "site-0".into(),
            pid: 42,
            cpu_s: 1.5,
            peak_rss_kb: 10_240,
            agents: 150,
            ..Default::default()
        }],
        faults: vec![FaultReport {
            name: "nat<1>".into(),
            kind: "idle_drop".into(),
            target: "fallback".into(),
            direction: "both".into(),
            at_s: 2.0,
            until_s: Some(20.0),
            connections_hit: Some(12),
            ..Default::default()
        }],
        timeline: (0..30)
            .map(|t| TimelinePoint {
                t_s: t,
                connected: if (10..13).contains(&t) { 0 } else { 150 },
                connects: if t == 0 || t == 13 { 150 } else { 0 },
                wakeups_sent: 55,
                wakeups_delivered: 55,
                paths: Paths {
                    direct_primary: 100,
                    direct_fallback: 50,
                    ..Default::default()
                },
                ..Default::default()
            })
            .collect(),
        machine: Machine {
            cores: 2,
            cpu: "Test CPU".into(),
            memory_mib: 24_000,
            kernel: "6.1.0".into(),
            nofile_hard: 20_000,
        },
        ..Default::default()
    };
    r.groups.insert("a".into(), a);
    r.groups.insert("<b>".into(), b);
    r.distributions.insert("wakeup".into(), dist(500, 9_000));
    r
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    let s = Selector::parse(css).unwrap_or_else(|e| panic!("selector {css}: {e:?}"));
    doc.select(&s).collect()
}

fn text(e: &scraper::ElementRef<'_>) -> String {
    e.text().collect::<Vec<_>>().join("")
}

#[test]
fn the_run_page_has_the_verdict_first_every_chart_and_escapes_user_text() {
    let r = fixed();
    let html = page(&r).expect("renders");
    let doc = Html::parse_document(&html);

    // Self-contained: a policy that forbids every load, and nothing that would load.
    let csp = select(&doc, r#"meta[http-equiv="Content-Security-Policy"]"#);
    assert_eq!(
        csp[0].value().attr("content"),
        Some("default-src 'none'; style-src 'unsafe-inline'; img-src data:")
    );
    assert!(select(&doc, "script, link, img, iframe").is_empty());

    // The verdict: one SLO failed, named with its value.
    assert_eq!(text(&select(&doc, "#verdict")[0]), "FAIL");
    let failed = select(&doc, "#slos tr.failed");
    assert_eq!(failed.len(), 1);
    assert!(text(&failed[0]).contains("wakeups.lost == 0") && text(&failed[0]).contains('2'));
    assert_eq!(select(&doc, "#slos tr.passed").len(), 1);
    // The counts and percentiles of the first screen.
    let wakeups = text(&select(&doc, "#first-screen #wakeups")[0]);
    assert!(
        wakeups.contains("1,650") && wakeups.contains("1,648"),
        "{wakeups}"
    );
    let latency = text(&select(&doc, "#first-screen #latency")[0]);
    assert!(
        latency.contains("500µs") && latency.contains("3.00ms"),
        "{latency}"
    );
    assert!(
        !latency.contains("checkin"),
        "no row for a histogram without samples"
    );

    // A distribution chart for each histogram with samples; groups overlaid with "all".
    for kind in ["wakeup", "wakeup_cold", "connect", "detect", "reconnect"] {
        let fig = select(&doc, &format!("figure#dist-{kind} svg"));
        assert_eq!(fig.len(), 1, "dist-{kind}");
    }
    assert!(select(&doc, "figure#dist-checkin").is_empty());
    let wakeup = text(&select(&doc, "figure#dist-wakeup")[0]);
    assert!(
        wakeup.contains("all · n 1,500")
            && wakeup.contains("a · n 1,000")
            && wakeup.contains("<b> · n 500"),
        "{wakeup}"
    );
    assert!(
        wakeup.contains("99%") && wakeup.contains("99.9%"),
        "nines axis: {wakeup}"
    );
    // The timelines, with the fault rule's and the outage's windows labelled.
    for id in ["connected", "events", "wakeups"] {
        let t = text(&select(&doc, &format!("figure#timeline-{id} svg"))[0]);
        assert!(
            t.contains("nat<1> (idle_drop on fallback)") && t.contains("service.kill"),
            "timeline-{id}: {t}"
        );
    }
    let connected = text(&select(&doc, "figure#timeline-connected")[0]);
    assert!(connected.contains("direct_primary") && connected.contains("direct_fallback"));

    // Tables: recovery, faults, processes, the run.
    let recovery = text(&select(&doc, "#recovery + table")[0]);
    assert!(
        recovery.contains("149") && recovery.contains("4.60 s"),
        "{recovery}"
    );
    let faults = text(&select(&doc, "#faults + table")[0]);
    assert!(
        faults.contains("idle_drop") && faults.contains("12"),
        "{faults}"
    );
    let procs = text(&select(&doc, "#processes + table")[0]);
    assert!(
        procs.contains("site-0") && procs.contains("68.3 KiB"),
        "{procs}"
    );
    let run = text(&select(&doc, "#run + table")[0]);
    assert!(
        run.contains("2 cores") && run.contains("Test CPU") && run.contains("6.1.0"),
        "{run}"
    );

    // User text arrives as text: no element from it, every character shown.
    assert!(select(&doc, "b").iter().all(|b| text(b) != "bold"));
    assert!(text(&select(&doc, "h1")[0]).contains(EVIL));
    assert!(text(&select(&doc, "title")[0]).contains(EVIL));
    assert!(text(&select(&doc, "pre#scenario")[0]).contains(EVIL));
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
}

#[test]
fn a_shard_says_it_is_one_and_a_merge_lists_its_shards() {
    use pushsim_report::model::ShardInfo;
    let info = |index, late_s| ShardInfo {
        index,
        count: 2,
        agents: 500,
        start_at: Some("2026-12-05T10:00:00.000Z".into()),
        t0_unix_ms: 1_796_464_800_000,
        late_s,
        host: "pod-<1>".into(),
    };
    let mut shard = fixed();
    shard.slos.clear();
    shard.shard = Some(info(1, 0.0));
    let doc = Html::parse_document(&page(&shard).expect("renders"));
    assert_eq!(text(&select(&doc, "#verdict")[0]), "SHARD");
    assert!(
        text(&select(&doc, "#shards")[0]).contains("shard    1/2 · 500 agents · started on time")
    );
    let row = text(&select(&doc, "#shard + table")[0]);
    assert!(row.contains("1/2") && row.contains("pod-<1>"), "{row}");

    let mut merged = fixed();
    merged.shards = vec![info(0, 0.0), info(1, 2.5)];
    let doc = Html::parse_document(&page(&merged).expect("renders"));
    assert!(text(&select(&doc, "#shards")[0]).contains("late: 1 by 2.5 s"));
    let rows = select(&doc, "#shards-table + table tr");
    assert_eq!(rows.len(), 3, "a header and one row per shard");
    assert!(text(&rows[2]).contains("2.5 s"));
}

#[test]
fn the_comparison_page_marks_regressions_against_the_first_run() {
    let base = fixed();
    let mut worse = fixed();
    worse.latency_us.wakeup.p99 = 6_000;
    worse.wakeups.lost = 9;
    worse
        .distributions
        .insert("wakeup".into(), dist(700, 12_000));
    let html = compare_html::page(
        &[("before".into(), &base), ("after<1>".into(), &worse)],
        10.0,
    )
    .expect("renders");
    let doc = Html::parse_document(&html);
    assert_eq!(text(&select(&doc, "#verdict")[0]), "2 REGRESSED");
    let regressed: Vec<String> = select(&doc, "#figures td.regression")
        .iter()
        .map(text)
        .collect();
    assert_eq!(
        regressed,
        ["9 (+350.0%)", "6.00ms (+100.0%)"],
        "{regressed:?}"
    );
    let runs = text(&select(&doc, "#runs")[0]);
    assert!(
        runs.contains("before") && runs.contains("after<1>"),
        "{runs}"
    );
    let wakeup = text(&select(&doc, "figure#dist-wakeup")[0]);
    assert!(
        wakeup.contains("before · n") && wakeup.contains("after<1> · n"),
        "{wakeup}"
    );
    assert!(select(&doc, "figure#timeline-connected svg").len() == 1);
    assert!(select(&doc, "script").is_empty());
}
