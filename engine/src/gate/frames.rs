//! Metric samples with Polars: scanning CSV or Parquet in long form (`host, timestamp, metric,
//! value`), precomputed baseline summaries, and writing both. With [`super::aggregate`], the
//! only file I/O of the gate path.

use super::aggregate::HostCohort;
use super::EVENTS;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// The columns a sample file must have.
pub const COLUMNS: [&str; 4] = ["host", "timestamp", "metric", "value"];

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read samples `{file}`: {message}")]
    Read { file: String, message: String },
    #[error("samples `{file}` have no column `{column}`; sample files have columns host, timestamp, metric, value")]
    Column { file: String, column: String },
    #[error("samples `{file}`: {message}")]
    Invalid { file: String, message: String },
}

pub(super) fn read_err(file: &str) -> impl Fn(PolarsError) -> DataError + '_ {
    move |e| DataError::Read {
        file: file.to_string(),
        message: e.to_string().lines().next().unwrap_or("").to_string(),
    }
}

/// The columns of a precomputed baseline frame (see [`write_summary`]).
pub const SUMMARY_COLUMNS: [&str; 9] = [
    "group",
    "metric",
    "n",
    "hosts",
    "mean",
    "p50",
    "p90",
    "p99",
    "host_hours",
];

/// A baseline: raw samples, or a precomputed summary per group × metric.
pub enum Baseline {
    Samples(LazyFrame),
    Summary(LazyFrame),
}

/// Opens a baseline file, telling samples from a precomputed summary by its columns.
pub fn scan_baseline(path: &Path) -> Result<Baseline, DataError> {
    let (mut lf, file) = open(path)?;
    let schema = lf.collect_schema().map_err(read_err(&file))?;
    if SUMMARY_COLUMNS.iter().all(|c| schema.get(c).is_some()) {
        let casts: Vec<Expr> = SUMMARY_COLUMNS
            .iter()
            .map(|c| match *c {
                "group" | "metric" => col(*c).cast(DataType::String),
                _ => col(*c).cast(DataType::Float64),
            })
            .collect();
        return Ok(Baseline::Summary(lf.select(casts)));
    }
    scan(path).map(Baseline::Samples)
}

/// A precomputed baseline: a level per group × metric, and event counts with their host-hours.
/// The fallback reference when a gate has no concurrent controls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// (group, metric) → (samples, hosts, mean of the host values).
    pub cells: BTreeMap<(String, String), (f64, f64, f64)>,
    pub events: BTreeMap<(String, String), f64>,
    pub host_hours: BTreeMap<String, f64>,
}

impl Summary {
    /// The baseline's level of a metric in a group.
    pub fn level(&self, group: &str, metric: &str) -> Option<f64> {
        self.cells
            .get(&(group.to_string(), metric.to_string()))
            .map(|c| c.2)
            .filter(|x| x.is_finite())
    }

    /// Event count and host-hours, of one group or of all.
    pub fn events(&self, group: Option<&str>, event: &str) -> (f64, f64) {
        let k = self
            .events
            .iter()
            .filter(|((g, e), _)| e == event && group.is_none_or(|x| x == g))
            .map(|(_, v)| *v)
            .sum();
        let t = self
            .host_hours
            .iter()
            .filter(|(g, _)| group.is_none_or(|x| x == g.as_str()))
            .map(|(_, v)| *v)
            .sum();
        (k, t)
    }

    /// A summary of host-level data: per group × metric the mean of the host means.
    pub fn of(c: &HostCohort) -> Summary {
        let mut out = Summary::default();
        let mut acc: BTreeMap<(String, String), (f64, f64, f64)> = BTreeMap::new();
        for ((h, m), w) in &c.values {
            let (Some(g), Some(a)) = (c.group_of.get(h), w.after.or(w.before)) else {
                continue;
            };
            let e = acc.entry((g.clone(), m.clone())).or_default();
            e.0 += a.n as f64;
            e.1 += 1.0;
            e.2 += a.mean;
        }
        for (k, (n, hosts, sum)) in acc {
            out.cells.insert(k, (n, hosts, sum / hosts));
        }
        for (h, x) in &c.after {
            let Some(g) = c.group_of.get(h) else { continue };
            *out.host_hours.entry(g.clone()).or_default() += x.hours;
            for (e, k) in &x.events {
                *out.events.entry((g.clone(), e.clone())).or_default() += k;
            }
        }
        out
    }
}

