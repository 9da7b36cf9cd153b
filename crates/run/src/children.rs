//! Child processes, parent side: spawn the same binary as `__child`, write its spec, forward its
//! lines to the orchestrator as events, stop it with a bound. A program that is not pushsim
//! (mosquitto) is a child too: no spec and no lines, but the same exit event, statistics and
//! bounded stop (SIGTERM instead of closing stdin).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pushsim_report::ProcessStats;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;

use crate::ipc::{FromChild, Ready, Spec, ToChild};
use crate::{procstat, RunError};

/// A line from child `id`, or `None` when it exited (stdout closed).
pub type Event = (usize, Option<FromChild>);

/// A running child process.
pub struct Child {
    /// Its role in reports (`broker`, `edge-0`, `site-1`).
    pub role: String,
    /// Agents it holds (sites).
    pub agents: u64,
    /// CPU seconds spent before the timeline started.
    setup_cpu_s: f64,
    /// Resident set when the timeline ended (KiB).
    rss_end_kb: u64,
    /// CPU seconds when the timeline ended.
    cpu_end_s: f64,
    proc: tokio::process::Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    /// Speaks the JSON-lines protocol (a pushsim child), or is another program.
    pushsim: bool,
}

fn env_err(role: &str, what: impl std::fmt::Display) -> RunError {
    RunError::Environment(format!("{role}: {what}"))
}

impl Child {
    /// Spawns `exe __child`, sends `spec`, and forwards its lines to `events` as `(id, line)`.
    pub async fn spawn(
        exe: &Path,
        role: String,
        id: usize,
        spec: &Spec,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Child, RunError> {
        let mut cmd = Command::new(exe);
        cmd.arg("__child").arg(&role).stderr(Stdio::inherit());
        let mut child = Self::launch(cmd, role, id, events, true)?;
        child
            .write(&serde_json::to_string(spec).map_err(|e| env_err(&child.role, e))?)
            .await?;
        Ok(child)
    }

    /// Starts another program (`cmd`, its stderr already set) as a child: `(id, None)` goes to
    /// `events` when it exits.
    pub fn spawn_program(
        cmd: Command,
        role: String,
        id: usize,
        events: mpsc::UnboundedSender<Event>,
    ) -> Result<Child, RunError> {
        Self::launch(cmd, role, id, events, false)
    }

    fn launch(
        mut cmd: Command,
        role: String,
        id: usize,
        events: mpsc::UnboundedSender<Event>,
        pushsim: bool,
    ) -> Result<Child, RunError> {
        let program = cmd.as_std().get_program().to_string_lossy().into_owned();
        let mut proc = cmd
            .stdin(if pushsim {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group: a terminal's Ctrl-C reaches only the orchestrator, which
            // stops the children itself and still collects their measurements.
            .process_group(0)
            .spawn()
            .map_err(|e| env_err(&role, format!("cannot start {program}: {e}")))?;
        let pid = proc.id().unwrap_or(0);
        let stdout = proc
            .stdout
            .take()
            .ok_or_else(|| env_err(&role, "no stdout pipe"))?;
        let stdin = proc.stdin.take();
        if pushsim && stdin.is_none() {
            return Err(env_err(&role, "no stdin pipe"));
        }
        let reader_role = role.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if !pushsim {
                    tracing::debug!(role = %reader_role, "{line}");
                    continue;
                }
                match serde_json::from_str::<FromChild>(&line) {
                    Ok(msg) => {
                        if events.send((id, Some(msg))).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(role = %reader_role, error = %e, "unreadable line from child")
                    }
                }
            }
            let _ = events.send((id, None));
        });
        Ok(Child {
            role,
            agents: 0,
            setup_cpu_s: 0.0,
            rss_end_kb: 0,
            cpu_end_s: 0.0,
            proc,
            stdin,
            pid,
            pushsim,
        })
    }

    async fn write(&mut self, line: &str) -> Result<(), RunError> {
        let role = self.role.clone();
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| env_err(&role, "stdin already closed"))?;
        let mut buf = line.as_bytes().to_vec();
        buf.push(b'\n');
        stdin
            .write_all(&buf)
            .await
            .map_err(|e| env_err(&role, format!("child is gone ({e})")))?;
        stdin
            .flush()
            .await
            .map_err(|e| env_err(&role, format!("child is gone ({e})")))
    }

    /// Sends a command.
    pub async fn send(&mut self, msg: &ToChild) -> Result<(), RunError> {
        let line = serde_json::to_string(msg).map_err(|e| env_err(&self.role, e))?;
        self.write(&line).await
    }

    /// OS process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Notes the CPU spent so far as set-up (call when the timeline starts).
    pub fn mark_setup(&mut self) {
        self.setup_cpu_s = procstat::read(self.pid).map(|(cpu, _)| cpu).unwrap_or(0.0);
    }

    /// Notes its resident set and CPU as the timeline's end values (call before telling it to
    /// stop).
    pub fn mark_end(&mut self) {
        self.rss_end_kb = procstat::rss(self.pid).unwrap_or(0);
        self.cpu_end_s = procstat::read(self.pid).map(|(cpu, _)| cpu).unwrap_or(0.0);
    }

    /// CPU and peak memory now.
    pub fn stats(&self) -> ProcessStats {
        let (cpu_s, peak_rss_kb) = procstat::read(self.pid).unwrap_or((0.0, 0));
        ProcessStats {
            role: self.role.clone(),
            pid: self.pid,
            cpu_s,
            setup_cpu_s: self.setup_cpu_s,
            peak_rss_kb,
            rss_end_kb: self.rss_end_kb,
            cpu_end_s: self.cpu_end_s,
            agents: self.agents,
        }
    }

    /// SIGKILL, and reaps it.
    pub async fn kill(mut self) {
        let _ = self.proc.kill().await;
    }

    /// Closes its stdin (a pushsim child stops) or sends SIGTERM (another program), waits up to
    /// `bound`, then kills it.
    pub async fn finish(mut self, bound: Duration) {
        self.stdin = None;
        if !self.pushsim {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::Term);
            }
        }
        if tokio::time::timeout(bound, self.proc.wait()).await.is_err() {
            let _ = self.proc.kill().await;
        }
    }
}

/// Waits for child `id`'s Ready on `events`, at most `bound`.
pub async fn wait_ready(
    role: &str,
    events: &mut mpsc::UnboundedReceiver<Event>,
    bound: Duration,
) -> Result<Ready, RunError> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| env_err(role, format!("not ready after {bound:?}")))?;
        match ev {
            Some((_, Some(FromChild::Ready(r)))) => return Ok(r),
            Some((_, Some(FromChild::Error(e)))) => return Err(env_err(role, e)),
            Some((_, Some(_))) => {}
            Some((_, None)) | None => {
                return Err(env_err(
                    role,
                    "exited before it was ready (see its messages above)",
                ))
            }
        }
    }
}
