//! The pure comparison of a gate: host-level values of the updated hosts against concurrent
//! controls (difference in differences when both have a before window), or against a static
//! baseline summary when there are no controls, at the group level and pooled per hardware
//! class, per workload and fleet-wide, with one correction over every test of the gate.

use super::aggregate::{Agg, HostCohort, Windows};
use super::frames::Summary;
use super::hosts::{self, Estimate, NoEstimate, Scale, Stratum};
use super::{
    paired as gate_paired, stats, Correction, Direction, GateSettings, HostStatistic, EVENTS,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the updated hosts were compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Each host's change over its update, against the controls' change over the same hours.
    DiffInDiff,
    /// Host-level values against the controls' over the same hours (no before window).
    Controls,
    /// Host-level values against a static baseline's level (no controls).
    Baseline,
    /// A benchmark: each host after its update against itself before (no controls: the
    /// workload is fixed, and the host is drained both times). Used for `bench_*` metrics
    /// whatever the gate's method.
    Paired,
}

impl Method {
    pub fn describe(self) -> &'static str {
        match self {
            Method::DiffInDiff => "difference in differences: each host after its update against itself before, against concurrent controls",
            Method::Controls => "host-level values against concurrent controls (no before window)",
            Method::Baseline => "host-level values against the static baseline (no controls)",
            Method::Paired => "paired: each host's benchmark after its update against the same benchmark on it before",
        }
    }
}

/// One metric at one level, compared. Effects are in percent (of the ratio on the log scale).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    /// The metric.
    pub name: String,
    /// The level: a group (`r750/db`), a hardware class (`r750/*`), a workload (`*/db`) or the
    /// fleet (`*/*`).
    pub level: String,
    pub direction: Direction,
    pub method: Method,
    pub scale: Scale,
    /// Updated and control hosts whose values entered the test.
    pub hosts: usize,
    pub control_hosts: usize,
    /// Samples behind them.
    pub n: usize,
    pub control_n: usize,
    /// Means of the host values: updated after (and before), controls after (and before);
    /// for the baseline method `control_mean` is the baseline's level.
    pub mean: f64,
    pub before_mean: f64,
    pub control_mean: f64,
    pub control_before_mean: f64,
    pub effect: f64,
    pub effect_low: f64,
    pub effect_high: f64,
    /// Minimum detectable effect (either way) at the policy's alpha and power, in percent.
    pub mde: f64,
    pub p_value: f64,
    /// After the one correction over every test of this gate.
    pub p_adjusted: f64,
    /// The whole interval lies on the bad side of zero.
    pub worse: bool,
    pub insufficient: bool,
    /// Why the data is insufficient, or empty.
    pub reason: String,
    /// Not a test of its own: benchmarks of a group whose hardware class judges them, or a
    /// pooled level with too few planned hosts, left to the levels above it.
    pub pooled_only: bool,
    /// The residual variance is the group's own moderated by the spread the gate's groups
    /// share (empirical Bayes, `hosts::moderated`), so one or two updated hosts are a test
    /// too: the effect is still this group's alone, on the degrees of freedom in `df`.
    pub pooled_variance: bool,
    /// Degrees of freedom of the test (0 when untested).
    pub df: f64,
    /// The host values behind the test, for the report.
    #[serde(skip)]
    pub points: Vec<Point>,
}

/// One host's values in a comparison, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub host: String,
    pub control: bool,
    pub before: Option<f64>,
    pub after: f64,
}

/// An event counter, compared as rates per host-hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventComparison {
    pub count: u64,
    pub host_hours: f64,
    pub rate: f64,
    pub control_count: u64,
    pub control_host_hours: f64,
    pub control_rate: f64,
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
    pub control_hosts: usize,
    pub metrics: Vec<MetricComparison>,
    pub events: BTreeMap<String, EventComparison>,
}

/// A pooled level: the groups of a hardware class, of a workload, or the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelComparison {
    pub name: String,
    /// `hardware`, `workload` or `fleet`.
    pub kind: String,
    pub groups: Vec<String>,
    pub hosts: usize,
    pub control_hosts: usize,
    pub metrics: Vec<MetricComparison>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub method: Method,
    pub hosts: usize,
    pub expected_hosts: usize,
    pub samples: usize,
    pub control_hosts: usize,
    pub control_samples: usize,
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
    pub method: Method,
    pub groups: Vec<GroupComparison>,
    /// Pooled levels, hardware classes first, then workloads, then the fleet.
    pub levels: Vec<LevelComparison>,
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

