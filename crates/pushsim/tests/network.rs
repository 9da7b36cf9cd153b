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
