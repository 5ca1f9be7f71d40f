//! Samples to host-level values, inside Polars: one `group_by(host, metric, window)` over the
//! scanned file, so no per-sample data reaches the statistics. A host's window is "before" or
//! "after" its update, by [`Split`].

use super::frames::{floats, read_err, strs, DataError};
use super::EVENTS;
use polars::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Seconds a host counts as observed in a window when it reported only once.
const MIN_SPAN_SECS: f64 = 60.0;

/// One host's samples of one metric in one window.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Agg {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    pub p99: f64,
    /// The sum: the count, for event counters.
    pub sum: f64,
}

/// Which of a host's samples fall before its update.
#[derive(Debug, Clone, Default)]
pub enum Split {
    /// Every sample is after the update (or there is no update: controls over the bake).
    #[default]
    None,
    /// Every sample is before the update: a before window recorded on its own.
    AllBefore,
    /// Samples at or after a host's time (epoch seconds) are after; hosts not named use
    /// `default`, and without one all their samples are after.
    At {
        hosts: BTreeMap<String, f64>,
        default: Option<f64>,
    },
}

/// The before and after aggregates of one host × metric.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Windows {
    pub before: Option<Agg>,
    pub after: Option<Agg>,
}

/// Hours observed and event counts of one host in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposure {
    pub hours: f64,
    pub events: BTreeMap<String, f64>,
    pub first: f64,
    pub last: f64,
}

/// Host-level data of one file (or several merged), with the counts the report keeps.
#[derive(Debug, Clone, Default)]
pub struct HostCohort {
    /// The group of every host that reported.
    pub group_of: BTreeMap<String, String>,
    /// Metric aggregates per (host, metric); events are in `after`/`before` exposure.
    pub values: BTreeMap<(String, String), Windows>,
    /// Per host: exposure after and before its update.
    pub after: BTreeMap<String, Exposure>,
    pub before: BTreeMap<String, Exposure>,
    pub samples: usize,
    /// Samples whose value was NaN or missing.
    pub nan_samples: usize,
    /// Samples from hosts the inventory does not know (left out), and a few of their names.
    pub unknown_samples: usize,
    pub unknown_hosts: Vec<String>,
}

impl HostCohort {
    /// The hosts of a group that reported.
    pub fn hosts_of<'a>(&'a self, group: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.group_of
            .iter()
            .filter(move |(_, g)| g.as_str() == group)
            .map(|(h, _)| h.as_str())
    }

    /// Hosts reporting per group.
    pub fn hosts_per_group(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for g in self.group_of.values() {
            *m.entry(g.as_str()).or_default() += 1;
        }
        m
    }

    /// The metrics (not events) a group reported.
    pub fn metrics_of(&self, group: &str) -> BTreeSet<&str> {
        self.values
            .keys()
            .filter(|(h, _)| self.group_of.get(h).is_some_and(|g| g == group))
            .map(|(_, m)| m.as_str())
            .collect()
    }

    /// Whether any host has a before window.
    pub fn has_before(&self) -> bool {
        self.values.values().any(|w| w.before.is_some())
    }

    /// Adds another cohort's data (a before window recorded in its own file, say).
    pub fn merge(&mut self, other: HostCohort) {
        self.group_of.extend(other.group_of);
        for (k, w) in other.values {
            let e = self.values.entry(k).or_default();
            e.before = e.before.or(w.before);
            e.after = e.after.or(w.after);
        }
        for (h, x) in other.after {
            self.after.entry(h).or_insert(x);
        }
        for (h, x) in other.before {
            self.before.entry(h).or_insert(x);
        }
        self.samples += other.samples;
        self.nan_samples += other.nan_samples;
        self.unknown_samples += other.unknown_samples;
        for h in other.unknown_hosts {
            if self.unknown_hosts.len() < 5 && !self.unknown_hosts.contains(&h) {
                self.unknown_hosts.push(h);
            }
        }
    }

    /// Only the hosts `keep` accepts (the counts of samples stay those of the file).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> HostCohort {
        let mut c = self.clone();
        c.group_of.retain(|h, _| keep(h));
        c.values.retain(|(h, _), _| keep(h));
        c.after.retain(|h, _| keep(h));
        c.before.retain(|h, _| keep(h));
        let mine: usize = c
            .values
            .values()
            .map(|w| w.before.map_or(0, |a| a.n) + w.after.map_or(0, |a| a.n))
            .sum();
        c.samples = mine;
        c
    }
}

fn is_event() -> Expr {
    EVENTS
        .iter()
        .map(|e| col("metric").eq(lit(*e)))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false))
}

