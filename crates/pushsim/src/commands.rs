//! The commands: `list`, `scenario`, `check`, `pki` and `toxiproxy`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use pushsim_report::{render, RunReport};
use pushsim_run::orchestrator::default_dir;
use pushsim_run::{execute, RunError, RunOptions};
use pushsim_scenario::builtin::BUILTINS;
use pushsim_scenario::load::{source, validated};
use pushsim_scenario::{parse, sweep, Scenario};
use tokio::sync::watch;

use crate::cli::{CheckArgs, PkiArgs, ScenarioArgs, ToxiproxyArgs};
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

/// One run of a scenario (a sweep has several).
struct Variant {
    /// The swept value, when sweeping.
    label: Option<String>,
    scenario: Scenario,
}

/// The scenario's variants (one without a sweep), overrides applied, all validated before any
/// runs.
fn variants(args: &ScenarioArgs) -> Result<(Vec<Variant>, String, Option<String>), String> {
    let src = source(&args.scenario).map_err(|e| e.to_string())?;
    let base = parse(&src.text, &src.origin, &src.name).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let key = base.sweep.as_ref().map(|s| s.key.clone());
    if let (Some(k), Some(shard)) = (&key, args.shard) {
        return Err(format!(
            "{}: --shard {shard} with a sweep over {k}: run each value as its own sharded run",
            src.origin
        ));
    }
    match &base.sweep {
        None => out.push(Variant {
            label: None,
            scenario: base,
        }),
        Some(sw) => {
            if sw.values.is_empty() {
                return Err(format!(
                    "{}: sweep.values must list at least one value",
                    src.origin
                ));
            }
            for v in &sw.values {
                let sc = sweep::variant(&src.text, &src.origin, &src.name, &sw.key, v)
                    .map_err(|e| e.to_string())?;
                out.push(Variant {
                    label: Some(sweep::label(v)),
                    scenario: sc,
                });
            }
        }
    }
    for v in &mut out {
        let sc = &mut v.scenario;
        if let Some(n) = args.agents {
            sc.set_agent_count(n);
        }
        if let Some(s) = args.seed {
            sc.seed = s;
        }
        if let Some(d) = args.duration {
            sc.duration = d;
        }
        if let Some(b) = &args.broker {
            sc.service.broker = b.clone();
        }
        for (from, to) in [
            (&args.ca, &mut sc.service.ca),
            (&args.cert, &mut sc.service.cert),
            (&args.key, &mut sc.service.key),
        ] {
            if from.is_some() {
                to.clone_from(from);
            }
        }
        let origin = match &v.label {
            Some(l) => format!("{} ({} = {l})", src.origin, key.as_deref().unwrap_or("")),
            None => src.origin.clone(),
        };
        *sc = validated(sc.clone(), &origin).map_err(|e| e.to_string())?;
    }
    Ok((out, src.origin, key))
}

/// `pushsim scenario`: load, override, validate, run (every variant of a sweep), report;
/// returns the exit code.
pub fn scenario(args: ScenarioArgs) -> i32 {
    let (variants, origin, key) = match variants(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match run_all(variants, origin, key, &args) {
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

/// `pushsim check`: every scenario loaded and validated (a sweep's every value), nothing run;
/// returns the exit code.
pub fn check(args: CheckArgs) -> i32 {
    let mut code = 0;
    for name in args.scenarios {
        let a = ScenarioArgs {
            scenario: name,
            ..Default::default()
        };
        match variants(&a) {
            Ok((vs, origin, _)) => {
                for v in vs {
                    let sc = &v.scenario;
                    println!(
                        "ok  {origin}{}: {} agents in {} group(s), {}, {} SLO(s), broker {}",
                        v.label.map(|l| format!(" ({l})")).unwrap_or_default(),
                        sc.agent_count(),
                        sc.resolved_groups().len(),
                        sc.duration,
                        sc.slo.len(),
                        sc.service.broker.name()
                    );
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = 2;
            }
        }
    }
    code
}

/// `pushsim toxiproxy`: serves the Toxiproxy-compatible API until Ctrl-C; returns the exit code.
pub fn toxiproxy(args: ToxiproxyArgs) -> i32 {
    let run = || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            let addr = l.local_addr()?;
            println!("Toxiproxy-compatible API on http://{addr} (Ctrl-C stops)");
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            pushsim_netfault::standalone::serve(l, stop)
                .await
                .context("serving the API")
        })
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            3
        }
    }
}

