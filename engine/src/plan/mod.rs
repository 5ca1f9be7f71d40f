//! The wave planner: from an inventory and the rollout rules to a deterministic plan (canary
//! cohort, waves, batches, timeline). Pure: the rules come in through [`RolloutRules`], the
//! start time and seed through [`PlanRequest`]; nothing here reads a clock or a file.
//!
//! Rounding rule (documented in ARCHITECTURE.md): after wave `i` with cumulative share `p_i`
//! of `E` eligible hosts, `C_i = max(ceil(p_i·E/100), C_{i-1} + 1)` hosts are done, capped at
//! `E`; the last wave is always `E`. The canaries count towards `C_i`. Each group's cumulative
//! count is apportioned from `C_i` by largest remainder (exact integer arithmetic), never below
//! what the group already did; ties go to the smaller group, so small groups show up early.

mod apportion;
mod canary;
mod entry;
mod order;
mod pack;
pub mod policy;
pub mod render;
pub mod spec;
pub mod window;

pub use apportion::apportion;
pub use entry::{for_inventory, sizing_of};
use order::{blend, spread_order};
pub use order::{cumulative_targets, keyed_hash};
pub(crate) use order::{splitmix64_finish, SPLITMIX64_GAMMA};
pub use spec::{
    Amount, CanaryCount, Eligibility, GroupInfo, Scope, ScopeLimit, StageInfo, StageKind, Window,
};

use crate::error::PolicyError;
use crate::gate::sizing::{ExpectedMde, Sizing};
use crate::model::Host;
use fleetward_stdlib::KernelVersion;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// Seconds a host takes (install, reboot, checks) when the policy does not say.
pub const DEFAULT_HOST_SECS: u64 = 15 * 60;

/// The decisions the planner asks of the rollout policy.
pub trait RolloutRules {
    /// One decision per host, in order.
    fn eligible(&self, hosts: &[&Host]) -> Result<Vec<Eligibility>, PlanError>;
    fn canary(&self, group: &GroupInfo) -> Result<CanaryCount, PlanError>;
    /// Cumulative percentages, rising, ending at 100.
    fn waves(&self) -> Result<Vec<f64>, PlanError>;
    /// Seconds to watch a stage before its gate.
    fn bake(&self, stage: &StageInfo) -> Result<u64, PlanError>;
    /// Hosts updating at once in a stage; `None` for no limit.
    fn max_in_flight(&self, stage: &StageInfo) -> Result<Option<u64>, PlanError>;
    fn blast_radius(&self) -> Result<Vec<ScopeLimit>, PlanError>;
    /// Maintenance windows; empty for "any time".
    fn windows(&self) -> Result<Vec<Window>, PlanError>;
    /// Seconds one host of the group takes.
    fn host_time(&self, group: &GroupInfo) -> Result<u64, PlanError>;
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the plan is invalid: {0}")]
    Invalid(String),
    #[error("no target kernel: define `fn target_kernel()` in rollout.rhai or pass `--kernel`")]
    NoTarget,
}

impl From<crate::error::Invalid> for PlanError {
    fn from(e: crate::error::Invalid) -> Self {
        PlanError::Invalid(e.0)
    }
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub hosts: &'a [Host],
    pub target_kernel: &'a str,
    pub seed: u64,
    pub start: Timestamp,
    /// Hosts held back by unresolved drift (from `drift audit`'s review queue), with why.
    pub held: &'a BTreeMap<String, String>,
    /// What sizes `"auto"` canary counts and gives every group its expected MDEs; without it,
    /// `"auto"` takes the count with the tightest comparison against its controls (the cap,
    /// unless the group is too small to keep controls).
    pub sizing: Option<&'a Sizing>,
}

/// Why a host is not in the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExclusionKind {
    /// Already runs the target kernel.
    OnTarget,
    /// Runs a newer kernel than the target: fleetward never downgrades.
    Newer,
    /// `eligible(host)` said no.
    Ineligible,
    /// Held back by unresolved drift: review items, unreadable facts, or not audited.
    Drift,
    /// Another inventory entry names the same machine (address and SSH port), such as a
    /// second Redis instance on it: the machine is updated once, under the first entry.
    SameMachine,
}

