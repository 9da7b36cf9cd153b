//! The middlebox in a whole run, through the binary: an idle-dropping NAT on the fallback path,
//! and a primary port refused vs swallowed.

use std::time::Duration;

mod common;

use common::{get, n, report, run_scenario};

const IDLE: &str = r#"
description = "idle drop test: keep-alive 1 s vs 4 s behind a 2 s idle drop"
duration = "16s"
[agents]
ramp = "1000/s"
pingresp_timeout = "1s"
backoff = { policy = "full-jitter", base = "200ms", cap = "1s" }
[[group]]
name = "short"
agents = 60
keep_alive = "1s"
[[group]]
name = "long"
agents = 60
keep_alive = "4s"
[wakeups]
rate = "20/s"
rate_from = "1s"
rate_until = "14s"
drain = "5s"
[network]
primary = [{ fault = "refuse" }]
fallback = [{ fault = "idle_drop", after = "2s", until = "9s", name = "nat" }]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn idle_drop_spares_short_keep_alives_and_every_drop_is_detected_in_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "idle", IDLE, Duration::from_secs(120)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));

    // Keep-alive below the idle time: the path never forgets these agents.
    for k in ["drops", "disconnects", "pingresp_timeouts"] {
        assert_eq!(n(&r, &format!("groups.short.agents.{k}")), 0, "short {k}");
    }
    assert_eq!(n(&r, "groups.short.wakeups.lost"), 0);

    // Keep-alive above it: dropped, and every drop noticed by a PINGRESP timeout within
    // keep_alive + pingresp_timeout of the drop.
    let drops = n(&r, "groups.long.agents.drops");
    assert!(
        drops >= 60,
        "every long agent is dropped at least once: {drops}"
    );
    assert_eq!(n(&r, "groups.long.latency_us.detect.count"), drops);
    assert_eq!(n(&r, "groups.long.agents.pingresp_timeouts"), drops);
    assert_eq!(n(&r, "groups.long.agents.disconnects"), drops);
    let max = n(&r, "groups.long.latency_us.detect.max");
    // 4 s + 1 s, with 10 % for timers on a loaded machine
    assert!(max <= 5_500_000, "detect max {max} µs over 4 s + 1 s");
    assert!(n(&r, "groups.long.latency_us.detect.min") >= 900_000);
    assert_eq!(n(&r, "faults.1.connections_hit"), drops);
    assert_eq!(get(&r, "faults.1.name"), "nat");
    let per_second: u64 = get(&r, "timeline")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["drops"].as_u64().unwrap())
        .sum();
    assert_eq!(per_second, drops);

    // Every wake-up in exactly one bucket; all agents back on the fallback at the end.
    let w = |k: &str| n(&r, &format!("wakeups.{k}"));
    assert!(w("sent") > 200);
    assert_eq!(w("sent"), w("delivered") + w("late") + w("lost"));
    assert_eq!(n(&r, "paths.fallback"), 120);
}

const FALLBACK: &str = r#"
description = "port fallback test: primary refused vs swallowed"
duration = "5s"
[agents]
ramp = "1000/s"
connect_timeout = "1s"
[[group]]
name = "refused"
agents = 30
[[group]]
name = "swallowed"
agents = 30
[network]
primary = [
  { fault = "refuse", groups = ["refused"] },
  { fault = "swallow", groups = ["swallowed"] },
]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_primary_falls_back_at_once_a_swallowed_one_after_the_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "fallback", FALLBACK, Duration::from_secs(90)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));
    for g in ["refused", "swallowed"] {
        assert_eq!(n(&r, &format!("groups.{g}.paths.fallback")), 30, "{g}");
        assert_eq!(
            n(&r, &format!("groups.{g}.latency_us.first_connect.count")),
            30
        );
    }
    let refused = n(&r, "groups.refused.latency_us.first_connect.max");
    assert!(refused < 1_000_000, "refused: {refused} µs");
    let swallowed = n(&r, "groups.swallowed.latency_us.first_connect.min");
    assert!(
        swallowed >= 1_000_000,
        "swallowed waited its timeout: {swallowed} µs"
    );
    assert!(n(&r, "groups.swallowed.latency_us.first_connect.max") < 3_000_000);
    assert_eq!(n(&r, "faults.0.connections_hit"), 30);
    assert_eq!(n(&r, "faults.1.connections_hit"), 30);
    assert_eq!(n(&r, "middlebox.refused"), 30);
    assert_eq!(n(&r, "middlebox.swallowed"), 30);
}

