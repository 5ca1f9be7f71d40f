//! `fleetward bench verdicts --rollouts`: calibration through the path users run. Each run is
//! a whole simulated rollout (`simulate`'s controller, the shipped plan with canaries sized as
//! shipped, every stage's bake and gate) of a generated fleet, with one group regressed from
//! the canaries on, over many seeds (each its own canary choice, noise and start hour); the
//! stage where each rollout stopped, and why, is counted.

use super::fleetgen::{self, FleetSpec, TINY_GROUP};
use super::samplegen;
use super::scenario::{self, RegressionSpec, RunOptions};
use crate::gate;
use crate::model::Host;
use crate::rollout::controller::NoObserver;
use crate::rollout::Phase;
use crate::runtime::LoadOptions;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Hosts in the generated fleet: every one of the 24 groups, the smallest of three hosts.
pub const FLEET_HOSTS: usize = 2000;
/// The generated fleet's seed.
const FLEET_SEED: u64 = 3;

/// One rollout scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: String,
    /// `completed` (a pause is a false alarm) or `caught` (the regression should pause it).
    pub expect: String,
    /// The regressed group, resolved against the fleet (`large` is its largest group).
    pub group: Option<String>,
    pub metric: String,
    pub factor: f64,
}

/// The scenarios: a clean kernel, and one group regressed from the canaries on, 30% and 15%
/// worse on each standard metric, in the fleet's largest group and in its three-host group.
pub fn scenarios(large: &str) -> Vec<Scenario> {
    let mut out = vec![Scenario {
        name: "clean".into(),
        expect: "completed".into(),
        group: None,
        metric: String::new(),
        factor: 1.0,
    }];
    let small = format!("{}/{}", TINY_GROUP.0, TINY_GROUP.1);
    for pct in [30.0, 15.0] {
        for (size, group) in [("large", large), ("small", small.as_str())] {
            for (metric, dir) in gate::STANDARD_METRICS {
                let factor = match dir {
                    gate::Direction::HigherIsWorse => 1.0 + pct / 100.0,
                    gate::Direction::LowerIsWorse => 1.0 - pct / 100.0,
                };
                out.push(Scenario {
                    name: format!("{size} {group} {metric} {pct}% worse"),
                    expect: "caught".into(),
                    group: Some(group.to_string()),
                    metric: metric.to_string(),
                    factor,
                });
            }
        }
    }
    out
}

/// How the runs of one scenario ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    pub seeds: usize,
    /// Runs that a gate paused or failed (a regression found), by stage (`canary`, …).
    pub paused_at: BTreeMap<String, usize>,
    /// Of those, the runs whose pause names the regressed group itself (`r640/cache: …`).
    pub named: usize,
    /// Runs paused because a gate stayed inconclusive after its bake extensions (the data
    /// could not decide: "cannot judge …"), by stage.
    pub inconclusive_at: BTreeMap<String, usize>,
    /// Runs that approved the kernel at the canaries (`canary_approved`).
    pub approved: usize,
    /// Runs that completed (with or without quarantined hosts).
    pub completed: usize,
    /// Runs that ended any other way.
    pub other: usize,
    /// The share of runs paused at the canary gate: the catch rate of a regression from the
    /// canaries on, or the false-pause rate there of a clean kernel.
    pub canary_rate: f64,
    /// A few reasons of unexpected ends, for reading.
    pub examples: Vec<String>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rollouts {
    pub hosts: usize,
    pub groups: usize,
    pub large_group: String,
    pub large_group_hosts: usize,
    pub host_drift: f64,
    pub outcomes: Vec<Outcome>,
    /// Rollouts simulated per second.
    pub rollouts_per_second: f64,
}

/// One finished run, for a progress line: long runs (200 seeds of whole rollouts take tens of
/// minutes) can be watched while they go.
#[derive(Debug, Clone)]
pub struct RunDone<'a> {
    pub scenario: &'a str,
    pub seed: u64,
    /// Runs of this scenario finished so far, and of how many.
    pub done: usize,
    pub of: usize,
    /// How the run ended: `completed`, `paused at wave-2`, …
    pub ended: String,
    pub seconds: f64,
}

