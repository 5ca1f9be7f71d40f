//! `fleetward bench verdicts`: calibration of the gate. Independent synthetic fleets (24
//! hardware × workload groups, 10% host spread, a daily swing, noise per sample, a before
//! window and a bake of the same length) go through the real gate path (Polars aggregation,
//! `compare`, `gates.rhai`) over many seeds per scenario, and the verdicts are counted.

use super::samplegen::{bench_value, level, normal, Variation};
use crate::gate::{self, aggregate, frames, GroupSpec, HostCohort, Reference, Split};
use crate::model::VerdictKind;
use crate::plan::keyed_hash;
use crate::rollout::check::BENCH_REPEAT;
use crate::runtime::PolicySet;
use polars::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

const HARDWARE: [&str; 6] = ["r650", "r750", "c6420", "hpe-dl380", "sm-x12", "r640"];
const WORKLOADS: [&str; 4] = ["web", "db", "cache", "batch"];
/// The hardware class of the class-wide regression.
pub const CLASS: &str = "r750";
/// The group of the single-group regressions.
pub const GROUP: &str = "r750/db";
/// The small group of the single-group regressions (one concurrent control).
pub const SMALL: &str = "sm-x12/db";
const STEP: i64 = 300;

/// What one scenario injects and how it is judged.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    /// What a run of this scenario should do: `pass` (a pause is a false alarm) or `pause`
    /// (a pause is a catch).
    pub expect: String,
    /// The gate's index: 0 judges as the canary gate (power required).
    pub stage: usize,
    pub updated_per_group: usize,
    /// `controls` (concurrent, before and after) or `stale` (a static baseline recorded
    /// twelve hours earlier on other hosts, no controls).
    pub reference: String,
    /// Multiplier of `metric` after the update, and where.
    pub effect: f64,
    pub effect_on: String,
    pub metric: String,
    /// The updated hosts ran the benchmark set before and after their update.
    pub benchmarks: bool,
    /// Control hosts of the regressed group, when not the default: a small group (three
    /// hosts, two canaries) has one.
    pub group_controls: Option<usize>,
}