/// Reads a precomputed baseline frame.
pub fn read_summary(lf: LazyFrame, file: &str) -> Result<Summary, DataError> {
    let df = lf.collect().map_err(read_err(file))?;
    let (gs, ms) = (strs(&df, "group", file)?, strs(&df, "metric", file)?);
    let cols: Vec<Vec<Option<f64>>> = SUMMARY_COLUMNS[2..]
        .iter()
        .map(|c| floats(&df, c, file))
        .collect::<Result<_, _>>()?;
    let mut out = Summary::default();
    for i in 0..df.height() {
        let (Some(Some(g)), Some(Some(m))) = (gs.get(i), ms.get(i)) else {
            return Err(DataError::Invalid {
                file: file.to_string(),
                message: format!("row {} has no group or metric", i + 1),
            });
        };
        let v = |c: usize| cell(&cols, c, i);
        let (n, hosts, hours) = (v(0), v(1), v(6));
        let count = |x: f64| x.is_finite() && x >= 0.0;
        if !count(n) || !count(hosts) {
            return Err(DataError::Invalid {
                file: file.to_string(),
                message: format!(
                    "row {} (`{g}` `{m}`): `n` and `hosts` must be counts",
                    i + 1
                ),
            });
        }
        if hours > 0.0 {
            let h = out.host_hours.entry(g.clone()).or_default();
            *h = h.max(hours);
        }
        if EVENTS.contains(&m.as_str()) {
            out.events.insert((g.clone(), m.clone()), n);
            continue;
        }
        out.cells.insert((g.clone(), m.clone()), (n, hosts, v(2)));
    }
    Ok(out)
}

/// group, metric, n, hosts, mean, p50, p90, p99, host_hours.
type SummaryRow = (String, String, f64, f64, f64, f64, f64, f64, f64);

/// Writes a cohort's host-level aggregates as a precomputed baseline frame (Parquet or CSV):
/// one row per group × metric (the mean and quantiles of the host means), and one per group ×
/// event with the count in `n`.
pub fn write_summary(c: &HostCohort, path: &Path) -> Result<(), DataError> {
    let file = path.display().to_string();
    let err = read_err(&file);
    let summary = Summary::of(c);
    let mut host_means: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for ((h, m), w) in &c.values {
        if let (Some(g), Some(a)) = (c.group_of.get(h), w.after.or(w.before)) {
            host_means
                .entry((g.clone(), m.clone()))
                .or_default()
                .push(a.mean);
        }
    }
    let q = |k: &(String, String), p: f64| {
        let mut v = host_means.get(k).cloned().unwrap_or_default();
        v.sort_by(f64::total_cmp);
        super::stats::quantile(&v, p).unwrap_or(f64::NAN)
    };
    let mut rows: Vec<SummaryRow> = Vec::new();
    for (k, (n, hosts, mean)) in &summary.cells {
        let hours = summary.host_hours.get(&k.0).copied().unwrap_or(0.0);
        rows.push((
            k.0.clone(),
            k.1.clone(),
            *n,
            *hosts,
            *mean,
            q(k, 0.5),
            q(k, 0.9),
            q(k, 0.99),
            hours,
        ));
    }
    let hosts_of = c.hosts_per_group();
    for ((g, e), n) in &summary.events {
        let hours = summary.host_hours.get(g).copied().unwrap_or(0.0);
        let hosts = hosts_of.get(g.as_str()).copied().unwrap_or(0) as f64;
        rows.push((
            g.clone(),
            e.clone(),
            *n,
            hosts,
            f64::NAN,
            f64::NAN,
            f64::NAN,
            f64::NAN,
            hours,
        ));
    }
    let col_f = |f: fn(&SummaryRow) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
    let mut df = df!(
        "group" => rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        "metric" => rows.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        "n" => col_f(|r| r.2),
        "hosts" => col_f(|r| r.3),
        "mean" => col_f(|r| r.4),
        "p50" => col_f(|r| r.5),
        "p90" => col_f(|r| r.6),
        "p99" => col_f(|r| r.7),
        "host_hours" => col_f(|r| r.8),
    )
    .map_err(&err)?;
    write_df(&mut df, path)
}

