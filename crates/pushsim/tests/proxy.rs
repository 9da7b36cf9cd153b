//! The HTTP proxy in whole runs, through the binary: each embedded-proxy fault (and a tunnel
//! closed before CONNACK) sends agents to the path a real agent would end on, within its bound; a tunnel cap and an idle close cut
//! agents off and they come back; and agents run through tinyproxy (Debian's), whose
//! `MaxClients` is a real open-connection limit.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

mod common;

use common::{get, n, report, run_scenario};

const FAULTS: &str = r#"
description = "proxy faults: where agents end up"
duration = "10s"
[agents]
ramp = "1000/s"
connect_timeout = "1s"
endpoints = ["primary", "fallback"]
[[group]]
name = "healthy"
agents = 8
[[group]]
name = "down"
agents = 8
[[group]]
name = "auth"
agents = 8
[[group]]
name = "error"
agents = 8
[[group]]
name = "hang"
agents = 8
[[group]]
name = "apache"
agents = 8
[[group]]
name = "direct"
agents = 8
route = "direct-only"
[[group]]
name = "closed"
agents = 8
[wakeups]
rate = "20/s"
rate_from = "4s"
rate_until = "8s"
[proxy]
faults = [
  { fault = "down", groups = ["down"] },
  { fault = "auth_required", groups = ["auth"] },
  { fault = "error", status = 502, groups = ["error"] },
  { fault = "hang", groups = ["hang"] },
  { fault = "allow_ports", ports = [443, 563], groups = ["apache"] },
]
[network]
primary = [{ fault = "close", groups = ["closed"] }]   # the tunnel to 8883 closes before CONNACK
"#;

#[tokio::test(flavor = "multi_thread")]
async fn each_proxy_fault_sends_agents_to_the_path_a_real_agent_ends_on() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "faults", FAULTS, Duration::from_secs(120)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));
    let paths = [
        "proxy_primary",
        "proxy_fallback",
        "direct_primary",
        "direct_fallback",
    ];
    for (group, expected) in [
        ("healthy", "proxy_primary"),
        ("down", "direct_primary"),
        ("auth", "direct_primary"),
        ("error", "direct_primary"),
        ("hang", "direct_primary"),
        ("apache", "proxy_fallback"),
        ("direct", "direct_primary"),
        ("closed", "proxy_fallback"),
    ] {
        for p in paths {
            let want = if p == expected { 8 } else { 0 };
            assert_eq!(
                n(&r, &format!("groups.{group}.paths.{p}")),
                want,
                "{group} on {p}"
            );
        }
        let ttc = format!("groups.{group}.latency_us.time_to_connected.{expected}");
        assert_eq!(n(&r, &format!("{ttc}.count")), 8, "{ttc}");
    }
    // Refused, 407, 502 and 403 fail at once; a hanging proxy costs a connect timeout (1 s) per
    // proxy endpoint, two here, before the agent goes direct.
    for group in [
        "healthy", "down", "auth", "error", "apache", "direct", "closed",
    ] {
        let p99 = n(&r, &format!("groups.{group}.latency_us.first_connect.p99"));
        assert!(p99 < 900_000, "{group}: time to connected p99 {p99} µs");
    }
    let hang = "groups.hang.latency_us.first_connect";
    assert!(n(&r, &format!("{hang}.min")) >= 2_000_000);
    assert!(n(&r, &format!("{hang}.max")) < 3_500_000);
    // Failures per group: two proxy attempts per agent where both fail; one for apache.
    for (group, failures) in [("down", 16), ("auth", 16), ("error", 16), ("hang", 16)] {
        assert_eq!(
            n(&r, &format!("groups.{group}.agents.connect_failures")),
            failures,
            "{group}"
        );
    }
    assert_eq!(n(&r, "groups.apache.agents.connect_failures"), 8);
    assert_eq!(n(&r, "groups.closed.agents.connect_failures"), 8);
    assert_eq!(n(&r, "groups.healthy.agents.connect_failures"), 0);
    // What the proxy saw: every request of the faulty groups, by answer.
    assert_eq!(get(&r, "proxy.kind"), "embedded");
    assert_eq!(n(&r, "proxy.refused"), 16);
    assert_eq!(n(&r, "proxy.statuses.407"), 16);
    assert_eq!(n(&r, "proxy.statuses.502"), 16);
    assert_eq!(n(&r, "proxy.statuses.403"), 8);
    assert_eq!(
        n(&r, "proxy.statuses.200"),
        32,
        "healthy, apache and closed (twice) tunnels"
    );
    assert_eq!(n(&r, "proxy.unanswered"), 16, "hang, both proxy endpoints");
    let fault = |i: usize| {
        (
            get(&r, &format!("faults.{i}.target")).clone(),
            n(&r, &format!("faults.{i}.connections_hit")),
        )
    };
    assert_eq!(fault(0), ("primary".into(), 8), "the middlebox's close");
    assert_eq!(fault(1), ("proxy".into(), 16));
    assert_eq!(fault(5), ("proxy".into(), 8));
    // Every request, one row each, in the run folder.
    let csv = std::fs::read_to_string(out.join("proxy-tunnels.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len() as u64, n(&r, "proxy.connections"));
    let hung: Vec<Vec<&str>> = rows
        .iter()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[1] == "hang")
        .collect();
    assert_eq!(hung.len(), 16, "{csv}");
    for f in &hung {
        // site, group, target, status, bytes up, bytes down, open, close, closed, rule
        assert_eq!(
            (f[3], f[4], f[8], f[9]),
            ("0", "0", "hang", "proxy.3.hang"),
            "{f:?}"
        );
    }
    // Wake-ups reach agents on every path.
    let w = |k: &str| n(&r, &format!("wakeups.{k}"));
    assert!(w("sent") >= 60);
    assert_eq!(w("delivered"), w("sent"));
}