/// The scenarios the acceptance asks for.
pub fn scenarios() -> Vec<Scenario> {
    let s = |name: &str, expect: &str, stage, n, reference: &str, effect, on: &str| Scenario {
        name: name.into(),
        expect: expect.into(),
        stage,
        updated_per_group: n,
        reference: reference.into(),
        effect,
        effect_on: on.into(),
        metric: "io_latency_p99_ms".into(),
        benchmarks: false,
        group_controls: None,
    };
    let b = |name: &str, expect: &str, stage, n, metric: &str, effect, on: &str, bench| Scenario {
        metric: metric.into(),
        benchmarks: bench,
        ..s(name, expect, stage, n, "controls", effect, on)
    };
    let disk = "bench_disk_write_mbps";
    let io = "io_latency_p99_ms";
    // One group regressed from the canaries on, with the shipped two canaries per group:
    // each standard metric, 30% and 15% worse, named at the group's own level.
    let mut single = vec![b(
        "clean, 2 canaries/group",
        "pass",
        0,
        2,
        io,
        1.0,
        "",
        false,
    )];
    for pct in [30.0, 15.0] {
        for (metric, dir) in gate::STANDARD_METRICS {
            let f = match dir {
                gate::Direction::HigherIsWorse => 1.0 + pct / 100.0,
                gate::Direction::LowerIsWorse => 1.0 - pct / 100.0,
            };
            single.push(b(
                &format!("{GROUP} {metric} {pct}% worse, 2 canaries"),
                "pause",
                0,
                2,
                metric,
                f,
                GROUP,
                false,
            ));
        }
    }
    // The cap of the shipped "auto" sizing: six canaries per group, the count it takes where
    // hosts drift and two cannot detect every threshold.
    single.push(b(
        "clean, 6 canaries/group",
        "pass",
        0,
        6,
        io,
        1.0,
        "",
        false,
    ));
    for metric in ["cpu_util_pct", io] {
        single.push(b(
            &format!("{GROUP} {metric} 15% worse, 6 canaries"),
            "pause",
            0,
            6,
            metric,
            1.15,
            GROUP,
            false,
        ));
    }
    // A small group: three hosts, two canaries, one concurrent control.
    for metric in ["cpu_util_pct", io] {
        single.push(Scenario {
            group_controls: Some(1),
            ..b(
                &format!("{SMALL} {metric} 30% worse, 2 canaries, 1 control"),
                "pause",
                0,
                2,
                metric,
                1.3,
                SMALL,
                false,
            )
        });
    }
    let mut all = vec![
        s(
            "clean, concurrent controls",
            "pass",
            0,
            3,
            "controls",
            1.0,
            "",
        ),
        s(
            "clean, stale static baseline",
            "pass",
            0,
            3,
            "stale",
            1.0,
            "",
        ),
        s(
            "r750/* io p99 +10%, canary gate",
            "pause",
            0,
            3,
            "controls",
            1.10,
            CLASS,
        ),
        s(
            "r750/db io p99 +5%, 3 hosts",
            "pause",
            1,
            3,
            "controls",
            1.05,
            GROUP,
        ),
        s(
            "r750/db io p99 +10%, 3 hosts",
            "pause",
            1,
            3,
            "controls",
            1.10,
            GROUP,
        ),
        s(
            "r750/db io p99 +5%, 10 hosts",
            "pause",
            1,
            10,
            "controls",
            1.05,
            GROUP,
        ),
        s(
            "r750/db io p99 +10%, 10 hosts",
            "pause",
            1,
            10,
            "controls",
            1.10,
            GROUP,
        ),
        b(
            "clean, benchmarks, 2 canaries/group",
            "pass",
            0,
            2,
            disk,
            1.0,
            "",
            true,
        ),
        b(
            "clean, benchmarks, 10 hosts/group",
            "pass",
            1,
            10,
            disk,
            1.0,
            "",
            true,
        ),
        b(
            "r750/* io p99 +8%, 2 canaries, traffic",
            "pause",
            0,
            2,
            io,
            1.08,
            CLASS,
            false,
        ),
        b(
            "r750/* disk bench -15%, 2 canaries",
            "pause",
            0,
            2,
            disk,
            0.85,
            CLASS,
            true,
        ),
        b(
            "r750/* disk bench -12%, 2 canaries",
            "pause",
            0,
            2,
            disk,
            0.88,
            CLASS,
            true,
        ),
        b(
            "r750/* disk bench -10%, 2 canaries",
            "pause",
            0,
            2,
            disk,
            0.90,
            CLASS,
            true,
        ),
        b(
            "r750/* disk randread p99 +30%, 2 canaries",
            "pause",
            0,
            2,
            "bench_disk_randread_p99_us",
            1.30,
            CLASS,
            true,
        ),
        b(
            "r750/* disk bench -8%, 2 canaries",
            "pause",
            0,
            2,
            disk,
            0.92,
            CLASS,
            true,
        ),
        b(
            "r750/* disk bench -5%, 2 canaries",
            "pause",
            0,
            2,
            disk,
            0.95,
            CLASS,
            true,
        ),
        b(
            "r750/* disk bench -3%, 2 canaries",
            "pass",
            0,
            2,
            disk,
            0.97,
            CLASS,
            true,
        ),
        b(
            "r750/* disk bench -8%, 3 hosts/group",
            "pause",
            1,
            3,
            disk,
            0.92,
            CLASS,
            true,
        ),
        b(
            "r750/* disk bench -8%, 10 hosts/group",
            "pause",
            1,
            10,
            disk,
            0.92,
            CLASS,
            true,
        ),
    ];
    all.extend(single);
    all
}

/// The verdicts of one scenario over its seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    pub seeds: usize,
    pub pass: usize,
    pub inconclusive: usize,
    pub pause: usize,
    pub fail: usize,
    /// `pause / seeds`: the false-pause rate of a clean scenario, the catch rate of a
    /// regression.
    pub pause_rate: f64,
    /// Pauses with a reason that names the regressed group itself (`r750/db: …`), not only a
    /// pooled level.
    pub named: usize,
    /// A few reasons of the unexpected verdicts, for reading.
    pub examples: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdicts {
    pub bake_hours: f64,
    pub variation: VariationDoc,
    pub outcomes: Vec<Outcome>,
    /// Gates judged per second, generation included.
    pub gates_per_second: f64,
}

