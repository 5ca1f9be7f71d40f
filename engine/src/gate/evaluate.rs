//! The one gate path `fleetward gate` and the rollout controller share: hosts to groups,
//! samples and baseline to cohorts, cohorts to a [`Comparison`], and `gates.rhai` to a
//! [`Verdict`].

use super::aggregate::{self, HostCohort, Quantiles, Split};
use super::frames::{self, DataError, Summary};
use super::{compare, Comparison, GroupSpec, Reference};
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

/// A reference file: host-level samples (controls), or a precomputed summary.
pub enum Baseline {
    Hosts(HostCohort),
    Summary(Summary),
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

    /// The frame samples are joined with: host → group.
    pub fn frame(&self) -> &DataFrame {
        &self.df
    }

    /// How many hosts of the inventory are in `group`.
    pub fn size(&self, group: &str) -> usize {
        self.of.values().filter(|g| g.to_string() == group).count()
    }

    /// The group of a host.
    pub fn of(&self, host: &str) -> Option<&GroupKey> {
        self.of.get(host)
    }

    /// The samples in `path` (CSV or Parquet) as host-level values, split by `split`, with
    /// medians and p99s of the metrics `q` names.
    pub fn aggregate(
        &self,
        path: &Path,
        split: &Split,
        q: Quantiles,
    ) -> Result<HostCohort, DataError> {
        aggregate::aggregate(
            frames::scan(path)?,
            &self.df,
            split,
            &path.display().to_string(),
            q,
        )
    }

    /// A baseline: long-form samples as host-level values, or a precomputed summary.
    pub fn baseline(
        &self,
        path: &Path,
        split: &Split,
        q: Quantiles,
    ) -> Result<Baseline, DataError> {
        let file = path.display().to_string();
        match frames::scan_baseline(path)? {
            frames::Baseline::Samples(lf) => Ok(Baseline::Hosts(aggregate::aggregate(
                lf, &self.df, split, &file, q,
            )?)),
            frames::Baseline::Summary(lf) => {
                Ok(Baseline::Summary(frames::read_summary(lf, &file)?))
            }
        }
    }

    /// The groups to judge: each group of `updated` the inventory knows.
    pub fn reporting(&self, updated: &HostCohort) -> Vec<GroupSpec> {
        let mut seen: Vec<&str> = updated.group_of.values().map(String::as_str).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.into_iter()
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
    pub updated: &'a HostCohort,
    pub reference: Reference<'a>,
}

/// Compares a stage with its reference and asks `gates.rhai`. The comparison comes back even
/// when the policy fails, so it can be kept.
pub fn evaluate(set: &PolicySet, stage: &Stage<'_>) -> (Comparison, Result<Verdict, PolicyError>) {
    let cmp = compare(
        stage.index,
        stage.name,
        stage.groups,
        stage.updated,
        &stage.reference,
        set.gate_settings(),
    );
    let verdict = set.call::<Verdict>("gates", "gate", (&cmp,));
    (cmp, verdict)
}

/// The HTML report of a gate, with the thresholds of `gates.rhai`'s optional
/// `threshold(metric)`.
pub fn report(set: &PolicySet, c: &Comparison, v: &Verdict, warnings: &[String]) -> String {
    let has = set.defines("gates", "threshold", 1);
    let threshold = |m: &str| {
        has.then(|| set.call::<f64>("gates", "threshold", (&m,)).ok())
            .flatten()
    };
    super::report::html(c, v, warnings, &threshold)
}

/// What a cohort's file held that was left out, in words.
pub fn warnings(file: &str, c: &HostCohort) -> Vec<String> {
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
    #[error("updates `{file}`: {message}")]
    Updates { file: String, message: String },
    #[error("`--updated-at` and `--updates` are two ways to give the split; give one")]
    TwoSplits,
}

/// A time as epoch seconds or RFC 3339, in epoch seconds.
pub fn parse_time(s: &str) -> Result<f64, crate::error::Invalid> {
    let t = s.trim();
    if let Ok(x) = t.parse::<f64>() {
        if x.is_finite() {
            return Ok(x);
        }
    }
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond() as f64 / 1000.0)
        .map_err(|_| {
            crate::error::Invalid(format!(
                "`{t}` is not a time: give epoch seconds or RFC 3339 (`2026-12-02T10:00:00Z`)"
            ))
        })
}

