//! The hosts a rollout may touch with their groups and baseline, and the plan's stages as
//! the journal freezes them.

use super::*;

/// The hosts a rollout may touch, their groups, and the production baseline.
pub struct Fleet {
    hosts: HashMap<String, Host>,
    pub(super) groups: gate::Groups,
    pub(super) baseline: Cohort,
}

impl Fleet {
    /// The inventory's hosts with their groups, and the baseline at `baseline` (long-form
    /// samples, joined with those groups, or a precomputed summary).
    pub fn load(hosts: &[Host], baseline: &Path) -> Result<Fleet, DataError> {
        let groups = gate::Groups::of_hosts(hosts)?;
        let baseline = groups.baseline(baseline)?;
        Ok(Fleet {
            groups,
            hosts: hosts.iter().map(|h| (h.name.clone(), h.clone())).collect(),
            baseline,
        })
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }
}

/// The plan's stages as the journal freezes them.
pub fn stage_plans(plan: &Plan) -> Vec<StagePlan> {
    plan.stages
        .iter()
        .map(|st| StagePlan {
            index: st.info.index,
            name: st.info.name.clone(),
            hosts: st.batches.iter().flat_map(|b| b.hosts.clone()).collect(),
            info: st.info.clone(),
            batches: st.batches.iter().map(|b| b.hosts.clone()).collect(),
            bake_secs: st.bake_secs,
            batch_secs: st
                .batches
                .iter()
                .map(|b| b.end.duration_since(b.start).as_secs().max(0) as u64)
                .collect(),
        })
        .collect()
}
