//! `fleetward simulate SCENARIO`: the rollout controller, unchanged, against a simulated fleet
//! on a virtual clock. A scenario is a directory with `scenario.toml` naming an inventory,
//! baselines, policies and the faults to inject, and optionally the outcome it expects.

use super::rollout::{load_store, Collected, Printer};
use super::{plan as plancmd, Ctx, InventoryArgs};
use crate::output::{json_line, Exit, Format};
use anyhow::{anyhow, bail, Context};
use fleetward_engine::alert::{AlertSink, Alerts};
use fleetward_engine::clock::{Clock, VirtualClock};
use fleetward_engine::exec::sim::{Faults, Regression, SimExecutor, Timing};
use fleetward_engine::exec::Executor;
use fleetward_engine::rollout::controller::{
    phase_word, Controller, Fleet, Io, NoControl, Options, PolicySource,
};
use fleetward_engine::rollout::{Journal, Phase};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The scenario directory (holding `scenario.toml`).
    pub scenario: PathBuf,
    /// Keep the journal, samples and gate reports here. Default: a temporary directory.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Driver threads.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Print a line per updated host (human output).
    #[arg(long)]
    pub hosts: bool,
}

/// `scenario.toml`. Paths are relative to the scenario directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[serde(default)]
    description: String,
    inventory: PathBuf,
    policies: PathBuf,
    baseline: PathBuf,
    /// When the simulated rollout starts (RFC 3339).
    start: String,
    kernel: Option<String>,
    seed: Option<u64>,
    /// Bake override in seconds.
    bake: Option<u64>,
    #[serde(default)]
    timing: TimingSpec,
    #[serde(default)]
    regression: Vec<RegressionSpec>,
    #[serde(default)]
    unexpected_reboot: Vec<RebootSpec>,
    #[serde(default)]
    faults: FaultSpec,
    expect: Option<Expect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct TimingSpec {
    install_secs: u64,
    reboot_secs: u64,
    command_secs: u64,
}

impl Default for TimingSpec {
    fn default() -> Self {
        let t = Timing::default();
        TimingSpec {
            install_secs: t.install.as_secs(),
            reboot_secs: t.reboot_down.as_secs(),
            command_secs: t.command.as_secs(),
        }
    }
}

