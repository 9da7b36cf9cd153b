//! report.json: the contract. Field names here are fixed; add fields, do not rename them.

use std::collections::BTreeMap;

use pushsim_metrics::{Summary, WakeupCounts};
use serde::{Deserialize, Serialize};

/// Version of the report.json layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The result of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Layout version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// pushsim's version.
    pub pushsim_version: String,
    /// Which scenario ran.
    pub scenario: ScenarioInfo,
    /// Seed of every random choice.
    pub seed: u64,
    /// Wall-clock start, RFC 3339 UTC.
    pub started_at: String,
    /// Length of the run's timeline in seconds (shorter than planned if stopped).
    pub duration_s: f64,
    /// Why the run ended early, if it did (Ctrl-C, environment).
    pub stopped_early: Option<String>,
    /// How the run was laid out over processes.
    pub plan: Plan,
    /// Agent counts.
    pub agents: AgentCounts,
    /// Wake-up accounting: every sent wake-up in exactly one of delivered / late / lost.
    pub wakeups: WakeupCounts,
    /// Latency percentiles in µs.
    pub latency_us: Latencies,
    /// Agents connected at the end, by endpoint.
    pub paths: Paths,
    /// Per group (`all` when the scenario has no groups): the same figures as above.
    pub groups: BTreeMap<String, GroupReport>,
    /// Reconnection after each service outage.
    pub recovery: Vec<Recovery>,
    /// SLO verdicts.
    pub slos: Vec<SloResult>,
    /// CPU and memory per process.
    pub processes: Vec<ProcessStats>,
    /// Edge counters (TLS handshakes, failures).
    pub edge: BTreeMap<String, u64>,
    /// The middlebox's fault rules and what each hit.
    #[serde(default)]
    pub faults: Vec<FaultReport>,
    /// Middlebox counters summed over sites (empty without a middlebox).
    #[serde(default)]
    pub middlebox: BTreeMap<String, u64>,
    /// What the HTTP proxy did (none: agents had no proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyReport>,
    /// Per-second timeline.
    pub timeline: Vec<TimelinePoint>,
    /// Percentile distributions of the latency histograms (the same names as `latency_us`).
    #[serde(default)]
    pub distributions: Distributions,
    /// The machine the run ran on.
    #[serde(default)]
    pub machine: Machine,
    /// This run is one shard of a larger one (`--shard i/N`); its SLOs are judged on the merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// A merged report (`pushsim report merge`): the shards it was merged from, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardInfo>,
}

/// One shard of a run split over processes or machines (`--shard i/N`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// Its index, from 0.
    pub index: u32,
    /// Shards in the whole run.
    pub count: u32,
    /// Agents it ran.
    pub agents: u64,
    /// The agreed start of every shard's timeline (`--start-at`), RFC 3339, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// When its timeline started, ms since the Unix epoch (merges align timelines on it).
    pub t0_unix_ms: u64,
    /// How late its timeline started against `start_at`, s (0: on time or no `start_at`).
    pub late_s: f64,
    /// The host it ran on.
    #[serde(default)]
    pub host: String,
}

/// Percentile distributions by histogram name (`wakeup`, `connect`, ...): `[percentile, µs]`
/// points evenly spaced on the "nines" scale, the last `[100, max]` (see
/// `pushsim_metrics::Histo::percentiles`). A histogram with no samples is absent.
pub type Distributions = BTreeMap<String, Vec<(f64, u64)>>;

/// The machine a run ran on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process could run on.
    pub cores: u32,
    /// The CPU's model name.
    pub cpu: String,
    /// Memory, MiB.
    pub memory_mib: u64,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Open-files limit per process (hard).
    pub nofile_hard: u64,
}

/// The scenario that ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioInfo {
    /// Built-in name or file stem.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Where it came from (`builtin:<name>` or a path).
    pub origin: String,
    /// The scenario as run, every default filled in (TOML).
    #[serde(default)]
    pub text: String,
}

