//! `fleetward gate`: the verdict of `gates.rhai` on recorded metric samples of a stage,
//! compared with production baselines. A dry run over files.

use super::{Ctx, FleetArgs};
use crate::output::{json_line, Exit, Format};
use fleetward_engine::gate::{self, render};
use fleetward_engine::model::VerdictKind;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The baseline: samples from production hosts that were not updated (`.csv` or
    /// `.parquet`, columns host, timestamp, metric, value), or a precomputed frame written by
    /// `--save-baseline` (columns group, metric, n, hosts, mean, p50, p90, p99, host_hours).
    #[arg(long)]
    pub baseline: PathBuf,
    /// Also write the baseline's aggregates here as a precomputed frame, to reuse for later
    /// gates (`.parquet` or `.csv`).
    #[arg(long, value_name = "FILE")]
    pub save_baseline: Option<PathBuf>,
    /// Samples from the stage's updated hosts, in the same form.
    #[arg(long)]
    pub samples: PathBuf,
    /// The stage's index (0 for the canaries), as the policy sees it.
    #[arg(long, default_value_t = 1)]
    pub wave: usize,
    /// The stage's name. Default: `canary` for 0, `wave N` otherwise.
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let set = ctx.load(&a.fleet.policy_dir)?;
    let inv = a.fleet.inventory.source().load(set.field_map())?;
    let files = gate::Files {
        samples: &a.samples,
        baseline: &a.baseline,
        save_baseline: a.save_baseline.as_deref(),
    };
    let g = gate::gate_files(&set, &inv.hosts, &files, a.wave, a.name.as_deref())?;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "policy": { "dir": a.fleet.policy_dir.display().to_string(), "hash": set.hash() },
            "verdict": g.verdict,
            "warnings": g.warnings,
            "comparison": g.comparison,
        })),
        Format::Human => print!("{}", render::render(&g.comparison, &g.verdict, &g.warnings)),
    }
    Ok(match g.verdict.verdict {
        VerdictKind::Pass => Exit::Ok,
        VerdictKind::Pause => Exit::Attention,
        VerdictKind::Fail => Exit::Failed,
    })
}
