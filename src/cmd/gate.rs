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
    /// The controls: samples from production hosts that were not updated, over the same span
    /// as `--samples` (`.csv` or `.parquet`, columns host, timestamp, metric, value); or a
    /// precomputed static baseline written by `--save-baseline` (columns group, metric, n,
    /// hosts, mean, p50, p90, p99, host_hours), which has no concurrent controls.
    #[arg(long)]
    pub baseline: PathBuf,
    /// Also write the baseline's aggregates here as a precomputed frame, to reuse for later
    /// gates (`.parquet` or `.csv`).
    #[arg(long, value_name = "FILE")]
    pub save_baseline: Option<PathBuf>,
    /// Samples from the stage's updated hosts, in the same form. They may span the window
    /// before the update and the window after it; `--updated-at` or `--updates` splits them.
    #[arg(long)]
    pub samples: PathBuf,
    /// When every host was updated (epoch seconds or RFC 3339): samples at or after it are
    /// after the update, in `--samples` and `--baseline` alike.
    #[arg(long, value_name = "TIME", conflicts_with = "updates")]
    pub updated_at: Option<String>,
    /// Per-host update times: CSV with columns host, updated_at. The controls split at the
    /// median update time.
    #[arg(long, value_name = "FILE")]
    pub updates: Option<PathBuf>,
    /// Also write the report people look at: self-contained HTML with SVG plots of every
    /// host's values and each effect against the threshold.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
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
    let updated_at = a
        .updated_at
        .as_deref()
        .map(gate::parse_time)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--updated-at: {e}"))?;
    let files = gate::Files {
        samples: &a.samples,
        baseline: &a.baseline,
        updated_at,
        updates: a.updates.as_deref(),
        save_baseline: a.save_baseline.as_deref(),
    };
    let g = gate::gate_files(&set, &inv.hosts, &files, a.wave, a.name.as_deref())?;
    if let Some(path) = &a.report {
        std::fs::write(
            path,
            gate::report(&set, &g.comparison, &g.verdict, &g.warnings),
        )
        .map_err(|e| anyhow::anyhow!("cannot write the report `{}`: {e}", path.display()))?;
    }
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "policy": { "dir": a.fleet.policy_dir.display().to_string(), "hash": set.hash() },
            "verdict": g.verdict,
            "groups": gate::judged(&g.comparison, &g.verdict),
            "warnings": g.warnings,
            "comparison": g.comparison,
        })),
        Format::Human => print!("{}", render::render(&g.comparison, &g.verdict, &g.warnings)),
    }
    Ok(match g.verdict.verdict {
        VerdictKind::Pass => Exit::Ok,
        VerdictKind::Pause | VerdictKind::Inconclusive => Exit::Attention,
        VerdictKind::Fail => Exit::Failed,
    })
}
