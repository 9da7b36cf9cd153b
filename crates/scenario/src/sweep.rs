//! Sweeps: the same scenario once per value of one key. A variant is the scenario's TOML with
//! that key set and the `[sweep]` table removed, parsed and validated like any scenario.

use crate::load::{parse, ScenarioError};
use crate::model::Scenario;

/// The variant of `src` with `key` (dotted, e.g. `agents.backoff.policy`) set to `value`.
pub fn variant(
    src: &str,
    origin: &str,
    name: &str,
    key: &str,
    value: &toml::Value,
) -> Result<Scenario, ScenarioError> {
    let bad = |message: String| ScenarioError::Parse {
        origin: origin.to_string(),
        line: 1,
        col: 1,
        message,
    };
    let mut doc: toml::Table = toml::from_str(src).map_err(|e| bad(e.message().to_string()))?;
    doc.remove("sweep");
    let parts: Vec<&str> = key.split('.').collect();
    let (last, path) = parts
        .split_last()
        .ok_or_else(|| bad(format!("sweep.key {key:?} is empty")))?;
    let mut table = &mut doc;
    for p in path {
        let entry = table
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| bad(format!("sweep.key {key:?}: {p} is not a table; sweeps set keys of tables, not of [[group]] entries")))?;
    }
    table.insert(last.to_string(), value.clone());
    let text = toml::to_string(&doc).map_err(|e| bad(format!("cannot write the variant: {e}")))?;
    let label = format!("{origin} with {key} = {value}");
    parse(&text, &label, name)
}

/// A value as a short label for folders and tables (`full-jitter`, `false`, `30s`).
pub fn label(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "description = \"d\"\nduration = \"10s\"\n[agents]\ncount = 5\n[sweep]\nkey = \"agents.backoff.policy\"\nvalues = [\"none\", \"full-jitter\"]\n";

    #[test]
    fn sets_nested_keys_and_drops_the_sweep() {
        let v = variant(
            SRC,
            "s.toml",
            "s",
            "agents.backoff.policy",
            &toml::Value::String("none".into()),
        )
        .unwrap();
        assert_eq!(v.agents.backoff.policy, crate::BackoffPolicy::None);
        assert!(v.sweep.is_none());
        assert_eq!(v.name, "s");
        let v = variant(
            SRC,
            "s.toml",
            "s",
            "service.reachable",
            &toml::Value::Boolean(false),
        )
        .unwrap();
        assert!(!v.service.reachable);
    }

    #[test]
    fn a_bad_value_names_the_variant() {
        let e = variant(
            SRC,
            "s.toml",
            "s",
            "agents.backoff.policy",
            &toml::Value::String("linear".into()),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("s.toml with agents.backoff.policy = \"linear\"")
                && msg.contains("unknown variant `linear`"),
            "{msg}"
        );
        let e = variant(
            SRC,
            "s.toml",
            "s",
            "description.x",
            &toml::Value::Integer(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("description is not a table"), "{e}");
    }

    #[test]
    fn labels() {
        assert_eq!(label(&toml::Value::String("none".into())), "none");
        assert_eq!(label(&toml::Value::Boolean(false)), "false");
    }
}
