//! The one planning entry point `plan`, `rollout start` and `simulate` share: the target
//! kernel from the flag or `target_kernel()`, the seed from the flag or the inventory's hash,
//! the start rounded down to the minute.

use super::policy::PolicyRules;
use super::{plan, Plan, PlanError, PlanRequest};
use crate::inventory::Inventory;
use crate::runtime::PolicySet;
use jiff::Timestamp;
use std::collections::BTreeMap;

/// Plans a rollout of `inv` under `set`. `start` defaults to now, rounded down to the minute;
/// `held` are the hosts a drift audit holds back.
pub fn for_inventory(
    set: &PolicySet,
    inv: &Inventory,
    kernel: Option<String>,
    seed: Option<u64>,
    start: Option<Timestamp>,
    held: &BTreeMap<String, String>,
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
    plan(
        &PlanRequest {
            hosts: &inv.hosts,
            target_kernel: &target,
            seed: seed.unwrap_or_else(|| inv.hash_seed()),
            start,
            held,
        },
        &rules,
    )
}