/// A metric that worsens on `group`'s hosts in stages from `from_stage` on (0 = canaries),
/// once they run the new kernel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegressionSpec {
    group: String,
    #[serde(default)]
    from_stage: usize,
    metric: String,
    factor: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RebootSpec {
    host: String,
    after_secs: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FaultSpec {
    unreachable: Vec<String>,
    never_up: Vec<String>,
    hang: Vec<HangSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HangSpec {
    host: String,
    command: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    phase: String,
    stage: Option<String>,
}

fn read_scenario(dir: &Path) -> anyhow::Result<Scenario> {
    let file = dir.join("scenario.toml");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read scenario `{}`", file.display()))?;
    toml::from_str(&text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = text.get(..s.start).unwrap_or("");
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                (line, col)
            })
            .unwrap_or((1, 1));
        anyhow!("{}:{line}:{col}: {}", file.display(), e.message())
    })
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let wall = Instant::now();
    let sc = read_scenario(&a.scenario)?;
    let rel = |p: &Path| a.scenario.join(p);
    let store = load_store(ctx, &rel(&sc.policies))?;
    let set = store
        .current()
        .ok_or_else(|| anyhow!("no policy set loaded"))?;
    let inv = InventoryArgs {
        inventory: rel(&sc.inventory),
        inventory_format: None,
        fields: Vec::new(),
    }
    .load(&set)?;
    let start = plancmd::parse_start(&sc.start)?;
    let plan = plancmd::make_plan(
        &set,
        &inv,
        sc.kernel.clone(),
        sc.seed,
        Some(start),
        &Default::default(),
    )?;
    let fleet = Fleet::load(&inv.hosts, &rel(&sc.baseline))?;

    // Faults, resolved against the plan and the inventory.
    let known: HashSet<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    let check = |h: &str, what: &str| -> anyhow::Result<String> {
        if known.contains(h) {
            Ok(h.to_string())
        } else {
            bail!("scenario {what}: host `{h}` is not in the inventory")
        }
    };
    let mut faults = Faults::default();
    let group_of: BTreeMap<&str, String> = inv
        .hosts
        .iter()
        .map(|h| (h.name.as_str(), format!("{}/{}", h.hardware, h.workload)))
        .collect();
    for r in &sc.regression {
        if !group_of.values().any(|g| *g == r.group) {
            bail!(
                "scenario regression: no group `{}` in the inventory",
                r.group
            );
        }
        for st in plan.stages.iter().filter(|s| s.info.index >= r.from_stage) {
            for b in &st.batches {
                for h in b
                    .hosts
                    .iter()
                    .filter(|h| group_of.get(h.as_str()) == Some(&r.group))
                {
                    faults
                        .regressions
                        .entry(h.clone())
                        .or_default()
                        .push(Regression {
                            metric: r.metric.clone(),
                            factor: r.factor,
                        });
                }
            }
        }
    }
    for h in &sc.faults.unreachable {
        faults.unreachable.insert(check(h, "unreachable")?);
    }
    for h in &sc.faults.never_up {
        faults.never_up.insert(check(h, "never_up")?);
    }
    for x in &sc.faults.hang {
        faults
            .hang
            .entry(check(&x.host, "hang")?)
            .or_default()
            .insert(x.command.clone());
    }
    for r in &sc.unexpected_reboot {
        faults.unexpected_reboot_after.insert(
            check(&r.host, "unexpected_reboot")?,
            Duration::from_secs(r.after_secs),
        );
    }

    let timing = Timing {
        install: Duration::from_secs(sc.timing.install_secs),
        reboot_down: Duration::from_secs(sc.timing.reboot_secs),
        command: Duration::from_secs(sc.timing.command_secs),
    };
    let exec = SimExecutor::new(&inv.hosts, faults, timing, start);
    let clock = VirtualClock::new(start);
    let collected = Arc::new(Collected::default());
    let mut alerts = Alerts::default();
    alerts
        .sinks
        .push(Arc::clone(&collected) as Arc<dyn AlertSink>);

    let tmp;
    let dir = match &a.state_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary state directory")?;
            tmp.path().to_path_buf()
        }
    };
    let mut journal = Journal::open(&dir)?;
    journal.set_durable(false);
    let total = plan.stages.iter().map(|s| s.info.size).sum();
    let printer = Printer::new(ctx.format, total, a.hosts);
    if ctx.format == Format::Human {
        println!(
            "simulating `{}`{}",
            a.scenario.display(),
            if sc.description.is_empty() {
                String::new()
            } else {
                format!(": {}", sc.description)
            }
        );
    }
    let io = Io {
        exec: &exec as &dyn Executor,
        clock: &clock as &dyn Clock,
        alerts: &alerts,
        policies: store.as_ref() as &dyn PolicySource,
        control: &NoControl,
        observer: &printer,
    };
    let opts = Options {
        name: format!("simulation {}", a.scenario.display()),
        workers: a.workers.max(1),
        bake: sc.bake,
        windows: true,
    };
    let c = Controller::start(journal, &fleet, io, opts, &plan, &inv.hash)?;
    let phase = c.run();
    printer.finish();
    let phase = phase?;
    let st = c.state();
    let events = {
        drop(c);
        Journal::read_only(&dir).map(|r| r.len()).unwrap_or(0)
    };

    // Invariants, from the simulated hosts' own records.
    let records = exec.records();
    let mut violations = Vec::new();
    for (name, r) in &records {
        let planned = st.hosts.get(name);
        let unexpected = planned.map(|h| h.unexpected_reboots).unwrap_or(0);
        if r.reboots > 1 + unexpected {
            violations.push(format!("host `{name}` was rebooted {} times", r.reboots));
        }
        if planned.is_some_and(|h| h.done) && r.kernel != st.target_kernel {
            violations.push(format!(
                "host `{name}` is marked updated but runs `{}`",
                r.kernel
            ));
        }
    }
    if phase == Phase::Completed {
        for (name, h) in &st.hosts {
            if !h.settled() {
                violations.push(format!("host `{name}` was skipped"));
            }
        }
    }

    let virtual_secs = clock.now().duration_since(start).as_secs_f64();
    let stage_name = st
        .stage
        .and_then(|s| st.stages.get(s))
        .map(|s| s.name.clone());
    let updated = st.hosts.values().filter(|h| h.done).count();
    let failed = st.hosts.values().filter(|h| h.failed.is_some()).count();
    let alerts = collected.0.lock().map(|v| v.clone()).unwrap_or_default();
    let matched = sc.expect.as_ref().map(|e| {
        e.phase == phase_word(&phase)
            && e.stage
                .as_ref()
                .is_none_or(|s| Some(s) == stage_name.as_ref())
    });
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "type": "summary",
            "ok": violations.is_empty() && matched != Some(false),
            "scenario": a.scenario.display().to_string(),
            "phase": phase,
            "stage": stage_name,
            "pause_reason": st.pause_reason,
            "hosts": st.planned_hosts(),
            "updated": updated,
            "failed": failed,
            "virtual_secs": virtual_secs,
            "wall_secs": wall.elapsed().as_secs_f64(),
            "events": events,
            "alerts": alerts,
            "violations": violations,
            "expect": sc.expect,
            "expectation_met": matched,
        })),
        Format::Human => {
            println!();
            println!(
                "{} after {} of virtual time: {updated} of {} host(s) updated, {failed} failed, {events} journal events",
                phase_word(&phase).to_uppercase(),
                fleetward_engine::plan::human_secs(virtual_secs as u64),
                st.planned_hosts(),
            );
            println!("  wall time {:.2} s", wall.elapsed().as_secs_f64());
            if let (Some(r), Some(s)) = (&st.pause_reason, &stage_name) {
                println!("  at stage {s}: {r}");
            }
            for al in &alerts {
                println!(
                    "  alert [{}] {}: {}",
                    serde_json::to_value(al.severity)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    al.kind,
                    al.summary
                );
                for r in &al.reasons {
                    println!("      - {r}");
                }
            }
            for v in &violations {
                println!("  INVARIANT VIOLATED: {v}");
            }
            match (&sc.expect, matched) {
                (Some(e), Some(true)) => println!(
                    "  as the scenario expects: {}{}",
                    e.phase,
                    e.stage
                        .as_deref()
                        .map(|s| format!(" at {s}"))
                        .unwrap_or_default()
                ),
                (Some(e), _) => println!(
                    "  NOT as the scenario expects: {}{}",
                    e.phase,
                    e.stage
                        .as_deref()
                        .map(|s| format!(" at {s}"))
                        .unwrap_or_default()
                ),
                _ => {}
            }
        }
    }
    Ok(if !violations.is_empty() || matched == Some(false) {
        Exit::Failed
    } else if matched == Some(true) {
        Exit::Ok
    } else {
        match phase {
            Phase::Completed => Exit::Ok,
            Phase::Aborted => Exit::Failed,
            _ => Exit::Attention,
        }
    })
}
