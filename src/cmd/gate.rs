//! `fleetward gate`: the verdict of `gates.rhai` on recorded metric samples of a stage,
//! compared with production baselines. A dry run over files.

use super::{Ctx, FleetArgs};
use crate::output::{json_line, Exit, Format};
use fleetward_engine::gate::{self, frames, Comparison, GroupSpec};
use fleetward_engine::model::{Verdict, VerdictKind};
use std::collections::BTreeMap;
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
    let inv = a.fleet.inventory.load(&set)?;
    let pairs: Vec<(String, String)> = inv
        .hosts
        .iter()
        .map(|h| (h.name.clone(), format!("{}/{}", h.hardware, h.workload)))
        .collect();
    let groups_df = frames::host_groups(&pairs)?;
    let samples_file = a.samples.display().to_string();
    let baseline_file = a.baseline.display().to_string();
    let updated = frames::cohort(frames::scan(&a.samples)?, &groups_df, &samples_file)?;
    let baseline = match frames::scan_baseline(&a.baseline)? {
        frames::Baseline::Samples(lf) => frames::cohort(lf, &groups_df, &baseline_file)?,
        frames::Baseline::Summary(lf) => frames::summary_cohort(lf, &baseline_file)?,
    };
    if let Some(out) = &a.save_baseline {
        frames::write_summary(&baseline, out)?;
    }
    let mut by_group: BTreeMap<String, (String, String)> = BTreeMap::new();
    for h in &inv.hosts {
        by_group
            .entry(format!("{}/{}", h.hardware, h.workload))
            .or_insert_with(|| (h.hardware.clone(), h.workload.clone()));
    }
    let specs: Vec<GroupSpec> = updated
        .hosts
        .keys()
        .filter_map(|g| {
            by_group.get(g).map(|(hw, wl)| GroupSpec {
                name: g.clone(),
                hardware: hw.clone(),
                workload: wl.clone(),
                expected_hosts: None,
            })
        })
        .collect();
    let name = a.name.clone().unwrap_or_else(|| {
        if a.wave == 0 {
            "canary".to_string()
        } else {
            format!("wave {}", a.wave)
        }
    });
    let cmp = gate::compare(
        a.wave,
        &name,
        &specs,
        &updated,
        &baseline,
        set.gate_settings(),
    );
    let verdict: Verdict = set.call("gates", "gate", (&cmp,))?;
    let mut warnings = Vec::new();
    for (file, c) in [(&samples_file, &updated), (&baseline_file, &baseline)] {
        if c.unknown_samples > 0 {
            warnings.push(format!(
                "{} sample(s) in `{file}` come from hosts not in the inventory (e.g. {}); they were left out",
                c.unknown_samples,
                c.unknown_hosts.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        if c.nan_samples > 0 {
            warnings.push(format!(
                "{} sample(s) in `{file}` have no numeric value (NaN or unparsable); they were left out",
                c.nan_samples
            ));
        }
    }
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "policy": { "dir": a.fleet.policy_dir.display().to_string(), "hash": set.hash() },
            "verdict": verdict,
            "warnings": warnings,
            "comparison": cmp,
        })),
        Format::Human => print!("{}", render(&cmp, &verdict, &warnings)),
    }
    Ok(match verdict.verdict {
        VerdictKind::Pass => Exit::Ok,
        VerdictKind::Pause => Exit::Attention,
        VerdictKind::Fail => Exit::Failed,
    })
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-2) {
        format!("{x:.3e}")
    } else {
        format!("{x:.3}")
    }
}

fn render(c: &Comparison, v: &Verdict, warnings: &[String]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let word = match v.verdict {
        VerdictKind::Pass => "PASS",
        VerdictKind::Pause => "PAUSE",
        VerdictKind::Fail => "FAIL",
    };
    let t = &c.totals;
    let _ = writeln!(o, "gate  {}: {word}", c.name);
    for r in &v.reasons {
        let _ = writeln!(o, "  - {r}");
    }
    let _ = writeln!(
        o,
        "  {} samples from {} hosts in {} groups; baseline {} samples from {} hosts; {} comparisons, {} correction; {} insufficient",
        t.samples, t.hosts, c.groups.len(), t.baseline_samples, t.baseline_hosts, t.comparisons, t.correction.describe(), t.insufficient
    );
    for w in warnings {
        let _ = writeln!(o, "  warning: {w}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<18} {:<20} {:>5} {:>10} {:>10} {:>8} {:>10} {:>26}  flags",
        "group", "metric", "n", "mean", "baseline", "change", "p (adj)", "shift [95% CI]"
    );
    for g in &c.groups {
        for m in &g.metrics {
            let flags = if m.insufficient {
                format!("insufficient: {}", m.reason)
            } else if m.worse {
                "worse".to_string()
            } else {
                String::new()
            };
            let shift = if m.insufficient {
                "-".to_string()
            } else {
                format!(
                    "{} [{}, {}]",
                    num(m.shift),
                    num(m.shift_low),
                    num(m.shift_high)
                )
            };
            let _ = writeln!(
                o,
                "{:<18} {:<20} {:>5} {:>10} {:>10} {:>7}% {:>10} {:>26}  {flags}",
                g.name,
                m.name,
                m.n,
                num(m.mean),
                num(m.baseline_mean),
                if m.pct_change.is_nan() {
                    "-".into()
                } else {
                    format!("{:+.2}", m.pct_change)
                },
                if m.insufficient {
                    "-".into()
                } else {
                    num(m.p_adjusted)
                },
                shift
            );
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<22} {:>6} {:>12} {:>12} {:>10}",
        "event", "count", "per host-h", "baseline", "p"
    );
    for (name, e) in &c.events {
        let _ = writeln!(
            o,
            "{:<22} {:>6} {:>12} {:>12} {:>10}",
            name,
            e.count,
            num(e.rate),
            num(e.baseline_rate),
            num(e.p_value)
        );
    }
    o
}