/// What the updated hosts are compared with.
pub struct Reference<'a> {
    /// Concurrent controls: not-updated hosts over the same windows.
    pub controls: &'a HostCohort,
    /// A static baseline, used when there are no controls.
    pub summary: Option<&'a Summary>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn stat(a: &Agg, s: HostStatistic) -> f64 {
    match s {
        HostStatistic::Mean => a.mean,
        HostStatistic::Median => a.median,
        HostStatistic::P99 => a.p99,
    }
}

fn event_comparison(k1: f64, t1: f64, k0: f64, t0: f64) -> EventComparison {
    let (k1u, k0u) = (k1.max(0.0).round() as u64, k0.max(0.0).round() as u64);
    let rate = |k: u64, t: f64| if t > 0.0 { k as f64 / t } else { 0.0 };
    EventComparison {
        count: k1u,
        host_hours: round2(t1),
        rate: rate(k1u, t1),
        control_count: k0u,
        control_host_hours: round2(t0),
        control_rate: rate(k0u, t0),
        p_value: stats::poisson_rate_greater(k1u, t1, k0u, t0).unwrap_or(1.0),
    }
}

/// The host values of one side of one group × metric.
/// One host's window values: (host, before, after) in the statistic of the settings.
type HostRow = (String, Option<f64>, f64);

struct Side {
    rows: Vec<HostRow>,
    n: usize,
    /// Hosts left out for too few samples in a window.
    thin: usize,
}

fn side(
    c: &HostCohort,
    group: &str,
    metric: &str,
    need_before: bool,
    statistic: HostStatistic,
    settings: &GateSettings,
) -> Side {
    let mut s = Side {
        rows: Vec::new(),
        n: 0,
        thin: 0,
    };
    let empty = Windows::default();
    for h in c.hosts_of(group) {
        let w = c
            .values
            .get(&(h.to_string(), metric.to_string()))
            .unwrap_or(&empty);
        let ok = |a: &Option<Agg>| a.filter(|a| a.n >= settings.min_host_samples);
        let Some(after) = ok(&w.after) else {
            if w.after.is_some() {
                s.thin += 1;
            }
            continue;
        };
        let before = ok(&w.before);
        if need_before && before.is_none() {
            s.thin += 1;
            continue;
        }
        let (b, a) = (before.map(|x| stat(&x, statistic)), stat(&after, statistic));
        if !a.is_finite() || b.is_some_and(|b| !b.is_finite()) {
            continue;
        }
        s.n += after.n + before.map_or(0, |x| x.n);
        s.rows.push((h.to_string(), b, a));
    }
    s
}