/// The generator's variation, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct VariationDoc {
    pub host_spread: f64,
    pub daily_swing: f64,
    pub wobble: f64,
    pub noise: f64,
    /// Standard deviation of each host's own level change between its before and after
    /// windows (log scale), updated or not.
    pub host_drift: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum VerdictsError {
    #[error(transparent)]
    Data(#[from] frames::DataError),
    #[error(transparent)]
    Policy(#[from] crate::PolicyError),
    #[error("{0}")]
    Invalid(String),
}

struct Columns {
    host: Vec<String>,
    ts: Vec<i64>,
    metric: Vec<&'static str>,
    value: Vec<f64>,
}

impl Columns {
    fn new() -> Self {
        Columns {
            host: Vec::new(),
            ts: Vec::new(),
            metric: Vec::new(),
            value: Vec::new(),
        }
    }

    fn frame(self) -> Result<LazyFrame, frames::DataError> {
        df!(
            "host" => self.host,
            "timestamp" => self.ts.iter().map(|t| *t as f64).collect::<Vec<f64>>(),
            "metric" => self.metric,
            "value" => self.value,
        )
        .map(IntoLazy::lazy)
        .map_err(|e| frames::DataError::Invalid {
            file: "generated".into(),
            message: e.to_string(),
        })
    }
}

/// One host's samples from `from` for `steps` 5-minute steps; `effect` applies to `metric`
/// at or after `update`.
#[allow(clippy::too_many_arguments)]
fn host_samples(
    c: &mut Columns,
    v: &Variation,
    seed: u64,
    name: &str,
    hw: &str,
    wl: &str,
    from: i64,
    steps: i64,
    update: Option<(i64, f64, &str)>,
    drift: Option<(i64, f64)>,
) {
    let group = format!("{hw}/{wl}");
    for (metric, _) in gate::STANDARD_METRICS {
        let base = level(metric, hw, wl);
        let own = v.host_factor(name, metric);
        let key0 = keyed_hash(seed, &format!("{name}/{metric}"));
        // The host's own change between its windows, kernel or not: hosts drift apart as
        // their traffic shifts, so a host is not its own perfect control.
        let moved = drift.map(|(at, sd)| {
            let k = keyed_hash(seed ^ 0xd41f_7000, &format!("{name}/{metric}"));
            (at, (sd * normal(k)).exp())
        });
        for i in 0..steps {
            let ts = from + i * STEP;
            let effect = match update {
                Some((at, f, m)) if ts >= at && metric == m => f,
                _ => 1.0,
            } * match moved {
                Some((at, m)) if ts >= at => m,
                _ => 1.0,
            };
            let val = v.sample(
                metric,
                base * effect,
                own,
                v.time_factor(&group, ts),
                key0 ^ (ts as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            );
            c.host.push(name.to_string());
            c.ts.push(ts);
            c.metric.push(metric);
            c.value.push(val);
        }
    }
}

/// One host's benchmark runs: before its update (ten minutes before) and after it (fifteen
/// minutes after), [`BENCH_REPEAT`] repetitions each, varying as [`bench_value`] says; `factor` applies
/// to `metric` after the update.
fn bench_samples(
    c: &mut Columns,
    seed: u64,
    name: &str,
    hw: &str,
    update: i64,
    metric: &str,
    factor: f64,
) {
    for m in crate::rollout::bench::METRICS.map(|m| m.name) {
        if m == "bench_net_mbps" {
            continue;
        }
        for (run, at, f) in [(0u64, update - 600, 1.0), (1, update + 900, factor)] {
            let f = if m == metric { f } else { 1.0 };
            for rep in 0..BENCH_REPEAT {
                c.host.push(name.to_string());
                c.ts.push(at + i64::from(rep));
                c.metric.push(m);
                c.value
                    .push(bench_value(name, hw, m, seed * 2 + run, rep, f));
            }
        }
    }
}

/// One gate of `s` for `seed`: its verdict and reasons.
fn one(
    set: &PolicySet,
    s: &Scenario,
    seed: u64,
    bake_secs: i64,
    host_drift: f64,
) -> Result<(VerdictKind, Vec<String>), VerdictsError> {
    let v = Variation::FLEET;
    // The update happens at a random time of day.
    let update = 1_796_738_400
        + (normal(keyed_hash(seed, "hour")).abs() * 7.0 * 3600.0) as i64
        + (keyed_hash(seed, "start") % 24) as i64 * 3600;
    let from = update - bake_secs;
    let steps = 2 * bake_secs / STEP;
    let drift = (host_drift > 0.0).then_some((update, host_drift));
    let n_controls = crate::rollout::controller::default_controls(s.updated_per_group);
    let (mut upd, mut ctl, mut stale) = (Columns::new(), Columns::new(), Columns::new());
    let mut pairs = Vec::new();
    let mut specs = Vec::new();
    for hw in HARDWARE {
        for wl in WORKLOADS {
            let group = format!("{hw}/{wl}");
            let hit = s.effect != 1.0 && (s.effect_on == group || s.effect_on == hw);
            for i in 0..s.updated_per_group {
                let name = format!("s{seed}-{group}-u{i}");
                let u = hit.then_some((update, s.effect, s.metric.as_str()));
                host_samples(&mut upd, &v, seed, &name, hw, wl, from, steps, u, drift);
                if s.benchmarks {
                    let f = if hit { s.effect } else { 1.0 };
                    bench_samples(&mut upd, seed, &name, hw, update, &s.metric, f);
                }
                pairs.push((name, group.clone()));
            }
            if s.reference == "stale" {
                // Other hosts, twelve hours earlier, over the bake's length.
                for i in 0..n_controls {
                    let name = format!("s{seed}-{group}-b{i}");
                    let t = update - 12 * 3600;
                    host_samples(
                        &mut stale,
                        &v,
                        seed,
                        &name,
                        hw,
                        wl,
                        t,
                        bake_secs / STEP,
                        None,
                        None,
                    );
                    pairs.push((name, group.clone()));
                }
            } else {
                let n_controls = match s.group_controls {
                    Some(n) if s.effect_on == group => n,
                    _ => n_controls,
                };
                for i in 0..n_controls {
                    let name = format!("s{seed}-{group}-c{i}");
                    host_samples(&mut ctl, &v, seed, &name, hw, wl, from, steps, None, drift);
                    pairs.push((name, group.clone()));
                }
            }
            specs.push(GroupSpec {
                name: group.clone(),
                hardware: hw.into(),
                workload: wl.into(),
                expected_hosts: Some(s.updated_per_group),
            });
        }
    }
    let groups = frames::host_groups(&pairs)?;
    let split = Split::At {
        hosts: BTreeMap::new(),
        default: Some(update as f64),
    };
    let q = aggregate::Quantiles::for_statistic(set.gate_settings().host_statistic);
    let (updated, controls, summary) = if s.reference == "stale" {
        // Only the after window of the updated hosts, against the static level.
        let mut after = Columns::new();
        for (i, t) in upd.ts.iter().enumerate() {
            if *t >= update {
                after.host.push(upd.host[i].clone());
                after.ts.push(*t);
                after.metric.push(upd.metric[i]);
                after.value.push(upd.value[i]);
            }
        }
        let u = aggregate::aggregate(after.frame()?, &groups, &Split::None, "generated", q)?;
        let b = aggregate::aggregate(stale.frame()?, &groups, &Split::None, "generated", q)?;
        (u, HostCohort::default(), Some(frames::Summary::of(&b)))
    } else {
        let u = aggregate::aggregate(upd.frame()?, &groups, &split, "generated", q)?;
        let c = aggregate::aggregate(ctl.frame()?, &groups, &split, "generated", q)?;
        (u, c, None)
    };
    let name = gate::stage_name(s.stage);
    let (_, verdict) = gate::evaluate(
        set,
        &gate::Stage {
            index: s.stage,
            name: &name,
            groups: &specs,
            updated: &updated,
            reference: Reference {
                controls: &controls,
                summary: summary.as_ref(),
            },
        },
    );
    let v = verdict?;
    Ok((v.verdict, v.reasons))
}

/// Runs every scenario (or those whose name contains `only`) over `seeds` seeds.
pub fn verdicts(
    set: &PolicySet,
    seeds: usize,
    bake_hours: f64,
    host_drift: f64,
    only: Option<&str>,
) -> Result<Verdicts, VerdictsError> {
    if seeds == 0 || bake_hours.is_nan() || bake_hours <= 0.0 {
        return Err(VerdictsError::Invalid(
            "`--seeds` and `--bake-hours` must be positive".into(),
        ));
    }
    if !(0.0..=1.0).contains(&host_drift) {
        return Err(VerdictsError::Invalid(format!(
            "`--host-drift` must be a percentage from 0 to 100, not `{}`",
            host_drift * 100.0
        )));
    }
    let bake_secs = ((bake_hours * 3600.0) as i64 / STEP).max(1) * STEP;
    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    let mut gates_run = 0usize;
    for s in scenarios()
        .into_iter()
        .filter(|s| only.is_none_or(|o| s.name.contains(o)))
    {
        let t0 = std::time::Instant::now();
        let results = super::over_seeds(
            seeds,
            |seed| one(set, &s, seed, bake_secs, host_drift),
            || Err(VerdictsError::Invalid("a worker stopped".into())),
        );
        let mut o = Outcome {
            scenario: s.clone(),
            seeds,
            pass: 0,
            inconclusive: 0,
            pause: 0,
            fail: 0,
            pause_rate: 0.0,
            named: 0,
            examples: Vec::new(),
            seconds: 0.0,
        };
        for r in results {
            let (kind, reasons) = r?;
            match kind {
                VerdictKind::Pass => o.pass += 1,
                VerdictKind::Inconclusive => o.inconclusive += 1,
                VerdictKind::Pause => o.pause += 1,
                VerdictKind::Fail => o.fail += 1,
            }
            let own = format!("{}: ", s.effect_on);
            if kind == VerdictKind::Pause
                && s.effect_on.contains('/')
                && reasons.iter().any(|r| r.starts_with(&own))
            {
                o.named += 1;
            }
            let unexpected = if s.expect == "pass" {
                kind != VerdictKind::Pass
            } else {
                kind != VerdictKind::Pause
            };
            if unexpected && o.examples.len() < 3 {
                // The regressed group's own reasons first, when it has any.
                let own = format!("{}: ", s.effect_on);
                let judge = format!("cannot judge {}: ", s.effect_on);
                let r = reasons
                    .iter()
                    .find(|r| {
                        !s.effect_on.is_empty() && (r.starts_with(&own) || r.starts_with(&judge))
                    })
                    .or(reasons.first());
                if let Some(r) = r {
                    o.examples.push(format!("{kind}: {r}"));
                }
            }
        }
        gates_run += seeds;
        o.pause_rate = o.pause as f64 / seeds as f64;
        o.seconds = t0.elapsed().as_secs_f64();
        outcomes.push(o);
    }
    let v = Variation::FLEET;
    Ok(Verdicts {
        bake_hours,
        variation: VariationDoc {
            host_spread: v.host_spread,
            daily_swing: v.daily_swing,
            wobble: v.wobble,
            noise: v.noise,
            host_drift,
        },
        gates_per_second: gates_run as f64 / started.elapsed().as_secs_f64().max(1e-9),
        outcomes,
    })
}

/// The human table of [`verdicts`].
pub fn render(v: &Verdicts) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "verdicts: the real gate path over generated fleets (24 groups, {}% host spread, ±{}% daily swing, {}% noise, {}% host drift between windows), before window and bake {} h each",
        v.variation.host_spread * 100.0,
        v.variation.daily_swing * 100.0,
        v.variation.noise * 100.0,
        v.variation.host_drift * 100.0,
        v.bake_hours
    );
    let _ = writeln!(
        o,
        "{:<52} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}  {:>8}",
        "scenario", "seeds", "pass", "incon", "pause", "fail", "named", "paused"
    );
    for x in &v.outcomes {
        let what = if x.scenario.expect == "pass" {
            "false"
        } else {
            "caught"
        };
        let _ = writeln!(
            o,
            "{:<52} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}  {:>6.1}% {what}",
            x.scenario.name,
            x.seeds,
            x.pass,
            x.inconclusive,
            x.pause,
            x.fail,
            if x.scenario.effect_on.contains('/') {
                x.named.to_string()
            } else {
                "-".into()
            },
            x.pause_rate * 100.0
        );
        for e in &x.examples {
            let _ = writeln!(o, "      e.g. {e}");
        }
    }
    let _ = writeln!(
        o,
        "  {:.1} gates/s, generation included",
        v.gates_per_second
    );
    o
}
