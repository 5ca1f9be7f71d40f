//! `fleetward plan`: the rollout plan for an inventory, as `rollout.rhai` decides it. A dry
//! run: it reads files and touches no host.

use super::{Ctx, FleetArgs};
use crate::output::{json_line, thousands, Exit, Format};
use anyhow::{anyhow, Context};
use fleetward_engine::plan::policy::PolicyRules;
use fleetward_engine::plan::{self, human_secs, ExclusionKind, Plan, PlanError, PlanRequest};
use jiff::Timestamp;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Seed for the host order. Default: derived from the inventory's hash, so the same
    /// inventory always gives the same plan.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The kernel to plan for. Default: `target_kernel()` in `rollout.rhai`.
    #[arg(long)]
    pub kernel: Option<String>,
    /// When the rollout starts (RFC 3339, e.g. `2026-12-07T14:00:00Z`). Default: now.
    #[arg(long)]
    pub start: Option<String>,
    #[command(flatten)]
    pub drift: DriftArgs,
}

/// Which drift audit holds hosts back.
#[derive(clap::Args, Debug, Clone)]
pub struct DriftArgs {
    /// The review queue `drift audit` wrote: the hosts it holds back (review drift,
    /// unreadable facts, unreachable) are left out. Default: `drift/review-queue.json` in the
    /// default state directory, when there is one.
    #[arg(long, value_name = "FILE")]
    pub drift_queue: Option<std::path::PathBuf>,
    /// Plan as if no drift audit had been made.
    #[arg(long, conflicts_with = "drift_queue")]
    pub ignore_drift: bool,
}

/// The hosts a drift audit holds back, and where that came from.
pub struct Held {
    pub hosts: std::collections::BTreeMap<String, String>,
    /// The queue file and when its audit ran, when one was read.
    pub source: Option<(String, String)>,
}

impl DriftArgs {
    /// The review queue to read, if any: `--drift-queue`, else the default one (which may not
    /// exist yet); none with `--ignore-drift`.
    pub fn queue_path(&self) -> Option<std::path::PathBuf> {
        if self.ignore_drift {
            return None;
        }
        Some(self.drift_queue.clone().unwrap_or_else(|| {
            fleetward_engine::drift::store::queue_path(&super::default_state_dir())
        }))
    }

    /// The hosts of `hosts` the drift audit holds back.
    pub fn held(&self, hosts: &[fleetward_engine::model::Host]) -> anyhow::Result<Held> {
        use fleetward_engine::drift::store;
        let none = Held {
            hosts: Default::default(),
            source: None,
        };
        let Some(path) = self.queue_path() else {
            return Ok(none);
        };
        let explicit = self.drift_queue.is_some();
        match store::load_queue(&path)? {
            Some(q) => Ok(Held {
                hosts: q.held_among(hosts.iter().map(|h| h.name.as_str())),
                source: Some((path.display().to_string(), q.audited_at)),
            }),
            None if explicit => Err(anyhow!(
                "--drift-queue `{}` does not exist: run `fleetward drift audit` first",
                path.display()
            )),
            None => Ok(none),
        }
    }
}

/// Plans a rollout of `inv` under `set`: the one planning path `plan`, `rollout start` and
/// `simulate` share.
pub fn make_plan(
    set: &fleetward_engine::PolicySet,
    inv: &fleetward_engine::inventory::Inventory,
    kernel: Option<String>,
    seed: Option<u64>,
    start: Option<Timestamp>,
    held: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Plan> {
    let rules = PolicyRules::new(set);
    let target = match kernel {
        Some(k) => k,
        None => rules.target_kernel().map_err(plan_error)?.ok_or_else(|| {
            anyhow!(
                "no target kernel: define `fn target_kernel()` in rollout.rhai or pass `--kernel`"
            )
        })?,
    };
    let start = match start {
        Some(t) => t,
        None => {
            let now = Timestamp::now().as_second();
            Timestamp::from_second(now - now.rem_euclid(60))?
        }
    };
    plan::plan(
        &PlanRequest {
            hosts: &inv.hosts,
            target_kernel: &target,
            seed: seed.unwrap_or_else(|| inv.hash_seed()),
            start,
            held,
        },
        &rules,
    )
    .map_err(plan_error)
}

/// Parses `--start`.
pub fn parse_start(s: &str) -> anyhow::Result<Timestamp> {
    s.parse::<Timestamp>().with_context(|| {
        format!("--start `{s}` is not an RFC 3339 time such as `2026-12-07T14:00:00Z`")
    })
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let set = ctx.load(&a.fleet.policy_dir)?;
    let inv = a.fleet.inventory.load(&set)?;
    let start = a.start.as_deref().map(parse_start).transpose()?;
    let held = a.drift.held(&inv.hosts)?;
    let mut p = make_plan(&set, &inv, a.kernel.clone(), a.seed, start, &held.hosts)?;
    if let Some((file, at)) = &held.source {
        p.notes.push(format!(
            "drift: {} host(s) held back by the audit of {at} ({file})",
            p.counts.drift
        ));
    }
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "policy": { "dir": a.fleet.policy_dir.display().to_string(), "hash": set.hash() },
            "inventory": { "file": inv.file, "format": inv.format, "hash": inv.hash, "hosts": inv.hosts.len() },
            "seed_source": if a.seed.is_some() { "flag" } else { "inventory-hash" },
            "plan": p,
        })),
        Format::Human => print!(
            "{}",
            render(
                &p,
                &Header {
                    policy: set.short_hash(),
                    inventory: &format!(
                        "{} ({}, {})",
                        inv.file,
                        inv.format.name(),
                        &inv.hash[..12.min(inv.hash.len())]
                    ),
                    seed_flag: a.seed.is_some(),
                }
            )
        ),
    }
    Ok(Exit::Ok)
}

