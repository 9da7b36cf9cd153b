//! The protocol between the orchestrator and its children: one JSON object per line. The parent
//! writes a [`Spec`] then commands ([`ToChild`]) on the child's stdin; the child answers with
//! [`FromChild`] lines on stdout (logs go to stderr). A child whose stdin closes stops at once,
//! so no child outlives its orchestrator.

use std::net::SocketAddr;
use std::path::PathBuf;

use pushsim_agent::path::PathResult;
use pushsim_agent::site::GroupResult;
use pushsim_agent::SiteProgress;
use pushsim_netfault::connect::{ProxyStats, TunnelRecord};
use pushsim_netfault::toxics::ProxyJson;
use pushsim_pki::files::PkiPaths;
use pushsim_scenario::{Network, Profile, Proxy};
use pushsim_service::edge::EdgeCounts;
use serde::{Deserialize, Serialize};

/// What a child is to be.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spec {
    /// rumqttd with `listeners` plain listeners for `agents` agents.
    Broker {
        /// Number of plain listeners.
        listeners: u32,
        /// Agents it must accept.
        agents: u32,
    },
    /// A TLS edge.
    Edge(EdgeSpec),
    /// A site of agents.
    Site(Box<SiteSpec>),
}

/// An edge process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeSpec {
    /// Primary listener (port 0: pick one).
    pub primary: SocketAddr,
    /// Fallback listener (port 0: pick one).
    pub fallback: SocketAddr,
    /// Share the ports with other edge processes.
    pub reuse_port: bool,
    /// rumqttd's listeners.
    pub upstreams: Vec<SocketAddr>,
    /// The run's PKI files.
    pub pki: PkiPaths,
    /// TLS handshake bound, ms.
    pub handshake_timeout_ms: u64,
}

/// A site process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteSpec {
    /// Run index and group index of each of its agents.
    pub agents: Vec<(u32, u16)>,
    /// The service endpoints: primary, fallback.
    pub targets: [SocketAddr; 2],
    /// The name the service certificate is checked against.
    pub server_name: String,
    /// Settings per group.
    pub profiles: Vec<Profile>,
    /// The check-in endpoint.
    pub checkin: Option<SocketAddr>,
    /// The run's seed.
    pub seed: u64,
    /// Agents started per second over the whole run.
    pub ramp_per_sec: f64,
    /// The run's PKI files.
    pub pki: PkiPaths,
    /// The middlebox's rules, when agents go through one.
    pub network: Option<Network>,
    /// Group names (rules name groups).
    pub group_names: Vec<String>,
    /// The HTTP proxy on the agents' path, when there is one.
    #[serde(default)]
    pub proxy: Option<Proxy>,
    /// An external broker's TLS files: every agent presents the one client certificate there
    /// (none: each agent gets its own from the run's CA).
    #[serde(default)]
    pub external_tls: Option<ExternalTls>,
}

/// The user's TLS files for an external broker (`--ca`, `--cert`, `--key`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExternalTls {
    /// CA certificate(s) the broker's certificate is checked against.
    pub ca: PathBuf,
    /// Client certificate and key, when the broker wants one.
    pub identity: Option<(PathBuf, PathBuf)>,
}

impl ExternalTls {
    /// From the scenario's `[service]`, when the broker is external.
    pub fn of(s: &pushsim_scenario::Service) -> Option<Self> {
        if s.broker.managed() {
            return None;
        }
        Some(Self {
            ca: s.ca.clone()?,
            identity: s.cert.clone().zip(s.key.clone()),
        })
    }

    /// The one client configuration every agent (and the console) shares.
    pub fn client_config(&self) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
        let id = self
            .identity
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()));
        pushsim_pki::external::client_config(&self.ca, id).map_err(|e| e.to_string())
    }
}

/// Commands after the spec.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToChild {
    /// Sites: start the agents against run start `t0_ns`.
    Start {
        /// Run start on the run clock.
        t0_ns: u64,
    },
    /// Sites: the service path goes down at `at_ns` (an outage begins; sent just before it,
    /// answered with [`FromChild::Ack`]).
    PathDown {
        /// When, on the run clock.
        at_ns: u64,
    },
    /// Sites: the fault API changed a port role's proxy.
    Proxy(ProxyJson),
    /// Stop and send [`FromChild::Done`].
    Stop,
}

/// What a child reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromChild {
    /// Ready: the broker's listeners, or the edge's bound addresses, or a site's identities
    /// issued.
    Ready(Ready),
    /// A site's live counts.
    Progress(SiteProgress),
    /// A site noted a [`ToChild::PathDown`].
    Ack,
    /// Final measurements; the child then waits for its stdin to close.
    Done(Box<Done>),
    /// The child failed; it exits after this line.
    Error(String),
}

/// A child's readiness.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// rumqttd answers on these.
    Broker {
        /// Plain listeners.
        listeners: Vec<SocketAddr>,
    },
    /// The edge listens on these.
    Edge {
        /// Primary listener.
        primary: SocketAddr,
        /// Fallback listener.
        fallback: SocketAddr,
    },
    /// The site's agents are ready to start.
    Site,
}

/// Final measurements.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Done {
    /// A site's measurements, per group (index = group).
    pub groups: Vec<GroupResult>,
    /// An edge's counters.
    pub edge: Option<EdgeCounts>,
    /// A site's middlebox.
    #[serde(default)]
    pub path: Option<PathResult>,
    /// A site's embedded proxy.
    #[serde(default)]
    pub proxy: Option<ProxyStats>,
    /// Every request a site's embedded proxy saw.
    #[serde(default)]
    pub tunnels: Vec<TunnelRecord>,
}
