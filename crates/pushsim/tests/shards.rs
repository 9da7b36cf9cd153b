//! A run split into shards, through the binary: 4 shard processes × 500 agents against one
//! mosquitto (the test's own, on loopback), lined up by `--start-at`, then `report merge`.
//!
//! Without mosquitto the test says so and passes, unless `CI` is set (`.ci/run` installs it).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

mod common;

use common::{mosquitto, n, own_broker, pushsim, report};
use pushsim_console::schedule::{Schedule, Stream};
use pushsim_metrics::Histo;

const SHARDS: u32 = 4;
const AGENTS: u64 = 2_000;

/// Two groups; wake-ups start once every agent is in, so none is sent to an agent that is not
/// connected yet. The SLOs hold only for the whole: a shard has 500 agents.
const SCENARIO: &str = r#"
description = "2,000 agents in 4 shards"
duration = "14s"
seed = 7
slo = ["agents.configured == 2000", "agents.connected_end == 2000", "agents.disconnects == 0"]
[agents]
ramp = "1000/s"
connect_timeout = "10s"
[[group]]
name = "big"
agents = 1500
[[group]]
name = "small"
agents = 500
[wakeups]
broadcast = ["9s"]
rate = "200/s"
rate_from = "9s"
rate_until = "13s"
drain = "10s"
"#;

fn merge_args<'a>(dirs: &'a [String], out: &'a str) -> Vec<&'a str> {
    let mut v = vec!["report", "merge"];
    v.extend(dirs.iter().map(String::as_str));
    v.extend(["--out", out]);
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn four_shards_against_one_mosquitto_merge_into_one_run() {
    let Some(bin) = mosquitto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = own_broker(&bin, dir.path());
    let file = dir.path().join("sharded.toml");
    std::fs::write(&file, SCENARIO).unwrap();
    let url = format!("mqtts://localhost:{}", b.port);
    let start_at =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(8)).to_string();
    let dirs: Vec<String> = (0..SHARDS)
        .map(|i| dir.path().join(format!("shard-{i}")).display().to_string())
        .collect();
    let runs = (0..SHARDS).map(|i| {
        let shard = format!("{i}/{SHARDS}");
        let (file, url, start_at, out) = (
            file.display().to_string(),
            url.clone(),
            start_at.clone(),
            dirs[i as usize].clone(),
        );
        let (ca, cert, key) = (
            b.files.ca_cert.display().to_string(),
            b.client.0.display().to_string(),
            b.client.1.display().to_string(),
        );
        tokio::spawn(async move {
            pushsim(
                &[
                    "scenario",
                    &file,
                    "--shard",
                    &shard,
                    "--start-at",
                    &start_at,
                    "--broker",
                    &url,
                    "--ca",
                    &ca,
                    "--cert",
                    &cert,
                    "--key",
                    &key,
                    "--out",
                    &out,
                ],
                Duration::from_secs(150),
            )
            .await
        })
    });
    let outcomes: Vec<_> = futures_join(runs.collect()).await;
    for (i, (code, stdout, stderr)) in outcomes.iter().enumerate() {
        assert_eq!(
            *code, 0,
            "shard {i} exits 0 (its SLOs are the merge's)\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            stdout.contains(&format!("shard    {i}/{SHARDS} · 500 agents")),
            "{stdout}"
        );
    }

    // Each shard: its own 500 agents, no SLO verdict, its start against the common one.
    let shards: Vec<serde_json::Value> = dirs
        .iter()
        .map(|d| report(&Path::new(d).join("report.json")))
        .collect();
    for (i, r) in shards.iter().enumerate() {
        assert_eq!(n(r, "shard.index"), i as u64);
        assert_eq!(n(r, "agents.configured"), 500);
        assert_eq!(r["slos"].as_array().unwrap().len(), 0);
        assert!(r["shard"]["late_s"].as_f64().is_some());
    }

    let merged_dir = dir.path().join("merged");
    let out = merged_dir.display().to_string();
    let (code, stdout, stderr) = pushsim(&merge_args(&dirs, &out), Duration::from_secs(30)).await;
    assert_eq!(
        code, 0,
        "every SLO holds for the whole\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("merged   4 shards"), "{stdout}");
    let m = report(&merged_dir.join("report.json"));
    assert!(merged_dir.join("report.html").is_file());

    // Counts are the sums of the shards'.
    let sum = |path: &str| shards.iter().map(|r| n(r, path)).sum::<u64>();
    for path in [
        "agents.configured",
        "agents.connected_end",
        "agents.connect_attempts",
        "wakeups.sent",
        "wakeups.delivered",
        "wakeups.late",
        "wakeups.lost",
        "groups.big.agents.configured",
        "groups.small.wakeups.sent",
    ] {
        assert_eq!(n(&m, path), sum(path), "{path}");
    }
    assert_eq!(n(&m, "agents.configured"), AGENTS);
    assert_eq!(n(&m, "groups.big.agents.configured"), 1_500);
    assert_eq!(n(&m, "agents.connected_peak"), AGENTS);
    assert_eq!(
        n(&m, "groups.big.agents.connected_peak"),
        1_500,
        "the merged group timeline's peak"
    );
    assert_eq!(
        n(&m, "agents.connected_end"),
        AGENTS,
        "ids are disjoint: nobody was kicked"
    );
    // The shards sent the schedule of one 2,000-agent run, each wake-up once.
    let whole = Schedule::plan(
        AGENTS as u32,
        &[Duration::from_secs(9)],
        Some(Stream {
            per_sec: 200.0,
            from: Duration::from_secs(9),
            until: Duration::from_secs(13),
        }),
        7,
    );
    assert_eq!(n(&m, "wakeups.sent"), whole.len() as u64);
    assert_eq!(
        n(&m, "wakeups.delivered") + n(&m, "wakeups.late") + n(&m, "wakeups.lost"),
        n(&m, "wakeups.sent")
    );
    let tl_sent: u64 = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["wakeups_sent"].as_u64().unwrap())
        .sum();
    assert_eq!(tl_sent, n(&m, "wakeups.sent"), "the timelines add up");

    // Merged percentiles are those of the shards' raw histograms added together.
    let mut raw: BTreeMap<String, Histo> = BTreeMap::new();
    for d in &dirs {
        for (tag, h) in pushsim_report::hlog::read(&Path::new(d).join("histograms.hlog")).unwrap() {
            raw.entry(tag).or_default().add(&h);
        }
    }
    for (tag, path) in [
        ("wakeup", "latency_us.wakeup"),
        ("wakeup_cold", "latency_us.wakeup_cold"),
        ("connect", "latency_us.connect"),
        (
            "group.small.wakeup_cold",
            "groups.small.latency_us.wakeup_cold",
        ),
    ] {
        let want = serde_json::to_value(raw[tag].summary()).unwrap();
        assert_eq!(common::get(&m, path), &want, "{tag}");
    }
    assert_eq!(n(&m, "latency_us.wakeup_cold.count"), AGENTS);
    let again = pushsim_report::hlog::read(&merged_dir.join("histograms.hlog")).unwrap();
    assert_eq!(again["wakeup"].summary(), raw["wakeup"].summary());

    // An SLO that fails on the whole fails the merge; an incomplete set is refused.
    let mut failing = merge_args(&dirs, &out);
    failing.extend(["--slo", "latency_us.wakeup.p50 < 1us"]);
    let (code, stdout, _) = pushsim(&failing, Duration::from_secs(30)).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAIL SLO latency_us.wakeup.p50 < 1"),
        "{stdout}"
    );
    let (code, _, stderr) = pushsim(&merge_args(&dirs[..3], &out), Duration::from_secs(30)).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("shard 3/4 missing"), "{stderr}");
    let (code, _, stderr) = pushsim(&merge_args(&dirs, &dirs[1]), Duration::from_secs(30)).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("would overwrite"), "{stderr}");
    assert_eq!(
        n(
            &report(&Path::new(&dirs[1]).join("report.json")),
            "shard.index"
        ),
        1
    );
}

