//! Fleet inventories: fleetward's own TOML/JSON/YAML, CSV, and Ansible INI/YAML (including
//! `ansible-inventory --list` JSON), read into typed [`Host`]s. Every error names `file:line`.
//!
//! Reading happens in two steps: a format reader produces [`RawHost`]s (a name, the line it
//! was declared on, its variables and groups); the [`FieldMap`] then turns variables into host
//! fields, so sites whose Ansible vars have other names need no conversion.

use crate::error::Invalid;
mod ansible;
mod csv_format;
mod fields;
mod native;
mod source;
mod tree;

pub use fields::{Field, FieldMap, FieldMapSpec, FieldSource, KernelCheck};
pub use source::Source;

use crate::model::Host;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

/// One problem in an inventory, at a line when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn at(line: usize, message: impl Into<String>) -> Self {
        Problem {
            line: Some(line),
            message: message.into(),
        }
    }
}

/// Everything wrong with an inventory file. Nothing is loaded when there is any problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.render())]
pub struct InventoryError {
    pub file: String,
    pub problems: Vec<Problem>,
}

/// How many problems an error message lists before summarising the rest.
const SHOWN_PROBLEMS: usize = 20;

impl InventoryError {
    fn one(file: &str, problem: Problem) -> Self {
        InventoryError {
            file: file.to_string(),
            problems: vec![problem],
        }
    }

    /// One `file:line: message` line per problem.
    pub fn render(&self) -> String {
        let mut lines: Vec<String> = self
            .problems
            .iter()
            .take(SHOWN_PROBLEMS)
            .map(|p| match p.line {
                Some(l) => format!("{}:{l}: {}", self.file, p.message),
                None => format!("{}: {}", self.file, p.message),
            })
            .collect();
        if self.problems.len() > SHOWN_PROBLEMS {
            lines.push(format!(
                "... and {} more problems in `{}`",
                self.problems.len() - SHOWN_PROBLEMS,
                self.file
            ));
        }
        lines.join("\n")
    }
}

/// The inventory formats fleetward reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// fleetward's own format, in TOML, JSON or YAML: optional `defaults` and a `hosts` list.
    Native,
    /// One row per host, with a header row.
    Csv,
    /// Ansible's INI inventory.
    AnsibleIni,
    /// Ansible's YAML inventory, or the JSON of `ansible-inventory --list`.
    AnsibleYaml,
}

impl Format {
    /// The name used in output: `native`, `csv`, `ansible-ini`, `ansible-yaml`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Csv => "csv",
            Format::AnsibleIni => "ansible-ini",
            Format::AnsibleYaml => "ansible-yaml",
        }
    }

    /// Parses a `--inventory-format` value.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "native" | "toml" | "json" => Some(Format::Native),
            "csv" => Some(Format::Csv),
            "ini" | "ansible-ini" => Some(Format::AnsibleIni),
            "yaml" | "ansible-yaml" | "ansible" => Some(Format::AnsibleYaml),
            _ => None,
        }
    }
}

/// A host as a format reader found it, before field mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct RawHost {
    pub name: String,
    /// Where the host was (first) declared.
    pub line: usize,
    /// Its variables, with group variables already merged in (Ansible precedence).
    pub vars: Map<String, Value>,
    /// The Ansible groups it belongs to, ancestors included, sorted; empty for other formats.
    pub groups: Vec<String>,
}

/// A loaded inventory.
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub file: String,
    pub format: Format,
    /// SHA-256 of the file's bytes, in hex.
    pub hash: String,
    pub hosts: Vec<Host>,
    /// The line each host was declared on, by index into `hosts`.
    #[serde(skip)]
    pub lines: Vec<usize>,
}

impl Inventory {
    /// The first 8 bytes of the hash, as the default planning seed.
    pub fn hash_seed(&self) -> u64 {
        u64::from_str_radix(self.hash.get(..16).unwrap_or("0"), 16).unwrap_or(0)
    }
}

/// Reads an inventory file. The format comes from `format`, or else from the file name
/// (`.toml`, `.json`, `.yaml`/`.yml`, `.csv`; anything else is read as Ansible INI, like
/// Ansible's own `hosts` files).
pub fn load(
    path: &Path,
    format: Option<Format>,
    map: &FieldMap,
) -> Result<Inventory, InventoryError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        InventoryError::one(
            &file,
            Problem {
                line: None,
                message: format!("cannot read inventory: {e}"),
            },
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        InventoryError::one(&file, Problem::at(line, "is not valid UTF-8"))
    })?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    parse(&file, &ext, &text, format, map)
}

/// Reads inventory text; `ext` is the file extension used to pick the format when `format`
/// is `None`.
pub fn parse(
    file: &str,
    ext: &str,
    text: &str,
    format: Option<Format>,
    map: &FieldMap,
) -> Result<Inventory, InventoryError> {
    let fail = |problems: Vec<Problem>| InventoryError {
        file: file.to_string(),
        problems,
    };
    let (format, raw) = match (format, ext) {
        (Some(Format::Csv), _) | (None, "csv") => (Format::Csv, csv_format::read(text, &map.name)),
        (Some(Format::AnsibleIni), _) => (Format::AnsibleIni, ansible::read_ini(text)),
        (f @ (Some(_) | None), _) => {
            if f.is_none() && !matches!(ext, "toml" | "json" | "yaml" | "yml") {
                return finish(file, text, Format::AnsibleIni, ansible::read_ini(text), map);
            }
            let node = if ext == "toml" {
                tree::parse_toml(text)
            } else {
                tree::parse_yaml(text)
            }
            .map_err(|p| fail(vec![p]))?;
            let native = f == Some(Format::Native)
                || (f != Some(Format::AnsibleYaml) && native::looks_native(&node));
            if native {
                (Format::Native, native::read(&node, &map.name))
            } else {
                (Format::AnsibleYaml, ansible::read_yaml(&node))
            }
        }
    };
    finish(file, text, format, raw, map)
}

