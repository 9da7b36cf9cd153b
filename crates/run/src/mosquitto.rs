//! `service.broker = "mosquitto"`: the Debian `mosquitto` binary as the run's service process.
//! pushsim writes its configuration (TLS with the run's PKI on the two listener roles, client
//! certificates required, loopback only), starts it, knows it ready when both listeners
//! accept, and restarts it for `service.*` events on the same ports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pushsim_pki::files::PkiPaths;
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::children::{Child, Event};
use crate::RunError;

/// Where the binary is looked for after `PATH` (Debian installs it in /usr/sbin, which is not
/// on every user's `PATH`).
const SBIN: [&str; 2] = ["/usr/sbin", "/usr/local/sbin"];

fn env(what: impl std::fmt::Display) -> RunError {
    RunError::Environment(what.to_string())
}

/// The `mosquitto` binary, or an error that says how to install it.
pub fn binary() -> Result<PathBuf, RunError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            env("service.broker = \"mosquitto\" needs the mosquitto binary, found neither on PATH nor in /usr/sbin: install it (Debian: apt-get install mosquitto)")
        })
}

/// The configuration for listeners `primary` and `fallback` with the run's `pki`, logging to
/// `log` (pure).
pub(crate) fn config(
    primary: SocketAddr,
    fallback: SocketAddr,
    pki: &PkiPaths,
    log: &Path,
    as_root: bool,
) -> String {
    let mut c = String::from(
        "# Written by pushsim for one run; rewritten at every (re)start of the service.\n\
         per_listener_settings false\n\
         # Every client presents a certificate of the run's CA; there are no passwords.\n\
         allow_anonymous true\n\
         # Sessions live as long as the process, as with rumqttd: a restart loses them.\n\
         persistence false\n\
         max_keepalive 65535\n\
         # Wake-ups are single small packets: send them at once.\n\
         set_tcp_nodelay true\n\
         connection_messages false\n",
    );
    if as_root {
        c.push_str(
            "# Run as root, mosquitto would switch to the user \"mosquitto\", which cannot read\n\
             # the run's keys (mode 0600).\n\
             user root\n",
        );
    }
    c.push_str(&format!(
        "log_dest file {}\nlog_type error\nlog_type warning\nlog_type notice\n",
        log.display()
    ));
    for (role, addr) in [
        ("primary (8883 role)", primary),
        ("fallback (443 role)", fallback),
    ] {
        c.push_str(&format!(
            "\n# {role}\nlistener {} {}\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\nuse_identity_as_username false\n",
            addr.port(),
            addr.ip(),
            pki.ca_cert.display(),
            pki.server_cert.display(),
            pki.server_key.display(),
        ));
    }
    c
}

/// Writes [`config`] for this process's user to `path`.
pub fn write_config(
    path: &Path,
    listeners: [SocketAddr; 2],
    pki: &PkiPaths,
    log: &Path,
) -> Result<(), RunError> {
    let as_root = rustix::process::geteuid().is_root();
    std::fs::write(path, config(listeners[0], listeners[1], pki, log, as_root))
        .map_err(|e| env(format!("{}: {e}", path.display())))
}

/// The last `n` lines of `path` (for an error message), or nothing.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Writes the configuration into `dir`, starts mosquitto as child `role`, and waits (at most
/// `bound`) until both listeners accept. Its exit is reported on `events` as `(0, None)`.
pub(crate) async fn start(
    dir: &Path,
    listeners: [SocketAddr; 2],
    pki: &PkiPaths,
    events: mpsc::UnboundedSender<Event>,
    rx: &mut mpsc::UnboundedReceiver<Event>,
    bound: Duration,
) -> Result<Child, RunError> {
    let bin = binary()?;
    let conf = dir.join("mosquitto.conf");
    let log = dir.join("mosquitto.log");
    write_config(&conf, listeners, pki, &log)?;
    // What it says before its log is open (config errors, warnings) goes to the log too.
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| env(format!("{}: {e}", log.display())))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("-c").arg(&conf).stderr(stderr);
    let child = Child::spawn_program(cmd, "mosquitto".into(), 0, events)?;
    let deadline = tokio::time::Instant::now() + bound;
    let failed = |why: String| {
        env(format!(
            "mosquitto ({}, config {}) {why}; its log ({}) ends:\n{}",
            bin.display(),
            conf.display(),
            log.display(),
            tail(&log, 5)
        ))
    };
    loop {
        let mut up = true;
        for a in listeners {
            up &= TcpStream::connect(a).await.is_ok();
        }
        if up {
            return Ok(child);
        }
        tokio::select! {
            ev = rx.recv() => if let Some((_, None)) | None = ev {
                return Err(failed("exited before its listeners were up".into()));
            },
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            child.kill().await;
            return Err(failed(format!(
                "did not listen on {listeners:?} within {bound:?}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_both_roles_with_client_certificates_on_loopback() {
        let pki = PkiPaths::in_dir(Path::new("/run/x/pki"));
        let c = config(
            "127.0.0.1:18883".parse().unwrap(),
            "127.0.0.1:10443".parse().unwrap(),
            &pki,
            Path::new("/run/x/mosquitto.log"),
            false,
        );
        assert!(c.contains("listener 18883 127.0.0.1\n"), "{c}");
        assert!(c.contains("listener 10443 127.0.0.1\n"), "{c}");
        assert_eq!(c.matches("require_certificate true").count(), 2, "{c}");
        assert_eq!(c.matches("cafile /run/x/pki/ca.pem").count(), 2, "{c}");
        assert_eq!(c.matches("keyfile /run/x/pki/server.key").count(), 2, "{c}");
        assert!(c.contains("log_dest file /run/x/mosquitto.log"), "{c}");
        assert!(!c.contains("user root"), "{c}");
        assert!(!c.contains("0.0.0.0"), "{c}");
        let root = config(
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            &pki,
            Path::new("l"),
            true,
        );
        assert!(root.contains("\nuser root\n"), "{root}");
    }
}