/// Aggregates samples (columns host, timestamp, metric, value) per host × metric × window,
/// joined with `groups` (host → group); samples of hosts not in `groups` are counted and
/// left out.
pub fn aggregate(
    samples: LazyFrame,
    groups: &DataFrame,
    split: &Split,
    file: &str,
) -> Result<HostCohort, DataError> {
    let err = read_err(file);
    let joined = samples.join(
        groups.clone().lazy(),
        [col("host")],
        [col("host")],
        JoinArgs::new(JoinType::Left),
    );
    let with_split = match split {
        Split::None => joined.with_column(lit(true).alias("after")),
        Split::AllBefore => joined.with_column(lit(false).alias("after")),
        Split::At { hosts, default } => {
            let names: Vec<&str> = hosts.keys().map(String::as_str).collect();
            let times: Vec<f64> = hosts.values().copied().collect();
            let times_df = df!("host" => names, "split_at" => times).map_err(&err)?;
            let fallback = default.unwrap_or(f64::NEG_INFINITY);
            joined
                .join(
                    times_df.lazy(),
                    [col("host")],
                    [col("host")],
                    JoinArgs::new(JoinType::Left),
                )
                .with_column(
                    col("timestamp")
                        .gt_eq(
                            when(col("split_at").is_null())
                                .then(lit(fallback))
                                .otherwise(col("split_at")),
                        )
                        .alias("after"),
                )
        }
    };
    let valid = col("value").filter(col("value").is_not_nan());
    let agg = with_split
        .group_by([col("host"), col("group"), col("metric"), col("after")])
        .agg([
            len().cast(DataType::Float64).alias("rows"),
            valid.clone().count().cast(DataType::Float64).alias("n"),
            valid.clone().mean().alias("mean"),
            valid.clone().median().alias("median"),
            valid
                .clone()
                .quantile(lit(0.99), QuantileMethod::Linear)
                .alias("p99"),
            valid.sum().cast(DataType::Float64).alias("sum"),
            col("timestamp").min().alias("first"),
            col("timestamp").max().alias("last"),
            is_event().first().alias("event"),
        ])
        .collect()
        .map_err(&err)?;

    let hosts = strs(&agg, "host", file)?;
    let gs = strs(&agg, "group", file)?;
    let ms = strs(&agg, "metric", file)?;
    let bools = |name: &str| -> Result<Vec<Option<bool>>, DataError> {
        let c = agg.column(name).map_err(&err)?;
        Ok(c.bool().map_err(&err)?.iter().collect())
    };
    let (after, event) = (bools("after")?, bools("event")?);
    let cols: Vec<Vec<Option<f64>>> =
        ["rows", "n", "mean", "median", "p99", "sum", "first", "last"]
            .iter()
            .map(|c| floats(&agg, c, file))
            .collect::<Result<_, _>>()?;
    let v = |c: usize, i: usize| -> f64 {
        cols.get(c)
            .and_then(|x| x.get(i))
            .copied()
            .flatten()
            .unwrap_or(f64::NAN)
    };
    let mut out = HostCohort::default();
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..agg.height() {
        let rows = v(0, i).max(0.0) as usize;
        out.samples += rows;
        let Some(Some(host)) = hosts.get(i) else {
            continue;
        };
        let Some(Some(group)) = gs.get(i) else {
            *unknown.entry(host.clone()).or_default() += rows;
            continue;
        };
        let Some(Some(metric)) = ms.get(i) else {
            continue;
        };
        let after = after.get(i).copied().flatten().unwrap_or(true);
        let n = v(1, i).max(0.0) as usize;
        out.group_of.insert(host.clone(), group.clone());
        let exposure = if after {
            &mut out.after
        } else {
            &mut out.before
        };
        let x = exposure.entry(host.clone()).or_insert(Exposure {
            first: f64::INFINITY,
            last: f64::NEG_INFINITY,
            ..Exposure::default()
        });
        x.first = x.first.min(v(6, i));
        x.last = x.last.max(v(7, i));
        if event.get(i).copied().flatten().unwrap_or(false) {
            *x.events.entry(metric.clone()).or_default() += v(5, i);
            continue;
        }
        out.nan_samples += rows.saturating_sub(n);
        if n == 0 {
            continue;
        }
        let a = Agg {
            n,
            mean: v(2, i),
            median: v(3, i),
            p99: v(4, i),
            sum: v(5, i),
        };
        let w = out
            .values
            .entry((host.clone(), metric.clone()))
            .or_default();
        if after {
            w.after = Some(a);
        } else {
            w.before = Some(a);
        }
    }
    for x in out.after.values_mut().chain(out.before.values_mut()) {
        x.hours = (x.last - x.first).max(MIN_SPAN_SECS) / 3600.0;
    }
    out.unknown_samples = unknown.values().sum();
    out.samples -= out.unknown_samples;
    out.unknown_hosts = unknown.into_keys().take(5).collect();
    Ok(out)
}
