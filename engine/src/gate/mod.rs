//! Gates: the comparison of what updated hosts show with production baselines, and the
//! verdict `gates.rhai` gives on it.
//!
//! Data comes in long form (`host, timestamp, metric, value`). [`frames`] loads it with Polars,
//! joins it with the inventory's groups and aggregates it per group × metric; [`compare`]
//! turns two cohorts (updated and baseline) into a [`Comparison`] with rank tests, shifts,
//! event-rate tests and corrected p-values; `gates.rhai` decides on that.

mod evaluate;
pub mod frames;
pub mod kind;
pub mod render;
pub mod stats;

pub use evaluate::{
    evaluate, gate_files, stage_name, warnings, FileGate, Files, GateError, Groups, Stage,
};

use serde::{Deserialize, Serialize};
use stats::{Alternative, Shift};
use std::collections::{BTreeMap, BTreeSet};

/// Event counters: summed per host, tested as rates per host-hour, never rank-tested.
pub const EVENTS: [&str; 3] = ["unexpected_reboots", "kernel_panics", "app_health_failures"];

/// Samples per side above which the shift and its interval are computed on evenly spaced
/// order statistics of each sample (the U test always uses every sample).
pub const SHIFT_SAMPLE: usize = 4_000;

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
    /// Fewer updated hosts reporting in a group than this is insufficient data.
    pub min_hosts: usize,
    /// Fewer samples on either side than this is insufficient data.
    pub min_samples: usize,
    /// With a plan to compare against, fewer than this share of a group's updated hosts
    /// reporting is insufficient data.
    pub min_reporting: f64,
    /// Confidence level of the shift interval is `1 - alpha`.
    pub alpha: f64,
    pub correction: Correction,
    /// Per-metric direction overrides.
    pub directions: BTreeMap<String, Direction>,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            min_hosts: 3,
            min_samples: 30,
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
            .unwrap_or(Direction::HigherIsWorse)
    }
}

/// Aggregates of one group × metric in one cohort.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub n: usize,
    pub hosts: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Every value, sorted, NaN dropped.
    pub values: Vec<f64>,
}

/// One cohort's data, per group.
#[derive(Debug, Clone, Default)]
pub struct Cohort {
    pub cells: BTreeMap<(String, String), Cell>,
    /// Event totals per group and event.
    pub events: BTreeMap<(String, String), f64>,
    /// Host-hours observed per group.
    pub host_hours: BTreeMap<String, f64>,
    /// Hosts reporting per group.
    pub hosts: BTreeMap<String, usize>,
    pub samples: usize,
    /// Samples whose value was NaN or missing.
    pub nan_samples: usize,
    /// Samples from hosts the inventory does not know (left out), and a few of their names.
    pub unknown_samples: usize,
    pub unknown_hosts: Vec<String>,
}

/// One metric of one group, compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    pub name: String,
    pub direction: Direction,
    pub n: usize,
    pub hosts: usize,
    pub baseline_n: usize,
    pub baseline_hosts: usize,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub baseline_mean: f64,
    pub baseline_p50: f64,
    pub baseline_p90: f64,
    pub baseline_p99: f64,
    /// `mean / baseline_mean`.
    pub ratio: f64,
    /// `(ratio - 1) · 100`, rounded to 0.01.
    pub pct_change: f64,
    /// Two-sided Mann-Whitney U p-value; 1 when the data is insufficient.
    pub p_value: f64,
    /// After the correction for every comparison in this gate.
    pub p_adjusted: f64,
    /// Hodges-Lehmann shift (updated − baseline) and its `1 - alpha` interval.
    pub shift: f64,
    pub shift_low: f64,
    pub shift_high: f64,
    /// The whole interval lies on the bad side of zero.
    pub worse: bool,
    pub insufficient: bool,
    /// Why the data is insufficient, or empty.
    pub reason: String,
}

/// An event counter, compared as rates per host-hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventComparison {
    pub count: u64,
    pub host_hours: f64,
    pub rate: f64,
    pub baseline_count: u64,
    pub baseline_host_hours: f64,
    pub baseline_rate: f64,
    /// Exact conditional test that the updated rate is higher; 1 without exposure.
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupComparison {
    pub name: String,
    pub hardware: String,
    pub workload: String,
    /// Updated hosts reporting, and how many the plan expected (equal without a plan).
    pub hosts: usize,
    pub expected_hosts: usize,
    pub baseline_hosts: usize,
    pub metrics: Vec<MetricComparison>,
    pub events: BTreeMap<String, EventComparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub hosts: usize,
    pub expected_hosts: usize,
    pub samples: usize,
    pub baseline_hosts: usize,
    pub baseline_samples: usize,
    pub nan_samples: usize,
    pub unknown_samples: usize,
    pub comparisons: usize,
    pub insufficient: usize,
    pub correction: Correction,
}

