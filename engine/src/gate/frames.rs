//! Metric samples with Polars: scanning CSV or Parquet in long form (`host, timestamp, metric,
//! value`), joining with the inventory's groups, and aggregating a cohort per group × metric.
//! The only file reading of the gate path.

use super::{Cell, Cohort, EVENTS};
use polars::prelude::*;
use std::path::Path;

/// The columns a sample file must have.
pub const COLUMNS: [&str; 4] = ["host", "timestamp", "metric", "value"];

/// Seconds a host counts as observed when it reported only once.
const MIN_SPAN_SECS: f64 = 60.0;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read samples `{file}`: {message}")]
    Read { file: String, message: String },
    #[error("samples `{file}` have no column `{column}`; sample files have columns host, timestamp, metric, value")]
    Column { file: String, column: String },
    #[error("samples `{file}`: {message}")]
    Invalid { file: String, message: String },
}

fn read_err(file: &str) -> impl Fn(PolarsError) -> DataError + '_ {
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

/// Reads a precomputed baseline frame into a cohort: aggregates without values, so the
/// comparison uses sign tests against the baseline median instead of rank tests.
pub fn summary_cohort(lf: LazyFrame, file: &str) -> Result<Cohort, DataError> {
    let df = lf.collect().map_err(read_err(file))?;
    let (gs, ms) = (strs(&df, "group", file)?, strs(&df, "metric", file)?);
    let cols: Vec<Vec<Option<f64>>> = SUMMARY_COLUMNS[2..]
        .iter()
        .map(|c| floats(&df, c, file))
        .collect::<Result<_, _>>()?;
    let mut out = Cohort::default();
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
        let e = out.hosts.entry(g.clone()).or_default();
        *e = (*e).max(hosts as usize);
        if EVENTS.contains(&m.as_str()) {
            out.events.insert((g.clone(), m.clone()), n);
            continue;
        }
        out.samples += n as usize;
        out.cells.insert(
            (g.clone(), m.clone()),
            Cell {
                n: n as usize,
                hosts: hosts as usize,
                mean: v(2),
                p50: v(3),
                p90: v(4),
                p99: v(5),
                values: Vec::new(),
            },
        );
    }
    Ok(out)
}

/// group, metric, n, hosts, mean, p50, p90, p99, host_hours.
type SummaryRow = (String, String, f64, f64, f64, f64, f64, f64, f64);