/// Process layout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The broker: `rumqttd`, `mosquitto` or an external `mqtts://` URL.
    #[serde(default = "rumqttd")]
    pub broker: String,
    /// Site processes (agents).
    pub sites: u32,
    /// Edge processes (TLS), sharing the listeners with SO_REUSEPORT.
    pub edges: u32,
    /// rumqttd's plain listeners.
    pub broker_listeners: u32,
    /// Open-files limit per process the plan was made for.
    pub nofile_limit: u64,
}

fn rumqttd() -> String {
    "rumqttd".into()
}

/// Agent counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounts {
    /// Agents in the scenario.
    pub configured: u64,
    /// Most agents connected at the end of any second.
    pub connected_peak: u64,
    /// Agents connected when the run ended.
    pub connected_end: u64,
    /// Connect attempts.
    pub connect_attempts: u64,
    /// Failed connect attempts.
    pub connect_failures: u64,
    /// Established connections lost during the run.
    pub disconnects: u64,
    /// Subscriptions refused.
    pub subscribe_failures: u64,
    /// Messages on wake-up topics that were not wake-ups.
    pub malformed_messages: u64,
    /// Connections left on purpose to retry the primary endpoint.
    pub primary_retries: u64,
    /// Connections declared dead because PINGRESP did not come in time.
    pub pingresp_timeouts: u64,
    /// Check-ins that failed.
    pub checkin_failures: u64,
    /// Connections broken by a fault rule (held, forgotten, closed or reset by the middlebox, or
    /// closed idle by the proxy).
    #[serde(default)]
    pub drops: u64,
}

/// One fault rule of the middlebox.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    /// Its name.
    pub name: String,
    /// The fault kind (`idle_drop`, `refuse`, ...).
    pub kind: String,
    /// The port role it stands on (`primary`, `fallback`).
    pub target: String,
    /// Which direction it looks at (`both`, `up`, `down`).
    pub direction: String,
    /// The groups it is limited to (empty: all).
    pub groups: Vec<String>,
    /// When it switched on, s from the run start.
    pub at_s: f64,
    /// When it switched off (none: it stayed on).
    pub until_s: Option<f64>,
    /// Connections it hit (a new connection it decided, or an open one it acted on); null when
    /// the backend does not say (Toxiproxy).
    pub connections_hit: Option<u64>,
}

/// Agents connected at the end, by endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paths {
    /// On the primary endpoint (the 8883 role), direct or through the proxy.
    pub primary: u64,
    /// On the fallback endpoint (the 443 role), direct or through the proxy.
    pub fallback: u64,
    /// Through the proxy to the primary.
    #[serde(default)]
    pub proxy_primary: u64,
    /// Through the proxy to the fallback.
    #[serde(default)]
    pub proxy_fallback: u64,
    /// Direct to the primary.
    #[serde(default)]
    pub direct_primary: u64,
    /// Direct to the fallback.
    #[serde(default)]
    pub direct_fallback: u64,
}

impl Paths {
    /// From counts per path (`pushsim_metrics::recorder::PATH_NAMES` order).
    pub fn from_counts(c: [u64; pushsim_metrics::recorder::PATHS]) -> Self {
        Self {
            primary: c[0] + c[2],
            fallback: c[1] + c[3],
            direct_primary: c[0],
            direct_fallback: c[1],
            proxy_primary: c[2],
            proxy_fallback: c[3],
        }
    }

    /// Adds another's counts.
    pub fn add(&mut self, o: &Paths) {
        self.primary += o.primary;
        self.fallback += o.fallback;
        self.proxy_primary += o.proxy_primary;
        self.proxy_fallback += o.proxy_fallback;
        self.direct_primary += o.direct_primary;
        self.direct_fallback += o.direct_fallback;
    }

