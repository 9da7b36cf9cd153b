//! The scenarios shipped with pushsim (the files in `scenarios/`, compiled in).

/// `(name, TOML source)` of every built-in scenario.
pub const BUILTINS: &[(&str, &str)] = &[
    (
        "wakeup-latency",
        include_str!("../../../scenarios/wakeup-latency.toml"),
    ),
    (
        "reconnect-storm",
        include_str!("../../../scenarios/reconnect-storm.toml"),
    ),
    ("no-push", include_str!("../../../scenarios/no-push.toml")),
    (
        "idle-timeout",
        include_str!("../../../scenarios/idle-timeout.toml"),
    ),
    (
        "port-fallback",
        include_str!("../../../scenarios/port-fallback.toml"),
    ),
    (
        "proxy-fallback",
        include_str!("../../../scenarios/proxy-fallback.toml"),
    ),
    (
        "proxy-limit",
        include_str!("../../../scenarios/proxy-limit.toml"),
    ),
];

/// The source of a built-in scenario.
pub fn source(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// Names of every built-in, for error messages.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
