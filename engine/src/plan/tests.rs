//! Planner tests: a readable plan for a small fleet, and properties over random fleets and
//! wave specs (partition, cumulative sizes, proportionality, limits, determinism).

use super::*;
use crate::plan::spec::{parse_windows, Amount, Scope};
use expect_test::expect;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Rules as plain data: the test double for `rollout.rhai`.
#[derive(Debug, Clone)]
struct FixedRules {
    exclude_tag: String,
    canary: i64,
    /// `"auto"` with this floor and cap instead of `canary`.
    auto: Option<(usize, usize)>,
    waves: Vec<f64>,
    bake: u64,
    max_in_flight: Option<u64>,
    blast: Vec<ScopeLimit>,
    windows: Vec<Window>,
    host_secs: u64,
}

impl Default for FixedRules {
    fn default() -> Self {
        FixedRules {
            exclude_tag: "no-reboot".into(),
            canary: 2,
            auto: None,
            waves: vec![1.0, 5.0, 25.0, 100.0],
            bake: 3600,
            max_in_flight: None,
            blast: Vec::new(),
            windows: Vec::new(),
            host_secs: 600,
        }
    }
}

impl RolloutRules for FixedRules {
    fn eligible(&self, hosts: &[&Host]) -> Result<Vec<Eligibility>, PlanError> {
        Ok(hosts
            .iter()
            .map(|h| {
                if h.tags.contains(&self.exclude_tag) {
                    Eligibility::Excluded(format!("tagged `{}`", self.exclude_tag))
                } else {
                    Eligibility::Eligible
                }
            })
            .collect())
    }
    fn canary(&self, _: &GroupInfo) -> Result<CanaryCount, PlanError> {
        match self.auto {
            Some((floor, cap)) => Ok(CanaryCount::Auto { floor, cap }),
            None => Ok(CanaryCount::from_json(&serde_json::json!(self.canary))?),
        }
    }
    fn waves(&self) -> Result<Vec<f64>, PlanError> {
        Ok(self.waves.clone())
    }
    fn bake(&self, _: &StageInfo) -> Result<u64, PlanError> {
        Ok(self.bake)
    }
    fn max_in_flight(&self, _: &StageInfo) -> Result<Option<u64>, PlanError> {
        Ok(self.max_in_flight)
    }
    fn blast_radius(&self) -> Result<Vec<ScopeLimit>, PlanError> {
        Ok(self.blast.clone())
    }
    fn windows(&self) -> Result<Vec<Window>, PlanError> {
        Ok(self.windows.clone())
    }
    fn host_time(&self, _: &GroupInfo) -> Result<u64, PlanError> {
        Ok(self.host_secs)
    }
}

const TARGET: &str = "6.8.0-45-generic";

fn host(name: &str, hw: &str, wl: &str, dc: &str, rack: &str) -> Host {
    Host {
        name: name.into(),
        address: name.into(),
        hardware: hw.into(),
        workload: wl.into(),
        datacenter: dc.into(),
        rack: rack.into(),
        kernel: "6.8.0-40-generic".into(),
        ..Host::default()
    }
}

fn start() -> Timestamp {
    "2026-12-01T00:00:00Z".parse().unwrap_or_default()
}

fn try_run(hosts: &[Host], rules: &FixedRules, seed: u64) -> Result<Plan, PlanError> {
    plan(
        &PlanRequest {
            hosts,
            target_kernel: TARGET,
            seed,
            start: start(),
            held: &Default::default(),
            sizing: None,
        },
        rules,
    )
}

fn run(hosts: &[Host], rules: &FixedRules, seed: u64) -> Plan {
    try_run(hosts, rules, seed).unwrap()
}

