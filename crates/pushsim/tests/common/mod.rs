//! Helpers shared by the binary's integration tests.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

/// The pushsim binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pushsim");

/// Runs pushsim with `args`, bounded; returns (exit code, stdout, stderr).
pub async fn pushsim(args: &[&str], bound: Duration) -> (i32, String, String) {
    let child = tokio::process::Command::new(BIN)
        .args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start pushsim");
    let out = tokio::time::timeout(bound, child.wait_with_output())
        .await
        .expect("pushsim did not finish in time")
        .expect("pushsim output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes `src` as a scenario file in `dir` and runs it into `dir/run`; returns the exit code,
/// stdout, stderr and the run folder.
pub async fn run_scenario(
    dir: &std::path::Path,
    name: &str,
    src: &str,
    bound: Duration,
) -> (i32, String, String, std::path::PathBuf) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, src).expect("write scenario");
    let out = dir.join("run");
    let (code, stdout, stderr) = pushsim(
        &[
            "scenario",
            file.to_str().expect("utf-8 path"),
            "--out",
            out.to_str().expect("utf-8 path"),
        ],
        bound,
    )
    .await;
    (code, stdout, stderr, out)
}

/// A report.json.
pub fn report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("report.json"))
        .expect("report.json is JSON")
}

/// The value at a dotted path (array indices as numbers; object keys may be numbers too).
pub fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, k| match (v, k.parse::<usize>()) {
            (Value::Array(_), Ok(i)) => &v[i],
            _ => &v[k],
        })
}

/// The unsigned number at a dotted path.
pub fn n(v: &Value, path: &str) -> u64 {
    get(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("no number at {path}: {}", get(v, path)))
}

/// The number at a dotted path.
pub fn f(v: &Value, path: &str) -> f64 {
    get(v, path)
        .as_f64()
        .unwrap_or_else(|| panic!("no number at {path}: {}", get(v, path)))
}
