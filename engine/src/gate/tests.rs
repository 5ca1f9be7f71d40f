//! Gate comparison tests over hand-built host-level cohorts.

use super::aggregate::{Agg, Exposure, Windows};
use super::*;

/// One host's window aggregate of `n` samples around `mean`.
fn agg(mean: f64, n: usize) -> Agg {
    Agg {
        n,
        mean,
        median: mean,
        p99: mean,
        sum: mean * n as f64,
    }
}

/// A cohort from rows (host, group, metric, before, after), each window of 12 samples over
/// 4 hours.
fn cohort(rows: &[(&str, &str, &str, Option<f64>, f64)]) -> HostCohort {
    let mut c = HostCohort::default();
    for (h, g, m, b, a) in rows {
        c.group_of.insert(h.to_string(), g.to_string());
        c.values.insert(
            (h.to_string(), m.to_string()),
            Windows {
                before: b.map(|x| agg(x, 12)),
                after: Some(agg(*a, 12)),
            },
        );
        c.after.entry(h.to_string()).or_insert(Exposure {
            hours: 4.0,
            ..Exposure::default()
        });
        c.samples += 12 + if b.is_some() { 12 } else { 0 };
    }
    c
}

fn spec(name: &str, expected: Option<usize>) -> GroupSpec {
    let (hw, wl) = name.split_once('/').unwrap_or((name, ""));
    GroupSpec {
        name: name.into(),
        hardware: hw.into(),
        workload: wl.into(),
        expected_hosts: expected,
    }
}

/// A deterministic wobble in [-0.5, 0.5).
fn wobble(i: usize) -> f64 {
    ((i * 37 + 11) % 101) as f64 / 101.0 - 0.5
}

/// Hosts of `group` whose levels spread by `spread` (fraction), observed before at time-of-day
/// factor 1.0 and after at `day`, with `effect` applied after.
#[allow(clippy::too_many_arguments)]
fn hosts(
    prefix: &str,
    group: &str,
    metric: &str,
    n: usize,
    spread: f64,
    day: f64,
    effect: f64,
    noise: f64,
) -> Vec<(String, String, String, Option<f64>, f64)> {
    (0..n)
        .map(|i| {
            let level = 10.0 * (1.0 + spread * wobble(i) * 2.0);
            let before = level * (1.0 + noise * wobble(i + 50));
            let after = level * day * (1.0 + effect) * (1.0 + noise * wobble(i + 17));
            (
                format!("{prefix}{i:02}"),
                group.to_string(),
                metric.to_string(),
                Some(before),
                after,
            )
        })
        .collect()
}

fn build(rows: &[(String, String, String, Option<f64>, f64)], before: bool) -> HostCohort {
    let r: Vec<(&str, &str, &str, Option<f64>, f64)> = rows
        .iter()
        .map(|(h, g, m, b, a)| {
            (
                h.as_str(),
                g.as_str(),
                m.as_str(),
                if before { *b } else { None },
                *a,
            )
        })
        .collect();
    cohort(&r)
}

fn run(updated: &HostCohort, controls: &HostCohort, groups: &[GroupSpec]) -> Comparison {
    compare(
        0,
        "canary",
        groups,
        updated,
        &Reference {
            controls,
            summary: None,
        },
        &GateSettings::default(),
    )
}

fn metric<'a>(c: &'a Comparison, level: &str, name: &str) -> &'a MetricComparison {
    c.groups
        .iter()
        .flat_map(|g| &g.metrics)
        .chain(c.levels.iter().flat_map(|l| &l.metrics))
        .find(|m| m.level == level && m.name == name)
        .unwrap_or_else(|| panic!("no {level} {name}"))
}

#[test]
fn difference_in_differences_cancels_host_spread_and_the_time_of_day() {
    // 10% host spread, the day swings +25% between the windows, +10% regression.
    let u = hosts(
        "u",
        "r750/db",
        "io_latency_p99_ms",
        6,
        0.10,
        1.25,
        0.10,
        0.01,
    );
    let c = hosts(
        "c",
        "r750/db",
        "io_latency_p99_ms",
        18,
        0.10,
        1.25,
        0.0,
        0.01,
    );
    let cmp = run(&build(&u, true), &build(&c, true), &[spec("r750/db", None)]);
    assert_eq!(cmp.method, Method::DiffInDiff);
    let m = metric(&cmp, "r750/db", "io_latency_p99_ms");
    assert!((m.effect - 10.0).abs() < 1.5, "{m:?}");
    assert!(m.worse && m.p_adjusted < 0.01, "{m:?}");
    assert!(m.effect_low > 5.0 && m.effect_high < 15.0, "{m:?}");
    assert_eq!((m.hosts, m.control_hosts), (6, 18));
    assert_eq!(m.scale, hosts::Scale::Log);
}

