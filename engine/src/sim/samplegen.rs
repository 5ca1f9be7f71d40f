//! Deterministic metric samples for the example fleet: a baseline and four wave scenarios,
//! in the long form gates read (`host, timestamp, metric, value`).

use crate::gate::STANDARD_METRICS;
use crate::model::Host;
use crate::plan::{keyed_hash, splitmix64_finish, SPLITMIX64_GAMMA};
use std::collections::BTreeMap;

/// The wave scenarios of `policy-examples/gates/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Production hosts not being updated.
    Baseline,
    /// An updated wave that behaves like production.
    Clean,
    /// +8% `io_latency_p99_ms` on hardware `r750` only.
    IoRegression,
    /// Three unexpected reboots in `c6420/db`.
    Reboots,
    /// `r640/web` with only one of its updated hosts reporting.
    SparseGroup,
}

impl Scenario {
    pub fn from_name(s: &str) -> Option<Scenario> {
        Some(match s {
            "baseline" => Scenario::Baseline,
            "clean" => Scenario::Clean,
            "io-regression" => Scenario::IoRegression,
            "reboots" => Scenario::Reboots,
            "sparse-group" => Scenario::SparseGroup,
            _ => return None,
        })
    }
}

/// The hardware whose I/O regresses in [`Scenario::IoRegression`].
pub const REGRESSED_HARDWARE: &str = "r750";
/// The group that reboots in [`Scenario::Reboots`].
pub const REBOOT_GROUP: &str = "c6420/db";
/// The group that stops reporting in [`Scenario::SparseGroup`].
pub const SPARSE_GROUP: &str = "r640/web";

/// Long-form samples, column by column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    pub host: Vec<String>,
    pub timestamp: Vec<i64>,
    pub metric: Vec<&'static str>,
    pub value: Vec<f64>,
}

impl Samples {
    /// The samples as rows for [`frames::write`](crate::gate::frames::write).
    pub fn rows(&self) -> crate::gate::frames::Rows<'_> {
        crate::gate::frames::Rows {
            host: &self.host,
            timestamp: &self.timestamp,
            metric: &self.metric,
            value: &self.value,
        }
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    fn push(&mut self, host: &str, ts: i64, metric: &'static str, value: f64) {
        self.host.push(host.to_string());
        self.timestamp.push(ts);
        self.metric.push(metric);
        self.value.push(value);
    }
}

/// The updated cohort of the example wave and the production hosts around it: per
/// hardware × workload group with at least 6 hosts, `max(3, ceil(5%))` hosts are updated.
pub fn cohorts(hosts: &[Host]) -> (Vec<&Host>, Vec<&Host>) {
    let mut groups: BTreeMap<(String, String), Vec<&Host>> = BTreeMap::new();
    for h in hosts {
        groups
            .entry((h.hardware.clone(), h.workload.clone()))
            .or_default()
            .push(h);
    }
    let (mut updated, mut baseline) = (Vec::new(), Vec::new());
    for (_, mut members) in groups {
        members.sort_by_key(|h| (keyed_hash(0x5eed, &h.name), h.name.clone()));
        let n = members.len();
        let take = if n >= 6 {
            3usize.max(n.div_ceil(20))
        } else {
            0
        };
        for (i, h) in members.into_iter().enumerate() {
            if i < take {
                updated.push(h);
            } else {
                baseline.push(h);
            }
        }
    }
    (updated, baseline)
}

fn mix(z: u64) -> u64 {
    splitmix64_finish(z.wrapping_add(SPLITMIX64_GAMMA))
}