    /// The four paths as `(name, agents)`, in `PATH_NAMES` order.
    pub fn each(&self) -> [(&'static str, u64); pushsim_metrics::recorder::PATHS] {
        let [dp, df, pp, pf] = pushsim_metrics::recorder::PATH_NAMES;
        [
            (dp, self.direct_primary),
            (df, self.direct_fallback),
            (pp, self.proxy_primary),
            (pf, self.proxy_fallback),
        ]
    }

    /// The non-zero paths as `name count`, most agents first.
    pub fn describe(&self) -> String {
        let mut v = self.each();
        v.sort_by_key(|p| std::cmp::Reverse(p.1));
        let s: Vec<String> = v
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| format!("{p} {n}"))
            .collect();
        if s.is_empty() {
            "-".into()
        } else {
            s.join(" · ")
        }
    }
}

/// What the HTTP proxy did, summed over sites.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyReport {
    /// `embedded` (pushsim's, in each site) or `external` (figures are then not known).
    pub kind: String,
    /// The external proxy's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Connections accepted.
    pub connections: u64,
    /// Connections refused at accept.
    pub refused: u64,
    /// Answers by status (`200`: tunnels opened).
    pub statuses: BTreeMap<String, u64>,
    /// Requests never answered (hang, or the client gave up first).
    pub unanswered: u64,
    /// Tunnels by why they closed (`client`, `target`, `idle`, `stop`).
    pub closed: BTreeMap<String, u64>,
    /// Bytes through tunnels, agents to service.
    pub bytes_up: u64,
    /// Bytes through tunnels, service to agents.
    pub bytes_down: u64,
    /// Most tunnels open at once, summed over sites.
    pub max_open: u64,
}

/// Time to connected per path: from an agent's first attempt to its first CONNACK, by the
/// path that CONNACK came on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathLatencies {
    /// Through the proxy to the primary.
    pub proxy_primary: Summary,
    /// Through the proxy to the fallback.
    pub proxy_fallback: Summary,
    /// Direct to the primary.
    pub direct_primary: Summary,
    /// Direct to the fallback.
    pub direct_fallback: Summary,
}

/// One group's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Agent counts.
    pub agents: AgentCounts,
    /// Wake-up accounting for the group's agents.
    pub wakeups: WakeupCounts,
    /// Latency percentiles in µs.
    pub latency_us: Latencies,
    /// Agents connected at the end, by endpoint.
    pub paths: Paths,
    /// Percentile distributions of the group's latency histograms.
    #[serde(default)]
    pub distributions: Distributions,
    /// The group's agents connected at the end of each second (the run's `timeline` seconds);
    /// merges take the group's peak from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connected_per_s: Vec<u64>,
}

/// Reconnection after one service outage. Times are seconds from the outage's start; a
/// `reconnected_*` is absent when that share of agents never came back before the run ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// What happened (`service.kill`, `service.stop`, `service.restart`).
    pub action: String,
    /// When the outage began, seconds since the run start.
    pub at_s: f64,
    /// How long the service was down (absent if it never came back).
    pub down_s: Option<f64>,
    /// Agents connected when it began.
    pub connected_before: u64,
    /// Agents (of those) back by the end of the run.
    pub reconnected: u64,
    /// 50 % of them back.
    pub reconnected_50_s: Option<f64>,
    /// 90 % back.
    pub reconnected_90_s: Option<f64>,
    /// 99 % back.
    pub reconnected_99_s: Option<f64>,
    /// All back.
    pub reconnected_100_s: Option<f64>,
    /// Most connects in one second until the next outage or the end.
    pub peak_connects_per_s: u64,
    /// Failed connect attempts until the next outage or the end.
    pub failed_attempts: u64,
}

/// Latency summaries, µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latencies {
    /// TCP + TLS + CONNACK.
    pub connect: Summary,
    /// Per agent, from its first connect attempt to its first CONNACK, on whichever endpoint
    /// (time to connected, fallback included).
    #[serde(default)]
    pub first_connect: Summary,
    /// The same, by the path agents first connected on.
    #[serde(default)]
    pub time_to_connected: PathLatencies,
    /// Warm wake-ups: every wake-up after an agent's first.
    pub wakeup: Summary,
    /// Cold wake-ups: each agent's first.
    pub wakeup_cold: Summary,
    /// From the moment the path died to the moment the agent noticed.
    pub detect: Summary,
    /// From a lost connection to the next successful connect.
    pub reconnect: Summary,
    /// Check-in round trip.
    pub checkin: Summary,
    /// From a wake-up's intended send time to the check-in that answered it.
    pub wakeup_to_checkin: Summary,
}