/// Maps raw hosts to typed ones and checks the fleet as a whole.
fn finish(
    file: &str,
    text: &str,
    format: Format,
    raw: Result<Vec<RawHost>, Vec<Problem>>,
    map: &FieldMap,
) -> Result<Inventory, InventoryError> {
    let fail = |problems: Vec<Problem>| InventoryError {
        file: file.to_string(),
        problems,
    };
    let raw = raw.map_err(fail)?;
    let mut problems = Vec::new();
    // Duplicate names, with the line each was first declared on.
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(raw.len());
    let mut dup = vec![false; raw.len()];
    for (i, r) in raw.iter().enumerate() {
        if let Some(line) = first.get(r.name.as_str()) {
            problems.push(Problem::at(
                r.line,
                format!("host `{}` is declared again (first on line {line})", r.name),
            ));
            dup[i] = true;
        } else {
            first.insert(r.name.as_str(), r.line);
        }
    }
    drop(first);
    let mut hosts = Vec::with_capacity(raw.len());
    let mut lines = Vec::with_capacity(raw.len());
    let mut kernels = KernelCheck::default();
    for (r, dup) in raw.into_iter().zip(dup) {
        if dup {
            continue;
        }
        let line = r.line;
        match map.apply(r, &mut kernels) {
            Ok(h) => {
                hosts.push(h);
                lines.push(line);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    // Two names for one endpoint would update it twice. Cache instances on one machine
    // (the same address and SSH port, different Redis ports) are separate endpoints; the
    // planner updates their machine once.
    let mut endpoints: HashMap<(&str, u16), Vec<usize>> = HashMap::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        let key = (h.address.as_str(), h.port.unwrap_or(22));
        let mine = match h.redis_ports() {
            Ok(p) => p,
            Err(e) => {
                problems.push(Problem::at(
                    lines.get(i).copied().unwrap_or(0),
                    e.to_string(),
                ));
                None
            }
        };
        let seen = endpoints.entry(key).or_default();
        let clash = seen.iter().copied().find(|&j| {
            let theirs = hosts.get(j).and_then(|o| o.redis_ports().ok().flatten());
            match (&mine, theirs) {
                (Some(a), Some(b)) => a.iter().any(|p| b.contains(p)),
                _ => true,
            }
        });
        match clash {
            Some(j) => problems.push(Problem::at(
                lines.get(i).copied().unwrap_or(0),
                format!(
                    "hosts `{}` and `{}` (line {}) share the address `{}:{}`{}; one machine would be updated twice",
                    h.name,
                    hosts.get(j).map(|o| o.name.as_str()).unwrap_or("?"),
                    lines.get(j).copied().unwrap_or(0),
                    key.0,
                    key.1,
                    if mine.is_some() { " and a Redis port" } else { "" },
                ),
            )),
            None => seen.push(i),
        }
    }
    drop(endpoints);
    problems.sort_by_key(|p| p.line);
    if hosts.is_empty() && problems.is_empty() {
        problems.push(Problem {
            line: None,
            message: "holds no hosts".into(),
        });
    }
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    Ok(Inventory {
        file: file.to_string(),
        format,
        hash: hex(&Sha256::digest(text.as_bytes())),
        hosts,
        lines,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns a plain text value into the JSON scalar it spells: integers, floats and booleans
/// become typed; anything else stays a string. Used for CSV cells and Ansible INI values.
pub(crate) fn infer_scalar(s: &str) -> Value {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        if !(t.len() > 1 && (t.starts_with('0') || t.starts_with("-0"))) {
            return Value::Number(i.into());
        }
    }
    if t.contains('.')
        && t.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    match t {
        "true" | "True" => Value::Bool(true),
        "false" | "False" => Value::Bool(false),
        _ => Value::String(t.to_string()),
    }
}

/// Whether `name` is usable as a host name: not empty, no whitespace or control characters.
pub(crate) fn check_host_name(name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err("a host name is empty".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "host name `{}` contains whitespace or control characters",
            name.escape_debug()
        )
        .into());
    }
    Ok(())
}

/// `[inventory]` in `fleetward.toml`: which variables hold which host fields.
pub const SECTION: crate::config::SectionSpec = crate::config::SectionSpec {
    name: "inventory",
    parse: |text| {
        #[derive(serde::Deserialize)]
        struct Only {
            #[serde(default)]
            inventory: FieldMapSpec,
        }
        let spec = crate::config::section_of::<Only>(text)?.inventory;
        let map = FieldMap::from_spec(&spec).map_err(|message| crate::config::ConfigError {
            message: message.0,
            line: 1,
            col: 1,
        })?;
        Ok(std::sync::Arc::new(map))
    },
};

impl crate::runtime::PolicySet {
    /// How this set's inventories map variables to host fields (`[inventory]`).
    pub fn field_map(&self) -> &FieldMap {
        static DEFAULT: std::sync::OnceLock<FieldMap> = std::sync::OnceLock::new();
        self.section::<FieldMap>(SECTION.name)
            .unwrap_or_else(|| DEFAULT.get_or_init(FieldMap::default))
    }
}

#[cfg(test)]
mod tests;
