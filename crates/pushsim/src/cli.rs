//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use std::time::SystemTime;

use pushsim_run::shard::Shard;
use pushsim_scenario::{Broker, Dur, Slo};

/// Simulates a push-notification service (MQTT over TLS) with thousands of management agents
/// on one machine, and measures wake-up latency, connects and losses.
#[derive(Debug, Parser)]
#[command(name = "pushsim", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Lists the built-in scenarios.
    List,
    /// Runs a scenario (a built-in name or a TOML file) and writes its report.
    Scenario(ScenarioArgs),
    /// Loads and validates scenarios without running them (exit 0 when all are valid, 2 when
    /// not): a check before launching a long or sharded run.
    Check(CheckArgs),
    /// Serves a Toxiproxy-compatible API whose proxies are pushsim middleboxes (Toxiproxy's
    /// toxics plus idle_drop, blackhole, close, refuse, swallow, max_connections).
    Toxiproxy(ToxiproxyArgs),
    /// Writes a PKI for a broker of your own (a shared one for shards, on Kubernetes or here):
    /// CA, server certificate and key, and the client certificate and key agents present.
    Pki(PkiArgs),
    /// Re-renders, compares or merges run reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Internal: a child process of a run (broker, edge, site).
    #[command(name = "__child", hide = true)]
    Child { role: String },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Built-in scenario names or scenario files.
    #[arg(required = true)]
    pub scenarios: Vec<String>,
}

#[derive(Debug, Default, Args)]
pub struct ScenarioArgs {
    /// Built-in scenario name (see `pushsim list`) or path to a scenario file.
    pub scenario: String,
    /// Number of agents (overrides `agents.count`).
    #[arg(long)]
    pub agents: Option<u32>,
    /// Seed of every random choice (overrides `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Length of the run's timeline, e.g. `90s` (overrides `duration`).
    #[arg(long)]
    pub duration: Option<Dur>,
    /// Run folder (default: reports/<scenario>-<UTC time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Site processes for the agents (default: as the open-files limit requires).
    #[arg(long)]
    pub sites: Option<u32>,
    /// The broker (overrides `service.broker`): `rumqttd` (behind pushsim's TLS edge),
    /// `mosquitto` (started and configured by pushsim) or `mqtts://host:port` (external).
    #[arg(long, value_name = "BROKER", value_parser = parse_broker)]
    pub broker: Option<Broker>,
    /// External broker: CA certificate (PEM) its certificate is checked against.
    #[arg(long, value_name = "PEM")]
    pub ca: Option<PathBuf>,
    /// External broker: client certificate (PEM) the agents and the console present.
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// External broker: the client certificate's key (PEM).
    #[arg(long, value_name = "PEM")]
    pub key: Option<PathBuf>,
    /// Serve Toxiproxy's API for the run's middlebox on this address (e.g. 127.0.0.1:8474):
    /// proxies `primary` and `fallback`, toxics applied to open and new connections.
    #[arg(long, value_name = "ADDR")]
    pub fault_api: Option<SocketAddr>,
    /// Run shard i of N (from 0): every N-th agent from the i-th, against a shared broker
    /// (`--broker mqtts://…`); `pushsim report merge` makes the whole run's report. On
    /// Kubernetes: `--shard $JOB_COMPLETION_INDEX/N`.
    #[arg(long, value_name = "i/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Start the timeline at this wall-clock time (RFC 3339, e.g. 2026-12-05T10:00:00Z), so the
    /// shards' timelines line up; a shard that is ready late starts at once and says so.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "shard")]
    pub start_at: Option<SystemTime>,
}

#[derive(Debug, Args)]
pub struct PkiArgs {
    /// Folder for ca.pem, ca.key, server.pem, server.key, client.pem, client.key (created).
    pub dir: PathBuf,
    /// DNS names the server certificate is for (repeatable; default localhost).
    #[arg(long = "name", value_name = "DNS")]
    pub names: Vec<String>,
    /// IP addresses the server certificate is for (repeatable; default 127.0.0.1 and ::1).
    #[arg(long = "ip", value_name = "IP")]
    pub ips: Vec<std::net::IpAddr>,
}

#[derive(Debug, Args)]
pub struct ToxiproxyArgs {
    /// Address of the API.
    #[arg(long, default_value = "127.0.0.1:8474")]
    pub listen: SocketAddr,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Rebuilds report.html from a run's report.json (old runs get new charts).
    Render(RenderArgs),
    /// Compares runs side by side, the first the baseline: every count and percentile with its
    /// change, regressions marked (exit 1 when there is one).
    Compare(CompareArgs),
    /// Merges the report folders of every shard of a run (`--shard i/N`) into the report of the
    /// whole: histograms added, counts and timelines summed, the scenario's SLOs evaluated
    /// (exit 0 when they hold, 1 when one fails, as a run).
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' run folders (each with report.json and histograms.hlog).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// Folder for the merged report.json, report.html and histograms.hlog.
    #[arg(long)]
    pub out: PathBuf,
    /// Another SLO to hold the whole run to, besides the scenario's (repeatable), e.g.
    /// "latency_us.wakeup.p99 < 250ms".
    #[arg(long = "slo", value_name = "EXPR", value_parser = parse_slo)]
    pub slos: Vec<Slo>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A run folder, or a report.json.
    pub run: PathBuf,
    /// Where to write the page (default: report.html beside the report.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run folders or report.json files, the first the baseline.
    #[arg(required = true, num_args = 2..)]
    pub runs: Vec<PathBuf>,
    /// Where to write the page.
    #[arg(long, default_value = "compare.html")]
    pub out: PathBuf,
    /// A change counts as a regression (or an improvement) past this many percent.
    #[arg(long, default_value_t = 10.0, value_parser = percent)]
    pub threshold: f64,
}

/// A threshold in percent: a finite number, 0 or more (`10` or `10%`).
fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{s:?} is not a number of percent"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s}: the threshold must be 0 % or more"))
    }
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
}

fn parse_slo(s: &str) -> Result<Slo, String> {
    s.parse::<Slo>()
}

fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s).map_err(|e| {
        format!("{s:?}: {e}; give an RFC 3339 time such as 2026-12-05T10:00:00Z (UTC)")
    })
}

fn parse_broker(s: &str) -> Result<Broker, String> {
    Broker::try_from(s.to_string())
}
