//! A site: many agents in one process, one recorder, one stop signal.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushsim_metrics::{Recorder, Snapshot};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::driver::{self, AgentRun};

/// What every agent of a site shares.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// The service endpoint the agents connect to.
    pub target: SocketAddr,
    /// The name the service's certificate is checked against.
    pub server_name: String,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Bound of one connect attempt (TCP + TLS + CONNACK).
    pub connect_timeout: Duration,
    /// Wait before reconnecting.
    pub reconnect_delay: Duration,
}

/// A site's live counts, for progress display.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SiteProgress {
    /// Agents connected now.
    pub connected: u64,
    /// Distinct wake-ups received.
    pub wakeups_received: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
}

/// A running site.
pub struct Site {
    rec: Arc<Mutex<Recorder>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Site {
    /// Starts `agents` against `cfg`, recording against run start `t0_ns`. Must be called inside
    /// a tokio runtime.
    pub fn start(cfg: SiteConfig, agents: Vec<AgentRun>, t0_ns: u64) -> Self {
        let cfg = Arc::new(cfg);
        let rec = Arc::new(Mutex::new(Recorder::new(t0_ns)));
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for a in agents {
            tasks.spawn(driver::run(cfg.clone(), a, rec.clone(), stop_rx.clone()));
        }
        Self { rec, stop, tasks }
    }

    /// Live counts.
    pub fn progress(&self) -> SiteProgress {
        let r = self.rec.lock().unwrap_or_else(|p| p.into_inner());
        SiteProgress {
            connected: r.connected_now(),
            wakeups_received: r.wakeups_received(),
            connect_failures: r.counters().connect_failures,
        }
    }

    /// Stops every agent (MQTT DISCONNECT, bounded) and returns what the site measured.
    pub async fn stop(mut self) -> Snapshot {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let r = self.rec.lock().unwrap_or_else(|p| p.into_inner());
        r.snapshot()
    }
}
