//! Scenario errors as a user meets them: each names where and what is allowed.

use pushsim_scenario::{load, load::validated, parse, ScenarioError};

const OK: &str = "description = \"d\"\nduration = \"10s\"\n[agents]\ncount = 5\n";

fn parse_err(src: &str) -> String {
    parse(src, "bad.toml", "bad").unwrap_err().to_string()
}

#[test]
fn unknown_field_names_line_column_and_valid_fields() {
    let e = parse_err(&format!("{OK}kep_alive = \"5s\"\n"));
    assert!(
        e.starts_with("bad.toml:5:1: unknown field `kep_alive`"),
        "{e}"
    );
    assert!(e.contains("`keep_alive`"), "lists valid fields: {e}");
}

#[test]
fn wrong_type_is_located() {
    let e = parse_err("description = \"d\"\nduration = \"10s\"\n[agents]\ncount = \"many\"\n");
    assert!(
        e.starts_with("bad.toml:4:9: invalid type: string \"many\", expected u32"),
        "{e}"
    );
}

#[test]
fn bad_duration_says_how_to_write_one() {
    let e = parse_err("description = \"d\"\nduration = \"ten seconds\"\n[agents]\ncount = 5\n");
    assert!(
        e.starts_with("bad.toml:2:12: invalid duration \"ten seconds\""),
        "{e}"
    );
    assert!(e.contains("\"30s\""), "{e}");
}

#[test]
fn bad_slo_is_refused_at_parse() {
    let e = parse_err(&format!("slo = [\"wakeups.lost is zero\"]\n{OK}"));
    assert!(
        e.starts_with("bad.toml:1:7: invalid SLO \"wakeups.lost is zero\""),
        "{e}"
    );
}

#[test]
fn unknown_name_lists_builtins() {
    let e = load("no-such-scenario").unwrap_err();
    assert!(matches!(e, ScenarioError::Unknown { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("\"no-such-scenario\"") && msg.contains("wakeup-latency"),
        "{msg}"
    );
}

#[test]
fn out_of_range_values_are_all_reported() {
    let src = "description = \"d\"\nduration = \"10s\"\n[agents]\ncount = 0\nramp = \"0/s\"\nkeep_alive = \"0s\"\n[wakeups]\nbroadcast = [\"20s\"]\n";
    let sc = parse(src, "bad.toml", "bad").unwrap();
    let e = validated(sc, "bad.toml").unwrap_err().to_string();
    for needle in [
        "bad.toml: invalid scenario",
        "agents.count = 0: must be 1 to 1000000",
        "agents.ramp = 0/s: must be more than 0/s",
        "agents.keep_alive = 0s: must be whole seconds from 1s to 65535s",
        "wakeups.broadcast[0] = 20s: must be before the end of the run (duration = 10s)",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn missing_file_is_unknown_and_unreadable_file_is_io() {
    let dir = tempfile::tempdir().unwrap();
    let e = load(dir.path().join("nope.toml").to_str().unwrap()).unwrap_err();
    assert!(matches!(e, ScenarioError::Unknown { .. }), "{e}");
    let f = dir.path().join("s.toml");
    std::fs::write(&f, OK).unwrap();
    let sc = load(f.to_str().unwrap()).unwrap();
    assert_eq!(sc.name, "s");
}