/// A raw HTTP/1.1 request; returns the status line and the body.
async fn http(api: &str, method: &str, path: &str, body: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    let status = out.lines().next().unwrap_or_default().to_string();
    (
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string(),
    )
}

const PLAIN: &str = r#"
description = "fault API test: 40 agents, no rules of its own"
duration = "8s"
[agents]
count = 40
ramp = "1000/s"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_fault_api_drives_a_running_scenarios_middlebox() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.toml");
    std::fs::write(&file, PLAIN).unwrap();
    let out = dir.path().join("run");
    let mut child = tokio::process::Command::new(common::BIN)
        .args([
            "scenario",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--fault-api", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let api = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            // "... the fault API (Toxiproxy's) on http://127.0.0.1:PORT: proxies ..."
            if let Some(rest) = l.split("http://").nth(1) {
                return rest.split(": ").next().unwrap().to_string();
            }
        }
        panic!("no fault API line");
    })
    .await
    .unwrap();
    let (status, body) = http(&api, "GET", "/proxies", "").await;
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("\"primary\"") && body.contains("\"fallback\""),
        "{body}"
    );
    let (status, body) = http(
        &api,
        "POST",
        "/proxies",
        r#"{"name":"x","upstream":"127.0.0.1:1"}"#,
    )
    .await;
    assert!(
        status.contains("400") && body.contains("port roles"),
        "{status} {body}"
    );

    // Reset everything on the primary, open and new connections: every agent ends on the fallback.
    let (status, body) = http(
        &api,
        "POST",
        "/proxies/primary/toxics",
        r#"{"name":"rst","type":"reset_peer","attributes":{"timeout":0}}"#,
    )
    .await;
    assert!(status.contains("200"), "{status} {body}");
    let rest = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let status = tokio::time::timeout(Duration::from_secs(90), child.wait())
        .await
        .unwrap()
        .unwrap();
    rest.await.unwrap();
    assert_eq!(status.code(), Some(0));
    let r = report(&out.join("report.json"));
    assert_eq!(n(&r, "paths.fallback"), 40);
    assert_eq!(n(&r, "paths.primary"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_toxiproxy_backend_gets_the_proxies_and_toxics_and_is_left_clean() {
    use tokio::io::AsyncBufReadExt;
    // A Toxiproxy-API server: pushsim's own (no Toxiproxy binary is available here).
    let mut server = tokio::process::Command::new(common::BIN)
        .args(["toxiproxy", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // "Toxiproxy-compatible API on http://127.0.0.1:PORT (Ctrl-C stops)"
    let api = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let src = format!(
        r#"
description = "toxiproxy backend test"
duration = "8s"
[agents]
count = 40
ramp = "1000/s"
[wakeups]
rate = "20/s"
rate_from = "4s"
[network]
backend = "toxiproxy"
toxiproxy_url = "http://{api}"
primary = [{{ fault = "reset_peer", at = "2s" }}]
fallback = [{{ fault = "latency", latency = "150ms", direction = "down" }}]
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "tp", &src, Duration::from_secs(90)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));
    // Reset on the primary from 2 s: everyone ends on the fallback, where every wake-up came
    // 150 ms late through Toxiproxy's latency.
    assert!(n(&r, "agents.disconnects") >= 40);
    assert_eq!(n(&r, "paths.fallback"), 40);
    assert!(n(&r, "wakeups.delivered") > 40);
    assert!(n(&r, "latency_us.wakeup_cold.min") >= 150_000);
    assert!(n(&r, "latency_us.wakeup.min") >= 150_000);
    assert!(get(&r, "faults.0.connections_hit").is_null());
    // The run deleted its proxies.
    let (status, body) = http(&api, "GET", "/proxies", "").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body.trim(), "{}");
}