fn open(path: &Path) -> Result<(LazyFrame, String), DataError> {
    let file = path.display().to_string();
    if !path.is_file() {
        return Err(DataError::Read {
            file,
            message: "no such file".into(),
        });
    }
    let p = PlRefPath::new(file.as_str());
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let lf = match ext.as_str() {
        "parquet" | "pq" => LazyFrame::scan_parquet(p, ScanArgsParquet::default()),
        "csv" => LazyCsvReader::new(p)
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .finish(),
        other => {
            return Err(DataError::Invalid {
                file,
                message: format!("unknown sample format `.{other}`; use .csv or .parquet"),
            })
        }
    }
    .map_err(read_err(&file))?;
    Ok((lf, file))
}

/// Scans a sample file (`.csv` or `.parquet`), checking its columns and casting them. Values
/// that do not parse as numbers become null and are counted, never guessed.
pub fn scan(path: &Path) -> Result<LazyFrame, DataError> {
    let (mut lf, file) = open(path)?;
    let schema = lf.collect_schema().map_err(read_err(&file))?;
    for c in COLUMNS {
        if schema.get(c).is_none() {
            return Err(DataError::Column {
                file,
                column: c.to_string(),
            });
        }
    }
    Ok(lf.select([
        col("host").cast(DataType::String),
        col("timestamp").cast(DataType::Float64),
        col("metric").cast(DataType::String),
        col("value").cast(DataType::Float64),
    ]))
}

/// The inventory's hosts and groups as a frame, for joining with samples.
pub fn host_groups(hosts: &[(String, String)]) -> Result<DataFrame, DataError> {
    let names: Vec<&str> = hosts.iter().map(|h| h.0.as_str()).collect();
    let groups: Vec<&str> = hosts.iter().map(|h| h.1.as_str()).collect();
    df!("host" => names, "group" => groups).map_err(|e| DataError::Invalid {
        file: "inventory".into(),
        message: e.to_string(),
    })
}

/// Row `i` of float column `c`, NaN when absent.
fn cell(cols: &[Vec<Option<f64>>], c: usize, i: usize) -> f64 {
    cols.get(c)
        .and_then(|x| x.get(i))
        .copied()
        .flatten()
        .unwrap_or(f64::NAN)
}

pub(super) fn strs(
    df: &DataFrame,
    name: &str,
    file: &str,
) -> Result<Vec<Option<String>>, DataError> {
    let c = df.column(name).map_err(read_err(file))?;
    let s = c.str().map_err(read_err(file))?;
    Ok(s.iter().map(|x| x.map(str::to_string)).collect())
}

pub(super) fn floats(
    df: &DataFrame,
    name: &str,
    file: &str,
) -> Result<Vec<Option<f64>>, DataError> {
    let c = df
        .column(name)
        .map_err(read_err(file))?
        .cast(&DataType::Float64)
        .map_err(read_err(file))?;
    let f = c.f64().map_err(read_err(file))?;
    Ok(f.iter().collect())
}

/// Long-form samples as columns of equal length: row `i` is one sample.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub host: &'a [String],
    pub timestamp: &'a [i64],
    pub metric: &'a [&'a str],
    pub value: &'a [f64],
}

/// Writes samples as Parquet or CSV, by the file's extension.
pub fn write(s: Rows<'_>, path: &Path) -> Result<(), DataError> {
    let file = path.display().to_string();
    let err = read_err(&file);
    let mut df = df!(
        "host" => s.host,
        "timestamp" => s.timestamp,
        "metric" => s.metric,
        "value" => s.value,
    )
    .map_err(&err)?;
    write_df(&mut df, path)
}

fn write_df(df: &mut DataFrame, path: &Path) -> Result<(), DataError> {
    let file = path.display().to_string();
    let err = read_err(&file);
    let create = || {
        std::fs::File::create(path).map_err(|e| DataError::Read {
            file: file.clone(),
            message: e.to_string(),
        })
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => ParquetWriter::new(create()?)
            .finish(df)
            .map(|_| ())
            .map_err(&err),
        Some("csv") => CsvWriter::new(create()?).finish(df).map_err(&err),
        _ => Err(DataError::Invalid {
            file: file.clone(),
            message: "write `.parquet` or `.csv`".into(),
        }),
    }
}