/// Reads an updates file: CSV with columns `host, updated_at` (epoch seconds or RFC 3339).
pub fn read_updates(path: &Path) -> Result<BTreeMap<String, f64>, GateError> {
    let file = path.display().to_string();
    let err = |message: String| GateError::Updates {
        file: file.clone(),
        message,
    };
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| err(e.to_string()))?;
    let headers = r.headers().map_err(|e| err(e.to_string()))?.clone();
    let idx = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            err(format!(
                "no column `{name}`; updates files have columns host, updated_at"
            ))
        })
    };
    let (hi, ti) = (idx("host")?, idx("updated_at")?);
    let mut out = BTreeMap::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| err(format!("line {line}: {e}")))?;
        let host = rec.get(hi).unwrap_or("").to_string();
        if host.is_empty() {
            return Err(err(format!("line {line}: no host")));
        }
        let t =
            parse_time(rec.get(ti).unwrap_or("")).map_err(|e| err(format!("line {line}: {e}")))?;
        if out.insert(host.clone(), t).is_some() {
            return Err(err(format!("line {line}: host `{host}` is listed twice")));
        }
    }
    if out.is_empty() {
        return Err(err("no hosts".into()));
    }
    Ok(out)
}

/// The files of one gate.
pub struct Files<'a> {
    /// The updated hosts' samples, over the after window and optionally the before window.
    pub samples: &'a Path,
    /// The controls' samples over the same span, or a precomputed summary.
    pub baseline: &'a Path,
    /// One update time for every host: samples at or after it are after the update.
    pub updated_at: Option<f64>,
    /// Per-host update times (`host, updated_at`).
    pub updates: Option<&'a Path>,
    /// Also write the baseline's aggregates here, to reuse for later gates.
    pub save_baseline: Option<&'a Path>,
}

/// The splits of the updated hosts' and the controls' samples.
fn splits(files: &Files<'_>) -> Result<(Split, Split), GateError> {
    match (files.updated_at, files.updates) {
        (Some(_), Some(_)) => Err(GateError::TwoSplits),
        (Some(t), None) => {
            let s = Split::At {
                hosts: BTreeMap::new(),
                default: Some(t),
            };
            Ok((s.clone(), s))
        }
        (None, Some(p)) => {
            let hosts = read_updates(p)?;
            let mut times: Vec<f64> = hosts.values().copied().collect();
            times.sort_by(f64::total_cmp);
            // Controls (and updated hosts the file does not name) split at the median update.
            let median = super::stats::quantile(&times, 0.5);
            Ok((
                Split::At {
                    hosts,
                    default: median,
                },
                Split::At {
                    hosts: BTreeMap::new(),
                    default: median,
                },
            ))
        }
        (None, None) => Ok((Split::None, Split::None)),
    }
}

/// Judges the samples in `files` against the controls or baseline, as the controller judges
/// a stage.
pub fn gate_files(
    set: &PolicySet,
    hosts: &[Host],
    files: &Files<'_>,
    index: usize,
    name: Option<&str>,
) -> Result<FileGate, GateError> {
    let groups = Groups::of_hosts(hosts)?;
    let (split_u, split_c) = splits(files)?;
    let q = Quantiles::for_statistic(set.gate_settings().host_statistic);
    let updated = groups.aggregate(files.samples, &split_u, q)?;
    let baseline = groups.baseline(files.baseline, &split_c, q)?;
    let empty = HostCohort::default();
    let (controls, summary) = match &baseline {
        Baseline::Hosts(c) => {
            // A host in both files is an updated host, never its own control.
            (c.retain(|h| !updated.group_of.contains_key(h)), None)
        }
        Baseline::Summary(s) => (empty, Some(s)),
    };
    if let Some(out) = files.save_baseline {
        match &baseline {
            Baseline::Hosts(c) => frames::write_summary(c, out)?,
            Baseline::Summary(_) => {
                std::fs::copy(files.baseline, out)
                    .map(|_| ())
                    .map_err(|e| DataError::Read {
                        file: out.display().to_string(),
                        message: e.to_string(),
                    })?
            }
        }
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
            reference: Reference {
                controls: &controls,
                summary,
            },
        },
    );
    let mut warnings = warnings(&files.samples.display().to_string(), &updated);
    if let Baseline::Hosts(c) = &baseline {
        warnings.extend(self::warnings(&files.baseline.display().to_string(), c));
    }
    if comparison.method == super::Method::Controls && !updated.group_of.is_empty() {
        warnings.push(if files.updated_at.is_some() || files.updates.is_some() {
            "no before window in the samples: compared host-level values against the controls".to_string()
        } else {
            "no before window (give `--updated-at` or `--updates` with samples that span the update): compared host-level values against the controls".to_string()
        });
    }
    Ok(FileGate {
        comparison,
        verdict: verdict?,
        warnings,
    })
}
