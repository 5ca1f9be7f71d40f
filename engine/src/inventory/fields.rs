//! Which inventory variable becomes which host field: the `[inventory]` table of
//! `fleetward.toml`, overridable per run with `--field FIELD=SOURCE`.

use super::{Problem, RawHost};
use crate::error::Invalid;
use crate::model::Host;
use fleetward_stdlib::KernelVersion;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A host field that comes from the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Address,
    Port,
    User,
    Hardware,
    Workload,
    Datacenter,
    Rack,
    Kernel,
    Tags,
}

impl Field {
    pub const ALL: [Field; 9] = [
        Field::Address,
        Field::Port,
        Field::User,
        Field::Hardware,
        Field::Workload,
        Field::Datacenter,
        Field::Rack,
        Field::Kernel,
        Field::Tags,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Address => "address",
            Field::Port => "port",
            Field::User => "user",
            Field::Hardware => "hardware",
            Field::Workload => "workload",
            Field::Datacenter => "datacenter",
            Field::Rack => "rack",
            Field::Kernel => "kernel",
            Field::Tags => "tags",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Where a field's value comes from: a variable, or (`group:PREFIX`) the name of the Ansible
/// group starting with `PREFIX`, with the prefix removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSource {
    Var(String),
    GroupPrefix(String),
}

impl FieldSource {
    pub fn parse(s: &str) -> Result<FieldSource, Invalid> {
        let s = s.trim();
        match s.strip_prefix("group:") {
            Some("") => Err("`group:` needs a prefix, as in `group:hw_`".into()),
            Some(p) => Ok(FieldSource::GroupPrefix(p.to_string())),
            None if s.is_empty() => Err("a field source is empty".into()),
            None => Ok(FieldSource::Var(s.to_string())),
        }
    }
}

impl std::fmt::Display for FieldSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldSource::Var(v) => write!(f, "{v}"),
            FieldSource::GroupPrefix(p) => write!(f, "group:{p}"),
        }
    }
}

/// One source or several (the first one a host has wins), as written in TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Sources {
    One(String),
    Many(Vec<String>),
}

/// The `[inventory]` table of `fleetward.toml`, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldMapSpec {
    name: Option<Sources>,
    address: Option<Sources>,
    port: Option<Sources>,
    user: Option<Sources>,
    hardware: Option<Sources>,
    workload: Option<Sources>,
    datacenter: Option<Sources>,
    rack: Option<Sources>,
    kernel: Option<Sources>,
    tags: Option<Sources>,
    required: Option<Vec<Field>>,
}

impl FieldMapSpec {
    fn get(&self, f: Field) -> Option<&Sources> {
        match f {
            Field::Address => self.address.as_ref(),
            Field::Port => self.port.as_ref(),
            Field::User => self.user.as_ref(),
            Field::Hardware => self.hardware.as_ref(),
            Field::Workload => self.workload.as_ref(),
            Field::Datacenter => self.datacenter.as_ref(),
            Field::Rack => self.rack.as_ref(),
            Field::Kernel => self.kernel.as_ref(),
            Field::Tags => self.tags.as_ref(),
        }
    }
}

/// The resolved mapping from inventory variables to host fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    /// Columns or keys holding the host name (CSV and fleetward's own format).
    pub name: Vec<String>,
    pub sources: BTreeMap<Field, Vec<FieldSource>>,
    /// Fields every host must have.
    pub required: Vec<Field>,
}

impl Default for FieldMap {
    fn default() -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .map(|n| FieldSource::Var(n.to_string()))
                .collect()
        };
        let mut sources = BTreeMap::new();
        sources.insert(Field::Address, var(&["ansible_host", "address"]));
        sources.insert(Field::Port, var(&["ansible_port", "port"]));
        sources.insert(Field::User, var(&["ansible_user", "user"]));
        // The rest are read from variables of their own name.
        for f in Field::ALL {
            sources.entry(f).or_insert_with(|| var(&[f.name()]));
        }
        FieldMap {
            name: vec!["name".into(), "hostname".into(), "host".into()],
            sources,
            required: vec![
                Field::Hardware,
                Field::Workload,
                Field::Datacenter,
                Field::Rack,
                Field::Kernel,
            ],
        }
    }
}

