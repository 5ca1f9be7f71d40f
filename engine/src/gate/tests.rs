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
fn too_few_hosts_is_a_test_on_the_gates_spread_or_insufficient_never_a_pass() {
    let u = hosts("u", "sm-x12/db", "cpu_util_pct", 1, 0.1, 1.0, 0.0, 0.01);
    let c = hosts("c", "sm-x12/db", "cpu_util_pct", 2, 0.1, 1.0, 0.0, 0.01);
    // One host planned: a test of its own, on the spread of the gate's groups (here the
    // group's own two controls: one degree of freedom).
    let cmp = run(
        &build(&u, true),
        &build(&c, true),
        &[spec("sm-x12/db", Some(1))],
    );
    let m = metric(&cmp, "sm-x12/db", "cpu_util_pct");
    assert!(!m.pooled_only && !m.insufficient, "{m:?}");
    assert!(
        m.pooled_variance && m.df == 1.0 && m.mde.is_finite(),
        "{m:?}"
    );
    // Four planned, one reporting, two controls: too few reporting, whatever the spread.
    let cmp = run(
        &build(&u, true),
        &build(&c, true),
        &[spec("sm-x12/db", Some(4))],
    );
    let m = metric(&cmp, "sm-x12/db", "cpu_util_pct");
    assert!(m.insufficient, "{m:?}");
    assert_eq!(m.reason, "1 of 4 updated hosts reporting");
    assert_eq!(cmp.totals.insufficient, 1);
    // No plan: one host reporting cannot be told from hosts missing.
    let cmp = run(
        &build(&u, true),
        &build(&c, true),
        &[spec("sm-x12/db", None)],
    );
    let m = metric(&cmp, "sm-x12/db", "cpu_util_pct");
    assert_eq!(
        (m.insufficient, m.reason.as_str()),
        (
            true,
            "1 updated host(s) with data (need 3); 2 control host(s) with data (need 3)"
        ),
        "{m:?}"
    );
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

/// Finding: with two canaries per group, every group was `pooled_only`, and a +30% regression
/// confined to one group of a hardware class of four was diluted to about +7.5% in the class
/// and passed. Each group is now a test of its own on the gate's spread.
#[test]
fn finding_one_group_regressed_among_two_canary_groups_is_named_at_its_own_level() {
    let groups = ["r750/db", "r750/web", "r750/cache", "r750/batch"];
    let (mut u, mut c) = (Vec::new(), Vec::new());
    for (i, g) in groups.iter().enumerate() {
        let effect = if i == 0 { 0.3 } else { 0.0 };
        u.extend(hosts(
            &format!("u{i}-"),
            g,
            "cpu_util_pct",
            2,
            0.2,
            1.1,
            effect,
            0.02,
        ));
        c.extend(hosts(
            &format!("c{i}-"),
            g,
            "cpu_util_pct",
            6,
            0.2,
            1.1,
            0.0,
            0.02,
        ));
    }
    let specs: Vec<GroupSpec> = groups.iter().map(|g| spec(g, Some(2))).collect();
    let cmp = run(&build(&u, true), &build(&c, true), &specs);
    let bad = metric(&cmp, "r750/db", "cpu_util_pct");
    assert!(
        bad.pooled_variance && !bad.pooled_only && !bad.insufficient,
        "{bad:?}"
    );
    assert!(bad.worse && (bad.effect - 30.0).abs() < 3.0, "{bad:?}");
    // The gate's spread: 4 × (1 + 5) degrees of freedom.
    assert_eq!(bad.df, 24.0);
    assert!(bad.mde < 10.0, "{bad:?}");
    for g in &groups[1..] {
        let m = metric(&cmp, g, "cpu_util_pct");
        assert!(!m.worse && m.effect.abs() < 3.0, "{m:?}");
    }
    // The class is diluted, as found; it stays an extra test.
    let class = metric(&cmp, "r750/*", "cpu_util_pct");
    assert!(class.effect < 10.0, "{class:?}");
}

/// Finding: the canary alert said "all 24 groups passed" when no group had been judged on
/// its own. The approval's headline comes from each group's outcome.
#[test]
fn the_approval_says_all_groups_passed_only_when_each_was_judged_and_passed() {
    let groups = ["r750/db", "r750/web", "r640/db"];
    let (mut u, mut c) = (Vec::new(), Vec::new());
    for (i, g) in groups.iter().enumerate() {
        u.extend(hosts(
            &format!("u{i}-"),
            g,
            "cpu_util_pct",
            2,
            0.2,
            1.0,
            0.0,
            0.02,
        ));
        c.extend(hosts(
            &format!("c{i}-"),
            g,
            "cpu_util_pct",
            6,
            0.2,
            1.0,
            0.0,
            0.02,
        ));
    }
    let specs: Vec<GroupSpec> = groups.iter().map(|g| spec(g, Some(2))).collect();
    let cmp = run(&build(&u, true), &build(&c, true), &specs);
    let mut v = crate::model::Verdict {
        verdict: crate::model::VerdictKind::Pass,
        reasons: vec![],
        levels: Default::default(),
    };
    let check = |v: &crate::model::Verdict, want: &str| {
        let j = judged(&cmp, v);
        assert_eq!(approval_summary(&j), want, "{j:?}");
    };
    check(
        &v,
        "all 3 hardware × workload group(s) passed, each judged on its own",
    );
    v.levels
        .insert("r750/web".into(), crate::model::VerdictKind::Inconclusive);
    check(
        &v,
        "2 of 3 hardware × workload group(s) passed on their own; r750/web inconclusive",
    );
    // A group with no metric of its own tested is not judged, whatever the verdict.
    let cmp2 = run(&build(&u[..2], true), &build(&c[..6], true), &specs[..1]);
    let mut bare = cmp2.clone();
    for m in &mut bare.groups[0].metrics {
        m.pooled_only = true;
    }
    let j = judged(
        &bare,
        &crate::model::Verdict {
            verdict: crate::model::VerdictKind::Pass,
            reasons: vec![],
            levels: Default::default(),
        },
    );
    assert_eq!(j[0].status, GroupStatus::NotJudged);
    assert_eq!(
        j[0].describe(),
        "r750/db: not judged (no metric tested on its own hosts)"
    );
    let j = judged(&cmp2, &v);
    assert!(
        j[0].describe().starts_with(
            "r750/db: passed (1 metric(s) tested on its own: 2 host(s) against 6 control(s), largest MDE"
        ),
        "{}",
        j[0].describe()
    );
}

#[test]
fn a_cohort_goes_through_json_whole_its_missing_quantiles_included() {
    let mut c = cohort(&[
        ("h1", "r750/db", "cpu", Some(40.0), 41.5),
        ("h2", "r750/db", "cpu", None, 0.1 + 0.2),
    ]);
    if let Some(w) = c.values.get_mut(&("h2".to_string(), "cpu".to_string())) {
        w.after = Some(Agg {
            median: f64::NAN,
            p99: f64::NAN,
            ..agg(0.1 + 0.2, 12)
        });
    }
    c.after
        .entry("h1".into())
        .or_default()
        .events
        .insert("reboot".into(), 2.0);
    c.nan_samples = 3;
    let json = serde_json::to_string(&c).unwrap();
    let back: HostCohort = serde_json::from_str(&json).unwrap();
    // Bit for bit: a gate over the cohort read back judges as over the one sent.
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let w = back.values[&("h2".to_string(), "cpu".to_string())];
    let a = w.after.unwrap();
    assert!(a.median.is_nan() && a.p99.is_nan());
    assert_eq!(a.mean, 0.1 + 0.2);
    assert_eq!(w.before, None);
    assert_eq!(back.group_of, c.group_of);
    assert_eq!(back.after, c.after);
    assert_eq!(back.nan_samples, 3);
}