#[test]
fn finding_three_hot_hosts_are_not_a_regression() {
    // The finding: three updated hosts that simply run hotter than the baseline's hosts
    // paused every clean stage, because each 5-minute sample counted as a host. With hosts as
    // the unit, 10% spread and no effect is not significant, with or without a before window.
    let u = hosts("u", "r750/db", "mem_used_pct", 3, 0.10, 1.0, 0.0, 0.02);
    let mut c = hosts("c", "r750/db", "mem_used_pct", 9, 0.10, 1.0, 0.0, 0.02);
    // The updated hosts happen to be the hot ones: the controls run 5% cooler.
    for r in &mut c {
        r.4 *= 0.95;
        r.3 = r.3.map(|b| b * 0.95);
    }
    for before in [false, true] {
        let cmp = run(
            &build(&u, before),
            &build(&c, before),
            &[spec("r750/db", None)],
        );
        let m = metric(&cmp, "r750/db", "mem_used_pct");
        if before {
            assert!(!m.worse && m.effect.abs() < 3.0, "{m:?}");
        } else {
            assert_eq!(cmp.method, Method::Controls);
            assert!(m.p_adjusted > 0.05, "{m:?}");
        }
    }
}

#[test]
fn a_class_wide_regression_shows_pooled_where_each_group_cannot() {
    let groups = ["r750/batch", "r750/cache", "r750/db", "r750/web"];
    let (mut u, mut c) = (Vec::new(), Vec::new());
    for (i, g) in groups.iter().enumerate() {
        u.extend(hosts(
            &format!("u{i}-"),
            g,
            "io_latency_p99_ms",
            3,
            0.1,
            1.1,
            0.10,
            0.12,
        ));
        c.extend(hosts(
            &format!("c{i}-"),
            g,
            "io_latency_p99_ms",
            9,
            0.1,
            1.1,
            0.0,
            0.12,
        ));
    }
    let specs: Vec<GroupSpec> = groups.iter().map(|g| spec(g, None)).collect();
    let cmp = run(&build(&u, true), &build(&c, true), &specs);
    let pooled = metric(&cmp, "r750/*", "io_latency_p99_ms");
    assert!(pooled.worse, "{pooled:?}");
    assert!(pooled.mde < metric(&cmp, "r750/db", "io_latency_p99_ms").mde / 1.5);
    assert_eq!((pooled.hosts, pooled.control_hosts), (12, 36));
    // One hardware class: the fleet level would repeat it, so it is not listed.
    let names: Vec<&str> = cmp.levels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["r750/*"]);
    // One correction over group and pooled tests.
    assert_eq!(cmp.totals.comparisons, 5);
}

#[test]
fn too_few_hosts_is_pooled_only_or_insufficient_never_a_pass() {
    let u = hosts("u", "sm-x12/db", "cpu_util_pct", 1, 0.1, 1.0, 0.0, 0.01);
    let c = hosts("c", "sm-x12/db", "cpu_util_pct", 2, 0.1, 1.0, 0.0, 0.01);
    // One host planned: judged in the pooled levels.
    let cmp = run(
        &build(&u, true),
        &build(&c, true),
        &[spec("sm-x12/db", Some(1))],
    );
    let m = metric(&cmp, "sm-x12/db", "cpu_util_pct");
    assert!(m.pooled_only && !m.insufficient, "{m:?}");
    // Four planned, one reporting, two controls.
    let cmp = run(
        &build(&u, true),
        &build(&c, true),
        &[spec("sm-x12/db", Some(4))],
    );
    let m = metric(&cmp, "sm-x12/db", "cpu_util_pct");
    assert!(m.insufficient, "{m:?}");
    assert_eq!(
        m.reason,
        "1 of 4 updated hosts reporting; 1 updated host(s) with data (need 3); 2 control host(s) with data (need 3)"
    );
    assert_eq!(cmp.totals.insufficient, 1);
}