impl FieldMap {
    /// The default mapping with `spec`'s entries replacing the defaults they name.
    pub fn from_spec(spec: &FieldMapSpec) -> Result<FieldMap, Invalid> {
        let mut map = FieldMap::default();
        let list = |s: &Sources| match s {
            Sources::One(x) => vec![x.clone()],
            Sources::Many(v) => v.clone(),
        };
        if let Some(n) = &spec.name {
            map.name = list(n);
        }
        for field in Field::ALL {
            let Some(s) = spec.get(field) else { continue };
            let parsed = list(s)
                .iter()
                .map(|x| FieldSource::parse(x))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("inventory field `{}`: {e}", field.name()))?;
            map.sources.insert(field, parsed);
        }
        if let Some(r) = &spec.required {
            map.required = r.clone();
        }
        Ok(map)
    }

    /// Applies one `FIELD=SOURCE[,SOURCE...]` override from the command line.
    pub fn set(&mut self, assignment: &str) -> Result<(), Invalid> {
        let (field, sources) = assignment
            .split_once('=')
            .ok_or_else(|| format!("field mapping `{assignment}` must look like `field=source`"))?;
        let field = field.trim();
        let list: Vec<&str> = sources.split(',').collect();
        if field == "name" {
            self.name = list.iter().map(|s| s.trim().to_string()).collect();
            return Ok(());
        }
        let f = Field::from_name(field).ok_or_else(|| {
            format!(
                "unknown host field `{field}`; fields are name, {}",
                Field::ALL.map(|f| f.name()).join(", ")
            )
        })?;
        let parsed = list
            .iter()
            .map(|s| FieldSource::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        self.sources.insert(f, parsed);
        Ok(())
    }

    /// Where `field`'s value is for `host`: the variable holding it, or the value taken from a
    /// group name; and which source matched.
    fn lookup<'a>(
        &'a self,
        field: Field,
        host: &RawHost,
    ) -> Result<Option<(&'a FieldSource, Found)>, String> {
        for src in self
            .sources
            .get(&field)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match src {
                FieldSource::Var(v) => {
                    if host.vars.get(v).is_some_and(|x| !is_blank(x)) {
                        return Ok(Some((src, Found::Var(v.clone()))));
                    }
                }
                FieldSource::GroupPrefix(p) => {
                    let hits: Vec<&String> = host
                        .groups
                        .iter()
                        .filter(|g| g.starts_with(p.as_str()) && g.len() > p.len())
                        .collect();
                    match hits.as_slice() {
                        [] => {}
                        [one] => return Ok(Some((src, Found::Group(one[p.len()..].to_string())))),
                        many => {
                            return Err(format!(
                                "`{}` is ambiguous: the host is in groups {}",
                                src,
                                many.iter()
                                    .map(|g| format!("`{g}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    fn describe(&self, field: Field) -> String {
        let s: Vec<String> = self
            .sources
            .get(&field)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|s| format!("`{s}`"))
            .collect();
        if s.is_empty() {
            "no source is mapped".into()
        } else {
            format!("looked for {}", s.join(", "))
        }
    }

    /// Builds the typed host, moving variables out of `raw`: mapped ones become fields, the
    /// rest facts. Every problem with the host is returned, each at its line. `kernels`
    /// caches kernel-version checks across hosts (fleets run few distinct kernels).
    pub fn apply(&self, mut raw: RawHost, kernels: &mut KernelCheck) -> Result<Host, Vec<Problem>> {
        let mut problems = Vec::new();
        let (name, line) = (raw.name.clone(), raw.line);
        let at = |m: String| Problem::at(line, format!("host `{name}`: {m}"));
        let mut host = Host {
            name: raw.name.clone(),
            ..Host::default()
        };
        for field in Field::ALL {
            let found = match self.lookup(field, &raw) {
                Ok(f) => f,
                Err(e) => {
                    problems.push(at(e));
                    continue;
                }
            };
            let Some((src, found)) = found else {
                if self.required.contains(&field) {
                    problems.push(at(format!(
                        "missing `{}` ({})",
                        field.name(),
                        self.describe(field)
                    )));
                }
                continue;
            };
            let value = match found {
                Found::Var(v) => raw.vars.remove(&v).unwrap_or(Value::Null),
                Found::Group(g) => Value::String(g),
            };
            let bad = |want: &str| {
                at(format!(
                    "`{}` (from `{src}`) is `{}`, which is not {want}",
                    field.name(),
                    short(&value)
                ))
            };
            match field {
                Field::Port => match port(&value) {
                    Some(p) => host.port = Some(p),
                    None => problems.push(bad("a port number (1-65535)")),
                },
                Field::Tags => match tags(&value) {
                    Some(t) => host.tags = t,
                    None => problems.push(bad("a list of tags or a comma-separated string")),
                },
                _ => {
                    let Some(s) = text(value.clone()) else {
                        problems.push(bad("a string"));
                        continue;
                    };
                    match field {
                        Field::Address => host.address = s,
                        Field::User => host.user = Some(s),
                        Field::Hardware => host.hardware = s,
                        Field::Workload => host.workload = s,
                        Field::Datacenter => host.datacenter = s,
                        Field::Rack => host.rack = s,
                        Field::Kernel => match kernels.check(&s) {
                            Ok(()) => host.kernel = s,
                            Err(e) => {
                                problems.push(at(format!("kernel `{s}` (from `{src}`): {e}")))
                            }
                        },
                        Field::Port | Field::Tags => {}
                    }
                }
            }
        }
        if host.address.is_empty() {
            host.address = raw.name.clone();
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        for k in &self.name {
            raw.vars.remove(k);
        }
        let extra = raw.vars.remove("facts");
        let mut facts: BTreeMap<String, Value> = raw.vars.into_iter().collect();
        if let Some(Value::Object(extra)) = extra {
            for (k, v) in extra {
                facts.entry(k).or_insert(v);
            }
        }
        if !raw.groups.is_empty() {
            facts.insert(
                "groups".into(),
                Value::Array(raw.groups.into_iter().map(Value::String).collect()),
            );
        }
        host.facts = facts;
        Ok(host)
    }
}

/// Where a field's value was found.
enum Found {
    Var(String),
    Group(String),
}

/// Kernel versions already checked while reading one inventory.
#[derive(Debug, Default)]
pub struct KernelCheck {
    seen: std::collections::HashMap<String, Result<(), Invalid>>,
}

impl KernelCheck {
    fn check(&mut self, k: &str) -> Result<(), Invalid> {
        if let Some(r) = self.seen.get(k) {
            return r.clone();
        }
        let r = KernelVersion::parse(k)
            .map(|_| ())
            .map_err(|e| Invalid(e.to_string()));
        self.seen.insert(k.to_string(), r.clone());
        r
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::String(s) if s.trim().len() == s.len() => Some(s),
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn port(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p > 0)
}

fn tags(v: &Value) -> Option<Vec<String>> {
    let mut out: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .map(|i| text(i.clone()).filter(|s| !s.is_empty()))
            .collect::<Option<Vec<_>>>()?,
        Value::String(s) => s
            .split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        _ => return None,
    };
    out.dedup();
    Some(out)
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}