/// How one run ended, in a few words.
fn ended(r: &scenario::Summary) -> String {
    match (&r.phase, &r.stage) {
        (Phase::Completed | Phase::CompletedWithFailures, _) => r.phase.as_str().to_string(),
        (phase, Some(stage)) => format!("{} at {stage}", phase.as_str()),
        (phase, None) => phase.as_str().to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutsError {
    #[error(transparent)]
    Scenario(#[from] scenario::ScenarioError),
    #[error(transparent)]
    Data(#[from] gate::frames::DataError),
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Hours of baseline history: two drift periods, so canary sizing sees how far hosts wander.
const BASELINE_HOURS: usize = 8;

/// The generated fleet, its inventory and a baseline of its production hosts with
/// `host_drift` in their history, in `dir`.
fn fleet(dir: &Path, host_drift: f64) -> Result<(Vec<Host>, PathBuf, PathBuf), RolloutsError> {
    let hosts = fleetgen::generate(&FleetSpec::example(FLEET_HOSTS, FLEET_SEED));
    let inventory = dir.join("fleet.toml");
    std::fs::write(&inventory, fleetgen::to_toml(&hosts)).map_err(|source| {
        RolloutsError::Write {
            path: inventory.clone(),
            source,
        }
    })?;
    let (mut s, _) = samplegen::for_inventory(
        &hosts,
        samplegen::Scenario::Baseline,
        0,
        BASELINE_HOURS * 12,
        gate::STANDARD_METRICS.len(),
    );
    samplegen::add_drift(&mut s, 0, host_drift);
    let baseline = dir.join("baseline.parquet");
    gate::frames::write(s.rows(), &baseline)?;
    Ok((hosts, inventory, baseline))
}

/// One rollout of `s` for `seed`.
#[allow(clippy::too_many_arguments)]
fn one(
    dir: &Path,
    policy_dir: &Path,
    inventory: &Path,
    baseline: &Path,
    load: &LoadOptions,
    s: &Scenario,
    seed: u64,
    host_drift: f64,
) -> Result<scenario::Summary, RolloutsError> {
    // A different hour of the day each run, so the daily swing falls differently.
    let start = jiff::Timestamp::from_second(1_796_601_600 + (seed % 24) as i64 * 3600)
        .map_err(|e| RolloutsError::Invalid(e.to_string()))?;
    let regression = s
        .group
        .iter()
        .map(|g| RegressionSpec {
            group: g.clone(),
            from_stage: 0,
            metric: s.metric.clone(),
            factor: s.factor,
        })
        .collect();
    let sc = scenario::Scenario::generated(
        inventory.to_path_buf(),
        policy_dir.to_path_buf(),
        baseline.to_path_buf(),
        &start.to_string(),
        seed,
        host_drift * 100.0,
        regression,
    );
    let state = dir.join(format!("run-{seed}"));
    let opts = RunOptions {
        state_dir: state.clone(),
        workers: 1,
        shard: None,
    };
    let r = scenario::run(dir, &sc, &opts, load, &NoObserver);
    let _ = std::fs::remove_dir_all(&state);
    Ok(r?)
}

/// Runs every rollout scenario (or those whose name contains `only`) over `seeds` seeds,
/// telling `progress` of each run as it ends.
pub fn rollouts(
    policy_dir: &Path,
    load: &LoadOptions,
    seeds: usize,
    host_drift: f64,
    only: Option<&str>,
    progress: &(dyn Fn(&RunDone) + Sync),
) -> Result<Rollouts, RolloutsError> {
    if seeds == 0 {
        return Err(RolloutsError::Invalid("`--seeds` must be positive".into()));
    }
    if !(0.0..=1.0).contains(&host_drift) {
        return Err(RolloutsError::Invalid(format!(
            "`--host-drift` must be a percentage from 0 to 100, not `{}`",
            host_drift * 100.0
        )));
    }
    let policy_dir = std::path::absolute(policy_dir).map_err(|e| {
        RolloutsError::Invalid(format!("policy directory `{}`: {e}", policy_dir.display()))
    })?;
    let dir = std::env::temp_dir().join(format!("fleetward-bench-rollouts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| RolloutsError::Write {
        path: dir.clone(),
        source,
    })?;
    let r = run_all(&dir, &policy_dir, load, seeds, host_drift, only, progress);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

fn run_all(
    dir: &Path,
    policy_dir: &Path,
    load: &LoadOptions,
    seeds: usize,
    host_drift: f64,
    only: Option<&str>,
    progress: &(dyn Fn(&RunDone) + Sync),
) -> Result<Rollouts, RolloutsError> {
    let (hosts, inventory, baseline) = fleet(dir, host_drift)?;
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for h in &hosts {
        *sizes.entry(h.group_name()).or_default() += 1;
    }
    let (large, large_n) = sizes
        .iter()
        .max_by_key(|(g, n)| (**n, std::cmp::Reverse(g.as_str())))
        .map(|(g, n)| (g.clone(), *n))
        .ok_or_else(|| RolloutsError::Invalid("the generated fleet is empty".into()))?;
    let started = std::time::Instant::now();
    let mut outcomes = Vec::new();
    let mut runs = 0usize;
    for s in scenarios(&large)
        .into_iter()
        .filter(|s| only.is_none_or(|o| s.name.contains(o)))
    {
        let t0 = std::time::Instant::now();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let results = super::over_seeds(
            seeds,
            |seed| {
                let t = std::time::Instant::now();
                let r = one(
                    dir, policy_dir, &inventory, &baseline, load, &s, seed, host_drift,
                );
                progress(&RunDone {
                    scenario: &s.name,
                    seed,
                    done: done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    of: seeds,
                    ended: match &r {
                        Ok(r) => ended(r),
                        Err(e) => format!("error: {e}"),
                    },
                    seconds: t.elapsed().as_secs_f64(),
                });
                r
            },
            || Err(RolloutsError::Invalid("a worker stopped".into())),
        );
        let mut o = Outcome {
            scenario: s.clone(),
            seeds,
            paused_at: BTreeMap::new(),
            named: 0,
            inconclusive_at: BTreeMap::new(),
            approved: 0,
            completed: 0,
            other: 0,
            canary_rate: 0.0,
            examples: Vec::new(),
            seconds: 0.0,
        };
        for r in results {
            tally(&mut o, &s, &r?);
        }
        runs += seeds;
        o.canary_rate = o.paused_at.get("canary").copied().unwrap_or(0) as f64 / seeds as f64;
        o.seconds = t0.elapsed().as_secs_f64();
        outcomes.push(o);
    }
    Ok(Rollouts {
        hosts: hosts.len(),
        groups: sizes.len(),
        large_group: large,
        large_group_hosts: large_n,
        host_drift,
        outcomes,
        rollouts_per_second: runs as f64 / started.elapsed().as_secs_f64().max(1e-9),
    })
}

/// Counts one run's end into `o`.
fn tally(o: &mut Outcome, s: &Scenario, r: &scenario::Summary) {
    if r.alerts.iter().any(|a| a.kind == "canary_approved") {
        o.approved += 1;
    }
    let stopped = r.alerts.iter().rev().find(|a| {
        matches!(
            a.kind.as_str(),
            "gate_paused" | "gate_failed" | "gate_inconclusive"
        )
    });
    let example = |o: &mut Outcome, what: String| {
        if o.examples.len() < 3 {
            o.examples.push(what);
        }
    };
    match (&r.phase, stopped) {
        (Phase::Paused, Some(p)) => {
            let stage = p.stage.clone().or(r.stage.clone()).unwrap_or_default();
            // The first finding, not a note.
            let why = p
                .reasons
                .iter()
                .find(|x| !x.starts_with("note: "))
                .or(p.reasons.first())
                .cloned()
                .unwrap_or_default();
            if p.kind == "gate_inconclusive" {
                *o.inconclusive_at.entry(stage.clone()).or_default() += 1;
                example(o, format!("inconclusive at {stage}: {why}"));
                return;
            }
            *o.paused_at.entry(stage.clone()).or_default() += 1;
            if let Some(g) = &s.group {
                let own = format!("{g}: ");
                if p.reasons.iter().any(|x| x.starts_with(&own)) {
                    o.named += 1;
                }
            }
            if !(s.expect == "caught" && stage == "canary") {
                example(o, format!("paused at {stage}: {why}"));
            }
        }
        (Phase::Completed | Phase::CompletedWithFailures, _) => {
            o.completed += 1;
            if s.expect == "caught" {
                example(o, format!("completed: {} host(s) updated", r.updated));
            }
        }
        (phase, _) => {
            o.other += 1;
            example(
                o,
                format!(
                    "{}: {}",
                    phase.as_str(),
                    r.pause_reason.clone().unwrap_or_default()
                ),
            );
        }
    }
}

/// The human table of [`rollouts`].
pub fn render(v: &Rollouts) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "rollouts: the controller over a generated fleet ({} hosts, {} groups, largest {} with {} hosts), the shipped policies and plan, {}% host drift per {} h",
        v.hosts,
        v.groups,
        v.large_group,
        v.large_group_hosts,
        v.host_drift * 100.0,
        samplegen::DRIFT_PERIOD_SECS / 3600
    );
    let _ = writeln!(
        o,
        "{:<48} {:>5} {:>7} {:>6} {:>6} {:>6} {:>6}  stopped at",
        "scenario", "seeds", "canary", "named", "apprvd", "compl", "other"
    );
    for x in &v.outcomes {
        let at = x
            .paused_at
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .chain(
                x.inconclusive_at
                    .iter()
                    .map(|(s, n)| format!("{s} inconclusive {n}")),
            )
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            o,
            "{:<48} {:>5} {:>6.1}% {:>6} {:>6} {:>6} {:>6}  {}",
            x.scenario.name,
            x.seeds,
            x.canary_rate * 100.0,
            if x.scenario.group.is_some() {
                x.named.to_string()
            } else {
                "-".into()
            },
            x.approved,
            x.completed,
            x.other,
            if at.is_empty() { "-".into() } else { at }
        );
        for e in &x.examples {
            let _ = writeln!(o, "      e.g. {e}");
        }
    }
    let _ = writeln!(
        o,
        "  canary: paused by the canary gate on a finding (a catch, or a false pause of the clean kernel); named: the pause names the regressed group; apprvd: the canaries approved the kernel; inconclusive: paused because the data could not decide"
    );
    let _ = writeln!(o, "  {:.2} rollouts/s", v.rollouts_per_second);
    o
}
