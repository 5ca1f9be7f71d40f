//! The one planning entry point `plan`, `rollout start` and `simulate` share: the target
//! kernel from the flag or `target_kernel()`, the seed from the flag or the inventory's hash,
//! the start rounded down to the minute, and canary sizing from the baseline's spread.

use super::policy::PolicyRules;
use super::{plan, Plan, PlanError, PlanRequest, RolloutRules, StageInfo, StageKind};
use crate::gate::sizing::{self, Sizing};
use crate::gate::{frames, Groups};
use crate::inventory::Inventory;
use crate::runtime::PolicySet;
use jiff::Timestamp;
use std::collections::BTreeMap;
use std::path::Path;

/// Plans a rollout of `inv` under `set`. `start` defaults to now, rounded down to the minute;
/// `held` are the hosts a drift audit holds back; `baseline` (long-form samples) sizes
/// `"auto"` canary counts and gives each group its expected MDEs.
pub fn for_inventory(
    set: &PolicySet,
    inv: &Inventory,
    kernel: Option<String>,
    seed: Option<u64>,
    start: Option<Timestamp>,
    held: &BTreeMap<String, String>,
    baseline: Option<&Path>,
) -> Result<Plan, PlanError> {
    let rules = PolicyRules::new(set);
    let target = match kernel {
        Some(k) => k,
        None => rules.target_kernel()?.ok_or(PlanError::NoTarget)?,
    };
    let start = match start {
        Some(t) => t,
        None => {
            let now = Timestamp::now().as_second();
            Timestamp::from_second(now - now.rem_euclid(60))
                .map_err(|e| PlanError::Invalid(e.to_string()))?
        }
    };
    let sizing = match baseline {
        Some(b) => sizing_of(set, inv, b)?,
        None => None,
    };
    let mut p = plan(
        &PlanRequest {
            hosts: &inv.hosts,
            target_kernel: &target,
            seed: seed.unwrap_or_else(|| inv.hash_seed()),
            start,
            held,
            sizing: sizing.as_ref(),
        },
        &rules,
    )?;
    if let Some(z) = &sizing {
        p.sizing = Some(super::SizingSummary::of(z));
    } else if let Some(b) = baseline {
        p.notes.push(format!(
            "canary sizing: `{}` is a summary frame, with no host spread to size canaries from",
            b.display()
        ));
    }
    Ok(p)
}

/// What sizes canaries from `baseline`: its spreads, `gates.rhai`'s `threshold(metric)` for
/// each metric it has, `[gates]`, and the canary stage's bake and before window. `None` when
/// the baseline is a precomputed summary (it has no host spread).
pub fn sizing_of(
    set: &PolicySet,
    inv: &Inventory,
    baseline: &Path,
) -> Result<Option<Sizing>, PlanError> {
    let file = baseline.display().to_string();
    let data = |e: frames::DataError| PlanError::Invalid(e.to_string());
    let lf = match frames::scan_baseline(baseline).map_err(data)? {
        frames::Baseline::Samples(lf) => lf,
        frames::Baseline::Summary(_) => return Ok(None),
    };
    let groups = Groups::of_hosts(&inv.hosts).map_err(data)?;
    let binned = sizing::bin(lf, groups.frame(), &file).map_err(data)?;
    let spreads = sizing::spreads(&binned);
    let mut thresholds = BTreeMap::new();
    if set.defines("gates", "threshold", 1) {
        for metric in spreads.pooled.keys() {
            let v = set
                .eval_json(
                    "gates",
                    "threshold",
                    vec![rhai::Dynamic::from(metric.clone())],
                )?
                .value;
            let t = v.as_f64().ok_or_else(|| {
                PlanError::Invalid(format!(
                    "`threshold(`{metric}`)` in gates.rhai returned `{v}`, not a number"
                ))
            })?;
            if t.is_finite() && t > 0.0 {
                thresholds.insert(metric.clone(), t);
            }
        }
    }
    let rules = PolicyRules::new(set);
    let canary = StageInfo {
        index: 0,
        name: "canary".into(),
        kind: StageKind::Canary,
        wave: 0,
        part: 1,
        parts: 1,
        percent: 0.0,
        size: 0,
    };
    let bake_secs = rules.bake(&canary)?;
    let before_secs = rules.before(&canary)?.unwrap_or(bake_secs);
    let g = set.gate_settings();
    Ok(Some(Sizing {
        source: file,
        spreads,
        thresholds,
        alpha: g.alpha,
        power: g.power,
        before_secs,
        bake_secs,
    }))
}