/// `pushsim pki`: a CA, a server identity and one client identity in `dir`; returns the exit
/// code.
pub fn pki(args: PkiArgs) -> i32 {
    let run = || -> anyhow::Result<()> {
        let names: Vec<&str> = if args.names.is_empty() {
            vec!["localhost"]
        } else {
            args.names.iter().map(String::as_str).collect()
        };
        let ips = if args.ips.is_empty() {
            vec![
                std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::Ipv6Addr::LOCALHOST.into(),
            ]
        } else {
            args.ips.clone()
        };
        let ca = pushsim_pki::Ca::generate()?;
        let server = ca.issue_server(&names, &ips)?;
        let paths = pushsim_pki::files::write(&args.dir, &ca, &server)?;
        let client = ca.issue_client("pushsim-agents")?;
        let (cert, key) = pushsim_pki::files::write_identity(&args.dir, "client", &client)?;
        println!("CA       {}", paths.ca_cert.display());
        println!(
            "server   {} {} (for {})",
            paths.server_cert.display(),
            paths.server_key.display(),
            names.join(", ")
        );
        println!("client   {} {}", cert.display(), key.display());
        println!(
            "agents:  --ca {} --cert {} --key {}",
            paths.ca_cert.display(),
            cert.display(),
            key.display()
        );
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            3
        }
    }
}

/// Exit codes by precedence: an interrupted or broken run outranks a failed SLO.
fn worse(a: i32, b: i32) -> i32 {
    let rank = |c: i32| match c {
        130 => 4,
        3 => 3,
        2 => 2,
        1 => 1,
        _ => 0,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn run_all(
    variants: Vec<Variant>,
    origin: String,
    key: Option<String>,
    args: &ScenarioArgs,
) -> anyhow::Result<i32> {
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
        let name = variants.first().map(|v| v.scenario.name.clone()).unwrap_or_default();
        let base_dir = args.out.clone().unwrap_or_else(|| default_dir(Path::new("reports"), &name));
        let exe = std::env::current_exe().context("locating the pushsim binary")?;
        let total = variants.len();
        let mut code = 0;
        let mut done: Vec<(String, RunReport, PathBuf)> = Vec::new();
        for (k, v) in variants.into_iter().enumerate() {
            let dir = match &v.label {
                Some(l) => base_dir.join(format!("{}-{}", k + 1, sanitize(l))),
                None => base_dir.clone(),
            };
            if let (Some(l), Some(key)) = (&v.label, &key) {
                println!("== run {}/{total}: {key} = {l}", k + 1);
            }
            let bars = Arc::new(Bars::new());
            let opts = RunOptions { exe: exe.clone(), dir, sites: args.sites, observer: bars.clone(), interrupt: interrupt.clone(), fault_api: args.fault_api, shard: args.shard, start_at: args.start_at };
            let run_origin = match (&v.label, &key) {
                (Some(l), Some(key)) => format!("{origin} ({key} = {l})"),
                _ => origin.clone(),
            };
            let outcome = execute(v.scenario, run_origin, opts).await?;
            bars.finish();
            print!("{}", render::terminal(&outcome.report));
            println!("report: {} (report.json beside it)", outcome.dir.join("report.html").display());
            let this = if let Some(why) = &outcome.environment {
                eprintln!("error: the run was stopped: {why}");
                3
            } else if outcome.interrupted {
                130
            } else if outcome.report.passed() {
                0
            } else {
                1
            };
            code = worse(code, this);
            done.push((v.label.unwrap_or_default(), outcome.report, outcome.dir));
            if outcome.interrupted {
                break;
            }
        }
        if let Some(key) = key {
            let runs: Vec<(String, &RunReport)> = done.iter().map(|(l, r, _)| (l.clone(), r)).collect();
            println!("\nsweep over {key}");
            crate::reports::write_comparison(&key, &runs, 10.0, &base_dir.join("compare.html"))?;
            let index = serde_json::json!({
                "key": key,
                "runs": done.iter().map(|(l, r, d)| serde_json::json!({
                    "value": l, "dir": d.display().to_string(), "passed": r.passed(),
                })).collect::<Vec<_>>(),
            });
            let path = base_dir.join("sweep.json");
            std::fs::write(&path, serde_json::to_string_pretty(&index)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            println!("sweep: {}", path.display());
        }
        Ok(code)
    })
}

/// A value as a folder name.
fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
