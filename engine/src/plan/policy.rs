//! The rollout rules as `rollout.rhai` decides them: the adapter from a [`PolicySet`] to
//! [`RolloutRules`]. Functions the policy leaves out take the documented defaults.

use super::spec::{
    parse_blast_radius, parse_windows, CanaryCount, Eligibility, GroupInfo, ScopeLimit, StageInfo,
    Window,
};
use super::{PlanError, RolloutRules, DEFAULT_HOST_SECS};
use crate::model::Host;
use crate::runtime::typed::{host_to_dynamic, host_to_dynamic_with, to_dynamic, Interner};
use crate::runtime::PolicySet;
use crate::PolicyError;
use serde_json::Value;

const KIND: &str = "rollout";

/// Hosts per thread below which `eligible` runs on one thread.
const PARALLEL_MIN: usize = 2_000;

/// Adds what a call was about (`host `db1``) to an evaluation error, so a failure in a plan
/// over thousands of hosts names the one that failed.
fn about(e: PlanError, what: &str) -> PlanError {
    match e {
        PlanError::Policy(PolicyError::Eval(mut d)) => {
            d.message = format!("{} (for {what})", d.message);
            PlanError::Policy(PolicyError::Eval(d))
        }
        PlanError::Invalid(m) => PlanError::Invalid(format!("{m} (for {what})")),
        other => other,
    }
}

/// [`RolloutRules`] backed by a loaded policy set.
pub struct PolicyRules<'a> {
    set: &'a PolicySet,
}

impl<'a> PolicyRules<'a> {
    pub fn new(set: &'a PolicySet) -> Self {
        PolicyRules { set }
    }

    /// `target_kernel()`, when the policy defines it.
    pub fn target_kernel(&self) -> Result<Option<String>, PlanError> {
        if !self.set.defines(KIND, "target_kernel", 0) {
            return Ok(None);
        }
        Ok(Some(self.set.call::<String>(KIND, "target_kernel", ())?))
    }

    /// `before(wave)`: the before window of a stage, when the policy defines it.
    pub fn before(&self, stage: &StageInfo) -> Result<Option<u64>, PlanError> {
        if !self.set.defines(KIND, "before", 1) {
            return Ok(None);
        }
        self.count("before", Self::arg("before", stage)?)
            .map(Some)
            .map_err(|e| about(e, &format!("`{}`", stage.name)))
    }

    fn json(&self, func: &str, args: Vec<rhai::Dynamic>) -> Result<Value, PlanError> {
        Ok(self.set.eval_json(KIND, func, args)?.value)
    }

    fn arg<T: serde::Serialize>(func: &str, v: &T) -> Result<Vec<rhai::Dynamic>, PlanError> {
        let d = to_dynamic(v).map_err(|message| PolicyError::BadInput {
            function: func.to_string(),
            message: message.0,
        })?;
        Ok(vec![d])
    }

    fn count(&self, func: &str, arg: Vec<rhai::Dynamic>) -> Result<u64, PlanError> {
        let v = self.json(func, arg)?;
        v.as_u64()
            .ok_or_else(|| PlanError::Invalid(format!("`{func}` returned `{v}`, not a count")))
    }

    fn eligible_one(&self, h: &Host, interner: &mut Interner) -> Result<Eligibility, PlanError> {
        let what = || format!("host `{}`", h.name);
        // Fast path: most hosts get a plain `true`.
        let d = self
            .set
            .call_dynamic(KIND, "eligible", vec![host_to_dynamic_with(h, interner)])
            .map_err(|e| about(e.into(), &what()))?;
        if d.as_bool() == Ok(true) {
            return Ok(Eligibility::Eligible);
        }
        // Anything else goes through the checked path, which names a wrong result type.
        let v = self
            .json("eligible", vec![host_to_dynamic(h)])
            .map_err(|e| about(e, &what()))?;
        Eligibility::from_json(&v).map_err(|m| about(PlanError::from(m), &what()))
    }

    fn eligible_some(&self, hosts: &[&Host]) -> Result<Vec<Eligibility>, PlanError> {
        let mut interner = Interner::default();
        hosts
            .iter()
            .map(|h| self.eligible_one(h, &mut interner))
            .collect()
    }
}

impl RolloutRules for PolicyRules<'_> {
    fn eligible(&self, hosts: &[&Host]) -> Result<Vec<Eligibility>, PlanError> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8)
            .min(hosts.len() / PARALLEL_MIN + 1);
        if threads <= 1 {
            return self.eligible_some(hosts);
        }
        let chunk = hosts.len().div_ceil(threads);
        std::thread::scope(|s| {
            let handles: Vec<_> = hosts
                .chunks(chunk)
                .map(|part| s.spawn(move || self.eligible_some(part)))
                .collect();
            let mut out = Vec::with_capacity(hosts.len());
            for h in handles {
                let part = h.join().map_err(|_| {
                    PlanError::Invalid("an eligibility worker stopped unexpectedly".into())
                })?;
                out.extend(part?);
            }
            Ok(out)
        })
    }

    fn canary(&self, group: &GroupInfo) -> Result<CanaryCount, PlanError> {
        let what = format!("group `{}`", group.name);
        let v = self
            .json("canary", Self::arg("canary", group)?)
            .map_err(|e| about(e, &what))?;
        CanaryCount::from_json(&v).map_err(|e| about(e.into(), &what))
    }

    fn waves(&self) -> Result<Vec<f64>, PlanError> {
        Ok(self.set.call::<Vec<f64>>(KIND, "waves", ())?)
    }

    fn bake(&self, stage: &StageInfo) -> Result<u64, PlanError> {
        self.count("bake", Self::arg("bake", stage)?)
            .map_err(|e| about(e, &format!("`{}`", stage.name)))
    }

    fn max_in_flight(&self, stage: &StageInfo) -> Result<Option<u64>, PlanError> {
        if !self.set.defines(KIND, "max_in_flight", 1) {
            return Ok(None);
        }
        self.count("max_in_flight", Self::arg("max_in_flight", stage)?)
            .map(Some)
            .map_err(|e| about(e, &format!("`{}`", stage.name)))
    }

    fn blast_radius(&self) -> Result<Vec<ScopeLimit>, PlanError> {
        if !self.set.defines(KIND, "blast_radius", 0) {
            return Ok(Vec::new());
        }
        parse_blast_radius(&self.json("blast_radius", Vec::new())?).map_err(PlanError::from)
    }

    fn windows(&self) -> Result<Vec<Window>, PlanError> {
        if !self.set.defines(KIND, "windows", 0) {
            return Ok(Vec::new());
        }
        parse_windows(&self.json("windows", Vec::new())?).map_err(PlanError::from)
    }

    fn host_time(&self, group: &GroupInfo) -> Result<u64, PlanError> {
        if !self.set.defines(KIND, "host_time", 1) {
            return Ok(DEFAULT_HOST_SECS);
        }
        self.count("host_time", Self::arg("host_time", group)?)
            .map_err(|e| about(e, &format!("group `{}`", group.name)))
    }
}