/// Awaits every task, in order.
async fn futures_join<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("shard task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn shard_options_that_cannot_work_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, SCENARIO).unwrap();
    let f = file.to_str().unwrap();
    let bound = Duration::from_secs(30);
    // Several shards, each with a broker of its own: not one run.
    let (code, _, stderr) = pushsim(&["scenario", f, "--shard", "1/4"], bound).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--shard 1/4") && stderr.contains("--broker mqtts://"),
        "{stderr}"
    );
    for (args, says) in [
        (vec!["--shard", "4/4"], "i must be below N"),
        (vec!["--shard", "x"], "a shard is i/N"),
        (vec!["--start-at", "2026-01-01T00:00:00Z"], "--shard"),
        (vec!["--shard", "0/1", "--start-at", "soon"], "RFC 3339"),
        (
            vec!["--shard", "0/1", "--start-at", "2999-01-01T00:00:00Z"],
            "more than a day away",
        ),
    ] {
        let mut a = vec!["scenario", f];
        a.extend(&args);
        let (code, _, stderr) = pushsim(&a, bound).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // More shards than agents, on an external broker (refused before it is looked up).
    let (code, _, stderr) = pushsim(
        &[
            "scenario",
            f,
            "--agents",
            "3",
            "--shard",
            "0/4",
            "--broker",
            "mqtts://localhost:1",
            "--ca",
            f,
        ],
        bound,
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("4 shards for 3 agents"), "{stderr}");
    // `check` validates without running: this file is fine, a broken one is named.
    let (code, stdout, _) = pushsim(&["check", f, "wakeup-latency"], bound).await;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("2000 agents in 2 group(s)"), "{stdout}");
    std::fs::write(&file, SCENARIO.replace("agents = 500", "agents = 0")).unwrap();
    let (code, _, stderr) = pushsim(&["check", f], bound).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("group[1].agents"), "{stderr}");
}
