//! The audit as a Polars frame (one row per finding) and the fleet summary computed from it:
//! counts by class, by kind and by group.

use super::audit::{HostStatus, Report};
use polars::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// One row per finding.
pub fn findings_frame(r: &Report) -> PolarsResult<DataFrame> {
    let n: usize = r.hosts.iter().map(|h| h.findings.len()).sum();
    let mut cols: [Vec<String>; 8] = Default::default();
    for c in cols.iter_mut() {
        c.reserve(n);
    }
    for h in &r.hosts {
        for f in &h.findings {
            let vals = [
                h.host.as_str(),
                h.group.as_str(),
                f.kind.as_str(),
                f.key.as_str(),
                f.field.as_str(),
                f.declared.as_str(),
                f.actual.as_str(),
                f.class.as_str(),
            ];
            for (c, v) in cols.iter_mut().zip(vals) {
                c.push(v.to_string());
            }
        }
    }
    let [host, group, kind, key, field, declared, actual, class] = cols;
    df!(
        "host" => host,
        "group" => group,
        "kind" => kind,
        "key" => key,
        "field" => field,
        "declared" => declared,
        "actual" => actual,
        "class" => class,
    )
}

/// The fleet summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub hosts: usize,
    pub clean: usize,
    pub drifting: usize,
    /// Hosts with facts that could not be read (and no other drift).
    pub unknown: usize,
    pub unreachable: usize,
    /// Declared facts checked across the fleet.
    pub checked: usize,
    /// Findings per class.
    pub by_class: BTreeMap<String, usize>,
    /// Findings per kind, then class.
    pub by_kind: BTreeMap<String, BTreeMap<String, usize>>,
    /// Findings per group, then class.
    pub by_group: BTreeMap<String, BTreeMap<String, usize>>,
}

fn counts(df: &DataFrame, by: &str) -> PolarsResult<BTreeMap<String, BTreeMap<String, usize>>> {
    let agg = df
        .clone()
        .lazy()
        .group_by([col(by), col("class")])
        .agg([len().alias("n")])
        .collect()?;
    let keys = agg.column(by)?.str()?.clone();
    let classes = agg.column("class")?.str()?.clone();
    let ns = agg.column("n")?.cast(&DataType::UInt64)?;
    let ns = ns.u64()?;
    let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for ((k, c), n) in keys.iter().zip(classes.iter()).zip(ns.iter()) {
        if let (Some(k), Some(c), Some(n)) = (k, c, n) {
            out.entry(k.to_string())
                .or_default()
                .insert(c.to_string(), n as usize);
        }
    }
    Ok(out)
}

/// Summarises a report through its findings frame.
pub fn summary(r: &Report) -> PolarsResult<Summary> {
    let df = findings_frame(r)?;
    let by_kind = counts(&df, "kind")?;
    let by_group = counts(&df, "group")?;
    let mut by_class = BTreeMap::new();
    for m in by_kind.values() {
        for (c, n) in m {
            *by_class.entry(c.clone()).or_insert(0) += n;
        }
    }
    let status = |s: HostStatus| r.hosts.iter().filter(|h| h.status == s).count();
    Ok(Summary {
        hosts: r.hosts.len(),
        clean: status(HostStatus::Clean),
        drifting: status(HostStatus::Drift),
        unknown: status(HostStatus::Unknown),
        unreachable: status(HostStatus::Unreachable),
        checked: r.hosts.iter().map(|h| h.checked).sum(),
        by_class,
        by_kind,
        by_group,
    })
}
