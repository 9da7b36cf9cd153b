//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use pushsim_scenario::{Broker, Dur};

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
    /// Serves a Toxiproxy-compatible API whose proxies are pushsim middleboxes (Toxiproxy's
    /// toxics plus idle_drop, blackhole, close, refuse, swallow, max_connections).
    Toxiproxy(ToxiproxyArgs),
    /// Re-renders or compares run reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Internal: a child process of a run (broker, edge, site).
    #[command(name = "__child", hide = true)]
    Child { role: String },
}

#[derive(Debug, Args)]
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

fn parse_broker(s: &str) -> Result<Broker, String> {
    Broker::try_from(s.to_string())
}
