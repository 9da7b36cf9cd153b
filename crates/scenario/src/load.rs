//! Loading a scenario from a built-in name or a file, with errors that say where and why.

use std::path::{Path, PathBuf};

use crate::builtin;
use crate::model::Scenario;
use crate::validate::Invalid;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Neither a built-in nor an existing file.
    #[error("unknown scenario {name:?}: not a built-in and no such file; built-ins: {}", valid.join(", "))]
    Unknown {
        /// What was asked for.
        name: String,
        /// The built-in names.
        valid: Vec<&'static str>,
    },
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed or does not fit the model.
    #[error("{origin}:{line}:{col}: {message}")]
    Parse {
        /// File path or `builtin:<name>`.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Values out of range.
    #[error("{origin}: invalid scenario:\n  {}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid {
        /// File path or `builtin:<name>`.
        origin: String,
        /// Every problem found.
        errors: Vec<Invalid>,
    },
}

/// A scenario's text and where it came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// The TOML.
    pub text: String,
    /// `builtin:<name>` or the file path.
    pub origin: String,
    /// The built-in's name or the file stem.
    pub name: String,
}

/// Finds a built-in by name, or reads a file by path.
pub fn source(name_or_path: &str) -> Result<Source, ScenarioError> {
    if let Some(src) = builtin::source(name_or_path) {
        return Ok(Source {
            text: src.to_string(),
            origin: format!("builtin:{name_or_path}"),
            name: name_or_path.to_string(),
        });
    }
    let path = Path::new(name_or_path);
    if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("scenario")
            .to_string();
        return Ok(Source {
            text,
            origin: path.display().to_string(),
            name,
        });
    }
    Err(ScenarioError::Unknown {
        name: name_or_path.to_string(),
        valid: builtin::names(),
    })
}

/// Loads a built-in by name, or a file by path; does not validate (overrides come first).
pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    let s = source(name_or_path)?;
    parse(&s.text, &s.origin, &s.name)
}

/// Parses scenario TOML; `origin` names it in errors.
pub fn parse(src: &str, origin: &str, name: &str) -> Result<Scenario, ScenarioError> {
    let mut sc: Scenario = toml::from_str(src).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(src, s.start)).unwrap_or((1, 1));
        ScenarioError::Parse {
            origin: origin.to_string(),
            line,
            col,
            message: e.message().trim().to_string(),
        }
    })?;
    sc.name = name.to_string();
    Ok(sc)
}

/// Validates, mapping problems to a [`ScenarioError`] naming `origin`.
pub fn validated(sc: Scenario, origin: &str) -> Result<Scenario, ScenarioError> {
    sc.validate().map_err(|errors| ScenarioError::Invalid {
        origin: origin.to_string(),
        errors,
    })?;
    Ok(sc)
}

fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "description = \"d\"\nduration = \"10s\"\n[agents]\ncount = 5\n";

    #[test]
    fn minimal_gets_defaults() {
        let sc = parse(MINIMAL, "t.toml", "t").unwrap();
        assert_eq!(sc.name, "t");
        assert_eq!(sc.seed, 1);
        assert_eq!(sc.agent_count(), 5);
        assert_eq!(sc.agents.keep_alive.get().as_secs(), 30);
        assert!(sc.validate().is_ok());
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd\nef", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }

    #[test]
    fn every_builtin_parses_validates_and_round_trips() {
        for (name, src) in builtin::BUILTINS {
            let sc = parse(src, name, name).unwrap();
            sc.validate().unwrap();
            let back = parse(&sc.to_toml(), name, name).unwrap();
            assert_eq!(back, sc, "{name} does not round-trip through TOML");
        }
    }
}