/// The latency histograms in the order reports show them: `latency_us` name and title.
pub const LATENCY_KINDS: [(&str, &str); 8] = [
    (
        "wakeup",
        "Wake-up latency, warm (every wake-up after an agent's first)",
    ),
    ("wakeup_cold", "Wake-up latency, cold (each agent's first)"),
    ("connect", "Connect (TCP + TLS + CONNACK)"),
    (
        "first_connect",
        "Time to connected (first attempt → first CONNACK, fallback included)",
    ),
    ("detect", "Detection (path died → agent noticed)"),
    ("reconnect", "Reconnect (connection lost → connected again)"),
    ("checkin", "Check-in round trip"),
    (
        "wakeup_to_checkin",
        "Wake-up → check-in (intended send → the answering check-in)",
    ),
];

impl Latencies {
    /// The summary of histogram `kind` (a [`LATENCY_KINDS`] name); empty for another name.
    pub fn get(&self, kind: &str) -> Summary {
        match kind {
            "wakeup" => self.wakeup,
            "wakeup_cold" => self.wakeup_cold,
            "connect" => self.connect,
            "first_connect" => self.first_connect,
            "detect" => self.detect,
            "reconnect" => self.reconnect,
            "checkin" => self.checkin,
            "wakeup_to_checkin" => self.wakeup_to_checkin,
            _ => Summary::default(),
        }
    }
}

/// One SLO verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SloResult {
    /// The expression as written.
    pub name: String,
    /// Operator and limit.
    pub limit: String,
    /// The value found (None when the path has no number).
    pub value: Option<f64>,
    /// Whether it held.
    pub passed: bool,
}

/// CPU and peak memory of one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// `orchestrator` (with the console), `broker`, `edge-N`, `site-N`.
    pub role: String,
    /// OS process id.
    pub pid: u32,
    /// User + system CPU seconds.
    pub cpu_s: f64,
    /// Of `cpu_s`, what was spent before the timeline started (certificates, start-up).
    pub setup_cpu_s: f64,
    /// Peak resident set (VmHWM), KiB: with agents, the connect storm's transient buffers
    /// (TLS handshakes in flight) count here.
    pub peak_rss_kb: u64,
    /// Resident set (VmRSS) when the timeline ended, before the process was told to stop, KiB:
    /// what holding the connections costs (0: not read).
    #[serde(default)]
    pub rss_end_kb: u64,
    /// User + system CPU seconds when the timeline ended, before the process was told to stop
    /// (0: not read). `cpu_s - cpu_end_s` is what stopping cost: for a site, disconnecting
    /// every agent; `cpu_end_s - setup_cpu_s`, the timeline itself.
    #[serde(default)]
    pub cpu_end_s: f64,
    /// Agents this process held (sites), for per-agent memory.
    pub agents: u64,
}

/// One second of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelinePoint {
    /// Seconds since the run start.
    pub t_s: u64,
    /// Agents connected at the end of this second.
    pub connected: u64,
    /// Connects during it.
    pub connects: u64,
    /// Disconnects during it.
    pub disconnects: u64,
    /// Failed connect attempts during it.
    pub connect_failures: u64,
    /// Wake-ups sent during it.
    pub wakeups_sent: u64,
    /// Wake-ups received (first receipt) during it.
    pub wakeups_delivered: u64,
    /// Connections broken by a fault rule during it.
    #[serde(default)]
    pub drops: u64,
    /// Agents connected at the end of this second, by path.
    #[serde(default)]
    pub paths: Paths,
}
