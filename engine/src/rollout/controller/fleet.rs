//! The hosts a rollout may touch with their groups and baseline, and the plan's stages as
//! the journal freezes them.

use super::*;

/// The hosts a rollout may touch, their groups, and the static production baseline (the
/// fallback reference of a stage without controls).
pub struct Fleet {
    hosts: HashMap<String, Host>,
    pub(super) groups: gate::Groups,
    pub(super) baseline: gate::Summary,
}

impl Fleet {
    /// The inventory's hosts with their groups, and the baseline at `baseline` (long-form
    /// samples, joined with those groups, or a precomputed summary).
    pub fn load(hosts: &[Host], baseline: &Path) -> Result<Fleet, DataError> {
        let groups = gate::Groups::of_hosts(hosts)?;
        let baseline =
            match groups.baseline(baseline, &gate::Split::None, gate::Quantiles::Benchmarks)? {
                gate::Baseline::Hosts(c) => gate::Summary::of(&c),
                gate::Baseline::Summary(s) => s,
            };
        Ok(Fleet {
            groups,
            hosts: hosts.iter().map(|h| (h.name.clone(), h.clone())).collect(),
            baseline,
        })
    }

    /// Only the hosts `keep` accepts are this controller's (its shard's) to touch and to
    /// take as controls; the groups and the baseline stay the whole fleet's, so a gate over
    /// several shards judges alike in each.
    pub fn only(mut self, keep: impl Fn(&Host) -> bool) -> Fleet {
        self.hosts.retain(|_, h| keep(h));
        self
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    /// Every host's name, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hosts.keys().map(String::as_str)
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
            fleet_groups: st.fleet_groups.clone(),
        })
        .collect()
}
