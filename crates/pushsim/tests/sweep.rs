//! A sweep through the binary: one run per value, each in its own folder, then one table.

use std::time::Duration;

use serde_json::Value;

mod common;

use common::BIN;

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_runs_every_value_and_compares_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sw.toml");
    let src = r#"
description = "sweep test"
duration = "4s"
slo = ["agents.connected_end == agents.configured"]
[agents]
count = 20
backoff = { policy = "fixed", base = "1s" }
[wakeups]
broadcast = ["2s"]
drain = "3s"
[sweep]
key = "service.reachable"
values = [true, false]
"#;
    std::fs::write(&file, src).unwrap();
    let out = dir.path().join("run");
    let child = tokio::process::Command::new(BIN)
        .args([
            "scenario",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("bounded")
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    // The unreachable run fails its SLO (nobody connected): the sweep exits 1.
    assert_eq!(
        o.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("== run 1/2: service.reachable = true"),
        "{stdout}"
    );
    assert!(
        stdout.contains("== run 2/2: service.reachable = false"),
        "{stdout}"
    );
    let table = stdout
        .split("sweep over service.reachable")
        .nth(1)
        .expect("comparison table");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} row in {table}"))
            .to_string()
    };
    // The first value is the baseline: the second run's losses are marked as regressions.
    let slos = row("slos.failed");
    assert!(slos.contains(" 0 ") && slos.contains("1 (+1) ▲"), "{table}");
    let end = row("agents.connected_end");
    assert!(
        end.contains(" 20 ") && end.contains("0 (-100.0%) ▲"),
        "{table}"
    );
    let page = std::fs::read_to_string(out.join("compare.html")).expect("compare.html");
    assert!(
        page.contains("REGRESSED") && page.contains(">true<") && page.contains(">false<"),
        "the verdict and both runs on the page"
    );

    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(index["key"], "service.reachable");
    let runs = index["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0]["passed"].as_bool(), runs[1]["passed"].as_bool()),
        (Some(true), Some(false))
    );
    for (i, v) in ["true", "false"].iter().enumerate() {
        let report = out.join(format!("{}-{v}", i + 1)).join("report.json");
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        assert_eq!(r["wakeups"]["sent"], 20, "{}", report.display());
    }
}
