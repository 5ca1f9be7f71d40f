//! Simulated host facts for `drift --simulate FILE`: every host reports its declared state
//! (and the kernel its inventory record names), except for the divergences the file lists
//! (and, optionally, random ones at a given rate).
//! The simulator answers the facts command and the usual fix commands from these tables.

use crate::drift::declared::{Declared, HostSpec};
use crate::drift::facts::Fact;
use crate::drift::Kind;
use crate::model::Host;
use crate::plan::keyed_hash;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// A fact's identity.
pub type FactKey = (Kind, String, String);

/// One host's facts.
pub type FactTable = BTreeMap<FactKey, Fact>;

/// One listed divergence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimItem {
    pub host: String,
    pub kind: Kind,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub field: String,
    /// What the host reports instead of the declared value.
    pub actual: Option<String>,
    /// Or: the fact cannot be read, for this reason.
    pub unknown: Option<String>,
}

/// The simulation file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFile {
    #[serde(default)]
    pub seed: u64,
    /// Share of hosts (0..=1) given one random divergence.
    #[serde(default)]
    pub random_rate: f64,
    /// Hosts that cannot be reached.
    #[serde(default)]
    pub unreachable: Vec<String>,
    #[serde(default)]
    pub drift: Vec<SimItem>,
}

/// A simulation file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SimFileError(pub String);

/// An executor whose hosts report the facts `file` describes (and answer the shipped fix
/// commands), for `drift --simulate FILE`.
pub fn executor(
    file: &Path,
    declared: &Declared,
    hosts: &[Host],
    now: jiff::Timestamp,
) -> Result<super::exec::SimExecutor, SimFileError> {
    use super::exec::{Faults, SimExecutor, Timing};
    let simfile = SimFile::load(file)?;
    let (tables, unreachable) = tables(declared, hosts, &simfile)?;
    let faults = Faults {
        unreachable,
        ..Faults::default()
    };
    let timing = Timing {
        command: std::time::Duration::ZERO,
        ..Timing::default()
    };
    Ok(SimExecutor::new(hosts, faults, timing, now).with_drift(tables))
}

impl SimFile {
    pub fn load(path: &Path) -> Result<SimFile, SimFileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SimFileError(format!("cannot read `{}`: {e}", path.display())))?;
        let f: SimFile = toml::from_str(&text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| crate::error::line_col(&text, s.start))
                .unwrap_or((1, 1));
            SimFileError(format!("{}:{line}:{col}: {}", path.display(), e.message()))
        })?;
        if !(0.0..=1.0).contains(&f.random_rate) {
            return Err(SimFileError(format!(
                "{}: random_rate `{}` is not between 0 and 1",
                path.display(),
                f.random_rate
            )));
        }
        Ok(f)
    }
}

/// The value a host in its declared state reports.
fn conforming(kind: Kind, field: &str, declared: &str) -> String {
    match (kind, field, declared) {
        (Kind::Package, _, "*" | "installed") => "1.0-1".into(),
        (Kind::File, "mode", m) => m.trim_start_matches('0').to_string(),
        _ => declared.to_string(),
    }
}

/// A plausible wrong value, for random drift.
fn perturbed(kind: Kind, field: &str, declared: &str) -> String {
    match (kind, field) {
        (Kind::Sysctl, _) => match declared.trim().parse::<i64>() {
            Ok(n) if n > 1 => (n / 2).to_string(),
            Ok(n) => (n + 1).to_string(),
            Err(_) => format!("{declared} 1"),
        },
        (Kind::Module, "loaded") => if declared == "yes" { "no" } else { "yes" }.into(),
        (Kind::Module, _) => "no".into(),
        (Kind::Service, "active") => "inactive".into(),
        (Kind::Service, _) => "disabled".into(),
        (Kind::Package, _) => "0.1-1".into(),
        (Kind::File, "mode") => "666".into(),
        (Kind::File, "owner") => "nobody:nogroup".into(),
        (Kind::File, _) => "0".repeat(64),
        _ => format!("{declared}-drifted"),
    }
}

/// Facts tables for `hosts`, and the hosts that cannot be reached.
pub fn tables(
    declared: &Declared,
    hosts: &[Host],
    sim: &SimFile,
) -> Result<(HashMap<String, FactTable>, HashSet<String>), SimFileError> {
    let names: HashSet<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    for n in sim
        .unreachable
        .iter()
        .chain(sim.drift.iter().map(|d| &d.host))
    {
        if !names.contains(n.as_str()) {
            return Err(SimFileError(format!(
                "simulated host `{n}` is not in the inventory"
            )));
        }
    }
    let mut out = HashMap::with_capacity(hosts.len());
    for h in hosts {
        let spec: HostSpec = declared.resolve(h);
        let expects = spec.expectations();
        let mut t: FactTable = expects
            .iter()
            .map(|e| {
                let v = if e.kind == Kind::Kernel && !h.kernel.is_empty() {
                    h.kernel.clone()
                } else {
                    conforming(e.kind, &e.field, &e.declared)
                };
                ((e.kind, e.key.clone(), e.field.clone()), Fact::Value(v))
            })
            .collect();
        let rate = (sim.random_rate * 1_000_000.0) as u64;
        if !expects.is_empty() && keyed_hash(sim.seed, &h.name) % 1_000_000 < rate {
            let i = (keyed_hash(sim.seed ^ 0x5eed, &h.name) % expects.len() as u64) as usize;
            if let Some(e) = expects.get(i) {
                t.insert(
                    (e.kind, e.key.clone(), e.field.clone()),
                    Fact::Value(perturbed(e.kind, &e.field, &e.declared)),
                );
            }
        }
        out.insert(h.name.clone(), t);
    }
    for d in &sim.drift {
        let fact = match (&d.actual, &d.unknown) {
            (Some(a), None) => Fact::Value(a.clone()),
            (None, Some(u)) => Fact::Unknown(u.clone()),
            _ => {
                return Err(SimFileError(format!(
                    "simulated drift on `{}` ({} `{}`) needs exactly one of `actual` and `unknown`",
                    d.host,
                    d.kind.as_str(),
                    d.key
                )))
            }
        };
        if let Some(t) = out.get_mut(&d.host) {
            t.insert((d.kind, d.key.clone(), d.field.clone()), fact);
        }
    }
    Ok((out, sim.unreachable.iter().cloned().collect()))
}
