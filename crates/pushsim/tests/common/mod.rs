//! Helpers shared by the binary's integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// The mosquitto binary, as a run finds it.
pub fn mosquitto() -> Option<PathBuf> {
    let found = pushsim_run::mosquitto::binary().ok();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs mosquitto (apt-get install mosquitto)"
        );
        eprintln!("no mosquitto installed: test skipped");
    }
    found
}

/// A mosquitto of the test's own with a PKI of the test's own, on a free loopback port; stopped
/// when dropped.
pub struct OwnBroker {
    proc: std::process::Child,
    /// Its TLS port on 127.0.0.1.
    pub port: u16,
    /// Its PKI.
    pub files: pushsim_pki::files::PkiPaths,
    /// The client certificate and key agents present.
    pub client: (PathBuf, PathBuf),
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// Its configuration is the one a run writes for a managed mosquitto; the test uses the first
/// of its two listeners.
pub fn own_broker(bin: &Path, dir: &Path) -> OwnBroker {
    let ca = pushsim_pki::Ca::generate().unwrap();
    let server = ca
        .issue_server(&["localhost"], &["127.0.0.1".parse().unwrap()])
        .unwrap();
    let files = pushsim_pki::files::write(&dir.join("pki"), &ca, &server).unwrap();
    let client = ca.issue_client("outsider").unwrap();
    let client = pushsim_pki::files::write_identity(dir, "client", &client).unwrap();
    let listeners = pushsim_service::ports::free_ports(2).unwrap();
    let port = listeners[0].port();
    let conf = dir.join("own.conf");
    pushsim_run::mosquitto::write_config(
        &conf,
        [listeners[0], listeners[1]],
        &files,
        &dir.join("own.log"),
    )
    .unwrap();
    let proc = std::process::Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let broker = OwnBroker {
        proc,
        port,
        files,
        client,
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mosquitto did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    broker
}