impl ExclusionKind {
    /// The kind in words, as the human plan shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExclusionKind::Ineligible => "ineligible",
            ExclusionKind::OnTarget => "on target",
            ExclusionKind::Newer => "newer",
            ExclusionKind::Drift => "drift",
            ExclusionKind::SameMachine => "same machine",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Exclusion {
    pub host: String,
    pub group: String,
    pub kind: ExclusionKind,
    pub reason: String,
}

/// A group that needs the kernel but cannot be validated, so the kernel cannot be approved for it.
#[derive(Debug, Clone, Serialize)]
pub struct Uncovered {
    pub group: String,
    pub hosts: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupPlan {
    pub name: String,
    pub hardware: String,
    pub workload: String,
    /// Hosts in the inventory.
    pub hosts: usize,
    pub eligible: usize,
    pub canaries: usize,
    pub excluded: usize,
    /// Seconds per host, from `host_time(group)`.
    pub host_secs: u64,
    /// How the canary count was chosen, and what it is expected to detect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_sizing: Option<CanarySizing>,
}

impl CanarySizing {
    /// Why the count is what it is: the `"auto"` reason, or the fixed count's shortfall.
    pub fn why_or_default(&self) -> String {
        if !self.why.is_empty() {
            return self.why.clone();
        }
        let worst: Vec<String> = self
            .expected
            .iter()
            .filter(|e| e.mde > e.threshold)
            .map(|e| format!("{} {:.1}% > {}%", e.metric, e.mde, e.threshold))
            .collect();
        format!(
            "`canary(group)` fixes the count; expected MDE {}",
            worst.join(", ")
        )
    }
}

/// How a group's canary count was chosen and what the canary gate should detect with it.
#[derive(Debug, Clone, Serialize)]
pub struct CanarySizing {
    /// `canary(group)`'s rule.
    pub rule: CanaryCount,
    /// Controls the canary gate will have (the default count, at most the group's other hosts).
    pub controls: usize,
    /// Expected MDE per metric with the chosen count (empty without a baseline).
    pub expected: Vec<ExpectedMde>,
    /// Every metric's expected MDE is within its threshold.
    pub within: bool,
    /// Why the count is what it is, for `"auto"`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Batch {
    pub index: usize,
    pub start: Timestamp,
    pub end: Timestamp,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    #[serde(flatten)]
    pub info: StageInfo,
    /// Hosts done when this stage ends, and their share of the eligible fleet.
    pub cumulative: usize,
    pub cumulative_percent: f64,
    /// Hosts per group in this stage.
    pub groups: BTreeMap<String, usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u64>,
    pub bake_secs: u64,
    pub start: Timestamp,
    /// When the stage's hosts are done.
    pub done: Timestamp,
    /// When its bake ends and its gate runs.
    pub gate: Timestamp,
    /// Why the wave was split into parts, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    pub batches: Vec<Batch>,
    /// One shard's share of a plan ([`Plan::only`]): the whole stage's hosts per group,
    /// every shard's, which its controls are chosen for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet_groups: Option<BTreeMap<String, usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    pub hosts: usize,
    pub eligible: usize,
    pub canaries: usize,
    pub on_target: usize,
    pub newer: usize,
    pub ineligible: usize,
    /// Held back by drift.
    pub drift: usize,
    /// Further entries for a machine already in the plan.
    pub same_machine: usize,
}

/// A complete plan.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub target_kernel: String,
    pub seed: u64,
    pub start: Timestamp,
    /// When the last gate runs.
    pub finish: Timestamp,
    pub counts: Counts,
    pub groups: Vec<GroupPlan>,
    pub stages: Vec<Stage>,
    pub excluded: Vec<Exclusion>,
    pub uncovered: Vec<Uncovered>,
    pub blast_radius: Vec<ScopeLimit>,
    pub windows: Vec<Window>,
    pub notes: Vec<String>,
    /// Where canary sizing's spreads came from, when a baseline was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizing: Option<SizingSummary>,
}

impl Plan {
    /// The plan as one shard's controller drives it: every stage kept, in order, with only
    /// the hosts `keep` accepts (a stage may keep none, and a batch left empty goes), so that
    /// stage k is the same stage in every shard and its gate can judge them all together.
    /// Each stage's `size` becomes the shard's; its `groups` stay the whole stage's, and are
    /// kept as `fleet_groups` for the controller.
    pub fn only(mut self, keep: impl Fn(&str) -> bool) -> Plan {
        for st in &mut self.stages {
            for b in &mut st.batches {
                b.hosts.retain(|h| keep(h));
            }
            st.batches.retain(|b| !b.hosts.is_empty());
            st.info.size = st.batches.iter().map(|b| b.hosts.len()).sum();
            st.fleet_groups = Some(st.groups.clone());
        }
        self
    }
}

/// What canary sizing was based on: the baseline, its history, the gate's settings and the
/// canary gate's windows.
#[derive(Debug, Clone, Serialize)]
pub struct SizingSummary {
    pub baseline: String,
    pub hosts: usize,
    pub samples: usize,
    pub history_secs: f64,
    pub interval_secs: f64,
    pub before_secs: u64,
    pub bake_secs: u64,
    pub alpha: f64,
    pub power: f64,
}

impl SizingSummary {
    pub fn of(z: &Sizing) -> SizingSummary {
        SizingSummary {
            baseline: z.source.clone(),
            hosts: z.spreads.hosts,
            samples: z.spreads.samples,
            history_secs: z.spreads.history_secs,
            interval_secs: z.spreads.interval_secs,
            before_secs: z.before_secs,
            bake_secs: z.bake_secs,
            alpha: z.alpha,
            power: z.power,
        }
    }
}

/// Interned values of one scope: the value id of every host, and the inventory total of each.
struct ScopeValues {
    ids: Vec<u32>,
    totals: Vec<usize>,
}

/// A host's value of a scope, borrowed where it can be.
fn scope_key<'h>(scope: &Scope, h: &'h Host) -> (std::borrow::Cow<'h, str>, &'h str) {
    use std::borrow::Cow;
    match scope {
        Scope::Hardware => (Cow::Borrowed(h.hardware.as_str()), ""),
        Scope::Workload => (Cow::Borrowed(h.workload.as_str()), ""),
        Scope::Datacenter => (Cow::Borrowed(h.datacenter.as_str()), ""),
        Scope::Rack => (Cow::Borrowed(h.datacenter.as_str()), h.rack.as_str()),
        Scope::Group => (Cow::Borrowed(h.hardware.as_str()), h.workload.as_str()),
        Scope::Fact(_) => (Cow::Owned(scope.value_of(h)), ""),
    }
}

