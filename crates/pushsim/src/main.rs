//! pushsim: simulates a push-notification service for endpoint-management agents on one
//! machine and measures wake-up latency, connects and losses.
//!
//! # Layout
//! - `main.rs`: parse, set up tracing, run the command, map the outcome to an exit code.
//! - [`cli`]: the clap command line.
//! - [`commands`]: `list`, `scenario`, `check`, `pki` and `toxiproxy`.
//! - [`reports`]: `report render`, `report compare` and `report merge`.
//! - [`progress`]: indicatif progress bars (on a terminal only).
//!
//! Exit codes: 0 every SLO held; 1 an SLO failed; 2 usage or scenario error; 3 the environment
//! stopped the run; 130 interrupted by Ctrl-C (the report is still written).

mod cli;
mod commands;
mod progress;
mod reports;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    // rumqttd logs every connection that goes away at ERROR; its failures that matter (a listener
    // that did not bind) are caught by pushsim's readiness probe instead. RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rumqttd=off".into()),
        )
        .init();
    let code = match cli.command {
        cli::Command::Child { role } => pushsim_run::child::main(&role),
        cli::Command::List => commands::list(),
        cli::Command::Scenario(args) => commands::scenario(args),
        cli::Command::Check(args) => commands::check(args),
        cli::Command::Toxiproxy(args) => commands::toxiproxy(args),
        cli::Command::Pki(args) => commands::pki(args),
        cli::Command::Report(cli::ReportCommand::Render(args)) => reports::render(args),
        cli::Command::Report(cli::ReportCommand::Compare(args)) => reports::compare(args),
        cli::Command::Report(cli::ReportCommand::Merge(args)) => reports::merge(args),
    };
    std::process::exit(code);
}
