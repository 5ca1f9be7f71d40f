//! Samples to host-level values, inside Polars: one streaming `group_by(host, metric, window)`
//! over the scanned file, so no per-sample data reaches the statistics and the raw frame is
//! never held whole. A host's window is "before" or "after" its update, by [`Split`].

use super::frames::{floats, read_err, strs, DataError};
use super::{HostStatistic, EVENTS};
use polars::prelude::*;
use polars_core::query_result::QueryResult;
use std::collections::{BTreeMap, BTreeSet};

/// Seconds a host counts as observed in a window when it reported only once.
const MIN_SPAN_SECS: f64 = 60.0;

/// One host's samples of one metric in one window. A value not computed is NaN, `null` in
/// JSON (which has no NaN) and NaN again when read back.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Agg {
    pub n: usize,
    #[serde(with = "nan_as_null")]
    pub mean: f64,
    #[serde(with = "nan_as_null")]
    pub median: f64,
    #[serde(with = "nan_as_null")]
    pub p99: f64,
    /// The sum: the count, for event counters.
    #[serde(with = "nan_as_null")]
    pub sum: f64,
}

/// A float that may be NaN, as JSON can carry it: `null` for NaN (or an infinity, which
/// JSON cannot carry either).
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if !x.is_finite() {
            s.serialize_none()
        } else {
            s.serialize_f64(*x)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// `(host, metric)` keys as a list of entries: JSON's keys are strings.
mod pairs {
    use super::Windows;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    type Values = BTreeMap<(String, String), Windows>;

    pub fn serialize<S: Serializer>(m: &Values, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(&str, &str, &Windows)> = m
            .iter()
            .map(|((h, k), w)| (h.as_str(), k.as_str(), w))
            .collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
        let v = Vec::<(String, String, Windows)>::deserialize(d)?;
        Ok(v.into_iter().map(|(h, k, w)| ((h, k), w)).collect())
    }
}

/// Which metrics get a median and p99 per host window. Those hold every sample of a window in
/// memory, where counts, means and sums stream, so they are computed only where a test reads
/// them: benchmark metrics (judged by the median of their repetitions) always, every metric
/// when `[gates] host_statistic` is `median` or `p99`. Elsewhere they are NaN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantiles {
    #[default]
    Benchmarks,
    All,
}

impl Quantiles {
    /// What a gate with this host statistic reads.
    pub fn for_statistic(s: HostStatistic) -> Quantiles {
        match s {
            HostStatistic::Mean => Quantiles::Benchmarks,
            HostStatistic::Median | HostStatistic::P99 => Quantiles::All,
        }
    }