/// What `gates.rhai`'s `gate(w)` receives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub index: usize,
    pub name: String,
    pub groups: Vec<GroupComparison>,
    /// Fleet-wide event comparisons.
    pub events: BTreeMap<String, EventComparison>,
    pub totals: Totals,
}

/// A group's identity and how many updated hosts it should have (from the plan, if any).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    pub hardware: String,
    pub workload: String,
    pub expected_hosts: Option<usize>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Evenly spaced order statistics of a sorted sample, at most `k` of them.
fn thin(sorted: &[f64], k: usize) -> Vec<f64> {
    if sorted.len() <= k || k < 2 {
        return sorted.to_vec();
    }
    (0..k)
        .filter_map(|i| {
            let pos = i * (sorted.len() - 1) / (k - 1);
            sorted.get(pos).copied()
        })
        .collect()
}

fn event_comparison(k1: f64, t1: f64, k0: f64, t0: f64) -> EventComparison {
    let (k1u, k0u) = (k1.max(0.0).round() as u64, k0.max(0.0).round() as u64);
    let rate = |k: u64, t: f64| if t > 0.0 { k as f64 / t } else { 0.0 };
    EventComparison {
        count: k1u,
        host_hours: round2(t1),
        rate: rate(k1u, t1),
        baseline_count: k0u,
        baseline_host_hours: round2(t0),
        baseline_rate: rate(k0u, t0),
        p_value: stats::poisson_rate_greater(k1u, t1, k0u, t0).unwrap_or(1.0),
    }
}

