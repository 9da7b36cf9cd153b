//! `pushsim report render` and `pushsim report compare`: pages from report.json files alone;
//! `pushsim report merge`: the report of a sharded run from its shards' folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use pushsim_metrics::Histo;
use pushsim_report::merge::ShardRun;
use pushsim_report::{compare, compare_html, hlog, render, RunReport};

use crate::cli::{CompareArgs, MergeArgs, RenderArgs};

/// `report render`: report.html from a run's report.json; returns the exit code (2: the input
/// is not a report this pushsim reads, 3: the page cannot be written).
pub fn render(args: RenderArgs) -> i32 {
    let report = match render::read_json(&args.run) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let out = args.out.unwrap_or_else(|| beside(&args.run, "report.html"));
    match render::write_html(&report, &out) {
        Ok(()) => {
            println!("report: {}", out.display());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

/// `path` itself when it is a folder, else its folder; joined with `name`.
fn beside(path: &Path, name: &str) -> PathBuf {
    if path.is_dir() {
        path.join(name)
    } else {
        path.parent().unwrap_or(Path::new(".")).join(name)
    }
}

/// A run's label: its folder's name (a report.json's parent folder), made unique by position.
fn labels(paths: &[PathBuf]) -> Vec<String> {
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            let dir = if p.is_dir() {
                p.as_path()
            } else {
                p.parent().unwrap_or(p)
            };
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string())
        })
        .collect();
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if names.iter().filter(|m| *m == n).count() > 1 {
                format!("{}: {n}", i + 1)
            } else {
                n.clone()
            }
        })
        .collect()
}

/// Writes the comparison page of `runs` to `out` and prints the terminal table; returns the
/// number of regressions.
pub fn write_comparison(
    title: &str,
    runs: &[(String, &RunReport)],
    threshold: f64,
    out: &Path,
) -> anyhow::Result<usize> {
    use anyhow::Context;
    println!("{}", compare::table(title, runs, threshold));
    let page = compare_html::page(runs, threshold)?;
    std::fs::write(out, page).with_context(|| format!("writing {}", out.display()))?;
    println!("comparison: {}", out.display());
    let reports: Vec<&RunReport> = runs.iter().map(|(_, r)| *r).collect();
    Ok(compare::regressions(&compare::rows(&reports), threshold))
}

/// `report compare`: the runs side by side; exit 0 with no regression, 1 with one, 2 when an
/// input is not a report this pushsim reads, 3 when the page cannot be written.
pub fn compare(args: CompareArgs) -> i32 {
    let mut reports = Vec::new();
    for p in &args.runs {
        match render::read_json(p) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
    let runs: Vec<(String, &RunReport)> = labels(&args.runs).into_iter().zip(&reports).collect();
    match write_comparison("run", &runs, args.threshold, &args.out) {
        Ok(0) => 0,
        Ok(n) => {
            println!("{n} regressions against {}", runs[0].0);
            1
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            3
        }
    }
}

/// One shard's folder: its report.json and histograms.hlog.
fn read_shard(dir: &Path) -> anyhow::Result<ShardRun> {
    let report = render::read_json(dir)?;
    let histograms = hlog::read(&dir.join("histograms.hlog"))?;
    Ok(ShardRun {
        source: dir.display().to_string(),
        report,
        histograms,
    })
}

/// `report merge`: exit 0 when the merged run holds every SLO, 1 when one fails, 2 when the
/// inputs are not every shard of one run, 3 when a shard stopped early or the report cannot be
/// written.
pub fn merge(args: MergeArgs) -> i32 {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if let Some(d) = args.shards.iter().find(|d| same(d, &args.out)) {
        eprintln!(
            "error: --out {} is one of the shards' folders: the merge would overwrite that shard's report; give another folder",
            d.display()
        );
        return 2;
    }
    let inputs: anyhow::Result<Vec<ShardRun>> = args.shards.iter().map(|d| read_shard(d)).collect();
    let shards = match inputs {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    // The scenario's SLOs, from the scenario text the shards carry, and the extra ones.
    let slos = match shards.first().map(|s| &s.report) {
        Some(r) => {
            match pushsim_scenario::parse(&r.scenario.text, &r.scenario.origin, &r.scenario.name) {
                Ok(sc) => {
                    let mut v = sc.slo;
                    v.extend(args.slos.iter().cloned());
                    let groups: Vec<String> = r.groups.keys().cloned().collect();
                    if let Err(e) = pushsim_report::slo::check_paths(&v, &groups) {
                        eprintln!("error: {e}");
                        return 2;
                    }
                    v
                }
                Err(e) => {
                    eprintln!("error: the scenario in the shards' reports: {e}");
                    return 2;
                }
            }
        }
        None => Vec::new(),
    };
    let merged = match pushsim_report::merge::merge(shards, &slos) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let (sums, merged) = (merged.histograms, merged.report);
    if let Err(e) = write_merged(&merged, &sums, &args.out) {
        eprintln!("error: {e:#}");
        return 3;
    }
    print!("{}", render::terminal(&merged));
    println!(
        "report: {} (report.json beside it)",
        args.out.join("report.html").display()
    );
    if let Some(why) = &merged.stopped_early {
        eprintln!("error: a shard stopped early: {why}");
        3
    } else if merged.passed() {
        0
    } else {
        1
    }
}

fn write_merged(r: &RunReport, sums: &BTreeMap<String, Histo>, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    render::write_json(r, &out.join("report.json"))?;
    render::write_html(r, &out.join("report.html"))?;
    let start_ms = r.shards.iter().map(|s| s.t0_unix_ms).min().unwrap_or(0);
    let tagged: Vec<(String, &Histo)> = sums.iter().map(|(t, h)| (t.clone(), h)).collect();
    hlog::write(
        &out.join("histograms.hlog"),
        SystemTime::UNIX_EPOCH + Duration::from_millis(start_ms),
        Duration::from_secs_f64(r.duration_s.max(0.0)),
        &tagged,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_folder_names_made_unique() {
        let l = labels(&[
            PathBuf::from("/r/a-1/report.json"),
            PathBuf::from("/s/a-1/report.json"),
            PathBuf::from("/r/b/report.json"),
        ]);
        assert_eq!(l, ["1: a-1", "2: a-1", "b"]);
    }
}