    fn wants(self, metric: &str) -> bool {
        self == Quantiles::All || metric.starts_with("bench_")
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Windows {
    pub before: Option<Agg>,
    pub after: Option<Agg>,
}

/// Hours observed and event counts of one host in one window.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exposure {
    #[serde(with = "nan_as_null")]
    pub hours: f64,
    pub events: BTreeMap<String, f64>,
    #[serde(with = "nan_as_null")]
    pub first: f64,
    #[serde(with = "nan_as_null")]
    pub last: f64,
}

/// Host-level data of one file (or several merged), with the counts the report keeps. In
/// JSON, it is what the controllers of several shards exchange for a gate over them all.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct HostCohort {
    /// The group of every host that reported.
    pub group_of: BTreeMap<String, String>,
    /// Metric aggregates per (host, metric); events are in `after`/`before` exposure.
    #[serde(with = "pairs")]
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

/// Runs `lf` on the streaming engine: the scan is read in morsels, never whole.
fn stream(lf: LazyFrame, err: &impl Fn(PolarsError) -> DataError) -> Result<DataFrame, DataError> {
    match lf.collect_with_engine(Engine::Streaming).map_err(err)? {
        QueryResult::Single(df) => Ok(df),
        QueryResult::Multiple(_) => Err(err(PolarsError::ComputeError(
            "the query gave several frames where one was expected".into(),
        ))),
    }
}

/// Aggregates samples (columns host, timestamp, metric, value) per host × metric × window,
/// joined with `groups` (host → group); samples of hosts not in `groups` are counted and
/// left out. Medians and p99s only for the metrics `quantiles` names.
pub fn aggregate(
    samples: LazyFrame,
    groups: &DataFrame,
    split: &Split,
    file: &str,
    quantiles: Quantiles,
) -> Result<HostCohort, DataError> {
    let err = read_err(file);
    let with_split = match split {
        Split::None => samples.with_column(lit(true).alias("after")),
        Split::AllBefore => samples.with_column(lit(false).alias("after")),
        Split::At { hosts, default } => {
            let names: Vec<&str> = hosts.keys().map(String::as_str).collect();
            let times: Vec<f64> = hosts.values().copied().collect();
            let times_df = df!("host" => names, "split_at" => times).map_err(&err)?;
            let fallback = default.unwrap_or(f64::NEG_INFINITY);
            samples
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
    let keys = [col("host"), col("metric"), col("after")];
    let valid = col("value").filter(col("value").is_not_nan());
    // The group is joined onto the host-level rows, not onto every sample.
    let agg = stream(
        with_split
            .clone()
            .group_by(keys.clone())
            .agg([
                len().cast(DataType::Float64).alias("rows"),
                valid.clone().count().cast(DataType::Float64).alias("n"),
                valid.clone().mean().alias("mean"),
                valid.clone().sum().cast(DataType::Float64).alias("sum"),
                col("timestamp").min().alias("first"),
                col("timestamp").max().alias("last"),
            ])
            .join(
                groups.clone().lazy(),
                [col("host")],
                [col("host")],
                JoinArgs::new(JoinType::Left),
            ),
        &err,
    )?;

    let hosts = strs(&agg, "host", file)?;
    let gs = strs(&agg, "group", file)?;
    let ms = strs(&agg, "metric", file)?;
    let bools = |df: &DataFrame, name: &str| -> Result<Vec<Option<bool>>, DataError> {
        let c = df.column(name).map_err(&err)?;
        Ok(c.bool().map_err(&err)?.iter().collect())
    };
    let after = bools(&agg, "after")?;
    let cols: Vec<Vec<Option<f64>>> = ["rows", "n", "mean", "sum", "first", "last"]
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
    let is_event = |m: &str| EVENTS.contains(&m);
    // Medians and p99s, one metric at a time, so no more than one metric's samples are held.
    let wanted: BTreeSet<&str> = ms
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|m| !is_event(m) && quantiles.wants(m))
        .collect();
    let mut quants: BTreeMap<(String, String, bool), (f64, f64)> = BTreeMap::new();
    for m in wanted {
        let q = stream(
            with_split
                .clone()
                .filter(col("metric").eq(lit(m)))
                .group_by(keys.clone())
                .agg([
                    valid.clone().median().alias("median"),
                    valid
                        .clone()
                        .quantile(lit(0.99), QuantileMethod::Linear)
                        .alias("p99"),
                ]),
            &err,
        )?;
        let (qh, qa) = (strs(&q, "host", file)?, bools(&q, "after")?);
        let (med, p99) = (floats(&q, "median", file)?, floats(&q, "p99", file)?);
        for i in 0..q.height() {
            let (Some(Some(h)), Some(Some(a))) = (qh.get(i), qa.get(i)) else {
                continue;
            };
            let get = |c: &[Option<f64>]| c.get(i).copied().flatten().unwrap_or(f64::NAN);
            quants.insert((h.clone(), m.to_string(), *a), (get(&med), get(&p99)));
        }
    }
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
        x.first = x.first.min(v(4, i));
        x.last = x.last.max(v(5, i));
        if is_event(metric) {
            *x.events.entry(metric.clone()).or_default() += v(3, i);
            continue;
        }
        out.nan_samples += rows.saturating_sub(n);
        if n == 0 {
            continue;
        }
        let (median, p99) = quants
            .get(&(host.clone(), metric.clone(), after))
            .copied()
            .unwrap_or((f64::NAN, f64::NAN));
        let a = Agg {
            n,
            mean: v(2, i),
            median,
            p99,
            sum: v(3, i),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Host-level values of a small frame: `(host, metric, timestamp, value)` rows, all in
    /// group `g`, aggregated with `q`; rendered as `host metric after: n mean median p99 sum`.
    fn check(
        rows: &[(&str, &str, f64, f64)],
        split: Split,
        q: Quantiles,
        expect: expect_test::Expect,
    ) {
        let samples = df!(
            "host" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "timestamp" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "metric" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "value" => rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )
        .expect("frame");
        let groups = df!("host" => ["a", "b"], "group" => ["g", "g"]).expect("groups");
        let c = aggregate(samples.lazy(), &groups, &split, "test", q).expect("aggregate");
        let mut out = String::new();
        for ((h, m), w) in &c.values {
            for (after, a) in [(false, w.before), (true, w.after)] {
                if let Some(a) = a {
                    out += &format!(
                        "{h} {m} {after}: {} {} {} {} {}\n",
                        a.n, a.mean, a.median, a.p99, a.sum
                    );
                }
            }
        }
        for (h, x) in &c.after {
            out += &format!("{h} events {:?}\n", x.events);
        }
        out += &format!(
            "samples {} nan {} unknown {} {:?}\n",
            c.samples, c.nan_samples, c.unknown_samples, c.unknown_hosts
        );
        expect.assert_eq(&out);
    }

    const ROWS: &[(&str, &str, f64, f64)] = &[
        ("a", "cpu_util_pct", 0.0, 10.0),
        ("a", "cpu_util_pct", 60.0, 20.0),
        ("a", "cpu_util_pct", 120.0, 60.0),
        ("a", "cpu_util_pct", 180.0, f64::NAN),
        ("a", "bench_disk_read_mbps", 0.0, 500.0),
        ("a", "bench_disk_read_mbps", 60.0, 400.0),
        ("a", "bench_disk_read_mbps", 120.0, 510.0),
        ("a", "unexpected_reboots", 60.0, 1.0),
        ("b", "cpu_util_pct", 0.0, 30.0),
        ("ghost", "cpu_util_pct", 0.0, 1.0),
    ];

    #[test]
    fn medians_and_p99s_only_where_a_test_reads_them() {
        // The mean statistic: benchmark metrics get their median, others only means.
        check(
            ROWS,
            Split::None,
            Quantiles::Benchmarks,
            expect_test::expect![[r#"
                a bench_disk_read_mbps true: 3 470 500 509.8 1410
                a cpu_util_pct true: 3 30 NaN NaN 90
                b cpu_util_pct true: 1 30 NaN NaN 30
                a events {"unexpected_reboots": 1.0}
                b events {}
                samples 9 nan 1 unknown 1 ["ghost"]
            "#]],
        );
        // A median or p99 statistic: every metric.
        check(
            ROWS,
            Split::None,
            Quantiles::All,
            expect_test::expect![[r#"
                a bench_disk_read_mbps true: 3 470 500 509.8 1410
                a cpu_util_pct true: 3 30 20 59.2 90
                b cpu_util_pct true: 1 30 30 30 30
                a events {"unexpected_reboots": 1.0}
                b events {}
                samples 9 nan 1 unknown 1 ["ghost"]
            "#]],
        );
        // Split at a host's update time: its windows before and after.
        let at = Split::At {
            hosts: [("a".to_string(), 100.0)].into_iter().collect(),
            default: None,
        };
        check(
            ROWS,
            at,
            Quantiles::All,
            expect_test::expect![[r#"
                a bench_disk_read_mbps false: 2 450 450 499 900
                a bench_disk_read_mbps true: 1 510 510 510 510
                a cpu_util_pct false: 2 15 15 19.9 30
                a cpu_util_pct true: 1 60 60 60 60
                b cpu_util_pct true: 1 30 30 30 30
                a events {}
                b events {}
                samples 9 nan 1 unknown 1 ["ghost"]
            "#]],
        );
    }
}