fn render(p: &Plan) -> String {
    let mut out = String::new();
    for s in &p.stages {
        out.push_str(&format!(
            "{} {}h cum={} {:?}\n",
            s.info.name, s.info.size, s.cumulative, s.groups
        ));
        for b in &s.batches {
            out.push_str(&format!("  {} {}\n", b.start, b.hosts.join(" ")));
        }
    }
    for e in &p.excluded {
        out.push_str(&format!(
            "excluded {} ({:?}): {}\n",
            e.host, e.kind, e.reason
        ));
    }
    for u in &p.uncovered {
        out.push_str(&format!("uncovered {}: {}\n", u.group, u.reason));
    }
    for n in &p.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// Twelve r640 web hosts over two datacenters and three racks, three r750 db hosts.
fn web_and_db() -> Vec<Host> {
    let mut hosts = Vec::new();
    for i in 0..12 {
        hosts.push(host(
            &format!("web{i:02}"),
            "r640",
            "web",
            if i % 2 == 0 { "ams1" } else { "iad2" },
            &format!("r{}", i % 3),
        ));
    }
    for i in 0..3 {
        hosts.push(host(&format!("db{i}"), "r750", "db", "ams1", "r9"));
    }
    hosts
}

#[test]
fn small_fleet_plan() {
    let mut hosts = web_and_db();
    hosts[3].tags.push("no-reboot".into());
    hosts[4].kernel = TARGET.into();
    hosts.push(host("lonely", "c6420", "batch", "iad2", "r1"));
    hosts[15].tags.push("no-reboot".into());
    let rules = FixedRules {
        max_in_flight: Some(3),
        blast: vec![ScopeLimit {
            scope: Scope::Rack,
            in_flight: Some(Amount::Count(1)),
            per_wave: None,
        }],
        waves: vec![10.0, 50.0, 100.0],
        ..FixedRules::default()
    };
    expect![[r#"
        canary 4h cum=4 {"r640/web": 2, "r750/db": 2}
          2026-12-01T00:00:00Z web10 web01 db0
          2026-12-01T00:10:00Z db2
        wave 1 1h cum=5 {"r640/web": 1}
          2026-12-01T01:20:00Z web08
        wave 2 2h cum=7 {"r640/web": 2}
          2026-12-01T02:30:00Z web09 web00
        wave 3 6h cum=13 {"r640/web": 5, "r750/db": 1}
          2026-12-01T03:40:00Z web11 web07 web06
          2026-12-01T03:50:00Z web02 db1 web05
        excluded web04 (OnTarget): already on `6.8.0-45-generic`
        excluded lonely (Ineligible): tagged `no-reboot`
        excluded web03 (Ineligible): tagged `no-reboot`
        uncovered c6420/batch: 1 host(s) need the kernel but none is eligible, so no canary can validate this group
        note: wave 2 has 2 host(s), not ~5: the stages before it (canaries count) already did 38.5% of the eligible fleet
    "#]]
    .assert_eq(&render(&run(&hosts, &rules, 1)));
}

#[test]
fn per_wave_limits_split_a_wave_and_windows_shape_the_timeline() {
    let hosts: Vec<Host> = (0..40)
        .map(|i| {
            host(
                &format!("h{i:02}"),
                "r640",
                "web",
                ["a", "b"][i % 2],
                &format!("r{}", i % 5),
            )
        })
        .collect();
    let rules = FixedRules {
        canary: 1,
        waves: vec![50.0, 100.0],
        blast: vec![ScopeLimit {
            scope: Scope::Datacenter,
            in_flight: None,
            per_wave: Some(Amount::Percent { percent: 25.0 }),
        }],
        windows: parse_windows(
            &serde_json::json!([{"days": ["tue"], "start": "00:00", "end": "02:00"}]),
        )
        .unwrap(),
        host_secs: 1800,
        bake: 0,
        max_in_flight: Some(10),
        ..FixedRules::default()
    };
    let p = run(&hosts, &rules, 3);
    let names: Vec<&str> = p.stages.iter().map(|s| s.info.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "canary",
            "wave 1 (1/2)",
            "wave 1 (2/2)",
            "wave 2 (1/2)",
            "wave 2 (2/2)"
        ]
    );
    assert!(p.stages[1]
        .split
        .as_deref()
        .unwrap_or("")
        .contains("datacenter per wave ≤ 25%"));
    // Four 30-minute batches fit in each Tuesday 00:00-02:00 UTC window; the fifth waits a week.
    let starts: Vec<String> = p
        .stages
        .iter()
        .flat_map(|s| s.batches.iter().map(|b| b.start.to_string()))
        .collect();
    assert_eq!(
        starts,
        [
            "2026-12-01T00:00:00Z",
            "2026-12-01T00:30:00Z",
            "2026-12-01T01:00:00Z",
            "2026-12-01T01:30:00Z",
            "2026-12-08T00:00:00Z",
        ]
    );
    assert_eq!(p.finish.to_string(), "2026-12-08T00:30:00Z");
}

#[test]
fn bad_rules_are_errors_not_panics() {
    let hosts = vec![host("a", "h", "w", "d", "r")];
    let bad = |rules: FixedRules| {
        try_run(&hosts, &rules, 0)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(bad(FixedRules {
        canary: -1,
        ..FixedRules::default()
    })
    .contains("expected a count"));
    assert!(bad(FixedRules {
        max_in_flight: Some(0),
        ..FixedRules::default()
    })
    .contains("would stop every host"));
    let tight = parse_windows(&serde_json::json!([{"start": "01:00", "end": "01:05"}])).unwrap();
    assert!(bad(FixedRules {
        windows: tight,
        ..FixedRules::default()
    })
    .contains("longer than the longest maintenance window"));
    let e = plan(
        &PlanRequest {
            hosts: &hosts,
            target_kernel: "banana",
            seed: 0,
            start: start(),
            held: &Default::default(),
            sizing: None,
        },
        &FixedRules::default(),
    );
    assert!(e.is_err());
}

// ---------------------------------------------------------------------------------------------
// Properties

#[derive(Debug, Clone)]
struct Case {
    hosts: Vec<Host>,
    rules: FixedRules,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let host_spec = (0..4usize, 0..3usize, 0..3usize, 0..6usize, 0..20u8);
    (
        proptest::collection::vec(host_spec, 1..300),
        proptest::collection::btree_set(1u32..100, 0..4),
        0i64..4,
        proptest::option::of(1u64..20),
        proptest::option::of(1usize..3),
        proptest::option::of(prop_oneof![
            (5u32..60).prop_map(|p| Amount::Percent {
                percent: f64::from(p)
            }),
            (1u64..30).prop_map(Amount::Count)
        ]),
        any::<u64>(),
    )
        .prop_map(|(specs, waves, canary, mif, rack_cap, dc_wave, seed)| {
            let hosts = specs
                .iter()
                .enumerate()
                .map(|(i, (hw, wl, dc, rack, flag))| {
                    let mut h = host(
                        &format!("h{i}"),
                        &format!("hw{hw}"),
                        &format!("wl{wl}"),
                        &format!("dc{dc}"),
                        &format!("r{rack}"),
                    );
                    match flag {
                        0 => h.tags.push("no-reboot".into()),
                        1 => h.kernel = TARGET.into(),
                        _ => {}
                    }
                    h
                })
                .collect();
            let mut w: Vec<f64> = waves.into_iter().map(f64::from).collect();
            w.push(100.0);
            let mut blast = Vec::new();
            if let Some(c) = rack_cap {
                blast.push(ScopeLimit {
                    scope: Scope::Rack,
                    in_flight: Some(Amount::Count(c as u64)),
                    per_wave: None,
                });
            }
            if let Some(a) = dc_wave {
                blast.push(ScopeLimit {
                    scope: Scope::Datacenter,
                    in_flight: None,
                    per_wave: Some(a),
                });
            }
            Case {
                hosts,
                rules: FixedRules {
                    canary,
                    waves: w,
                    max_in_flight: mif,
                    blast,
                    ..FixedRules::default()
                },
                seed,
            }
        })
}

fn check_case(c: &Case) -> Result<(), TestCaseError> {
    let p = try_run(&c.hosts, &c.rules, c.seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let by_name: HashMap<&str, &Host> = c.hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    let group = |n: &str| {
        by_name
            .get(n)
            .map(|h| format!("{}/{}", h.hardware, h.workload))
            .unwrap_or_default()
    };

    // Partition: every eligible host exactly once; excluded and planned are disjoint and
    // together the whole fleet.
    let planned: Vec<&str> = p
        .stages
        .iter()
        .flat_map(|s| {
            s.batches
                .iter()
                .flat_map(|b| b.hosts.iter().map(String::as_str))
        })
        .collect();
    let set: BTreeSet<&str> = planned.iter().copied().collect();
    prop_assert_eq!(set.len(), planned.len(), "a host is planned twice");
    let eligible: BTreeSet<&str> = c
        .hosts
        .iter()
        .filter(|h| !h.tags.iter().any(|t| t == "no-reboot") && h.kernel != TARGET)
        .map(|h| h.name.as_str())
        .collect();
    prop_assert_eq!(&set, &eligible);
    prop_assert_eq!(p.excluded.len() + planned.len(), c.hosts.len());

    // Stages: never empty; canaries first and covering every group with eligible hosts.
    let e = eligible.len();
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for n in &eligible {
        *sizes.entry(group(n)).or_default() += 1;
    }
    for s in &p.stages {
        prop_assert!(s.info.size > 0 && s.batches.iter().all(|b| !b.hosts.is_empty()));
        prop_assert_eq!(
            s.batches.iter().map(|b| b.hosts.len()).sum::<usize>(),
            s.info.size
        );
    }
    if e > 0 {
        prop_assert_eq!(p.stages[0].info.kind, StageKind::Canary);
        let mut canaries: BTreeMap<&String, usize> = BTreeMap::new();
        for s in p
            .stages
            .iter()
            .take_while(|s| s.info.kind == StageKind::Canary)
        {
            for (g, n) in &s.groups {
                *canaries.entry(g).or_default() += n;
            }
        }
        for g in sizes.keys() {
            prop_assert!(
                canaries.get(g).copied().unwrap_or(0) >= 1,
                "group {} has no canary",
                g
            );
        }
    }

    // Cumulative sizes at the end of each wave, and proportionality per group.
    let canaries = p.counts.canaries;
    let targets = cumulative_targets(&c.rules.waves, e, canaries);
    let mut cum_group: BTreeMap<String, usize> = BTreeMap::new();
    for s in p.stages.iter().filter(|s| s.info.kind == StageKind::Canary) {
        for (g, n) in &s.groups {
            *cum_group.entry(g.clone()).or_default() += n;
        }
    }
    let mut prev_total = canaries;
    for (wi, &want) in targets.iter().enumerate() {
        let pct = c.rules.waves[wi];
        let stages: Vec<&Stage> = p.stages.iter().filter(|s| s.info.wave == wi + 1).collect();
        let prev_group = cum_group.clone();
        for s in &stages {
            for (g, n) in &s.groups {
                *cum_group.entry(g.clone()).or_default() += n;
            }
        }
        let done = stages.last().map(|s| s.cumulative).unwrap_or(prev_total);
        prop_assert_eq!(done, want, "wave {} cumulative", wi + 1);
        if wi + 1 == targets.len() {
            prop_assert_eq!(want, e);
        } else if prev_total < e {
            let rule = ((pct / 100.0) * e as f64 - 1e-9).ceil() as usize;
            prop_assert!(
                want >= rule.min(e) && want > prev_total,
                "wave {} has {} after {}",
                wi + 1,
                want,
                prev_total
            );
        }
        // Seats held by floors beyond their share bound how far any group may fall short.
        let quota =
            |g: &str| want as f64 * sizes.get(g).copied().unwrap_or(0) as f64 / e.max(1) as f64;
        let slack: f64 = sizes
            .keys()
            .map(|g| (prev_group.get(g).copied().unwrap_or(0) as f64 - quota(g)).max(0.0))
            .sum();
        for g in sizes.keys() {
            let t = cum_group.get(g).copied().unwrap_or(0);
            let before = prev_group.get(g).copied().unwrap_or(0);
            let q = quota(g);
            prop_assert!(t >= before);
            prop_assert!(
                t <= before.max((q - 1e-9).ceil() as usize),
                "group {} has {} > ceil({})",
                g,
                t,
                q
            );
            prop_assert!(
                t as f64 >= (q + 1e-9).floor() - slack.ceil(),
                "group {} has {} < floor({}) - {}",
                g,
                t,
                q,
                slack
            );
        }
        prev_total = want;
    }

    // Limits: batch size, racks per batch, datacenter share per stage.
    let total_in =
        |scope: &Scope, v: &str| c.hosts.iter().filter(|h| scope.value_of(h) == v).count();
    for s in &p.stages {
        for l in &c.rules.blast {
            if let Some(a) = l.per_wave {
                let mut n: HashMap<String, usize> = HashMap::new();
                for h in s.batches.iter().flat_map(|b| &b.hosts) {
                    *n.entry(l.scope.value_of(by_name[h.as_str()])).or_default() += 1;
                }
                for (v, k) in n {
                    prop_assert!(
                        k <= a.of(total_in(&l.scope, &v)),
                        "{}: {} of {} in one stage",
                        s.info.name,
                        k,
                        v
                    );
                }
            }
        }
        for b in &s.batches {
            if let Some(m) = c.rules.max_in_flight {
                prop_assert!(b.hosts.len() as u64 <= m);
            }
            for l in &c.rules.blast {
                if let Some(a) = l.in_flight {
                    let mut n: HashMap<String, usize> = HashMap::new();
                    for h in &b.hosts {
                        *n.entry(l.scope.value_of(by_name[h.as_str()])).or_default() += 1;
                    }
                    for (v, k) in n {
                        prop_assert!(
                            k <= a.of(total_in(&l.scope, &v)),
                            "{} of {} in one batch",
                            k,
                            v
                        );
                    }
                }
            }
        }
    }

    // Determinism.
    let again =
        try_run(&c.hosts, &c.rules, c.seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        serde_json::to_string(&p).ok(),
        serde_json::to_string(&again).ok()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn plans_hold_their_invariants(c in case()) {
        check_case(&c)?;
    }

    #[test]
    fn apportion_is_exact_and_bounded(
        sizes in proptest::collection::vec(0usize..50, 1..8),
        frac in 0.0f64..=1.0,
        lower_frac in 0.0f64..=1.0,
    ) {
        let lower: Vec<usize> = sizes.iter().map(|s| (*s as f64 * lower_frac * 0.3) as usize).collect();
        let cap: usize = sizes.iter().sum();
        let floor: usize = lower.iter().sum();
        let total = floor + ((cap - floor) as f64 * frac) as usize;
        let out = apportion(total, &sizes, &lower);
        prop_assert_eq!(out.iter().sum::<usize>(), total);
        for g in 0..sizes.len() {
            prop_assert!(out[g] >= lower[g] && out[g] <= sizes[g]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Canary sizing

fn sizing_with(drift: f64) -> crate::gate::sizing::Sizing {
    use crate::gate::hosts::Scale;
    use crate::gate::sizing::{Sizing, Spread, Spreads};
    let spread = Spread {
        scale: Scale::Log,
        noise_var: 0.08 * 0.08,
        noise_df: 1000.0,
        drift_var: drift * drift,
        hosts: 20,
    };
    let mut spreads = Spreads {
        interval_secs: 300.0,
        history_secs: 86_400.0,
        hosts: 40,
        samples: 11_520,
        ..Spreads::default()
    };
    spreads
        .groups
        .insert(("r640/web".into(), "io".into()), spread);
    spreads.pooled.insert("io".into(), spread);
    Sizing::for_tests("baseline.parquet", spreads)
}

fn sized(n: usize, drift: f64, auto: (usize, usize)) -> Plan {
    let hosts: Vec<Host> = (0..n)
        .map(|i| host(&format!("h{i:02}"), "r640", "web", "a", &format!("r{i}")))
        .collect();
    let z = sizing_with(drift);
    plan(
        &PlanRequest {
            hosts: &hosts,
            target_kernel: TARGET,
            seed: 1,
            start: start(),
            held: &Default::default(),
            sizing: Some(&z),
        },
        &FixedRules {
            auto: Some(auto),
            ..FixedRules::default()
        },
    )
    .unwrap()
}

#[test]
fn auto_canaries_are_the_fewest_that_detect_the_threshold() {
    let check = |n: usize, drift: f64, auto: (usize, usize), want: expect_test::Expect| {
        let p = sized(n, drift, auto);
        let g = &p.groups[0];
        let z = g.canary_sizing.as_ref().unwrap();
        let e = &z.expected[0];
        want.assert_eq(&format!(
            "{} canaries, {} controls, io MDE {:.1}% (pooled {}), within {}: {}",
            g.canaries, z.controls, e.mde, e.pooled, z.within, z.why
        ));
    };
    // Sampling noise alone: two canaries see 5% (on their own 6 degrees of freedom).
    check(40, 0.0, (2, 6), expect_test::expect!["2 canaries, 6 controls, io MDE 4.6% (pooled false), within true: the floor, 2, detects every threshold"]);
    // 3% drift per host between windows: it takes six (a lone group has only its own spread).
    check(40, 0.03, (2, 6), expect_test::expect!["6 canaries, 18 controls, io MDE 4.8% (pooled false), within true: the fewest of 2..=6 that detect every threshold"]);
    // A cap too low for the drift: the cap, and the plan says the gate will not approve it.
    check(40, 0.03, (2, 4), expect_test::expect!["4 canaries, 12 controls, io MDE 6.1% (pooled false), within false: no count of 2..=4 detects every threshold; 4 comes closest: expect the canary gate to call this group inconclusive"]);
    // A small group: all its hosts, with few controls left.
    check(5, 0.03, (2, 6), expect_test::expect!["2 canaries, 3 controls, io MDE 13.9% (pooled false), within false: no count of 2..=5 detects every threshold; 2 comes closest: expect the canary gate to call this group inconclusive"]);
}

#[test]
fn auto_without_a_baseline_takes_the_cap() {
    let hosts: Vec<Host> = (0..40)
        .map(|i| host(&format!("h{i:02}"), "r640", "web", "a", &format!("r{i}")))
        .collect();
    let p = run(
        &hosts,
        &FixedRules {
            auto: Some((2, 5)),
            ..FixedRules::default()
        },
        1,
    );
    assert_eq!(p.groups[0].canaries, 5);
    assert!(p.groups[0]
        .canary_sizing
        .as_ref()
        .is_some_and(|z| z.expected.is_empty() && z.why.contains("no baseline")));
}

/// Finding: without a baseline, `"auto"` took its cap even in groups of five, so a 20-host
/// fleet became all canaries and no controls. A small group now keeps controls: the count
/// whose comparison with them is tightest, fewest on ties.
#[test]
fn finding_auto_without_a_baseline_took_whole_small_groups_as_canaries() {
    let check = |size: usize, expect: expect_test::Expect| {
        let hosts: Vec<Host> = (0..size)
            .map(|i| host(&format!("h{i:02}"), "r640", "web", "a", &format!("r{i}")))
            .collect();
        let p = run(
            &hosts,
            &FixedRules {
                auto: Some((2, 6)),
                ..FixedRules::default()
            },
            1,
        );
        let g = &p.groups[0];
        let z = g.canary_sizing.as_ref().expect("sized");
        expect.assert_eq(&format!(
            "{} canaries, {} controls: {}",
            g.canaries, z.controls, z.why
        ));
    };
    check(5, expect_test::expect!["2 canaries, 3 controls: no baseline to size from: 2, which leaves 3 control(s) (the tightest comparison of 2..=5)"]);
    check(8, expect_test::expect!["4 canaries, 4 controls: no baseline to size from: 4, which leaves 4 control(s) (the tightest comparison of 2..=6)"]);
    check(
        30,
        expect_test::expect!["6 canaries, 18 controls: no baseline to size from: the cap, 6"],
    );
    check(
        1,
        expect_test::expect!["1 canaries, 0 controls: no baseline to size from: the cap, 1"],
    );
}

/// Controllers per shard share the fleet's in-flight limits: each host's slots, named by
/// scope and value, sized from the whole fleet's hosts of that value.
#[test]
fn in_flight_slots_name_each_limit_and_size_it_from_the_whole_fleet() {
    let hosts = vec![
        host("a", "r750", "web", "ams1", "r01"),
        host("b", "r750", "db", "ams1", "r01"),
        host("c", "r750", "db", "ams1", "r02"),
        host("d", "r640", "db", "fra1", "r01"),
    ];
    let blast = vec![
        ScopeLimit {
            scope: Scope::Rack,
            in_flight: Some(Amount::Count(1)),
            per_wave: None,
        },
        ScopeLimit {
            scope: Scope::Workload,
            in_flight: Some(Amount::Percent { percent: 70.0 }),
            per_wave: None,
        },
        // A per-wave limit is the planner's alone.
        ScopeLimit {
            scope: Scope::Datacenter,
            in_flight: None,
            per_wave: Some(Amount::Count(1)),
        },
    ];
    let slots = in_flight_slots(&blast, &hosts);
    let show: Vec<String> = slots
        .iter()
        .map(|(h, s)| {
            let s: Vec<String> = s.iter().map(|(n, k)| format!("{n}:{k}")).collect();
            format!("{h} {}", s.join(" "))
        })
        .collect();
    assert_eq!(
        show,
        [
            "a rack=ams1/r01:1 workload=web:1",
            "b rack=ams1/r01:1 workload=db:2",
            "c rack=ams1/r02:1 workload=db:2",
            "d rack=fra1/r01:1 workload=db:2",
        ]
    );
    assert!(in_flight_slots(&[], &hosts).is_empty());
}

#[test]
fn a_shards_share_of_a_plan_keeps_every_stage_and_only_its_hosts() {
    let hosts = web_and_db();
    let rules = FixedRules {
        max_in_flight: Some(3),
        waves: vec![10.0, 50.0, 100.0],
        ..FixedRules::default()
    };
    let whole = run(&hosts, &rules, 1);
    let iad2 = whole
        .clone()
        .only(|h| hosts.iter().any(|x| x.name == h && x.datacenter == "iad2"));
    // Stage k is stage k in every shard, even where the shard has none of its hosts.
    assert_eq!(iad2.stages.len(), whole.stages.len());
    let mut seen = Vec::new();
    for (mine, all) in iad2.stages.iter().zip(&whole.stages) {
        assert_eq!(mine.info.name, all.info.name);
        // The whole stage's groups, which the shard chooses controls for.
        assert_eq!(mine.fleet_groups.as_ref(), Some(&all.groups));
        assert_eq!(all.fleet_groups, None);
        let kept: Vec<&String> = mine.batches.iter().flat_map(|b| &b.hosts).collect();
        assert_eq!(mine.info.size, kept.len());
        assert!(mine.batches.iter().all(|b| !b.hosts.is_empty()));
        let expected: Vec<&String> = all
            .batches
            .iter()
            .flat_map(|b| &b.hosts)
            .filter(|h| h.starts_with("web") && h[3..].parse::<usize>().unwrap() % 2 == 1)
            .collect();
        assert_eq!(kept, expected, "{}", mine.info.name);
        seen.extend(kept);
    }
    assert_eq!(seen.len(), 6, "every iad2 host in one stage: {seen:?}");
    assert!(
        iad2.stages.iter().any(|s| s.info.size == 0),
        "the db canaries' stage part is ams1's alone, so some stage keeps none here"
    );
}