/// Compares an updated cohort with a baseline, per group and metric.
pub fn compare(
    index: usize,
    name: &str,
    groups: &[GroupSpec],
    updated: &Cohort,
    baseline: &Cohort,
    settings: &GateSettings,
) -> Comparison {
    let is_event = |m: &str| EVENTS.contains(&m);
    let mut out_groups = Vec::new();
    let mut pvals: Vec<(usize, usize, f64)> = Vec::new();
    for spec in groups {
        let g = spec.name.as_str();
        let hosts = updated.hosts.get(g).copied().unwrap_or(0);
        let expected = spec.expected_hosts.unwrap_or(hosts);
        let baseline_hosts = baseline.hosts.get(g).copied().unwrap_or(0);
        let metrics: BTreeSet<&str> = updated
            .cells
            .keys()
            .chain(baseline.cells.keys())
            .filter(|(gg, m)| gg == g && !is_event(m))
            .map(|(_, m)| m.as_str())
            .collect();
        let reporting_floor = (settings.min_reporting * expected as f64).ceil() as usize;
        let mut ms = Vec::new();
        for m in metrics {
            let key = (g.to_string(), m.to_string());
            let empty = Cell::default();
            let u = updated.cells.get(&key).unwrap_or(&empty);
            let b = baseline.cells.get(&key).unwrap_or(&empty);
            let mut reasons = Vec::new();
            if spec.expected_hosts.is_some()
                && (u.hosts < settings.min_hosts.min(expected) || u.hosts < reporting_floor)
            {
                reasons.push(format!(
                    "{} of {} updated hosts reporting",
                    u.hosts, expected
                ));
            } else if spec.expected_hosts.is_none() && u.hosts < settings.min_hosts {
                reasons.push(format!(
                    "{} updated host(s) reporting (need {})",
                    u.hosts, settings.min_hosts
                ));
            }
            if u.n < settings.min_samples {
                reasons.push(format!(
                    "{} updated samples (need {})",
                    u.n, settings.min_samples
                ));
            }
            if b.n < settings.min_samples {
                reasons.push(format!(
                    "{} baseline samples (need {})",
                    b.n, settings.min_samples
                ));
            }
            let direction = settings.direction(m);
            let ratio = if b.mean != 0.0 && b.n > 0 && u.n > 0 {
                u.mean / b.mean
            } else {
                f64::NAN
            };
            let mut c = MetricComparison {
                name: m.to_string(),
                direction,
                n: u.n,
                hosts: u.hosts,
                baseline_n: b.n,
                baseline_hosts: b.hosts,
                mean: u.mean,
                p50: u.p50,
                p90: u.p90,
                p99: u.p99,
                baseline_mean: b.mean,
                baseline_p50: b.p50,
                baseline_p90: b.p90,
                baseline_p99: b.p99,
                ratio,
                pct_change: round2((ratio - 1.0) * 100.0),
                p_value: 1.0,
                p_adjusted: 1.0,
                shift: 0.0,
                shift_low: 0.0,
                shift_high: 0.0,
                worse: false,
                insufficient: !reasons.is_empty(),
                reason: reasons.join("; "),
            };
            if !c.insufficient && b.values.is_empty() {
                // A precomputed baseline has no values: a sign test against its median, and
                // the shift of the updated median with the median's order-statistic interval.
                if let Some(t) = stats::sign_test(&u.values, b.p50) {
                    c.p_value = t.p_value;
                    c.shift = t.shift;
                    c.shift_low = t.low;
                    c.shift_high = t.high;
                    c.worse = match direction {
                        Direction::HigherIsWorse => t.low > 0.0,
                        Direction::LowerIsWorse => t.high < 0.0,
                    };
                }
                pvals.push((out_groups.len(), ms.len(), c.p_value));
            } else if !c.insufficient {
                if let Some(t) = stats::mann_whitney(&u.values, &b.values, Alternative::TwoSided) {
                    c.p_value = t.p_value;
                }
                let (tu, tb) = (thin(&u.values, SHIFT_SAMPLE), thin(&b.values, SHIFT_SAMPLE));
                if let Some(Shift {
                    estimate,
                    low,
                    high,
                }) = stats::hodges_lehmann(&tu, &tb, settings.alpha)
                {
                    c.shift = estimate;
                    c.shift_low = low;
                    c.shift_high = high;
                    c.worse = match direction {
                        Direction::HigherIsWorse => low > 0.0,
                        Direction::LowerIsWorse => high < 0.0,
                    };
                }
                pvals.push((out_groups.len(), ms.len(), c.p_value));
            }
            ms.push(c);
        }
        let mut events = BTreeMap::new();
        for e in EVENTS {
            let key = (g.to_string(), e.to_string());
            events.insert(
                e.to_string(),
                event_comparison(
                    updated.events.get(&key).copied().unwrap_or(0.0),
                    updated.host_hours.get(g).copied().unwrap_or(0.0),
                    baseline.events.get(&key).copied().unwrap_or(0.0),
                    baseline.host_hours.get(g).copied().unwrap_or(0.0),
                ),
            );
        }
        out_groups.push(GroupComparison {
            name: spec.name.clone(),
            hardware: spec.hardware.clone(),
            workload: spec.workload.clone(),
            hosts,
            expected_hosts: expected,
            baseline_hosts,
            metrics: ms,
            events,
        });
    }
    // Correct every p-value of this gate together.
    let raw: Vec<f64> = pvals.iter().map(|p| p.2).collect();
    let adjusted = match settings.correction {
        Correction::Bh => stats::benjamini_hochberg(&raw),
        Correction::Holm => stats::holm(&raw),
        Correction::None => raw.clone(),
    };
    for ((gi, mi, _), adj) in pvals.iter().zip(adjusted) {
        if let Some(m) = out_groups.get_mut(*gi).and_then(|g| g.metrics.get_mut(*mi)) {
            m.p_adjusted = adj;
        }
    }
    // Fleet-wide events.
    let total = |c: &Cohort, e: &str| {
        c.events
            .iter()
            .filter(|((_, ev), _)| ev == e)
            .map(|(_, v)| *v)
            .sum::<f64>()
    };
    let hours = |c: &Cohort| c.host_hours.values().sum::<f64>();
    let events = EVENTS
        .iter()
        .map(|e| {
            (
                e.to_string(),
                event_comparison(
                    total(updated, e),
                    hours(updated),
                    total(baseline, e),
                    hours(baseline),
                ),
            )
        })
        .collect();
    let insufficient = out_groups
        .iter()
        .flat_map(|g| &g.metrics)
        .filter(|m| m.insufficient)
        .count();
    Comparison {
        index,
        name: name.to_string(),
        totals: Totals {
            hosts: out_groups.iter().map(|g| g.hosts).sum(),
            expected_hosts: out_groups.iter().map(|g| g.expected_hosts).sum(),
            samples: updated.samples,
            baseline_hosts: baseline.hosts.values().sum(),
            baseline_samples: baseline.samples,
            nan_samples: updated.nan_samples + baseline.nan_samples,
            unknown_samples: updated.unknown_samples + baseline.unknown_samples,
            comparisons: pvals.len(),
            insufficient,
            correction: settings.correction,
        },
        groups: out_groups,
        events,
    }
}

/// `[gates]` in `fleetward.toml`: sample floors, significance, correction.
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
