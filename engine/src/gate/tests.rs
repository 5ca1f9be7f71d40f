//! Gate comparison tests over hand-built cohorts.

use super::*;

fn cell(values: &[f64], hosts: usize) -> Cell {
    let mut v = values.to_vec();
    stats::clean_sorted(&mut v);
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    Cell {
        n,
        hosts,
        mean,
        p50: stats::quantile(&v, 0.5).unwrap_or(f64::NAN),
        p90: stats::quantile(&v, 0.9).unwrap_or(f64::NAN),
        p99: stats::quantile(&v, 0.99).unwrap_or(f64::NAN),
        values: v,
    }
}

fn cohort(
    cells: &[(&str, &str, Vec<f64>, usize)],
    events: &[(&str, &str, f64)],
    hours: f64,
) -> Cohort {
    let mut c = Cohort::default();
    for (g, m, v, h) in cells {
        c.cells.insert((g.to_string(), m.to_string()), cell(v, *h));
        c.hosts.insert(g.to_string(), *h);
        c.host_hours.insert(g.to_string(), hours);
        c.samples += v.len();
    }
    for (g, e, n) in events {
        c.events.insert((g.to_string(), e.to_string()), *n);
    }
    c
}

fn spec(name: &str) -> GroupSpec {
    let (hw, wl) = name.split_once('/').unwrap_or((name, ""));
    GroupSpec {
        name: name.into(),
        hardware: hw.into(),
        workload: wl.into(),
        expected_hosts: None,
    }
}

fn series(base: f64, n: usize, step: f64) -> Vec<f64> {
    (0..n)
        .map(|i| base + step * ((i * 37 % 101) as f64 / 100.0 - 0.5))
        .collect()
}

#[test]
fn a_regression_is_worse_and_significant_a_clean_metric_is_not() {
    let updated = cohort(
        &[
            ("r750/db", "io_latency_p99_ms", series(10.8, 200, 1.0), 10),
            ("r750/db", "cpu_util_pct", series(40.0, 200, 4.0), 10),
        ],
        &[],
        20.0,
    );
    let baseline = cohort(
        &[
            ("r750/db", "io_latency_p99_ms", series(10.0, 400, 1.0), 40),
            ("r750/db", "cpu_util_pct", series(40.0, 400, 4.0), 40),
        ],
        &[],
        80.0,
    );
    let c = compare(
        2,
        "wave 2",
        &[spec("r750/db")],
        &updated,
        &baseline,
        &GateSettings::default(),
    );
    let g = &c.groups[0];
    let io = g
        .metrics
        .iter()
        .find(|m| m.name == "io_latency_p99_ms")
        .unwrap();
    assert!(io.worse && io.p_adjusted < 1e-6, "{io:?}");
    assert!((io.pct_change - 8.0).abs() < 0.5, "{io:?}");
    assert!((io.shift - 0.8).abs() < 0.1 && io.shift_low > 0.0, "{io:?}");
    let cpu = g.metrics.iter().find(|m| m.name == "cpu_util_pct").unwrap();
    assert!(!cpu.worse && cpu.p_value > 0.5, "{cpu:?}");
    assert_eq!(c.totals.comparisons, 2);
}

#[test]
fn too_few_hosts_or_samples_is_insufficient_never_compared() {
    let updated = cohort(
        &[("sm-x12/db", "cpu_util_pct", series(40.0, 10, 1.0), 1)],
        &[],
        2.0,
    );
    let baseline = cohort(
        &[("sm-x12/db", "cpu_util_pct", series(40.0, 400, 1.0), 40)],
        &[],
        80.0,
    );
    let mut g = spec("sm-x12/db");
    g.expected_hosts = Some(4);
    let c = compare(
        1,
        "wave 1",
        &[g],
        &updated,
        &baseline,
        &GateSettings::default(),
    );
    let m = &c.groups[0].metrics[0];
    assert!(m.insufficient, "{m:?}");
    assert_eq!(
        m.reason,
        "1 of 4 updated hosts reporting; 10 updated samples (need 30)"
    );
    assert_eq!((m.p_value, m.worse), (1.0, false));
    assert_eq!(c.totals.insufficient, 1);
    // A group with no baseline at all.
    let c = compare(
        1,
        "wave 1",
        &[spec("new/hw")],
        &cohort(
            &[("new/hw", "cpu_util_pct", series(1.0, 100, 0.1), 5)],
            &[],
            5.0,
        ),
        &Cohort::default(),
        &GateSettings::default(),
    );
    assert!(c.groups[0].metrics[0].reason.contains("0 baseline samples"));
}

#[test]
fn events_are_rates_per_host_hour() {
    let updated = cohort(
        &[("c6420/db", "cpu_util_pct", series(40.0, 100, 1.0), 10)],
        &[("c6420/db", "unexpected_reboots", 3.0)],
        50.0,
    );
    let baseline = cohort(
        &[("c6420/db", "cpu_util_pct", series(40.0, 100, 1.0), 10)],
        &[("c6420/db", "unexpected_reboots", 2.0)],
        1000.0,
    );
    let c = compare(
        1,
        "wave 1",
        &[spec("c6420/db")],
        &updated,
        &baseline,
        &GateSettings::default(),
    );
    let e = &c.events["unexpected_reboots"];
    assert_eq!((e.count, e.baseline_count), (3, 2));
    assert!((e.rate - 0.06).abs() < 1e-12);
    // scipy.stats.binomtest(3, 5, 50/1050, alternative="greater").pvalue
    assert!(
        (e.p_value - 0.0010041377527147343).abs() < 1e-9,
        "{}",
        e.p_value
    );
    assert_eq!(c.groups[0].events["kernel_panics"].count, 0);
}

#[test]
fn corrections_apply_across_the_gate() {
    let mk = |shift: f64| {
        cohort(
            &[
                ("g/a", "m1", series(10.0 + shift, 60, 1.0), 5),
                ("g/b", "m1", series(10.0, 60, 1.0), 5),
            ],
            &[],
            5.0,
        )
    };
    let (u, b) = (mk(0.1), mk(0.0));
    let groups = [spec("g/a"), spec("g/b")];
    let none = compare(
        0,
        "c",
        &groups,
        &u,
        &b,
        &GateSettings {
            correction: Correction::None,
            ..GateSettings::default()
        },
    );
    let bh = compare(0, "c", &groups, &u, &b, &GateSettings::default());
    let holm = compare(
        0,
        "c",
        &groups,
        &u,
        &b,
        &GateSettings {
            correction: Correction::Holm,
            ..GateSettings::default()
        },
    );
    let p = |c: &Comparison| {
        (
            c.groups[0].metrics[0].p_value,
            c.groups[0].metrics[0].p_adjusted,
        )
    };
    let raw = [p(&none).0, none.groups[1].metrics[0].p_value];
    assert_eq!(p(&none).1, raw[0]);
    assert!((p(&bh).1 - stats::benjamini_hochberg(&raw)[0]).abs() < 1e-15);
    assert!((p(&holm).1 - stats::holm(&raw)[0]).abs() < 1e-15);
}
