//! The same scenarios on other brokers, through the binary: mosquitto managed by pushsim
//! (started, killed and restarted as the service process) and an external broker pushsim only
//! connects to (here a mosquitto the test runs itself, on loopback).
//!
//! Without mosquitto the tests say so and pass, unless `CI` is set (`.ci/run` installs it).

use std::time::Duration;

mod common;

use common::{get, mosquitto, n, own_broker, pushsim, report, run_scenario};

fn roles(r: &serde_json::Value) -> Vec<String> {
    r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap().to_string())
        .collect()
}

const RESTART: &str = r#"
description = "mosquitto as the service: 200 agents, killed and back after 2 s"
duration = "14s"
slo = ["wakeups.lost == 0", "agents.connected_end == 200"]
[service]
broker = "mosquitto"
[agents]
count = 200
ramp = "1000/s"
keep_alive = "5s"
backoff = { policy = "full-jitter", base = "300ms", cap = "1s" }
[[at]]
time = "4s"
do = "service.restart"
down = "2s"
[wakeups]
broadcast = ["2s", "11s"]
drain = "10s"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn managed_mosquitto_is_the_service_and_restarts_for_an_outage() {
    if mosquitto().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "mq", RESTART, Duration::from_secs(120)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));
    assert_eq!(n(&r, "agents.disconnects"), 200);
    assert_eq!(n(&r, "agents.connected_end"), 200);
    assert_eq!(n(&r, "recovery.0.reconnected"), 200);
    assert_eq!(n(&r, "wakeups.sent"), 400);
    assert_eq!(n(&r, "wakeups.delivered"), 400);
    assert_eq!(n(&r, "wakeups.lost"), 0);
    // mosquitto, twice (before and after the outage); no edge, no rumqttd.
    let roles = roles(&r);
    assert!(roles.contains(&"mosquitto".to_string()), "{roles:?}");
    assert!(
        roles.contains(&"mosquitto (until an outage)".to_string()),
        "{roles:?}"
    );
    assert!(
        !roles
            .iter()
            .any(|r| r.starts_with("edge") || r.starts_with("broker")),
        "{roles:?}"
    );
    // Its configuration: both roles, TLS with client certificates, loopback only.
    let conf = std::fs::read_to_string(out.join("mosquitto.conf")).unwrap();
    assert_eq!(
        conf.matches("require_certificate true").count(),
        2,
        "{conf}"
    );
    assert_eq!(conf.matches("\nlistener ").count(), 2, "{conf}");
    assert_eq!(conf.matches(" 127.0.0.1\n").count(), 2, "{conf}");
    assert!(get(&r, "scenario.text")
        .as_str()
        .unwrap()
        .contains("broker = \"mosquitto\""));
}

const SMALL: &str = r#"
description = "100 agents on an external broker"
duration = "6s"
slo = ["wakeups.lost == 0"]
[agents]
count = 100
ramp = "1000/s"
[wakeups]
broadcast = ["2s", "4s"]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn external_broker_is_measured_with_the_given_certificates_and_cannot_be_killed() {
    let Some(bin) = mosquitto() else { return };
    let dir = tempfile::tempdir().unwrap();
    let b = own_broker(&bin, dir.path());
    let file = dir.path().join("small.toml");
    std::fs::write(&file, SMALL).unwrap();
    let out = dir.path().join("run");
    let url = format!("mqtts://localhost:{}", b.port);
    let tls = [
        "--ca",
        b.files.ca_cert.to_str().unwrap(),
        "--cert",
        b.client.0.to_str().unwrap(),
        "--key",
        b.client.1.to_str().unwrap(),
    ];
    let mut args = vec!["scenario", file.to_str().unwrap(), "--broker", &url];
    args.extend(tls);
    args.extend(["--out", out.to_str().unwrap()]);
    let (code, stdout, stderr) = pushsim(&args, Duration::from_secs(90)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));
    assert_eq!(n(&r, "agents.connected_end"), 100);
    assert_eq!(n(&r, "wakeups.delivered"), 200);
    // pushsim ran no service process.
    let roles = roles(&r);
    assert_eq!(roles, ["orchestrator+console", "site-0"], "{roles:?}");

    // Without the CA, or with an outage on the timeline, the run is refused before it starts.
    let killing = format!("{SMALL}[[at]]\ntime = \"3s\"\ndo = \"service.kill\"\n");
    std::fs::write(&file, killing).unwrap();
    let mut args = vec!["scenario", file.to_str().unwrap(), "--broker", &url];
    args.extend(tls);
    let (code, _, stderr) = pushsim(&args, Duration::from_secs(30)).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("at[0].do") && stderr.contains("does not run the external broker"),
        "{stderr}"
    );
    let (code, _, stderr) = pushsim(
        &["scenario", file.to_str().unwrap(), "--broker", &url],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("service.ca"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mosquitto_that_cannot_listen_is_a_clear_error_with_its_log() {
    if mosquitto().is_none() {
        return;
    }
    // The fallback port is taken (held by this test): mosquitto exits at start.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let src = format!(
        "description = \"port taken\"\nduration = \"5s\"\n[service]\nbroker = \"mosquitto\"\nfallback_port = {port}\n[agents]\ncount = 5\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr, out) =
        run_scenario(dir.path(), "taken", &src, Duration::from_secs(60)).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("mosquitto") && stderr.contains("exited before its listeners were up"),
        "{stderr}"
    );
    // Its own words, from its log, are in the message.
    assert!(stderr.contains("Address already in use"), "{stderr}");
    assert!(out.join("mosquitto.log").is_file());
    drop(held);
}
