//! `pushsim report render` and `pushsim report compare`: pages from report.json files alone.

use std::path::{Path, PathBuf};

use pushsim_report::{compare, compare_html, render, RunReport};

use crate::cli::{CompareArgs, RenderArgs};

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
