//! Evaluation limits and the `fleetward.toml` file that sets them; the sections other than
//! `[limits]` belong to the domains that declare them.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The name of the optional settings file at the root of a policy directory.
pub const CONFIG_FILE: &str = "fleetward.toml";

/// Limits that bound every policy evaluation. Defaults are safe for production; a policy
/// directory may change them in `fleetward.toml` under `[limits]`, and the CLI may override
/// single values with `--limit KEY=VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Rhai operations per evaluation.
    pub max_operations: u64,
    /// Nested function calls.
    pub max_call_depth: usize,
    /// Expression nesting at the top level of a script.
    pub max_expr_depth: usize,
    /// Expression nesting inside functions.
    pub max_function_expr_depth: usize,
    /// Bytes in one string.
    pub max_string_size: usize,
    /// Elements in one array.
    pub max_array_size: usize,
    /// Entries in one object map.
    pub max_map_size: usize,
    /// Modules one evaluation may import.
    pub max_modules: usize,
    /// Wall-clock deadline for one evaluation, in milliseconds.
    pub deadline_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 2_000_000,
            max_call_depth: 48,
            max_expr_depth: 64,
            max_function_expr_depth: 48,
            max_string_size: 1 << 20,
            max_array_size: 200_000,
            max_map_size: 50_000,
            max_modules: 64,
            deadline_ms: 1_000,
        }
    }
}

impl Limits {
    /// The wall-clock deadline as a `Duration`.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// Sets one limit by name, as given on the command line (`max_operations=500000`).
    pub fn set(&mut self, assignment: &str) -> Result<(), Invalid> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("limit `{assignment}` must look like `name=value`"))?;
        let (key, value) = (key.trim(), value.trim().replace('_', ""));
        let n: u64 = value
            .parse()
            .map_err(|_| format!("limit `{key}` takes a whole number, got `{value}`"))?;
        let u = usize::try_from(n).map_err(|_| format!("limit `{key}` is too large"))?;
        match key {
            "max_operations" => self.max_operations = n,
            "max_call_depth" => self.max_call_depth = u,
            "max_expr_depth" => self.max_expr_depth = u,
            "max_function_expr_depth" => self.max_function_expr_depth = u,
            "max_string_size" => self.max_string_size = u,
            "max_array_size" => self.max_array_size = u,
            "max_map_size" => self.max_map_size = u,
            "max_modules" => self.max_modules = u,
            "deadline_ms" => self.deadline_ms = n,
            _ => return Err(format!("unknown limit `{key}`").into()),
        }
        Ok(())
    }
}

/// A section of `fleetward.toml` beyond `[limits]`, declared by the domain that reads it
/// (`[inventory]`, `[gates]`, `[cache]`) and assembled into a registry one place above the
/// runtime.
#[derive(Clone, Copy)]
pub struct SectionSpec {
    pub name: &'static str,
    /// Reads the section out of the whole file's text (absent: its defaults); errors carry a
    /// 1-based line and column.
    pub parse: fn(&str) -> Result<Section, ConfigError>,
}

impl std::fmt::Debug for SectionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectionSpec")
            .field("name", &self.name)
            .finish()
    }
}

/// What is wrong in `fleetward.toml`, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct ConfigError {
    pub message: String,
    pub line: usize,
    pub col: usize,
}

/// A parsed section, typed by its domain.
pub type Section = std::sync::Arc<dyn std::any::Any + Send + Sync>;

/// The parsed `fleetward.toml`: the limits, and each registered section.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub limits: Limits,
    pub sections: std::collections::BTreeMap<&'static str, Section>,
}

/// `[limits]` alone; other keys are the sections'.
#[derive(Deserialize)]
struct LimitsOnly {
    #[serde(default)]
    limits: Limits,
}

/// Deserializes one section `T` named by the wrapper's field out of the file's text, keeping
/// the spans of errors inside it.
pub fn section_of<W: serde::de::DeserializeOwned>(text: &str) -> Result<W, ConfigError> {
    toml::from_str::<W>(text).map_err(|e| ConfigError::at(text, &e))
}

impl ConfigError {
    /// A TOML error of `text`, at its span (or 1:1).
    fn at(text: &str, e: &toml::de::Error) -> ConfigError {
        let (line, col) = e
            .span()
            .map(|s| crate::error::line_col(text, s.start))
            .unwrap_or((1, 1));
        ConfigError {
            message: e.message().to_string(),
            line,
            col,
        }
    }
}

impl Settings {
    /// Parses `fleetward.toml` text: `[limits]` and the `sections`; any other top-level key is
    /// an error. Errors carry a 1-based line and column.
    pub fn parse(text: &str, sections: &[SectionSpec]) -> Result<Settings, ConfigError> {
        let limits = section_of::<LimitsOnly>(text)?.limits;
        let table = toml::de::DeTable::parse(text).map_err(|e| ConfigError::at(text, &e))?;
        for key in table.get_ref().keys() {
            let name: &str = key.get_ref();
            if name != "limits" && !sections.iter().any(|s| s.name == name) {
                let (line, col) = crate::error::line_col(text, key.span().start);
                let known: Vec<String> = std::iter::once("limits")
                    .chain(sections.iter().map(|s| s.name))
                    .map(|n| format!("`{n}`"))
                    .collect();
                return Err(ConfigError {
                    message: format!(
                        "unknown field `{name}`, expected one of {}",
                        known.join(", ")
                    ),
                    line,
                    col,
                });
            }
        }
        let mut out = Settings {
            limits,
            sections: Default::default(),
        };
        for s in sections {
            out.sections.insert(s.name, (s.parse)(text)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_settings() {
        let s = Settings::parse("[limits]\nmax_operations = 10\n", &[]).unwrap();
        assert_eq!(s.limits.max_operations, 10);
        assert_eq!(s.limits.max_call_depth, Limits::default().max_call_depth);
    }

    #[test]
    fn rejects_unknown_keys_with_location() {
        let ConfigError {
            message: msg,
            line,
            col,
        } = Settings::parse("[limits]\nmax_opz = 10\n", &[]).unwrap_err();
        assert!(msg.contains("max_opz"), "{msg}");
        assert_eq!((line, col), (2, 1));
    }

    #[test]
    fn rejects_unknown_sections_with_location() {
        let ConfigError {
            message: msg,
            line,
            col,
        } = Settings::parse("[limits]\n\n[gatez]\nalpha = 1\n", &[]).unwrap_err();
        assert!(msg.contains("unknown field `gatez`"), "{msg}");
        assert_eq!((line, col), (3, 2));
    }

    #[test]
    fn cli_overrides() {
        let mut l = Limits::default();
        l.set("deadline_ms=250").unwrap();
        assert_eq!(l.deadline_ms, 250);
        assert!(l.set("nope=1").is_err());
        assert!(l.set("deadline_ms=soon").is_err());
    }
}
