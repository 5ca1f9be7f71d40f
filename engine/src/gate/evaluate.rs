//! The one gate path `fleetward gate` and the rollout controller share: hosts to groups,
//! samples and baseline to cohorts, cohorts to a [`Comparison`], and `gates.rhai` to a
//! [`Verdict`].

use super::frames::{self, DataError};
use super::{compare, Cohort, Comparison, GroupSpec};
use crate::model::{GroupKey, Host, Verdict};
use crate::runtime::PolicySet;
use crate::PolicyError;
use polars::prelude::DataFrame;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The inventory's hosts by group, as the frame samples are joined with.
pub struct Groups {
    df: DataFrame,
    of: HashMap<String, GroupKey>,
    by_name: BTreeMap<String, GroupKey>,
}

impl Groups {
    pub fn of_hosts(hosts: &[Host]) -> Result<Groups, DataError> {
        let pairs: Vec<(String, String)> = hosts
            .iter()
            .map(|h| (h.name.clone(), h.group_name()))
            .collect();
        let df = frames::host_groups(&pairs)?;
        let of: HashMap<String, GroupKey> =
            hosts.iter().map(|h| (h.name.clone(), h.group())).collect();
        let by_name = of.values().map(|g| (g.to_string(), g.clone())).collect();
        Ok(Groups { df, of, by_name })
    }

    /// The group of a host.
    pub fn of(&self, host: &str) -> Option<&GroupKey> {
        self.of.get(host)
    }

    /// The samples in `path` (CSV or Parquet), joined with the groups.
    pub fn cohort(&self, path: &Path) -> Result<Cohort, DataError> {
        frames::cohort(frames::scan(path)?, &self.df, &path.display().to_string())
    }

    /// A baseline: long-form samples joined with the groups, or a precomputed summary.
    pub fn baseline(&self, path: &Path) -> Result<Cohort, DataError> {
        let file = path.display().to_string();
        match frames::scan_baseline(path)? {
            frames::Baseline::Samples(lf) => frames::cohort(lf, &self.df, &file),
            frames::Baseline::Summary(lf) => frames::summary_cohort(lf, &file),
        }
    }

    /// The groups to judge: each group of `updated` the inventory knows.
    pub fn reporting(&self, updated: &Cohort) -> Vec<GroupSpec> {
        updated
            .hosts
            .keys()
            .filter_map(|g| self.by_name.get(g).map(|k| GroupSpec::of(k, None)))
            .collect()
    }

    /// The groups to judge with the hosts expected to report in each: the hosts of a stage
    /// that were updated.
    pub fn expected<'a>(&self, updated_hosts: impl IntoIterator<Item = &'a str>) -> Vec<GroupSpec> {
        let mut n: BTreeMap<&GroupKey, usize> = BTreeMap::new();
        for h in updated_hosts {
            if let Some(g) = self.of.get(h) {
                *n.entry(g).or_default() += 1;
            }
        }
        n.into_iter()
            .map(|(g, n)| GroupSpec::of(g, Some(n)))
            .collect()
    }
}

impl GroupSpec {
    pub fn of(key: &GroupKey, expected_hosts: Option<usize>) -> GroupSpec {
        GroupSpec {
            name: key.to_string(),
            hardware: key.hardware.clone(),
            workload: key.workload.clone(),
            expected_hosts,
        }
    }
}

/// A stage to judge.
pub struct Stage<'a> {
    /// 0 for the canaries.
    pub index: usize,
    pub name: &'a str,
    pub groups: &'a [GroupSpec],
    pub updated: &'a Cohort,
    pub baseline: &'a Cohort,
}

/// Compares a stage with the baseline and asks `gates.rhai`. The comparison comes back even
/// when the policy fails, so it can be kept.
pub fn evaluate(set: &PolicySet, stage: &Stage<'_>) -> (Comparison, Result<Verdict, PolicyError>) {
    let cmp = compare(
        stage.index,
        stage.name,
        stage.groups,
        stage.updated,
        stage.baseline,
        set.gate_settings(),
    );
    let verdict = set.call::<Verdict>("gates", "gate", (&cmp,));
    (cmp, verdict)
}

/// What a cohort's file held that was left out, in words.
pub fn warnings(file: &str, c: &Cohort) -> Vec<String> {
    let mut w = Vec::new();
    if c.unknown_samples > 0 {
        w.push(format!(
            "{} sample(s) in `{file}` come from hosts not in the inventory (e.g. {}); they were left out",
            c.unknown_samples,
            c.unknown_hosts
                .iter()
                .map(|h| format!("`{h}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if c.nan_samples > 0 {
        w.push(format!(
            "{} sample(s) in `{file}` have no numeric value (NaN or unparsable); they were left out",
            c.nan_samples
        ));
    }
    w
}

/// The name of a stage the policy sees: `canary` for 0, `wave N` otherwise.
pub fn stage_name(index: usize) -> String {
    if index == 0 {
        "canary".to_string()
    } else {
        format!("wave {index}")
    }
}

/// A gate over files: `fleetward gate`.
#[derive(Debug, serde::Serialize)]
pub struct FileGate {
    pub comparison: Comparison,
    pub verdict: Verdict,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

/// The files of one gate.
pub struct Files<'a> {
    pub samples: &'a Path,
    pub baseline: &'a Path,
    /// Also write the baseline's aggregates here, to reuse for later gates.
    pub save_baseline: Option<&'a Path>,
}

/// Judges the samples in `files` against the baseline, as the controller judges a stage.
pub fn gate_files(
    set: &PolicySet,
    hosts: &[Host],
    files: &Files<'_>,
    index: usize,
    name: Option<&str>,
) -> Result<FileGate, GateError> {
    let groups = Groups::of_hosts(hosts)?;
    let updated = groups.cohort(files.samples)?;
    let baseline = groups.baseline(files.baseline)?;
    if let Some(out) = files.save_baseline {
        frames::write_summary(&baseline, out)?;
    }
    let specs = groups.reporting(&updated);
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| stage_name(index));
    let (comparison, verdict) = evaluate(
        set,
        &Stage {
            index,
            name: &name,
            groups: &specs,
            updated: &updated,
            baseline: &baseline,
        },
    );
    let mut warnings = warnings(&files.samples.display().to_string(), &updated);
    warnings.extend(self::warnings(
        &files.baseline.display().to_string(),
        &baseline,
    ));
    Ok(FileGate {
        comparison,
        verdict: verdict?,
        warnings,
    })
}