/// A standard normal draw keyed by `key` (Box-Muller over two splitmix64 outputs), so values
/// do not depend on a crate's generator.
pub fn normal(key: u64) -> f64 {
    let u1 = ((mix(key) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (mix(key ^ 0x5555_5555_5555_5555) >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The typical level of a metric for a hardware × workload group.
pub fn level(metric: &str, hardware: &str, workload: &str) -> f64 {
    let f = 0.75
        + 0.5
            * ((keyed_hash(7, &format!("{hardware}/{workload}/{metric}")) % 1000) as f64 / 1000.0);
    let base = match metric {
        "cpu_util_pct" => 40.0,
        "mem_used_pct" => 60.0,
        "io_latency_p50_ms" => 1.2,
        "io_latency_p99_ms" => 12.0,
        "net_throughput_mbps" => 900.0,
        "app_error_rate" => 0.004,
        _ => 1.0,
    };
    base * f
}

/// The typical benchmark result (`bench_*`) of a hardware class.
pub fn bench_level(metric: &str, hardware: &str) -> f64 {
    let f = 0.7 + 0.6 * ((keyed_hash(11, &format!("{hardware}/{metric}")) % 1000) as f64 / 1000.0);
    let base = match metric {
        "bench_cpu_sha256_mbps" => 1800.0,
        "bench_mem_fill_mbps" => 20_000.0,
        "bench_disk_write_mbps" => 1500.0,
        "bench_disk_read_mbps" => 1200.0,
        "bench_net_mbps" => 9400.0,
        "bench_disk_randread_p50_us" => 90.0,
        "bench_disk_randread_p99_us" => 400.0,
        _ => 100.0,
    };
    base * f
}

/// How benchmark results vary on drained bare-metal hosts: each host has its own level (15%),
/// one run differs from another by the host's state at the time ([`bench_run_noise`], shared by
/// the run's repetitions), repetitions differ by [`bench_rep_noise`], and one repetition in
/// twenty is slowed by a third (a background job).
pub const BENCH_HOST_SPREAD: f64 = 0.15;
pub const BENCH_OUTLIERS: f64 = 0.05;

/// The run-to-run noise of a benchmark metric: 1% CPU, 2% memory, 3% disk and network.
pub fn bench_run_noise(metric: &str) -> f64 {
    match metric {
        "bench_cpu_sha256_mbps" => 0.01,
        "bench_mem_fill_mbps" => 0.02,
        _ => 0.03,
    }
}

/// The noise of one repetition: 1% CPU, 3% memory, 4% disk throughput and median latency,
/// 5% network, 8% disk p99 latency.
pub fn bench_rep_noise(metric: &str) -> f64 {
    match metric {
        "bench_cpu_sha256_mbps" => 0.01,
        "bench_mem_fill_mbps" => 0.03,
        "bench_net_mbps" => 0.05,
        "bench_disk_randread_p99_us" => 0.08,
        _ => 0.04,
    }
}

/// One repetition of a benchmark on one host: `run` keys the run (the host's boot, say), `rep`
/// the repetition; `factor` is what the kernel does to it.
pub fn bench_value(
    host: &str,
    hardware: &str,
    metric: &str,
    run: u64,
    rep: u32,
    factor: f64,
) -> f64 {
    let key = |what: &str| keyed_hash(run, &format!("{host}/{metric}/{what}"));
    let own = (1.0 + BENCH_HOST_SPREAD * normal(keyed_hash(0xbe4c, &format!("{host}/{metric}"))))
        .max(0.2);
    let session = 1.0 + bench_run_noise(metric) * normal(key("run"));
    let r = 1.0 + bench_rep_noise(metric) * normal(key(&format!("rep{rep}")));
    // An outlier repetition is a slow one: a third less throughput, half again the latency.
    let outlier = if (key(&format!("out{rep}")) % 1000) < (BENCH_OUTLIERS * 1000.0) as u64 {
        if metric.ends_with(crate::gate::PAIRED_LATENCY_SUFFIX) {
            1.5
        } else {
            0.67
        }
    } else {
        1.0
    };
    (bench_level(metric, hardware) * own * session * r * outlier * factor).max(1e-3)
}

/// How simulated metrics vary, as production metrics do: each host has its own level, traffic
/// swings through the day, a slower wobble per group, and noise per sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Variation {
    /// Standard deviation of a host's level around its group's, as a fraction.
    pub host_spread: f64,
    /// Amplitude of the daily swing (peak at 20:00 UTC), as a fraction.
    pub daily_swing: f64,
    /// Amplitude of an hourly wobble whose phase differs per group.
    pub wobble: f64,
    /// Standard deviation of one sample's noise, as a fraction.
    pub noise: f64,
}

impl Default for Variation {
    fn default() -> Self {
        Variation::FLEET
    }
}

impl Variation {
    /// A production-like fleet: 10% host spread, ±25% over the day, 3% wobble, 8% noise.
    pub const FLEET: Variation = Variation {
        host_spread: 0.10,
        daily_swing: 0.25,
        wobble: 0.03,
        noise: 0.08,
    };

    /// A host's own level factor for a metric (keyed, so it is the same in every run).
    pub fn host_factor(&self, host: &str, metric: &str) -> f64 {
        (1.0 + self.host_spread * normal(keyed_hash(0x4057, &format!("{host}/{metric}")))).max(0.2)
    }

    /// The time-of-day factor at `ts` (epoch seconds) for a group.
    pub fn time_factor(&self, group: &str, ts: i64) -> f64 {
        use std::f64::consts::TAU;
        let day = ((ts - 20 * 3600).rem_euclid(86_400)) as f64 / 86_400.0;
        let phase = (keyed_hash(0x9a5e, group) % 1000) as f64 / 1000.0;
        let hour = (ts.rem_euclid(3600)) as f64 / 3600.0;
        (1.0 + self.daily_swing * (TAU * day).cos())
            * (1.0 + self.wobble * (TAU * (hour + phase)).sin())
    }

    /// One sample: `base` × host × time × noise (drawn from `key`), never negative, and
    /// percentages never over 100.
    pub fn sample(&self, metric: &str, base: f64, host: f64, time: f64, key: u64) -> f64 {
        let v = (base * host * time * (1.0 + self.noise * normal(key))).max(0.0);
        if metric.ends_with("_pct") {
            v.min(100.0)
        } else {
            v
        }
    }
}

/// Generates `timestamps` samples per host and standard metric (every 5 minutes from
/// `start`), with 8% multiplicative noise, plus the scenario's changes.
pub fn generate(hosts: &[&Host], scenario: Scenario, timestamps: usize, start: i64) -> Samples {
    generate_metrics(hosts, scenario, timestamps, start, STANDARD_METRICS.len())
}

/// [`generate`] with only the first `metrics` standard metrics.
pub fn generate_metrics(
    hosts: &[&Host],
    scenario: Scenario,
    timestamps: usize,
    start: i64,
    metrics: usize,
) -> Samples {
    let mut s = Samples::default();
    let cap = hosts.len() * timestamps * metrics;
    s.host.reserve(cap);
    s.timestamp.reserve(cap);
    s.metric.reserve(cap);
    s.value.reserve(cap);
    let mut reboots = 0;
    let mut sparse_seen = 0;
    for h in hosts {
        let group = h.group_name();
        if scenario == Scenario::SparseGroup && group == SPARSE_GROUP {
            sparse_seen += 1;
            if sparse_seen > 1 {
                continue;
            }
        }
        let levels: Vec<(&'static str, f64, u64)> = STANDARD_METRICS
            .iter()
            .take(metrics)
            .map(|(m, _)| {
                (
                    *m,
                    level(m, &h.hardware, &h.workload),
                    keyed_hash(11, &format!("{}/{m}", h.name)),
                )
            })
            .collect();
        for t in 0..timestamps {
            let ts = start + 300 * t as i64;
            for &(metric, base, key) in &levels {
                let mut v = base * (1.0 + 0.08 * normal(key ^ mix(t as u64)));
                if scenario == Scenario::IoRegression
                    && metric == "io_latency_p99_ms"
                    && h.hardware == REGRESSED_HARDWARE
                {
                    v *= 1.08;
                }
                s.push(&h.name, ts, metric, (v.max(0.0) * 1e4).round() / 1e4);
            }
        }
        if scenario == Scenario::Reboots && group == REBOOT_GROUP && reboots < 3 {
            reboots += 1;
            s.push(&h.name, start + 600 * reboots, "unexpected_reboots", 1.0);
        }
    }
    s
}

/// A host's drifting level factor in drift period `period` (the hours since the start over
/// [`DRIFT_PERIOD_SECS`]): log-normal with standard deviation `drift / √2`, drawn anew each
/// period, so a host's level changes between consecutive periods with standard deviation
/// `drift`, kernel or not.
pub fn drift_factor(seed: u64, host: &str, metric: &str, period: i64, drift: f64) -> f64 {
    let sd = drift / std::f64::consts::SQRT_2;
    if sd <= 0.0 {
        return 1.0;
    }
    let key = keyed_hash(
        (seed ^ 0xd41f_7000).wrapping_add((period as u64).wrapping_mul(SPLITMIX64_GAMMA)),
        &format!("{host}/{metric}"),
    );
    (sd * normal(key)).exp()
}

/// How often a host's drifting level is redrawn ([`drift_factor`]).
pub const DRIFT_PERIOD_SECS: i64 = 4 * 3600;

/// Multiplies every sample by its host's [`drift_factor`], periods counted from the first
/// sample: a baseline whose history shows how far hosts wander.
pub fn add_drift(s: &mut Samples, seed: u64, drift: f64) {
    let Some(&t0) = s.timestamp.iter().min() else {
        return;
    };
    for i in 0..s.len() {
        let period = (s.timestamp[i] - t0).div_euclid(DRIFT_PERIOD_SECS);
        s.value[i] *= drift_factor(seed, &s.host[i], s.metric[i], period, drift);
    }
}

/// Samples of `scenario` for an inventory: the baseline from the hosts `cohorts` leaves out
/// of the canaries (at most `per_group` of each group, 0 for all), any other scenario from
/// the canaries; the first `metrics` standard metrics. Timestamps start at
/// 2026-12-07T14:00:00Z.
pub fn for_inventory(
    hosts: &[Host],
    scenario: Scenario,
    per_group: usize,
    timestamps: usize,
    metrics: usize,
) -> (Samples, usize) {
    let (updated, baseline) = cohorts(hosts);
    let chosen: Vec<&Host> = if scenario == Scenario::Baseline && per_group > 0 {
        let mut seen = BTreeMap::<crate::model::GroupKey, usize>::new();
        baseline
            .into_iter()
            .filter(|h| {
                let n = seen.entry(h.group()).or_default();
                *n += 1;
                *n <= per_group
            })
            .collect()
    } else if scenario == Scenario::Baseline {
        baseline
    } else {
        updated
    };
    (
        generate_metrics(&chosen, scenario, timestamps, 1_796_738_400, metrics),
        chosen.len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::fleetgen::{generate as fleet, FleetSpec};

    #[test]
    fn cohorts_cover_groups_and_samples_are_deterministic() {
        let hosts = fleet(&FleetSpec::example(600, 1));
        let (u, b) = cohorts(&hosts);
        assert_eq!(u.len() + b.len(), 600);
        assert!(u.len() >= 3 * 20, "{}", u.len());
        let a = generate(&u, Scenario::Clean, 4, 0);
        assert_eq!(a, generate(&u, Scenario::Clean, 4, 0));
        assert_eq!(a.len(), u.len() * 4 * 6);
        let r = generate(&u, Scenario::Reboots, 4, 0);
        assert_eq!(
            r.metric
                .iter()
                .filter(|m| **m == "unexpected_reboots")
                .count(),
            3
        );
        let sp = generate(&u, Scenario::SparseGroup, 4, 0);
        assert!(sp.len() < a.len());
    }
}
