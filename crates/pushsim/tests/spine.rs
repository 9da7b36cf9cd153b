//! The whole path as a user runs it: the pushsim binary, real child processes, TLS on loopback.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

mod common;

use common::{n, pushsim, report, run_scenario};

const SPINE: &str = r#"
description = "spine test: 300 agents, two broadcasts and a stream"
duration = "9s"
seed = 7
slo = ["wakeups.lost == 0", "agents.connected_peak >= 300"]
[agents]
count = 300
ramp = "1000/s"
keep_alive = "30s"
[wakeups]
broadcast = ["3s", "6s"]
rate = "40/s"
rate_from = "1s"
drain = "20s"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn three_hundred_agents_every_wakeup_accounted() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "spine", SPINE, Duration::from_secs(120)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("PASS SLO wakeups.lost == 0"), "{stdout}");

    let r = report(&out.join("report.json"));
    assert_eq!(n(&r, "schema_version"), 1);
    assert_eq!(r["scenario"]["name"], "spine");
    assert_eq!(n(&r, "seed"), 7);
    assert_eq!(n(&r, "agents.configured"), 300);
    assert_eq!(n(&r, "agents.connected_peak"), 300);
    assert_eq!(n(&r, "agents.connect_failures"), 0);

    // Every wake-up in exactly one bucket, and all delivered.
    let sent = n(&r, "wakeups.sent");
    // Two broadcast rounds plus a Poisson stream of 40/s over 8 s (320 expected, ±5 sd).
    assert!((600 + 230..=600 + 410).contains(&sent), "sent {sent}");
    assert_eq!(n(&r, "wakeups.delivered"), sent);
    assert_eq!(
        n(&r, "wakeups.late") + n(&r, "wakeups.lost") + n(&r, "wakeups.duplicate"),
        0
    );

    // Latencies recorded: one cold wake-up per agent, the rest warm; one connect per agent.
    assert_eq!(n(&r, "latency_us.wakeup_cold.count"), 300);
    assert_eq!(n(&r, "latency_us.wakeup.count"), sent - 300);
    assert_eq!(n(&r, "latency_us.connect.count"), 300);
    for h in ["connect", "wakeup", "wakeup_cold"] {
        let p50 = n(&r, &format!("latency_us.{h}.p50"));
        let p99 = n(&r, &format!("latency_us.{h}.p99"));
        let max = n(&r, &format!("latency_us.{h}.max"));
        assert!(
            0 < p50 && p50 <= p99 && p99 <= max,
            "{h}: p50 {p50} p99 {p99} max {max}"
        );
    }

    // The timeline adds up to the totals.
    let tl = r["timeline"].as_array().unwrap();
    let sum = |k: &str| tl.iter().map(|p| p[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("wakeups_sent"), sent);
    assert_eq!(sum("wakeups_delivered"), sent);
    assert_eq!(sum("connects"), 300);
    assert_eq!(
        tl.iter().map(|p| p["connected"].as_u64().unwrap()).max(),
        Some(300)
    );

    // Every role measured.
    let roles: Vec<&str> = r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    for role in ["orchestrator+console", "site-0", "edge-0", "broker"] {
        assert!(roles.contains(&role), "{roles:?}");
    }
    for p in r["processes"].as_array().unwrap() {
        let (peak, end) = (
            p["peak_rss_kb"].as_u64().unwrap(),
            p["rss_end_kb"].as_u64().unwrap(),
        );
        // Memory while holding the connections: read, and never above the peak.
        assert!(peak > 0 && end > 0 && end <= peak, "{p}");
        // CPU when the timeline ended: read, after the set-up and before the stop.
        let f = |k: &str| p[k].as_f64().unwrap();
        assert!(
            f("cpu_end_s") > 0.0
                && f("setup_cpu_s") <= f("cpu_end_s")
                && f("cpu_end_s") <= f("cpu_s"),
            "{p}"
        );
    }
    assert_eq!(n(&r, "edge.handshakes"), 301, "300 agents and the console");

    // The run folder: resolved scenario, histograms in interval-log form, private keys.
    let resolved = std::fs::read_to_string(out.join("scenario.toml")).unwrap();
    assert!(
        resolved.contains("count = 300") && resolved.contains("connect_timeout = \"5s\""),
        "{resolved}"
    );
    let hlog = std::fs::read_to_string(out.join("histograms.hlog")).unwrap();
    for tag in ["Tag=connect,", "Tag=wakeup,", "Tag=wakeup_cold,"] {
        assert!(hlog.contains(tag), "{tag} missing in histograms.hlog");
    }
    for key in ["ca.key", "server.key"] {
        let mode = std::fs::metadata(out.join("pki").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
}

#[tokio::test]
async fn a_failed_slo_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) = run_scenario(dir.path(), "strict", "description = \"d\"\nduration = \"2s\"\nslo = [\"agents.connected_peak > 5\"]\n[agents]\ncount = 5\n", Duration::from_secs(60)).await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("FAIL SLO agents.connected_peak > 5  (value 5)"),
        "{stdout}"
    );
    assert!(out.join("report.json").is_file());
}

#[tokio::test]
async fn usage_errors_exit_2_with_the_reason() {
    let (code, _, err) = pushsim(&["scenario", "no-such-thing"], Duration::from_secs(10)).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown scenario \"no-such-thing\"") && err.contains("wakeup-latency"),
        "{err}"
    );

    let (code, _, err) = pushsim(
        &["scenario", "wakeup-latency", "--agents", "0"],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("agents.count = 0: must be 1 to 1000000"),
        "{err}"
    );

    let (code, _, err) = pushsim(
        &["scenario", "wakeup-latency", "--duration", "soon"],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("invalid duration \"soon\""), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("badslo.toml");
    std::fs::write(&file, "description = \"d\"\nduration = \"2s\"\nslo = [\"wakeups.lst == 0\"]\n[agents]\ncount = 1\n").unwrap();
    let (code, _, err) = pushsim(
        &["scenario", file.to_str().unwrap()],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("wakeups.lst") && err.contains("valid paths"),
        "{err}"
    );
}

#[tokio::test]
async fn too_many_agents_for_the_machine_exit_3_before_starting() {
    let (code, _, err) = pushsim(
        &[
            "scenario",
            "wakeup-latency",
            "--agents",
            "900000",
            "--out",
            "/nonexistent/x",
        ],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("900000 agents do not fit"), "{err}");
}

#[tokio::test]
async fn list_names_every_builtin() {
    let (code, out, _) = pushsim(&["list"], Duration::from_secs(10)).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("wakeup-latency"), "{out}");
}
