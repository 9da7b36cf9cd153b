//! Service outages on the timeline, through the binary: agents notice, back off, come back,
//! and every wake-up is still accounted for.

use std::time::Duration;

mod common;

use common::{f, get, n, report, run_scenario};

const OUTAGE: &str = r#"
description = "outage test: 300 agents, the service is killed and restarted"
duration = "16s"
slo = ["wakeups.lost == 0", "agents.connected_end == 300"]
[agents]
ramp = "1000/s"
keep_alive = "5s"
pingresp_timeout = "2s"
backoff = { policy = "full-jitter", base = "500ms", cap = "2s" }
[[group]]
name = "a"
agents = 200
[[group]]
name = "b"
agents = 100
backoff = { policy = "none" }
[[at]]
time = "5s"
do = "service.kill"
[[at]]
time = "7s"
do = "service.start"
[wakeups]
broadcast = ["2s", "13s"]
drain = "10s"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn killed_and_restarted_service_every_agent_back_every_wakeup_accounted() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "outage", OUTAGE, Duration::from_secs(120)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));

    // Everyone noticed the kill and came back.
    assert_eq!(n(&r, "agents.disconnects"), 300);
    assert_eq!(n(&r, "agents.connected_end"), 300);
    // While the service is down agents alternate primary and fallback; they stay where they got
    // back in (no primary_retry here).
    assert_eq!(n(&r, "paths.primary") + n(&r, "paths.fallback"), 300);
    assert_eq!(n(&r, "latency_us.detect.count"), 300);
    assert_eq!(n(&r, "latency_us.reconnect.count"), 300);
    // A kill closes every socket: agents notice in well under a keep-alive.
    assert!(
        n(&r, "latency_us.detect.max") < 5_000_000,
        "detect max {}",
        n(&r, "latency_us.detect.max")
    );

    // Recovery figures of the one outage.
    assert_eq!(r["recovery"].as_array().unwrap().len(), 1);
    assert_eq!(get(&r, "recovery.0.action"), "service.kill");
    assert_eq!(n(&r, "recovery.0.connected_before"), 300);
    assert_eq!(n(&r, "recovery.0.reconnected"), 300);
    let down = f(&r, "recovery.0.down_s");
    assert!((1.5..4.0).contains(&down), "down {down}");
    let (p50, p99, p100) = (
        f(&r, "recovery.0.reconnected_50_s"),
        f(&r, "recovery.0.reconnected_99_s"),
        f(&r, "recovery.0.reconnected_100_s"),
    );
    assert!(
        down <= p50 && p50 <= p99 && p99 <= p100,
        "down {down} p50 {p50} p99 {p99} p100 {p100}"
    );
    assert!(n(&r, "recovery.0.failed_attempts") > 0);
    assert!(n(&r, "recovery.0.peak_connects_per_s") > 0);

    // Wake-ups: all sent while the service was up, all delivered, each group's adds up.
    assert_eq!(n(&r, "wakeups.sent"), 600);
    assert_eq!(n(&r, "wakeups.delivered"), 600);
    for g in ["a", "b"] {
        let sent = n(&r, &format!("groups.{g}.wakeups.sent"));
        let parts = ["delivered", "late", "lost"]
            .iter()
            .map(|k| n(&r, &format!("groups.{g}.wakeups.{k}")))
            .sum::<u64>();
        assert_eq!(sent, parts, "group {g}");
    }
    assert_eq!(n(&r, "groups.a.agents.configured"), 200);
    assert_eq!(n(&r, "groups.b.wakeups.sent"), 200);
    // The check-in answering each wake-up was seen.
    assert_eq!(n(&r, "latency_us.wakeup_to_checkin.count"), 600);

    // The old service processes are in the report too.
    let roles: Vec<&str> = r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert!(roles.contains(&"broker (until an outage)"), "{roles:?}");
    assert!(
        stdout.contains("recovery (times from the outage's start)"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_that_does_not_come_back_ends_the_run_with_exit_3_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let src = "description = \"d\"\nduration = \"10s\"\n[service]\nstart_timeout = \"1ms\"\n[agents]\ncount = 20\n[[at]]\ntime = \"2s\"\ndo = \"service.restart\"\ndown = \"1s\"\n";
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "noreturn", src, Duration::from_secs(60)).await;
    assert_eq!(code, 3, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains("the service did not come back within"),
        "{stderr}"
    );
    let r = report(&out.join("report.json"));
    assert!(get(&r, "stopped_early")
        .as_str()
        .unwrap()
        .contains("did not come back"));
    assert!(get(&r, "recovery.0.down_s").is_null(), "never came back");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_service_reaches_agents_only_through_replication() {
    let dir = tempfile::tempdir().unwrap();
    let src = "description = \"d\"\nduration = \"8s\"\n[service]\nreachable = false\n[agents]\ncount = 50\nreplication_interval = \"3s\"\nbackoff = { policy = \"fixed\", base = \"1s\" }\n[wakeups]\nbroadcast = [\"1s\"]\ndrain = \"1s\"\n";
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "nopush", src, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));
    assert_eq!(n(&r, "agents.connected_peak"), 0);
    assert!(
        n(&r, "agents.connect_failures") >= 50 * 5,
        "each agent retries about every second"
    );
    assert_eq!(
        (n(&r, "wakeups.sent"), n(&r, "wakeups.lost")),
        (50, 50),
        "no push reaches anyone"
    );
    // Every agent checks in within its interval (3 s ± 10 %) after the wake-up, and that
    // answers it; the rest of the bound is slack for a loaded machine.
    assert_eq!(n(&r, "latency_us.wakeup_to_checkin.count"), 50);
    assert!(
        n(&r, "latency_us.wakeup_to_checkin.max") <= 4_000_000,
        "{}",
        n(&r, "latency_us.wakeup_to_checkin.max")
    );
}
