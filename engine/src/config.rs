//! Evaluation limits, inventory field mapping, and the `fleetward.toml` file that sets them.

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
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
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
            _ => return Err(format!("unknown limit `{key}`")),
        }
        Ok(())
    }
}

/// The parsed `fleetward.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub limits: Limits,
    /// Which inventory variables hold which host fields.
    pub inventory: crate::inventory::FieldMapSpec,
    /// Sample-size floors, significance and correction for gates.
    pub gates: crate::gate::GateSettings,
    /// How `fleetward cache` reaches the cache nodes.
    pub cache: CacheSettings,
}

/// `[cache]`: the ACL user for cache nodes and the environment variable holding its password
/// (the password itself never lives in a policy directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    pub user: Option<String>,
    pub password_env: String,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            user: None,
            password_env: "FLEETWARD_REDIS_PASSWORD".into(),
        }
    }
}

impl Settings {
    /// Parses `fleetward.toml` text. The error carries a 1-based line and column.
    pub fn parse(text: &str) -> Result<Settings, (String, usize, usize)> {
        toml::from_str::<Settings>(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| crate::error::line_col(text, s.start))
                .unwrap_or((1, 1));
            (e.message().to_string(), line, col)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_settings() {
        let s = Settings::parse("[limits]\nmax_operations = 10\n").unwrap();
        assert_eq!(s.limits.max_operations, 10);
        assert_eq!(s.limits.max_call_depth, Limits::default().max_call_depth);
    }

    #[test]
    fn rejects_unknown_keys_with_location() {
        let (msg, line, col) = Settings::parse("[limits]\nmax_opz = 10\n").unwrap_err();
        assert!(msg.contains("max_opz"), "{msg}");
        assert_eq!((line, col), (2, 1));
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