const LIMIT: &str = r#"
description = "proxy tunnel cap and idle close"
duration = "12s"
[agents]
ramp = "1000/s"
connect_timeout = "1s"
pingresp_timeout = "1s"
endpoints = ["primary"]
backoff = { policy = "fixed", base = "200ms", cap = "200ms" }
[[group]]
name = "busy"
agents = 10
keep_alive = "1s"
[[group]]
name = "quiet"
agents = 10
keep_alive = "5s"
[proxy]
faults = [
  { fault = "max_tunnels", limit = 15 },
  { fault = "tunnel_idle_timeout", after = "2s", until = "9s", name = "idle" },
]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_tunnel_cap_sends_the_rest_direct_and_idle_tunnels_are_cut_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "limit", LIMIT, Duration::from_secs(120)).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let r = report(&out.join("report.json"));
    // The cap holds: never more than 15 tunnels; everyone else connected direct.
    assert!(n(&r, "proxy.max_open") <= 15, "{}", get(&r, "proxy"));
    assert_eq!(n(&r, "agents.connected_end"), 20);
    assert_eq!(
        n(&r, "paths.proxy_primary") + n(&r, "paths.direct_primary"),
        20
    );
    assert!(n(&r, "paths.direct_primary") >= 5);
    assert!(n(&r, "proxy.statuses.503") >= 5);
    // PINGREQs every second keep the busy tunnels open; the quiet ones idle 2 s and are cut,
    // each cut noticed at once (a FIN on loopback) and followed by a reconnect.
    assert_eq!(n(&r, "groups.busy.agents.drops"), 0);
    let drops = n(&r, "groups.quiet.agents.drops");
    assert!(drops > 0, "quiet tunnels were cut");
    assert_eq!(n(&r, "proxy.closed.idle"), drops);
    assert_eq!(n(&r, "groups.quiet.latency_us.detect.count"), drops);
    assert!(n(&r, "groups.quiet.latency_us.detect.max") < 500_000);
    assert_eq!(n(&r, "groups.quiet.agents.disconnects"), drops);
    assert_eq!(n(&r, "groups.quiet.latency_us.reconnect.count"), drops);
}

/// A free loopback port for tinyproxy (which must be given one).
fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    l.local_addr().unwrap().port()
}

/// Waits until something accepts on `addr`, while `child` is alive; bounded.
async fn accepting(addr: SocketAddr, child: &mut tokio::process::Child, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "tinyproxy exited ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "tinyproxy does not accept on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_run_through_tinyproxy_and_its_max_clients_sends_the_rest_direct() {
    let which = std::process::Command::new("tinyproxy").arg("-v").output();
    assert!(
        which.is_ok(),
        "this test needs tinyproxy (Debian: apt-get install tinyproxy); .ci/run installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("tinyproxy.log");
    let conf = dir.path().join("tinyproxy.conf");
    // No ConnectPort lines: CONNECT to any port. MaxClients 4: the fifth connection waits in the
    // listen queue, unanswered.
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nMaxClients 4\nAllow 127.0.0.1\nTimeout 600\nLogLevel Info\nLogFile \"{}\"\nPidFile \"{}\"\n",
            log.display(),
            dir.path().join("tinyproxy.pid").display()
        ),
    )
    .unwrap();
    let mut tp = tokio::process::Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tinyproxy");
    let at = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    accepting(at, &mut tp, &log).await;
    // The readiness probe above took one of tinyproxy's clients for a moment; it is closed.
    let src = format!(
        r#"
description = "agents through tinyproxy"
duration = "10s"
[agents]
count = 8
ramp = "4/s"
connect_timeout = "2s"
endpoints = ["primary"]
[wakeups]
rate = "10/s"
rate_from = "5s"
rate_until = "9s"
[proxy]
url = "http://127.0.0.1:{port}"
"#
    );
    let (code, stdout, stderr, out) =
        run_scenario(dir.path(), "tinyproxy", &src, Duration::from_secs(120)).await;
    let _ = tp.kill().await;
    let tp_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        code, 0,
        "stdout:\n{stdout}\nstderr:\n{stderr}\ntinyproxy:\n{tp_log}"
    );
    let r = report(&out.join("report.json"));
    // Four agents hold tinyproxy's four clients; the other four wait out their connect timeout
    // on it and go direct.
    assert_eq!(n(&r, "paths.proxy_primary"), 4, "{}", get(&r, "paths"));
    assert_eq!(n(&r, "paths.direct_primary"), 4);
    let ttc = "latency_us.time_to_connected";
    assert_eq!(n(&r, &format!("{ttc}.proxy_primary.count")), 4);
    assert!(n(&r, &format!("{ttc}.proxy_primary.max")) < 1_000_000);
    assert_eq!(n(&r, &format!("{ttc}.direct_primary.count")), 4);
    assert!(n(&r, &format!("{ttc}.direct_primary.min")) >= 2_000_000);
    assert!(
        tp_log.contains("Maximum number of connections reached"),
        "tinyproxy's own log shows the limit:\n{tp_log}"
    );
    assert_eq!(get(&r, "proxy.kind"), "external");
    // Wake-ups through tinyproxy's tunnels and direct alike.
    let w = |k: &str| n(&r, &format!("wakeups.{k}"));
    assert!(w("sent") >= 30);
    assert_eq!(w("delivered"), w("sent"));
}
