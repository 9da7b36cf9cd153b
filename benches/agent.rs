//! Memory and CPU per connected idle agent, measured on real processes: the pushsim binary runs
//! a scenario in which every agent connects over TLS (mTLS) and then idles, once through the
//! site's middlebox with no rule and once direct (the agents' own cost); the site processes'
//! RSS and CPU come from report.json.
//!
//! `cargo bench --bench agent` holds 10,000 agents for 25 s on each path; with `--quick` (CI's
//! short mode) 1,000 for 10 s.
//! It prints one line per figure and fails if the run fails or an agent is left unconnected.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn scenario(agents: u32, duration: &str, middlebox: bool) -> String {
    format!(
        r#"description = "bench: {agents} idle TLS agents, middlebox {middlebox}"
duration = "{duration}"
slo = ["agents.connected_end == {agents}"]
[agents]
count = {agents}
ramp = "2000/s"
keep_alive = "30s"
endpoints = ["primary"]
[network]
middlebox = {middlebox}
"#
    )
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(0.0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (agents, duration) = if quick {
        (1_000, "10s")
    } else {
        (10_000, "25s")
    };
    // Through the middlebox (the target path), then direct: the agents' own cost.
    for (path, middlebox) in [("middlebox", true), ("direct", false)] {
        measure(agents, duration, path, middlebox);
    }
}

/// One run on `path`; prints its figures.
fn measure(agents: u32, duration: &str, path: &str, middlebox: bool) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-agent");
    std::fs::create_dir_all(&dir).expect("bench folder");
    let file = dir.join(format!("idle-{path}.toml"));
    std::fs::write(&file, scenario(agents, duration, middlebox)).expect("scenario file");
    let out = dir.join(path);
    let status = Command::new(env!("CARGO_BIN_EXE_pushsim"))
        .arg("scenario")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run pushsim");
    assert!(status.success(), "pushsim scenario failed: {status}");
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let r: Value = serde_json::from_str(&text).expect("report.json is JSON");
    let connected = r["agents"]["connected_end"].as_u64().unwrap_or(0);
    assert_eq!(connected, u64::from(agents), "agents left unconnected");
    let connects = r["agents"]["connect_attempts"].as_u64().unwrap_or(0).max(1) as f64;
    let sites: Vec<&Value> = r["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["role"].as_str().is_some_and(|s| s.starts_with("site")))
        .collect();
    let peak_kb: f64 = sites.iter().map(|p| num(p, "peak_rss_kb")).sum();
    let end_kb: f64 = sites.iter().map(|p| num(p, "rss_end_kb")).sum();
    // The timeline (connect storm, then idle) and the stop (every agent disconnects) apart.
    let timeline_s: f64 = sites
        .iter()
        .map(|p| num(p, "cpu_end_s") - num(p, "setup_cpu_s"))
        .sum();
    let stopping_s: f64 = sites
        .iter()
        .map(|p| num(p, "cpu_s") - num(p, "cpu_end_s"))
        .sum();
    // /proc's "kB" are KiB; both units are printed.
    let per_agent = |kib: f64| kib / f64::from(agents);
    println!(
        "agent/idle_{agents}/{path}/rss_per_agent      {:.1} KiB ({:.1} kB) held (site RSS at the end / agents); {:.1} KiB peak (during the connect storm)",
        per_agent(end_kb),
        per_agent(end_kb) * 1.024,
        per_agent(peak_kb)
    );
    println!(
        "agent/idle_{agents}/{path}/cpu_per_connect    {:.3} ms (site CPU over the timeline, after set-up, / connect attempts; {duration} run, keep-alive 30 s); {:.3} ms with the disconnect at the stop",
        timeline_s * 1e3 / connects,
        (timeline_s + stopping_s) * 1e3 / connects
    );
    println!(
        "agent/idle_{agents}/{path}/connect_p50_p99    {:.2} / {:.2} ms",
        r["latency_us"]["connect"]["p50"].as_f64().unwrap_or(0.0) / 1e3,
        r["latency_us"]["connect"]["p99"].as_f64().unwrap_or(0.0) / 1e3
    );
    println!("report: {}", out.join("report.html").display());
}