#[test]
fn without_controls_the_static_baseline_is_a_one_sample_reference() {
    let u = hosts("u", "r750/db", "cpu_util_pct", 5, 0.05, 1.0, 0.3, 0.01);
    let mut s = Summary::default();
    s.cells.insert(
        ("r750/db".into(), "cpu_util_pct".into()),
        (1000.0, 40.0, 10.0),
    );
    let cmp = compare(
        1,
        "wave 1",
        &[spec("r750/db", None)],
        &build(&u, false),
        &Reference {
            controls: &HostCohort::default(),
            summary: Some(&s),
        },
        &GateSettings::default(),
    );
    assert_eq!(cmp.method, Method::Baseline);
    let m = metric(&cmp, "r750/db", "cpu_util_pct");
    assert!((m.effect - 30.0).abs() < 3.0 && m.worse, "{m:?}");
    assert_eq!(m.control_mean, 10.0);
}

#[test]
fn events_are_rates_per_host_hour_against_the_controls() {
    let mut u = build(
        &hosts("u", "c6420/db", "cpu_util_pct", 5, 0.1, 1.0, 0.0, 0.01),
        true,
    );
    let mut c = build(
        &hosts("c", "c6420/db", "cpu_util_pct", 50, 0.1, 1.0, 0.0, 0.01),
        true,
    );
    for (i, x) in u.after.values_mut().enumerate() {
        x.hours = 10.0;
        if i < 3 {
            x.events.insert("unexpected_reboots".into(), 1.0);
        }
    }
    for (i, x) in c.after.values_mut().enumerate() {
        x.hours = 20.0;
        if i < 2 {
            x.events.insert("unexpected_reboots".into(), 1.0);
        }
    }
    let cmp = run(&u, &c, &[spec("c6420/db", None)]);
    let e = &cmp.events["unexpected_reboots"];
    assert_eq!((e.count, e.control_count), (3, 2));
    assert!((e.rate - 0.06).abs() < 1e-12);
    // scipy.stats.binomtest(3, 5, 50/1050, alternative="greater").pvalue
    assert!(
        (e.p_value - 0.0010041377527147343).abs() < 1e-9,
        "{}",
        e.p_value
    );
    assert_eq!(cmp.groups[0].events["kernel_panics"].count, 0);
}

#[test]
fn corrections_apply_across_the_gate() {
    let mut u = hosts("a", "g/a", "m1", 6, 0.1, 1.0, 0.04, 0.05);
    u.extend(hosts("b", "g/b", "m1", 6, 0.1, 1.0, 0.0, 0.05));
    let mut c = hosts("ca", "g/a", "m1", 12, 0.1, 1.0, 0.0, 0.05);
    c.extend(hosts("cb", "g/b", "m1", 12, 0.1, 1.0, 0.0, 0.05));
    let (u, c) = (build(&u, true), build(&c, true));
    let groups = [spec("g/a", None), spec("g/b", None)];
    let with = |correction| {
        compare(
            0,
            "c",
            &groups,
            &u,
            &Reference {
                controls: &c,
                summary: None,
            },
            &GateSettings {
                correction,
                ..GateSettings::default()
            },
        )
    };
    let (none, bh, holm) = (
        with(Correction::None),
        with(Correction::Bh),
        with(Correction::Holm),
    );
    let raw: Vec<f64> = ["g/a", "g/b", "g/*"]
        .iter()
        .map(|l| metric(&none, l, "m1").p_value)
        .collect();
    assert_eq!(metric(&none, "g/a", "m1").p_adjusted, raw[0]);
    assert!(
        (metric(&bh, "g/a", "m1").p_adjusted - stats::benjamini_hochberg(&raw)[0]).abs() < 1e-15
    );
    assert!((metric(&holm, "g/a", "m1").p_adjusted - stats::holm(&raw)[0]).abs() < 1e-15);
}

#[test]
fn non_positive_values_use_the_linear_scale() {
    let mut u = hosts("u", "g/a", "temp_delta", 5, 0.1, 1.0, 0.0, 0.05);
    u[0].4 = -1.0;
    let c = hosts("c", "g/a", "temp_delta", 10, 0.1, 1.0, 0.0, 0.05);
    let cmp = run(&build(&u, true), &build(&c, true), &[spec("g/a", None)]);
    let m = metric(&cmp, "g/a", "temp_delta");
    assert_eq!(m.scale, hosts::Scale::Linear);
    assert!(m.effect.is_finite() && !m.insufficient, "{m:?}");
}
