//! The commands: `list` and `scenario`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use pushsim_report::render;
use pushsim_run::orchestrator::default_dir;
use pushsim_run::{execute, RunError, RunOptions};
use pushsim_scenario::builtin::BUILTINS;
use pushsim_scenario::load::validated;
use pushsim_scenario::{load, parse};
use tokio::sync::watch;

use crate::cli::ScenarioArgs;
use crate::progress::Bars;

/// `pushsim list`: every built-in with its description.
pub fn list() -> i32 {
    for (name, src) in BUILTINS {
        let about = parse(src, name, name)
            .map(|s| s.description)
            .unwrap_or_else(|e| format!("(broken: {e})"));
        println!("{name:<20} {about}");
    }
    0
}

/// `pushsim scenario`: load, override, validate, run, report; returns the exit code.
pub fn scenario(args: ScenarioArgs) -> i32 {
    let mut sc = match load(&args.scenario) {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let origin = if pushsim_scenario::builtin::source(&args.scenario).is_some() {
        format!("builtin:{}", args.scenario)
    } else {
        args.scenario.clone()
    };
    if let Some(n) = args.agents {
        sc.set_agent_count(n);
    }
    if let Some(s) = args.seed {
        sc.seed = s;
    }
    if let Some(d) = args.duration {
        sc.duration = d;
    }
    let sc = match validated(sc, &origin) {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match run(sc, origin, &args) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<RunError>()
                .map(RunError::exit_code)
                .unwrap_or(3);
            eprintln!("error: {e:#}");
            code
        }
    }
}

fn run(sc: pushsim_scenario::Scenario, origin: String, args: &ScenarioArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let (tx, interrupt) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("\ninterrupted: stopping the run and writing its report (Ctrl-C again to quit at once)");
                let _ = tx.send(true);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let dir = args.out.clone().unwrap_or_else(|| default_dir(Path::new("reports"), &sc.name));
        let bars = Arc::new(Bars::new());
        let opts = RunOptions {
            exe: std::env::current_exe().context("locating the pushsim binary")?,
            dir,
            sites: args.sites,
            observer: bars.clone(),
            interrupt,
        };
        let outcome = execute(sc, origin, opts).await?;
        bars.finish();
        print!("{}", render::terminal(&outcome.report));
        println!("report: {}", outcome.dir.join("report.json").display());
        Ok(if let Some(why) = &outcome.environment {
            eprintln!("error: the run was stopped: {why}");
            3
        } else if outcome.interrupted {
            130
        } else if outcome.report.passed() {
            0
        } else {
            1
        })
    })
}
