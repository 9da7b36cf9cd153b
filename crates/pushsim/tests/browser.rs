//! report.html in a real browser, and `pushsim report render` refusing a report.json it cannot
//! read. Headless Chromium (Debian's `chromium`) opens the page of a
//! real run (two groups, a fault rule, an outage), its re-render and a comparison. Any console
//! message fails: the pages have no script, and their Content-Security-Policy turns any load
//! (a file, the network) into a console error. Screenshots are written to
//! `target/tmp/browser/` for a person to look at.
//!
//! Without Chromium the test says so and passes, unless `CI` is set (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{pushsim, run_scenario};

const SCENARIO: &str = r#"
description = "browser check: two groups, an idle-dropping NAT, the service <b>killed</b> & restarted"
duration = "12s"
slo = ["wakeups.duplicate == 0"]
[agents]
ramp = "1000/s"
pingresp_timeout = "1s"
backoff = { policy = "full-jitter", base = "200ms", cap = "1s" }
[[group]]
name = "short"
agents = 40
keep_alive = "1s"
[[group]]
name = "long"
agents = 40
keep_alive = "4s"
[[at]]
time = "7s"
do = "service.kill"
[[at]]
time = "8s"
do = "service.start"
[wakeups]
rate = "40/s"
rate_from = "1s"
rate_until = "11s"
drain = "3s"
[network]
primary = [{ fault = "refuse" }]
fallback = [{ fault = "idle_drop", after = "2s", until = "6s", name = "nat" }]
"#;

/// The browser: `PUSHSIM_CHROMIUM`, or `chromium` / `chromium-browser` on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PUSHSIM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
}

/// Opens `page` headless at 1280 × `height`, writes the screenshot `shot`; returns the console
/// messages Chromium logged.
async fn open(browser: &Path, page: &Path, shot: &Path, height: u32) -> Vec<String> {
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size=1280,{height}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("chromium finished within 60 s")
        .expect("chromium started");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    let size = std::fs::metadata(shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        shot.display()
    );
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_open_in_chromium_without_a_console_message() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs chromium for the browser check (apt-get install chromium)"
        );
        eprintln!("no chromium on the PATH: browser check skipped");
        return;
    };
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, run) =
        run_scenario(dir.path(), "browser", SCENARIO, Duration::from_secs(120)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let page = run.join("report.html");
    assert!(
        stdout.contains(&format!("report: {}", page.display())),
        "{stdout}"
    );
    std::fs::copy(&page, shots.join("report.html")).unwrap();

    // The run's page: first screen, then the whole of it.
    let first = shots.join("report-first-screen.png");
    let console = open(&browser, &page, &first, 900).await;
    assert!(console.is_empty(), "console messages: {console:#?}");
    let console = open(&browser, &page, &shots.join("report-full.png"), 6000).await;
    assert!(console.is_empty(), "console messages: {console:#?}");

    // Re-rendered from report.json alone: the same page.
    let again = dir.path().join("again.html");
    let (code, out, err) = pushsim(
        &[
            "report",
            "render",
            run.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        std::fs::read_to_string(&page).unwrap(),
        "report render rebuilds the very page the run wrote"
    );

    // The run against itself: no regression, and the page opens clean.
    let cmp = shots.join("compare.html");
    let json = run.join("report.json");
    let (code, out, err) = pushsim(
        &[
            "report",
            "compare",
            run.to_str().unwrap(),
            json.to_str().unwrap(),
            "--out",
            cmp.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("figures the same in every run"), "{out}");
    let console = open(&browser, &cmp, &shots.join("compare.png"), 2000).await;
    assert!(console.is_empty(), "console messages: {console:#?}");

    // The check itself: a page that reaches out is caught.
    let leaky = dir.path().join("leaky.html");
    let html = std::fs::read_to_string(&page).unwrap().replacen(
        "<h1>",
        r#"<img src="http://127.0.0.1:9/beacon.png"><h1>"#,
        1,
    );
    std::fs::write(&leaky, html).unwrap();
    let console = open(&browser, &leaky, &dir.path().join("leaky.png"), 900).await;
    assert!(
        console
            .iter()
            .any(|l| l.contains("Content Security Policy")),
        "a blocked load is a console message: {console:#?}"
    );
    eprintln!("screenshots: {}", shots.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn render_refuses_another_schema_version_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    std::fs::write(
        &json,
        r#"{"schema_version": 2, "pushsim_version": "2.0.0"}"#,
    )
    .unwrap();
    let (code, out, err) = pushsim(
        &["report", "render", dir.path().to_str().unwrap()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("schema_version 2")
            && err.contains("reads schema_version 1")
            && err.contains("2.0.0"),
        "{err}"
    );
    assert!(!dir.path().join("report.html").exists(), "nothing written");
    let (code, _, err) = pushsim(
        &[
            "report",
            "compare",
            json.to_str().unwrap(),
            dir.path().join("none").to_str().unwrap(),
        ],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(code, 2, "{err}");
}
