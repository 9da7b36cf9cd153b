//! `proxy-tunnels.csv`: every request the embedded proxies saw, one row each, in the order they
//! opened: site, group, target, status, bytes each way, open and close time (s from the run
//! start), why it closed, and the rule that decided it.

use std::path::Path;

use pushsim_netfault::connect::TunnelRecord;

/// One row, from a record of site `site`; groups and rules by name.
fn row(
    site: usize,
    r: &TunnelRecord,
    t0_ns: u64,
    groups: &[String],
    rules: &[String],
) -> [String; 10] {
    let secs = |ns: u64| format!("{:.6}", ns.saturating_sub(t0_ns) as f64 / 1e9);
    let name = |v: &[String], i: usize| v.get(i).cloned().unwrap_or_else(|| i.to_string());
    [
        site.to_string(),
        name(groups, usize::from(r.group)),
        r.target.clone(),
        r.status.to_string(),
        r.bytes[0].to_string(),
        r.bytes[1].to_string(),
        secs(r.open_ns),
        secs(r.close_ns),
        r.closed.clone(),
        r.rule
            .map(|id| name(rules, id as usize))
            .unwrap_or_default(),
    ]
}

/// Writes the records of every site (`(site, record)`) to `path`, sorted by open time.
pub(crate) fn write(
    path: &Path,
    mut records: Vec<(usize, TunnelRecord)>,
    t0_ns: u64,
    groups: &[String],
    rules: &[String],
) -> Result<(), csv::Error> {
    records.sort_by_key(|(site, r)| (r.open_ns, *site));
    let mut w = csv::Writer::from_path(path)?;
    w.write_record([
        "site",
        "group",
        "target",
        "status",
        "bytes_up",
        "bytes_down",
        "open_s",
        "close_s",
        "closed",
        "rule",
    ])?;
    for (site, r) in &records {
        w.write_record(row(*site, r, t0_ns, groups, rules))?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_groups_and_rules_and_time_from_the_start() {
        let r = TunnelRecord {
            group: 1,
            target: "localhost:4242".into(),
            status: 503,
            bytes: [0, 0],
            open_ns: 1_500_000_000,
            close_ns: 2_000_000_000,
            closed: "answered".into(),
            rule: Some(0),
        };
        let groups = ["a".to_string(), "b,c".to_string()];
        let row = row(2, &r, 1_000_000_000, &groups, &["max-open".into()]);
        assert_eq!(row[1], "b,c");
        assert_eq!((row[6].as_str(), row[7].as_str()), ("0.500000", "1.000000"));
        assert_eq!(row[9], "max-open");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        write(
            &p,
            vec![(2, r)],
            1_000_000_000,
            &groups,
            &["max-open".into()],
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(
            text,
            "site,group,target,status,bytes_up,bytes_down,open_s,close_s,closed,rule\n2,\"b,c\",localhost:4242,503,0,0,0.500000,1.000000,answered,max-open\n"
        );
    }
}