/// Writes a cohort's aggregates as a precomputed baseline frame (Parquet or CSV): one row per
/// group × metric, and one per group × event with the count in `n`.
pub fn write_summary(c: &Cohort, path: &Path) -> Result<(), DataError> {
    let file = path.display().to_string();
    let err = read_err(&file);
    let mut rows: Vec<SummaryRow> = Vec::new();
    for ((g, m), cell) in &c.cells {
        let hours = c.host_hours.get(g).copied().unwrap_or(0.0);
        rows.push((
            g.clone(),
            m.clone(),
            cell.n as f64,
            cell.hosts as f64,
            cell.mean,
            cell.p50,
            cell.p90,
            cell.p99,
            hours,
        ));
    }
    for ((g, e), n) in &c.events {
        let hours = c.host_hours.get(g).copied().unwrap_or(0.0);
        let hosts = c.hosts.get(g).copied().unwrap_or(0) as f64;
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

fn strs(df: &DataFrame, name: &str, file: &str) -> Result<Vec<Option<String>>, DataError> {
    let c = df.column(name).map_err(read_err(file))?;
    let s = c.str().map_err(read_err(file))?;
    Ok(s.iter().map(|x| x.map(str::to_string)).collect())
}

fn floats(df: &DataFrame, name: &str, file: &str) -> Result<Vec<Option<f64>>, DataError> {
    let c = df
        .column(name)
        .map_err(read_err(file))?
        .cast(&DataType::Float64)
        .map_err(read_err(file))?;
    let f = c.f64().map_err(read_err(file))?;
    Ok(f.iter().collect())
}

/// Aggregates one cohort: samples joined with `groups` (host → group); samples of hosts not in
/// `groups` are counted and left out.
pub fn cohort(samples: LazyFrame, groups: &DataFrame, file: &str) -> Result<Cohort, DataError> {
    let err = read_err(file);
    let joined = samples
        .join(
            groups.clone().lazy(),
            [col("host")],
            [col("host")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()
        .map_err(&err)?;
    let mut out = Cohort {
        samples: joined.height(),
        ..Cohort::default()
    };

    // Samples from hosts the cohort does not know.
    let unknown = joined
        .clone()
        .lazy()
        .filter(col("group").is_null())
        .group_by([col("host")])
        .agg([col("value").count().alias("n")])
        .sort_by_exprs([col("host")], SortMultipleOptions::default())
        .collect()
        .map_err(&err)?;
    let unknown_n = floats(&unknown, "n", file)?;
    out.unknown_samples = unknown_n.iter().flatten().sum::<f64>() as usize;
    out.unknown_hosts = strs(&unknown, "host", file)?
        .into_iter()
        .flatten()
        .take(5)
        .collect();
    out.samples -= out.unknown_samples;

    let known = joined.lazy().filter(col("group").is_not_null());
    let is_event = EVENTS
        .iter()
        .map(|e| col("metric").eq(lit(*e)))
        .reduce(|a, b| a.or(b))
        .unwrap_or(lit(false));

    // Hosts reporting and host-hours observed, per group.
    let spans = known
        .clone()
        .group_by([col("group"), col("host")])
        .agg([(col("timestamp").max() - col("timestamp").min()).alias("span")])
        .group_by([col("group")])
        .agg([
            col("host").count().alias("hosts"),
            when(col("span").lt(lit(MIN_SPAN_SECS)))
                .then(lit(MIN_SPAN_SECS))
                .otherwise(col("span"))
                .sum()
                .alias("seconds"),
        ])
        .collect()
        .map_err(&err)?;
    for ((g, h), s) in strs(&spans, "group", file)?
        .into_iter()
        .zip(floats(&spans, "hosts", file)?)
        .zip(floats(&spans, "seconds", file)?)
    {
        if let Some(g) = g {
            out.hosts.insert(g.clone(), h.unwrap_or(0.0) as usize);
            out.host_hours.insert(g, s.unwrap_or(0.0) / 3600.0);
        }
    }

    // Event totals.
    let events = known
        .clone()
        .filter(is_event.clone())
        .group_by([col("group"), col("metric")])
        .agg([col("value").sum().alias("count")])
        .collect()
        .map_err(&err)?;
    for ((g, m), c) in strs(&events, "group", file)?
        .into_iter()
        .zip(strs(&events, "metric", file)?)
        .zip(floats(&events, "count", file)?)
    {
        if let (Some(g), Some(m)) = (g, m) {
            out.events.insert((g, m), c.unwrap_or(0.0));
        }
    }

    // Metrics: NaN and unparsable values are counted and dropped.
    let metrics = known.filter(is_event.not());
    let bad = metrics
        .clone()
        .filter(col("value").is_null().or(col("value").is_nan()))
        .select([len().alias("n")])
        .collect()
        .map_err(&err)?;
    out.nan_samples = floats(&bad, "n", file)?
        .first()
        .copied()
        .flatten()
        .unwrap_or(0.0) as usize;
    let good = metrics.filter(col("value").is_not_null().and(col("value").is_not_nan()));
    let agg = good
        .clone()
        .group_by([col("group"), col("metric")])
        .agg([
            col("value").count().alias("n"),
            col("host").n_unique().alias("hosts"),
            col("value").mean().alias("mean"),
            col("value")
                .quantile(lit(0.5), QuantileMethod::Linear)
                .alias("p50"),
            col("value")
                .quantile(lit(0.9), QuantileMethod::Linear)
                .alias("p90"),
            col("value")
                .quantile(lit(0.99), QuantileMethod::Linear)
                .alias("p99"),
        ])
        .collect()
        .map_err(&err)?;
    let (gs, ms) = (strs(&agg, "group", file)?, strs(&agg, "metric", file)?);
    let cols: Vec<Vec<Option<f64>>> = ["n", "hosts", "mean", "p50", "p90", "p99"]
        .iter()
        .map(|c| floats(&agg, c, file))
        .collect::<Result<_, _>>()?;
    for i in 0..agg.height() {
        let (Some(Some(g)), Some(Some(m))) = (gs.get(i), ms.get(i)) else {
            continue;
        };
        let v = |c: usize| cell(&cols, c, i);
        out.cells.insert(
            (g.clone(), m.clone()),
            Cell {
                n: v(0) as usize,
                hosts: v(1) as usize,
                mean: v(2),
                p50: v(3),
                p90: v(4),
                p99: v(5),
                values: Vec::new(),
            },
        );
    }

    // Every value, sorted within its group × metric, for the rank tests: one sort per cell,
    // in parallel, rather than one sort of every sample by string keys.
    let lists = good
        .group_by([col("group"), col("metric")])
        .agg([col("value").sort(SortOptions::default()).alias("values")])
        .collect()
        .map_err(&err)?;
    let (gs, ms) = (strs(&lists, "group", file)?, strs(&lists, "metric", file)?);
    let values = lists
        .column("values")
        .map_err(&err)?
        .list()
        .map_err(&err)?
        .clone();
    for (i, (g, m)) in gs.into_iter().zip(ms).enumerate() {
        let (Some(g), Some(m), Some(list)) = (g, m, values.get_as_series(i)) else {
            continue;
        };
        let v: Vec<f64> = list.f64().map_err(&err)?.iter().flatten().collect();
        if let Some(c) = out.cells.get_mut(&(g, m)) {
            c.values = v;
        }
    }
    Ok(out)
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
