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

const GROUPS: &str = r#"
description = "d"
duration = "60s"
[agents]
keep_alive = "30s"
backoff = { policy = "exponential", base = "1s", cap = "20s" }
[[group]]
name = "short"
agents = 300
keep_alive = "15s"
[[group]]
name = "long"
agents = 100
endpoints = ["fallback"]
primary_retry = "off"
[[at]]
time = "20s"
do = "service.restart"
down = "5s"
"#;

#[test]
fn groups_resolve_over_the_defaults_and_scale() {
    let mut sc = parse(GROUPS, "g.toml", "g").unwrap();
    sc.validate().unwrap();
    let g = sc.resolved_groups();
    assert_eq!(g.len(), 2);
    assert_eq!(
        (
            g[0].name.as_str(),
            g[0].count,
            g[0].profile.keep_alive.get().as_secs()
        ),
        ("short", 300, 15)
    );
    assert_eq!(
        g[1].profile.keep_alive.get().as_secs(),
        30,
        "default applies"
    );
    assert_eq!(g[1].profile.backoff.cap.get().as_secs(), 20);
    assert_eq!(sc.agent_count(), 400);
    sc.set_agent_count(2_000);
    assert_eq!(
        sc.groups.iter().map(|g| g.agents).collect::<Vec<_>>(),
        vec![1_500, 500]
    );
    sc.set_agent_count(3);
    assert_eq!(sc.agent_count(), 3);
    assert!(sc.groups.iter().all(|g| g.agents >= 1));
    // The resolved scenario round-trips through TOML.
    assert_eq!(parse(&sc.to_toml(), "g", "g").unwrap(), sc);
}

#[test]
fn unknown_backoff_policy_lists_the_valid_ones() {
    let e = parse_err(&GROUPS.replace("\"exponential\"", "\"linear\""));
    assert!(e.contains("unknown variant `linear`"), "{e}");
    assert!(
        e.contains("`full-jitter`") && e.contains("`decorrelated-jitter`"),
        "{e}"
    );
}

#[test]
fn agent_settings_out_of_range_are_refused() {
    let src = GROUPS
        .replace(
            "base = \"1s\", cap = \"20s\"",
            "base = \"40s\", cap = \"20s\"",
        )
        .replace("agents = 100", "agents = 0")
        .replace("name = \"long\"", "name = \"short\"");
    let e = validated(parse(&src, "g.toml", "g").unwrap(), "g.toml")
        .unwrap_err()
        .to_string();
    for needle in [
        "group[0].backoff.base = 40s: must not exceed backoff.cap (20s)",
        "group[1].agents = 0: must be at least 1",
        "group[1].name = \"short\": is used by another group",
    ] {
        assert!(e.contains(needle), "missing {needle:?} in:\n{e}");
    }
}

#[test]
fn timeline_must_make_sense() {
    let src = format!("{GROUPS}[[at]]\ntime = \"30s\"\ndo = \"service.start\"\n[[at]]\ntime = \"40s\"\ndo = \"service.kill\"\n[[at]]\ntime = \"45s\"\ndo = \"service.stop\"\n");
    let e = validated(parse(&src, "g.toml", "g").unwrap(), "g.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("at[1].do = service.start: the service is already running then"),
        "{e}"
    );
    assert!(
        e.contains("at[3].do = service.stop: the service is down then; start it first"),
        "{e}"
    );
    let e = parse_err(&GROUPS.replace("service.restart", "service.reboot"));
    assert!(
        e.contains("unknown variant `service.reboot`") && e.contains("`service.kill`"),
        "{e}"
    );
}

#[test]
fn count_and_groups_do_not_mix() {
    let src = GROUPS.replace(
        "keep_alive = \"30s\"\nbackoff",
        "count = 5\nkeep_alive = \"30s\"\nbackoff",
    );
    let e = validated(parse(&src, "g.toml", "g").unwrap(), "g.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("agents.count = 5: remove it"), "{e}");
}

#[test]
fn broker_is_one_of_three_and_a_url_is_mqtts_host_port() {
    let with = |b: &str| format!("{OK}[service]\nbroker = \"{b}\"\n");
    for ok in [
        "rumqttd",
        "mosquitto",
        "mqtts://broker.test:8883",
        "mqtts://[::1]:1",
    ] {
        parse(&with(ok), "b.toml", "b").unwrap();
    }
    let e = parse_err(&with("emqx"));
    assert!(e.starts_with("bad.toml:6:10: broker \"emqx\""), "{e}");
    assert!(
        e.contains("\"rumqttd\", \"mosquitto\" or \"mqtts://host:port\""),
        "{e}"
    );
    let e = parse_err(&with("mqtt://localhost:1883"));
    assert!(e.contains("only TLS brokers"), "{e}");
    let e = parse_err(&with("mqtts://localhost:8883/topic"));
    assert!(e.contains("no path"), "{e}");
    // The URL round-trips (reports and sweeps write the scenario back).
    let sc = parse(&with("mqtts://[::1]:9"), "b.toml", "b").unwrap();
    assert!(sc.to_toml().contains("broker = \"mqtts://[::1]:9\""));
}

#[test]
fn external_broker_needs_its_ca_and_cannot_be_killed() {
    let src = format!(
        "{OK}[service]\nbroker = \"mqtts://127.0.0.1:8883\"\ncert = \"c.pem\"\n\
         [[at]]\ntime = \"5s\"\ndo = \"service.kill\"\n"
    );
    let e = validated(parse(&src, "x.toml", "x").unwrap(), "x.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("service.ca"), "{e}");
    assert!(
        e.contains("service.key") && e.contains("go together"),
        "{e}"
    );
    assert!(e.contains("at[0].do") && e.contains("service.kill"), "{e}");
    assert!(e.contains("does not run the external broker"), "{e}");
    // The run's own PKI serves managed brokers: TLS files there are a mistake.
    let src = format!("{OK}[service]\nbroker = \"mosquitto\"\nca = \"ca.pem\"\n");
    let e = validated(parse(&src, "m.toml", "m").unwrap(), "m.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("service.ca") && e.contains("only goes with an external broker"),
        "{e}"
    );
    // rumqttd's listeners and the service's ports belong to the brokers pushsim runs.
    let src = format!(
        "{OK}[service]\nbroker = \"mqtts://127.0.0.1:8883\"\nca = \"ca.pem\"\nprimary_port = 8883\nbroker_listeners = 4\n"
    );
    let e = validated(parse(&src, "p.toml", "p").unwrap(), "p.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("service.primary_port") && e.contains("in its URL"),
        "{e}"
    );
    assert!(
        e.contains("service.broker_listeners") && e.contains("only goes with rumqttd"),
        "{e}"
    );
}