fn mean_of(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// One test: `metric` over the groups of one level; with too few controls and a static
/// baseline at hand, against the baseline instead.
#[allow(clippy::too_many_arguments)]
fn test_level(
    level: &str,
    groups: &[&str],
    metric: &str,
    method: Method,
    updated: &HostCohort,
    reference: &Reference<'_>,
    settings: &GateSettings,
    pool: Option<&[&str]>,
) -> MetricComparison {
    let c = test_with(
        level, groups, metric, method, updated, reference, settings, pool,
    );
    let few_controls = !matches!(method, Method::Baseline | Method::Paired)
        && c.control_hosts < min_controls(settings, pool.is_some());
    match reference.summary {
        Some(s) if few_controls && groups.iter().any(|g| s.level(g, metric).is_some()) => {
            let mut b = test_with(
                level,
                groups,
                metric,
                Method::Baseline,
                updated,
                reference,
                settings,
                pool,
            );
            let why = format!(
                "{} control host(s): judged against the static baseline",
                c.control_hosts
            );
            b.reason = if b.reason.is_empty() {
                why
            } else {
                format!("{why}; {}", b.reason)
            };
            b
        }
        _ => c,
    }
}

/// The control hosts a test needs: `min_controls` for a test on its own spread; one when the
/// spread is the gate's, since each control is then a unit of the comparison, not of the
/// variance (a group of three hosts with two canaries keeps its one concurrent control).
fn min_controls(settings: &GateSettings, pooled: bool) -> usize {
    if pooled {
        1
    } else {
        settings.min_controls
    }
}

/// Each group's updated side, control side and static reference level for one metric.
type Sides = Vec<(Side, Side, Option<f64>)>;

fn sides_of(
    groups: &[&str],
    metric: &str,
    method: Method,
    updated: &HostCohort,
    reference: &Reference<'_>,
    settings: &GateSettings,
) -> Sides {
    let did = matches!(method, Method::DiffInDiff | Method::Paired);
    // A benchmark host's value is the median of its repetitions: one slowed by a background
    // job does not move it.
    let statistic = if method == Method::Paired {
        HostStatistic::Median
    } else {
        settings.host_statistic
    };
    groups
        .iter()
        .map(|g| {
            let u = side(updated, g, metric, did, statistic, settings);
            let c = side(reference.controls, g, metric, did, statistic, settings);
            let r = reference.summary.and_then(|s| s.level(g, metric));
            (u, c, r)
        })
        .collect()
}

/// The log scale when every value (and reference level) is positive, else linear.
fn scale_of(sides: &Sides) -> Scale {
    let values_positive = sides
        .iter()
        .flat_map(|(u, c, _)| u.rows.iter().chain(&c.rows))
        .all(|(_, b, a)| *a > 0.0 && b.is_none_or(|b| b > 0.0));
    let positive_refs = sides.iter().all(|(_, _, r)| r.is_none_or(|r| r > 0.0));
    if values_positive && positive_refs {
        Scale::Log
    } else {
        Scale::Linear
    }
}

/// One stratum per group: each host's `y` on `scale`.
fn strata_of(sides: &Sides, method: Method, scale: Scale) -> Vec<Stratum> {
    let did = matches!(method, Method::DiffInDiff | Method::Paired);
    let f = |x: f64| hosts::transform(x, scale);
    let y = |(_, b, a): &HostRow| match b {
        Some(b) if did => f(*a) - f(*b),
        _ => f(*a),
    };
    sides
        .iter()
        .map(|(u, c, r)| Stratum {
            updated: u.rows.iter().map(y).collect(),
            controls: if matches!(method, Method::Baseline | Method::Paired) {
                Vec::new()
            } else {
                c.rows.iter().map(y).collect()
            },
            // A host's change against no change.
            reference: match method {
                Method::Baseline => r.map(f),
                Method::Paired => Some(0.0),
                _ => None,
            },
        })
        .collect()
}

/// One test of `metric` over `groups`. With `pool` (the gate's groups), the residual variance
/// is theirs, fitted with each group's own means, and the scale is the one common to them: a
/// group with one or two updated hosts is judged on its own effect, against its own controls,
/// with the spread every group of the gate shows.
#[allow(clippy::too_many_arguments)]
fn test_with(
    level: &str,
    groups: &[&str],
    metric: &str,
    method: Method,
    updated: &HostCohort,
    reference: &Reference<'_>,
    settings: &GateSettings,
    pool: Option<&[&str]>,
) -> MetricComparison {
    let did = matches!(method, Method::DiffInDiff | Method::Paired);
    let sides = sides_of(groups, metric, method, updated, reference, settings);
    let pooled = pool.map(|p| {
        let ps = sides_of(p, metric, method, updated, reference, settings);
        (scale_of(&ps), ps)
    });
    let scale = match &pooled {
        Some((s, _)) => *s,
        None => scale_of(&sides),
    };
    let strata = strata_of(&sides, method, scale);
    // The group's own spread moderated by the spread the gate's groups share.
    let residual = pooled.as_ref().map(|(s, ps)| {
        let each: Vec<_> = strata_of(ps, method, *s)
            .into_iter()
            .map(|st| hosts::residual(&[st]))
            .collect();
        hosts::moderated(hosts::residual(&strata), hosts::prior(&each))
    });
    // A benchmark host's `y` is already its own change, so the groups of a level need no
    // fixed effects of their own: one stratum, and every host adds a degree of freedom.
    let strata = if method == Method::Paired {
        vec![Stratum {
            updated: strata.into_iter().flat_map(|s| s.updated).collect(),
            controls: Vec::new(),
            reference: Some(0.0),
        }]
    } else {
        strata
    };
    let upd = || sides.iter().flat_map(|(u, _, _)| &u.rows);
    let ctl = || sides.iter().flat_map(|(_, c, _)| &c.rows);
    let hosts_n = upd().count();
    let controls_n = if matches!(method, Method::Baseline | Method::Paired) {
        0
    } else {
        ctl().count()
    };
    let control_mean = match method {
        Method::Baseline => mean_of(sides.iter().filter_map(|s| s.2)),
        // The level a linear-scale change is a percentage of: the hosts before.
        Method::Paired => mean_of(upd().filter_map(|r| r.1)),
        _ => mean_of(ctl().map(|r| r.2)),
    };
    let mean = mean_of(upd().map(|r| r.2));
    let mut c = MetricComparison {
        name: metric.to_string(),
        level: level.to_string(),
        direction: settings.direction(metric),
        method,
        scale,
        hosts: hosts_n,
        control_hosts: controls_n,
        n: sides.iter().map(|s| s.0.n).sum(),
        control_n: if matches!(method, Method::Baseline | Method::Paired) {
            0
        } else {
            sides.iter().map(|s| s.1.n).sum()
        },
        mean,
        before_mean: mean_of(upd().filter_map(|r| r.1)),
        control_mean,
        control_before_mean: mean_of(ctl().filter_map(|r| r.1)),
        effect: 0.0,
        effect_low: 0.0,
        effect_high: 0.0,
        mde: f64::INFINITY,
        p_value: 1.0,
        p_adjusted: 1.0,
        worse: false,
        insufficient: false,
        reason: String::new(),
        pooled_only: false,
        pooled_variance: false,
        df: 0.0,
        points: upd()
            .map(|r| (r, false))
            .chain(ctl().map(|r| (r, true)))
            .map(|((h, b, a), control)| Point {
                host: h.clone(),
                control,
                before: *b,
                after: *a,
            })
            .collect(),
    };
    let mut reasons = Vec::new();
    let thin: usize = sides.iter().map(|(u, _, _)| u.thin).sum();
    // A moderated variance needs one updated host; a test on its own spread, `min_hosts`.
    let min_hosts = if residual.is_some() {
        1
    } else {
        settings.min_hosts
    };
    if hosts_n < min_hosts {
        let mut r = format!("{hosts_n} updated host(s) with data (need {min_hosts})");
        if thin > 0 {
            r += &format!(
                "; {thin} had fewer than {} samples{}",
                settings.min_host_samples,
                if did { " in a window" } else { "" }
            );
        }
        reasons.push(r);
    }
    match method {
        Method::Baseline if sides.iter().all(|s| s.2.is_none()) => {
            reasons.push(format!("the baseline has no `{metric}`"));
        }
        Method::Baseline | Method::Paired => {}
        _ if controls_n < min_controls(settings, residual.is_some()) => reasons.push(format!(
            "{controls_n} control host(s) with data (need {})",
            min_controls(settings, residual.is_some())
        )),
        _ => {}
    }
    if reasons.is_empty() {
        match hosts::estimate_with(&strata, residual, settings.alpha, settings.power) {
            Ok(e) => {
                apply(&mut c, &e, scale, control_mean);
                c.df = e.df;
                c.pooled_variance = residual.is_some();
            }
            Err(NoEstimate::NoComparison) => {
                reasons.push("no group has both updated hosts and a reference".into())
            }
            Err(NoEstimate::NoVariance) => {
                reasons.push("one host per side: no spread to test against".into())
            }
        }
    }
    c.insufficient = !reasons.is_empty();
    c.reason = reasons.join("; ");
    c
}

fn apply(c: &mut MetricComparison, e: &Estimate, scale: Scale, level: f64) {
    let pct = |x: f64| round2(hosts::percent(x, scale, level));
    c.effect = pct(e.effect);
    c.effect_low = pct(e.low);
    c.effect_high = pct(e.high);
    c.mde = round2(match scale {
        // The smaller of the two directions on the ratio scale, so "detects ±mde%".
        Scale::Log => {
            hosts::percent(e.mde, scale, level).min(-hosts::percent(-e.mde, scale, level))
        }
        Scale::Linear => hosts::percent(e.mde, scale, level),
    });
    c.p_value = e.p_value;
    c.worse = match c.direction {
        Direction::HigherIsWorse => e.low > 0.0,
        Direction::LowerIsWorse => e.high < 0.0,
    };
}

/// The pooled levels of a gate's groups: hardware classes, workloads and the fleet, each
/// only where it spans at least two groups and differs from a level already listed.
fn levels(groups: &[GroupSpec]) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut seen: BTreeSet<Vec<String>> = groups.iter().map(|g| vec![g.name.clone()]).collect();
    let mut push = |name: String, kind: &str, gs: Vec<String>| {
        if gs.len() >= 2 && seen.insert(gs.clone()) {
            out.push((name, kind.to_string(), gs));
        }
    };
    let mut by_hw: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut by_wl: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for g in groups {
        by_hw.entry(&g.hardware).or_default().push(g.name.clone());
        by_wl.entry(&g.workload).or_default().push(g.name.clone());
    }
    for (hw, gs) in by_hw {
        push(
            crate::model::GroupKey::pooled(Some(hw), None),
            "hardware",
            gs,
        );
    }
    for (wl, gs) in by_wl {
        push(
            crate::model::GroupKey::pooled(None, Some(wl)),
            "workload",
            gs,
        );
    }
    push(
        crate::model::GroupKey::pooled(None, None),
        "fleet",
        groups.iter().map(|g| g.name.clone()).collect(),
    );
    out
}

