//! `fleetward plan`: the rollout plan for an inventory, as `rollout.rhai` decides it. A dry
//! run: it reads files and touches no host.

use super::args::{DriftArgs, FleetArgs};
use super::Ctx;
use crate::output::{json_line, Exit, Format};
use anyhow::Context;
use fleetward_engine::plan::{self, render};
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
    /// Production history (long-form samples, `host, timestamp, metric, value`): sizes
    /// `"auto"` canary counts and shows each group's expected MDE per metric at the canary
    /// gate. Without it, `"auto"` takes its cap.
    #[arg(long)]
    pub baseline: Option<std::path::PathBuf>,
}

/// Parses `--start`.
fn parse_start(s: &str) -> anyhow::Result<Timestamp> {
    s.parse::<Timestamp>().with_context(|| {
        format!("--start `{s}` is not an RFC 3339 time such as `2026-12-07T14:00:00Z`")
    })
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let set = ctx.load(&a.fleet.policy_dir)?;
    let inv = a.fleet.inventory.load(&set)?;
    let start = a.start.as_deref().map(parse_start).transpose()?;
    let held = a.drift.choice().held(&inv.hosts)?;
    let mut p = plan::for_inventory(
        &set,
        &inv,
        a.kernel.clone(),
        a.seed,
        start,
        &held.hosts,
        a.baseline.as_deref(),
    )?;
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
            render::render(
                &p,
                &render::Header {
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