/// Keeps policy diagnostics typed so they render with their source snippet.
fn plan_error(e: PlanError) -> anyhow::Error {
    match e {
        PlanError::Policy(p) => p.into(),
        PlanError::Invalid(m) => anyhow!("the plan is invalid: {m}"),
    }
}

struct Header<'a> {
    policy: &'a str,
    inventory: &'a str,
    seed_flag: bool,
}

fn when(t: Timestamp) -> String {
    t.strftime("%a %Y-%m-%d %H:%M").to_string()
}

/// The human rendering: stages, hosts per group and stage, exclusions, gaps and notes.
fn render(p: &Plan, h: &Header<'_>) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let c = &p.counts;
    let _ = writeln!(
        o,
        "plan  kernel {}  ·  {} hosts, {} eligible, {} canaries",
        p.target_kernel,
        thousands(c.hosts as u64),
        thousands(c.eligible as u64),
        c.canaries
    );
    let _ = writeln!(o, "      inventory {}  ·  policy {}", h.inventory, h.policy);
    let _ = writeln!(
        o,
        "      seed {} ({})  ·  start {} UTC  ·  last gate {} UTC ({})",
        p.seed,
        if h.seed_flag {
            "--seed"
        } else {
            "from the inventory hash"
        },
        when(p.start),
        when(p.finish),
        human_secs(p.finish.duration_since(p.start).as_secs().unsigned_abs())
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<14} {:>6} {:>7} {:>8} {:>10} {:>7}  {:<20}  {:<20}",
        "stage", "hosts", "cum%", "batches", "in flight", "bake", "start (UTC)", "gate (UTC)"
    );
    for s in &p.stages {
        let _ = writeln!(
            o,
            "{:<14} {:>6} {:>6.1}% {:>8} {:>10} {:>7}  {:<20}  {:<20}",
            s.info.name,
            thousands(s.info.size as u64),
            s.cumulative_percent,
            s.batches.len(),
            s.max_in_flight
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into()),
            human_secs(s.bake_secs),
            when(s.start),
            when(s.gate)
        );
        if let Some(split) = &s.split {
            let _ = writeln!(o, "{:<14} {split}", "");
        }
    }

    // Hosts per group and stage.
    let _ = writeln!(o);
    let labels: Vec<String> = p
        .stages
        .iter()
        .map(|s| match (s.info.wave, s.info.parts) {
            (0, 1) => "C".to_string(),
            (0, _) => format!("C.{}", s.info.part),
            (w, 1) => format!("{w}"),
            (w, _) => format!("{w}.{}", s.info.part),
        })
        .collect();
    let width = labels.iter().map(String::len).max().unwrap_or(1).max(3);
    let _ = write!(o, "{:<20} {:>6} {:>6}", "group", "hosts", "elig");
    for l in &labels {
        let _ = write!(o, " {l:>width$}");
    }
    let _ = writeln!(o);
    for g in &p.groups {
        let _ = write!(o, "{:<20} {:>6} {:>6}", g.name, g.hosts, g.eligible);
        for s in &p.stages {
            let n = s.groups.get(&g.name).copied().unwrap_or(0);
            let cell = if n == 0 {
                ".".to_string()
            } else {
                n.to_string()
            };
            let _ = write!(o, " {cell:>width$}");
        }
        let _ = writeln!(o);
    }

    // Limits.
    let _ = writeln!(o);
    if p.blast_radius.is_empty() {
        let _ = writeln!(o, "blast radius: none");
    } else {
        let parts: Vec<String> = p
            .blast_radius
            .iter()
            .map(|l| {
                let mut v = Vec::new();
                if let Some(a) = l.in_flight {
                    v.push(format!("{a} in flight"));
                }
                if let Some(a) = l.per_wave {
                    v.push(format!("{a} per wave"));
                }
                format!("{}: {}", l.scope, v.join(", "))
            })
            .collect();
        let _ = writeln!(o, "blast radius: {}", parts.join("; "));
    }
    if p.windows.is_empty() {
        let _ = writeln!(o, "windows: any time");
    } else {
        let w: Vec<String> = p
            .windows
            .iter()
            .map(|w| format!("{} {}-{} {}", w.days.join(","), w.start, w.end, w.tz))
            .collect();
        let _ = writeln!(o, "windows: {}", w.join("; "));
    }

    // Exclusions, one per host.
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "excluded: {} ({} ineligible, {} already on target, {} newer, {} held for drift{})",
        p.excluded.len(),
        c.ineligible,
        c.on_target,
        c.newer,
        c.drift,
        if c.same_machine > 0 {
            format!(", {} on a machine listed twice", c.same_machine)
        } else {
            String::new()
        }
    );
    for e in &p.excluded {
        let kind = match e.kind {
            ExclusionKind::Ineligible => "ineligible",
            ExclusionKind::OnTarget => "on target",
            ExclusionKind::Newer => "newer",
            ExclusionKind::Drift => "drift",
            ExclusionKind::SameMachine => "same machine",
        };
        let _ = writeln!(
            o,
            "  {:<24} {:<20} {:<11} {}",
            e.host, e.group, kind, e.reason
        );
    }
    let _ = writeln!(o);
    if p.uncovered.is_empty() {
        let _ = writeln!(
            o,
            "uncovered groups: none (every group with hosts to update has a canary)"
        );
    } else {
        let _ = writeln!(o, "uncovered groups: {}", p.uncovered.len());
        for u in &p.uncovered {
            let _ = writeln!(o, "  {:<20} {}", u.group, u.reason);
        }
    }
    for n in &p.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}