/// Compares the updated hosts with the reference, per group and pooled level.
pub fn compare(
    index: usize,
    name: &str,
    groups: &[GroupSpec],
    updated: &HostCohort,
    reference: &Reference<'_>,
    settings: &GateSettings,
) -> Comparison {
    let controls = reference.controls;
    let method = if !controls.group_of.is_empty() || reference.summary.is_none() {
        if updated.has_before() && controls.has_before() {
            Method::DiffInDiff
        } else {
            Method::Controls
        }
    } else {
        Method::Baseline
    };
    let mut per_hw: BTreeMap<&str, usize> = BTreeMap::new();
    for g in groups {
        *per_hw.entry(g.hardware.as_str()).or_default() += 1;
    }
    let per_group_u = updated.hosts_per_group();
    let per_group_c = controls.hosts_per_group();
    let all_groups: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    let mut out_groups = Vec::new();
    for spec in groups {
        let g = spec.name.as_str();
        let hosts = per_group_u.get(g).copied().unwrap_or(0);
        let expected = spec.expected_hosts.unwrap_or(hosts);
        let floor = (settings.min_reporting * expected as f64).ceil() as usize;
        let mut ms = Vec::new();
        for m in updated.metrics_of(g) {
            let mm = if gate_paired(m) {
                Method::Paired
            } else {
                method
            };
            // Every group is judged on its own effect, with its own spread moderated by the
            // spread the gate's groups share (`hosts::moderated`): one or two canaries borrow
            // nearly all of it (finding: two canaries per group were judged only through
            // pools that diluted a one-group regression), and six no longer let the noisiest
            // of 24 variance estimates decide power (finding: clean gates with six canaries
            // per group were all inconclusive). Without a plan, too few reporting cannot be
            // told from hosts missing, and stays insufficient data.
            let judged = spec.expected_hosts.is_some() || hosts >= settings.min_hosts;
            let pool = (judged && mm != Method::Paired).then_some(all_groups.as_slice());
            let mut c = test_level(g, &[g], m, mm, updated, reference, settings, pool);
            let shared_class = per_hw.get(spec.hardware.as_str()).copied().unwrap_or(0) > 1;
            if mm == Method::Paired && shared_class {
                // A benchmark runs on a drained host: what it measures is the hardware's, so
                // its test is the hardware class's, and each class is one test.
                c.pooled_only = true;
                c.insufficient = false;
                c.reason = format!(
                    "benchmarks are judged per hardware class ({}/*)",
                    spec.hardware
                );
            } else if spec.expected_hosts.is_some() && hosts < floor {
                c.insufficient = true;
                let r = format!("{hosts} of {expected} updated hosts reporting");
                c.reason = if c.reason.is_empty() {
                    r
                } else {
                    format!("{r}; {}", c.reason)
                };
            }
            ms.push(c);
        }
        let mut events = BTreeMap::new();
        for e in EVENTS {
            let (k1, t1) = events_of(updated, Some(g), e);
            let (k0, t0) = reference_events(reference, method, Some(g), e);
            events.insert(e.to_string(), event_comparison(k1, t1, k0, t0));
        }
        out_groups.push(GroupComparison {
            name: spec.name.clone(),
            hardware: spec.hardware.clone(),
            workload: spec.workload.clone(),
            hosts,
            expected_hosts: expected,
            control_hosts: per_group_c.get(g).copied().unwrap_or(0),
            metrics: ms,
            events,
        });
    }
    let mut out_levels = Vec::new();
    let planned: BTreeMap<&str, usize> = out_groups
        .iter()
        .map(|g| (g.name.as_str(), g.expected_hosts))
        .collect();
    for (lname, kind, gs) in levels(groups) {
        let refs: Vec<&str> = gs.iter().map(String::as_str).collect();
        // Benchmarks are tested per hardware class only (see the groups above).
        let metrics: BTreeSet<&str> = refs
            .iter()
            .flat_map(|g| updated.metrics_of(g))
            .filter(|m| kind == "hardware" || !gate_paired(m))
            .collect();
        // A level with too few planned hosts that is not the top one is left to the levels
        // above it, as a small group is.
        let top = gs.len() == groups.len();
        let level_planned: usize = refs
            .iter()
            .map(|g| planned.get(g).copied().unwrap_or(0))
            .sum();
        let ms = metrics
            .into_iter()
            .map(|m| {
                let mm = if gate_paired(m) {
                    Method::Paired
                } else {
                    method
                };
                let mut c = test_level(&lname, &refs, m, mm, updated, reference, settings, None);
                if !top && level_planned < settings.min_hosts {
                    c.pooled_only = true;
                    c.insufficient = false;
                    c.reason = format!(
                        "{level_planned} updated host(s) planned: judged in the levels above"
                    );
                }
                c
            })
            .collect();
        out_levels.push(LevelComparison {
            hosts: refs
                .iter()
                .map(|g| per_group_u.get(g).copied().unwrap_or(0))
                .sum(),
            control_hosts: refs
                .iter()
                .map(|g| per_group_c.get(g).copied().unwrap_or(0))
                .sum(),
            name: lname,
            kind,
            groups: gs,
            metrics: ms,
        });
    }
    // One correction over the traffic tests of this gate, and one over its benchmark tests:
    // a handful of planned paired tests are not drowned by hundreds of traffic tests.
    let mut comparisons = 0;
    for bench in [false, true] {
        let mut tested: Vec<&mut MetricComparison> = out_groups
            .iter_mut()
            .flat_map(|g| g.metrics.iter_mut())
            .chain(out_levels.iter_mut().flat_map(|l| l.metrics.iter_mut()))
            .filter(|m| !m.insufficient && m.mde.is_finite())
            .filter(|m| (m.method == Method::Paired) == bench)
            .collect();
        let raw: Vec<f64> = tested.iter().map(|m| m.p_value).collect();
        let adjusted = match settings.correction {
            Correction::Bh => stats::benjamini_hochberg(&raw),
            Correction::Holm => stats::holm(&raw),
            Correction::None => raw.clone(),
        };
        comparisons += tested.len();
        for (m, a) in tested.iter_mut().zip(adjusted) {
            m.p_adjusted = a;
        }
    }
    let events = EVENTS
        .iter()
        .map(|e| {
            let (k1, t1) = events_of(updated, None, e);
            let (k0, t0) = reference_events(reference, method, None, e);
            (e.to_string(), event_comparison(k1, t1, k0, t0))
        })
        .collect();
    let insufficient = out_groups
        .iter()
        .flat_map(|g| &g.metrics)
        .chain(out_levels.iter().flat_map(|l| &l.metrics))
        .filter(|m| m.insufficient)
        .count();
    Comparison {
        index,
        name: name.to_string(),
        method,
        totals: Totals {
            method,
            hosts: out_groups.iter().map(|g| g.hosts).sum(),
            expected_hosts: out_groups.iter().map(|g| g.expected_hosts).sum(),
            samples: updated.samples,
            control_hosts: controls.group_of.len(),
            control_samples: controls.samples,
            nan_samples: updated.nan_samples + controls.nan_samples,
            unknown_samples: updated.unknown_samples + controls.unknown_samples,
            comparisons,
            insufficient,
            correction: settings.correction,
        },
        groups: out_groups,
        levels: out_levels,
        events,
    }
}

/// Event count and host-hours after the update, of one group or of all.
fn events_of(c: &HostCohort, group: Option<&str>, event: &str) -> (f64, f64) {
    c.after
        .iter()
        .filter(|(h, _)| group.is_none_or(|g| c.group_of.get(*h).is_some_and(|x| x == g)))
        .fold((0.0, 0.0), |(k, t), (_, x)| {
            (k + x.events.get(event).copied().unwrap_or(0.0), t + x.hours)
        })
}

fn reference_events(
    r: &Reference<'_>,
    method: Method,
    group: Option<&str>,
    event: &str,
) -> (f64, f64) {
    match (method, r.summary) {
        (Method::Baseline, Some(s)) => s.events(group, event),
        _ => events_of(r.controls, group, event),
    }
}