fn scope_values(scope: &Scope, hosts: &[Host]) -> ScopeValues {
    use std::borrow::Cow;
    let mut ix: HashMap<(Cow<'_, str>, &str), u32> = HashMap::new();
    let mut totals: Vec<usize> = Vec::new();
    let mut ids = Vec::with_capacity(hosts.len());
    for h in hosts {
        let n = totals.len() as u32;
        let id = *ix.entry(scope_key(scope, h)).or_insert(n);
        if id == n {
            totals.push(0);
        }
        if let Some(t) = totals.get_mut(id as usize) {
            *t += 1;
        }
        ids.push(id);
    }
    ScopeValues { ids, totals }
}

/// The in-flight limits each host is under, for controllers that share them across shards:
/// per host, `(name, slots)` for every `blast_radius()` scope with an `in_flight` amount, the
/// name `SCOPE=VALUE` (`rack=ams1/r01`) and the slots that amount of the value's hosts in
/// `hosts` (the whole fleet, not one shard). Sorted by name: a host takes its slots in that
/// order, so two hosts waiting on each other's slots cannot both hold one the other needs.
pub fn in_flight_slots(
    blast: &[ScopeLimit],
    hosts: &[Host],
) -> std::collections::BTreeMap<String, Vec<(String, usize)>> {
    let mut out: std::collections::BTreeMap<String, Vec<(String, usize)>> = Default::default();
    for l in blast {
        let Some(amount) = l.in_flight else { continue };
        let values = scope_values(&l.scope, hosts);
        for (h, id) in hosts.iter().zip(&values.ids) {
            let total = values.totals.get(*id as usize).copied().unwrap_or(1);
            let name = format!("{}={}", l.scope, l.scope.value_of(h));
            out.entry(h.name.clone())
                .or_default()
                .push((name, amount.of(total)));
        }
    }
    for slots in out.values_mut() {
        slots.sort();
    }
    out
}

/// Plans a rollout.
pub fn plan(req: &PlanRequest<'_>, rules: &dyn RolloutRules) -> Result<Plan, PlanError> {
    let hosts = req.hosts;
    let target = KernelVersion::parse(req.target_kernel)
        .map_err(|e| PlanError::Invalid(format!("target kernel: {e}")))?;
    let group_of = |h: &Host| h.group_name();
    let mut notes = Vec::new();

    // 1. Kernel, then eligibility.
    let mut excluded = Vec::new();
    let mut candidates = Vec::with_capacity(hosts.len());
    // Fleets run few distinct kernels: compare each once.
    let mut kernel_cmp: HashMap<&str, Option<Ordering>> = HashMap::new();
    let mut machines: HashMap<(&str, u16), &str> = HashMap::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        let machine = (h.address.as_str(), h.port.unwrap_or(22));
        if let Some(first) = machines.get(&machine) {
            excluded.push(Exclusion {
                host: h.name.clone(),
                group: group_of(h),
                kind: ExclusionKind::SameMachine,
                reason: format!(
                    "runs on the same machine (`{}:{}`) as `{first}`, which carries its kernel update",
                    machine.0, machine.1
                ),
            });
            continue;
        }
        machines.insert(machine, h.name.as_str());
        let ord = *kernel_cmp
            .entry(h.kernel.as_str())
            .or_insert_with(|| KernelVersion::parse(&h.kernel).ok().map(|k| k.cmp(&target)));
        match ord.ok_or(()) {
            Ok(Ordering::Equal) => excluded.push(Exclusion {
                host: h.name.clone(),
                group: group_of(h),
                kind: ExclusionKind::OnTarget,
                reason: format!("already on `{}`", h.kernel),
            }),
            Ok(Ordering::Greater) => excluded.push(Exclusion {
                host: h.name.clone(),
                group: group_of(h),
                kind: ExclusionKind::Newer,
                reason: format!(
                    "runs `{}`, newer than the target; fleetward never downgrades",
                    h.kernel
                ),
            }),
            _ => match req.held.get(&h.name) {
                Some(why) => excluded.push(Exclusion {
                    host: h.name.clone(),
                    group: group_of(h),
                    kind: ExclusionKind::Drift,
                    reason: why.clone(),
                }),
                None => candidates.push(i),
            },
        }
    }
    let refs: Vec<&Host> = candidates.iter().map(|&i| &hosts[i]).collect();
    let decisions = rules.eligible(&refs)?;
    if decisions.len() != refs.len() {
        return Err(PlanError::Invalid(format!(
            "eligibility: {} decisions for {} hosts",
            decisions.len(),
            refs.len()
        )));
    }
    let mut eligible = Vec::with_capacity(candidates.len());
    let mut is_eligible = vec![false; hosts.len()];
    for (&i, d) in candidates.iter().zip(decisions) {
        match d {
            Eligibility::Eligible => {
                eligible.push(i);
                if let Some(x) = is_eligible.get_mut(i) {
                    *x = true;
                }
            }
            Eligibility::Excluded(reason) => excluded.push(Exclusion {
                host: hosts[i].name.clone(),
                group: group_of(&hosts[i]),
                kind: ExclusionKind::Ineligible,
                reason,
            }),
        }
    }

    // 2. Groups.
    struct Acc {
        hardware: String,
        workload: String,
        total: usize,
        members: Vec<usize>,
    }
    // Groups in name order, and the group of every host by index into them.
    let mut ordered: Vec<(&str, &str)> = hosts
        .iter()
        .map(|h| (h.hardware.as_str(), h.workload.as_str()))
        .collect::<std::collections::HashSet<_>>()
        .into_iter()
        .collect();
    ordered.sort_by_cached_key(|(hw, wl)| format!("{hw}/{wl}"));
    let position: HashMap<(&str, &str), usize> =
        ordered.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let host_group: Vec<usize> = hosts
        .iter()
        .map(|h| {
            position
                .get(&(h.hardware.as_str(), h.workload.as_str()))
                .copied()
                .unwrap_or(0)
        })
        .collect();
    let mut accs: Vec<(String, Acc)> = ordered
        .iter()
        .map(|(hw, wl)| {
            (
                format!("{hw}/{wl}"),
                Acc {
                    hardware: hw.to_string(),
                    workload: wl.to_string(),
                    total: 0,
                    members: Vec::new(),
                },
            )
        })
        .collect();
    for (i, g) in host_group.iter().enumerate() {
        if let Some((_, a)) = accs.get_mut(*g) {
            a.total += 1;
            if is_eligible.get(i).copied().unwrap_or(false) {
                a.members.push(i);
            }
        }
    }
    let mut excluded_by_group: BTreeMap<&str, BTreeMap<ExclusionKind, usize>> = BTreeMap::new();
    for e in &excluded {
        *excluded_by_group
            .entry(e.group.as_str())
            .or_default()
            .entry(e.kind)
            .or_default() += 1;
    }
    let mut groups = Vec::new();
    let mut orders: Vec<Vec<usize>> = Vec::new();
    let mut uncovered = Vec::new();
    for (name, a) in &accs {
        let info = GroupInfo {
            name: name.clone(),
            hardware: a.hardware.clone(),
            workload: a.workload.clone(),
            size: a.members.len(),
            total: a.total,
        };
        let ex = excluded_by_group.get(name.as_str());
        let count = |k: ExclusionKind| ex.and_then(|m| m.get(&k)).copied().unwrap_or(0);
        let mut canaries = 0;
        let mut canary_sizing = None;
        if a.members.is_empty() {
            let pending = a.total - count(ExclusionKind::OnTarget) - count(ExclusionKind::Newer);
            if pending > 0 {
                uncovered.push(Uncovered {
                    group: name.clone(),
                    hosts: pending,
                    reason: format!(
                        "{pending} host(s) need the kernel but none is eligible, so no canary can validate this group"
                    ),
                });
            }
        } else {
            let rule = rules.canary(&info)?;
            let g = canary::GroupSize {
                name,
                eligible: a.members.len(),
                total: a.total,
            };
            (canaries, canary_sizing) = canary::choose(&g, rule, req.sizing, &mut notes);
        }
        let host_secs = if a.members.is_empty() {
            0
        } else {
            rules.host_time(&info)?
        };
        groups.push(GroupPlan {
            name: name.clone(),
            hardware: a.hardware.clone(),
            workload: a.workload.clone(),
            hosts: a.total,
            eligible: a.members.len(),
            canaries,
            excluded: ex.map(|m| m.values().sum()).unwrap_or(0),
            host_secs,
            canary_sizing,
        });
        orders.push(spread_order(name, &a.members, hosts, req.seed));
    }

    // 3. Cumulative targets, per wave then per group.
    let waves = rules.waves()?;
    let e_total = eligible.len();
    let sizes: Vec<usize> = groups.iter().map(|g| g.eligible).collect();
    let canary_counts: Vec<usize> = groups.iter().map(|g| g.canaries).collect();
    let canary_total: usize = canary_counts.iter().sum();
    let targets = cumulative_targets(&waves, e_total, canary_total);
    let mut per_group_cum: Vec<Vec<usize>> = vec![canary_counts.clone()];
    for &c in &targets {
        let lower = per_group_cum.last().cloned().unwrap_or_default();
        per_group_cum.push(apportion(c, &sizes, &lower));
    }

    // 4. Stage host lists.
    let blast = rules.blast_radius()?;
    let windows = rules.windows()?;
    let scopes: Vec<ScopeValues> = blast
        .iter()
        .map(|l| scope_values(&l.scope, hosts))
        .collect();
    let caps_for = |pick: fn(&ScopeLimit) -> Option<Amount>| -> Vec<(usize, Vec<usize>)> {
        blast
            .iter()
            .enumerate()
            .filter_map(|(si, l)| {
                let a = pick(l)?;
                let sv = scopes.get(si)?;
                Some((si, sv.totals.iter().map(|t| a.of(*t)).collect()))
            })
            .collect()
    };
    let wave_caps = caps_for(|l| l.per_wave);
    let flight_caps = caps_for(|l| l.in_flight);

    let mut stages = Vec::new();
    let mut t = req.start;
    let mut done = 0usize;
    let mut prev = vec![0usize; groups.len()];
    let longest = window::longest(&windows);
    for (w, cum) in per_group_cum.iter().enumerate() {
        let slices: Vec<(usize, &[usize])> = orders
            .iter()
            .enumerate()
            .filter_map(|(g, order)| {
                let (a, b) = (prev.get(g).copied()?, cum.get(g).copied()?);
                order.get(a..b).map(|s| (g, s))
            })
            .collect();
        prev = cum.clone();
        let wave_hosts = blend(&slices);
        if w > 0 && !wave_hosts.is_empty() {
            let p = waves.get(w - 1).copied().unwrap_or(100.0);
            let before = if w >= 2 {
                waves.get(w - 2).copied().unwrap_or(0.0)
            } else {
                0.0
            };
            let nominal = (p - before) / 100.0 * e_total as f64;
            if (wave_hosts.len() as f64) < nominal / 2.0 {
                notes.push(format!(
                    "wave {w} has {} host(s), not ~{nominal:.0}: the stages before it (canaries count) already did {:.1}% of the eligible fleet",
                    wave_hosts.len(),
                    100.0 * done as f64 / e_total.max(1) as f64
                ));
            }
        }
        if wave_hosts.is_empty() {
            if w > 0 {
                notes.push(format!("wave {w} has no hosts left and is dropped"));
            }
            continue;
        }
        let caps: Vec<(&[u32], &[usize])> = wave_caps
            .iter()
            .filter_map(|(si, c)| Some((scopes.get(*si)?.ids.as_slice(), c.as_slice())))
            .collect();
        // Each group's canaries stay in one part: the canary gate judges a part's hosts, and
        // a group's canary count was sized for all of them together.
        let parts = if w == 0 {
            let units: Vec<&[usize]> = slices.iter().map(|(_, s)| *s).collect();
            pack::pack_units(&wave_hosts, &units, &caps)
        } else {
            pack::pack(&wave_hosts, &caps, usize::MAX)
        };
        let split = (parts.len() > 1).then(|| {
            let why: Vec<String> = wave_caps
                .iter()
                .filter_map(|(si, _)| blast.get(*si))
                .filter_map(|l| Some(format!("{} per wave ≤ {}", l.scope, l.per_wave?)))
                .collect();
            format!("split into {} parts by {}", parts.len(), why.join(", "))
        });
        let nparts = parts.len();
        for (pi, part) in parts.into_iter().enumerate() {
            done += part.len();
            let (kind, name, pct) = if w == 0 {
                (
                    StageKind::Canary,
                    "canary".to_string(),
                    100.0 * canary_total as f64 / e_total.max(1) as f64,
                )
            } else {
                let p = waves.get(w - 1).copied().unwrap_or(100.0);
                let name = if nparts > 1 {
                    format!("wave {w} ({}/{nparts})", pi + 1)
                } else {
                    format!("wave {w}")
                };
                (StageKind::Wave, name, p)
            };
            let info = StageInfo {
                index: stages.len(),
                name,
                kind,
                wave: w,
                part: pi + 1,
                parts: nparts,
                percent: pct,
                size: part.len(),
            };
            let max_in_flight = rules.max_in_flight(&info)?;
            if max_in_flight == Some(0) {
                return Err(PlanError::Invalid(format!(
                    "`max_in_flight` is 0 for `{}`, which would stop every host",
                    info.name
                )));
            }
            let bake = rules.bake(&info)?;
            let fcaps: Vec<(&[u32], &[usize])> = flight_caps
                .iter()
                .filter_map(|(si, c)| Some((scopes.get(*si)?.ids.as_slice(), c.as_slice())))
                .collect();
            let limit = max_in_flight
                .map(|m| usize::try_from(m).unwrap_or(usize::MAX))
                .unwrap_or(usize::MAX);
            let bins = pack::pack(&part, &fcaps, limit);
            let mut counts = vec![0usize; groups.len()];
            for h in &part {
                if let Some(c) = host_group.get(*h).and_then(|g| counts.get_mut(*g)) {
                    *c += 1;
                }
            }
            let per_group: BTreeMap<String, usize> = groups
                .iter()
                .zip(&counts)
                .filter(|(_, n)| **n > 0)
                .map(|(g, n)| (g.name.clone(), *n))
                .collect();
            let stage_start = t;
            let mut batches = Vec::with_capacity(bins.len());
            for (bi, bin) in bins.into_iter().enumerate() {
                let secs = bin
                    .iter()
                    .filter_map(|h| host_group.get(*h).and_then(|g| groups.get(*g)))
                    .map(|g| g.host_secs)
                    .max()
                    .unwrap_or(DEFAULT_HOST_SECS);
                let d = SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
                let at = window::next_fit(&windows, t, d).ok_or_else(|| {
                    PlanError::Invalid(match longest {
                        Some(l) if l < d => format!(
                            "a batch of `{}` takes {}, longer than the longest maintenance window ({})",
                            info.name,
                            human_secs(secs),
                            human_secs(l.as_secs().unsigned_abs())
                        ),
                        _ => format!("no maintenance window fits a batch of `{}`", info.name),
                    })
                })?;
                let end = at
                    .checked_add(d)
                    .map_err(|e| PlanError::Invalid(format!("the timeline overflows: {e}")))?;
                batches.push(Batch {
                    index: bi + 1,
                    start: at,
                    end,
                    hosts: bin.iter().map(|h| hosts[*h].name.clone()).collect(),
                });
                t = end;
            }
            let stage_done = t;
            let gate = t
                .checked_add(SignedDuration::from_secs(
                    i64::try_from(bake).unwrap_or(i64::MAX),
                ))
                .map_err(|e| PlanError::Invalid(format!("the timeline overflows: {e}")))?;
            t = gate;
            stages.push(Stage {
                info,
                cumulative: done,
                cumulative_percent: 100.0 * done as f64 / e_total.max(1) as f64,
                groups: per_group,
                max_in_flight,
                bake_secs: bake,
                start: batches.first().map(|b| b.start).unwrap_or(stage_start),
                done: stage_done,
                gate,
                split: if pi == 0 { split.clone() } else { None },
                batches,
                fleet_groups: None,
            });
        }
    }
    if e_total == 0 {
        notes.push("no host is eligible: there is nothing to roll out".into());
    }
    excluded.sort_by(|a, b| (a.kind, &a.group, &a.host).cmp(&(b.kind, &b.group, &b.host)));
    let count = |k: ExclusionKind| excluded.iter().filter(|e| e.kind == k).count();
    Ok(Plan {
        target_kernel: req.target_kernel.to_string(),
        seed: req.seed,
        start: req.start,
        finish: t,
        counts: Counts {
            hosts: hosts.len(),
            eligible: e_total,
            canaries: canary_total,
            on_target: count(ExclusionKind::OnTarget),
            newer: count(ExclusionKind::Newer),
            ineligible: count(ExclusionKind::Ineligible),
            drift: count(ExclusionKind::Drift),
            same_machine: count(ExclusionKind::SameMachine),
        },
        groups,
        stages,
        excluded,
        uncovered,
        blast_radius: blast,
        windows,
        notes,
        sizing: None,
    })
}

/// `90061` → `1d 1h 1m`.
pub fn human_secs(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3_600 % 24, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(format!("{d}d"));
    }
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests;
