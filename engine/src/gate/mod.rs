//! Gates: the comparison of what updated hosts show with concurrent controls (or a static
//! baseline), and the verdict `gates.rhai` gives on it.
//!
//! Data comes in long form (`host, timestamp, metric, value`). [`frames`] scans it with
//! Polars and [`aggregate`] reduces it to one value per host × metric × window (before or
//! after the host's update); [`compare`] tests host-level values (difference in differences
//! against the controls) per group and pooled per hardware class, workload and fleet, with
//! [`hosts`]' estimator and one correction; `gates.rhai` decides on that.

pub mod aggregate;
mod compare;
mod evaluate;
pub mod frames;
pub mod hosts;
pub mod judged;
pub mod kind;
pub mod render;
pub mod report;
pub mod sizing;
pub mod stats;

pub use aggregate::{HostCohort, Quantiles, Split};
pub use compare::{
    compare, Comparison, EventComparison, GroupComparison, GroupSpec, LevelComparison, Method,
    MetricComparison, Point, Reference, Totals,
};
pub use evaluate::{
    evaluate, gate_files, parse_time, read_updates, report, stage_name, warnings, Baseline,
    FileGate, Files, GateError, Groups, Stage,
};
pub use frames::Summary;
pub use judged::{approval_summary, judged, GroupJudgement, GroupStatus};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Event counters: summed per host, tested as rates per host-hour, never rank-tested.
/// `kernel_panics` counts panics, oopses and `BUG:`s; `kernel_errors` soft lockups, hung
/// tasks, machine checks and I/O errors (see [`crate::signals::KLOG_CLASSES`]).
pub const EVENTS: [&str; 4] = [
    "unexpected_reboots",
    "kernel_panics",
    "kernel_errors",
    "app_health_failures",
];

/// Which direction of change is bad for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    HigherIsWorse,
    LowerIsWorse,
}

/// The standard metrics and which way is bad. Any other metric in the data is compared too,
/// as higher-is-worse unless `[gates.directions]` says otherwise.
pub const STANDARD_METRICS: [(&str, Direction); 6] = [
    ("cpu_util_pct", Direction::HigherIsWorse),
    ("mem_used_pct", Direction::HigherIsWorse),
    ("io_latency_p50_ms", Direction::HigherIsWorse),
    ("io_latency_p99_ms", Direction::HigherIsWorse),
    ("net_throughput_mbps", Direction::LowerIsWorse),
    ("app_error_rate", Direction::HigherIsWorse),
];

/// Metrics named with this prefix are benchmarks (see [`crate::rollout::bench`]): each host
/// ran the same fixed workload before and after its update, so each is compared with itself
/// ([`Method::Paired`]), with no controls. They are rates, lower is worse, except latencies
/// (named with [`PAIRED_LATENCY_SUFFIX`]), unless `[gates.directions]` says otherwise.
pub const PAIRED_PREFIX: &str = "bench_";

/// A paired metric named with this suffix is a latency in microseconds: higher is worse.
pub const PAIRED_LATENCY_SUFFIX: &str = "_us";

/// Whether `metric` is a paired benchmark metric.
pub fn paired(metric: &str) -> bool {
    metric.starts_with(PAIRED_PREFIX)
}

/// What one host's samples in a window are reduced to before any test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatistic {
    Mean,
    Median,
    P99,
}

/// How multiple comparisons are corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Benjamini-Hochberg: controls the false discovery rate. The default: a gate makes many
    /// comparisons (groups × metrics) and a false pause costs hours, not an outage.
    Bh,
    /// Holm: controls the family-wise error rate; more conservative.
    Holm,
    None,
}

/// `[gates]` in `fleetward.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateSettings {
    /// Fewer updated hosts with data in a test than this is insufficient data for a pooled
    /// level, or for a group without a plan; a planned group of any size is tested on its own,
    /// its residual variance moderated by the spread of the gate's groups
    /// (`pooled_variance`), and a pooled level with fewer is left to the levels above it.
    pub min_hosts: usize,
    /// Fewer control hosts with data in a test than this is insufficient data.
    pub min_controls: usize,
    /// A host's window with fewer samples than this leaves the host out of a test.
    pub min_host_samples: usize,
    /// What one host's window is reduced to.
    pub host_statistic: HostStatistic,
    /// The power at which the minimum detectable effect is reported.
    pub power: f64,
    /// With a plan to compare against, fewer than this share of a group's updated hosts
    /// reporting is insufficient data.
    pub min_reporting: f64,
    /// Confidence level of the effect interval is `1 - alpha`.
    pub alpha: f64,
    pub correction: Correction,
    /// Per-metric direction overrides.
    pub directions: BTreeMap<String, Direction>,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            min_hosts: 3,
            min_controls: 3,
            min_host_samples: 3,
            host_statistic: HostStatistic::Mean,
            power: 0.8,
            min_reporting: 0.5,
            alpha: 0.05,
            correction: Correction::Bh,
            directions: BTreeMap::new(),
        }
    }
}

impl Correction {
    pub fn describe(self) -> &'static str {
        match self {
            Correction::Bh => "Benjamini-Hochberg",
            Correction::Holm => "Holm",
            Correction::None => "no",
        }
    }
}

impl GateSettings {
    pub fn direction(&self, metric: &str) -> Direction {
        self.directions
            .get(metric)
            .copied()
            .or_else(|| {
                STANDARD_METRICS
                    .iter()
                    .find(|(m, _)| *m == metric)
                    .map(|(_, d)| *d)
            })
            .unwrap_or(
                if paired(metric) && !metric.ends_with(PAIRED_LATENCY_SUFFIX) {
                    Direction::LowerIsWorse
                } else {
                    Direction::HigherIsWorse
                },
            )
    }
}

/// `[gates]` in `fleetward.toml`: host floors, significance, power, correction.
pub const SECTION: crate::config::SectionSpec = crate::config::SectionSpec {
    name: "gates",
    parse: |text| {
        #[derive(Deserialize)]
        struct Only {
            #[serde(default)]
            gates: GateSettings,
        }
        Ok(std::sync::Arc::new(
            crate::config::section_of::<Only>(text)?.gates,
        ))
    },
};

impl crate::runtime::PolicySet {
    /// `[gates]` in `fleetward.toml`.
    pub fn gate_settings(&self) -> &GateSettings {
        static DEFAULT: std::sync::OnceLock<GateSettings> = std::sync::OnceLock::new();
        self.section::<GateSettings>(SECTION.name)
            .unwrap_or_else(|| DEFAULT.get_or_init(GateSettings::default))
    }
}

#[cfg(test)]
mod tests;
