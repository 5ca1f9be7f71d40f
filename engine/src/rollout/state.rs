//! The rollout's state as a fold over its journal: which stage is running, what each host has
//! done, which gates passed. Pure: the controller decides from this, and `rollout status`
//! prints it.

use super::bench::{BenchPhase, BenchResult};
use super::event::{Event, Record, StagePlan, Step};
use crate::model::VerdictKind;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostState {
    pub stage: usize,
    /// The last step that finished.
    pub done_step: Option<Step>,
    /// A step that started and has not finished: after a crash, the host is re-checked
    /// before anything else is done to it.
    pub in_step: Option<Step>,
    /// Reboots issued in this rollout (the controller never issues a second one).
    pub reboots: u32,
    /// The boot id before the reboot, to verify it changed.
    pub boot_id_before: Option<String>,
    /// When the reboot last went out (RFC 3339, the journal time of `reboot_issued`, or of
    /// the `recovered` record of a recovery that sent it again): the wait for the host to
    /// come back is anchored here, across restarts.
    pub reboot_at: Option<String>,
    /// A recovery sent the reboot again through the one-shot wrapper.
    pub reboot_resent: bool,
    /// When the policy's out-of-band recovery was issued (journal time of `recover_issued`)
    /// and how many seconds the wait for the host runs from there: once per transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recover_at: Option<(String, u64)>,
    /// The kernel it ran and its default boot entry before its first step.
    pub previous_kernel: Option<String>,
    pub previous_boot_entry: Option<String>,
    /// Kernel and boot id seen at the last check.
    pub kernel: Option<String>,
    pub boot_id: Option<String>,
    pub done: bool,
    pub failed: Option<(Step, String)>,
    /// Acknowledged by an operator at a resume: no longer counted against the budget.
    pub acknowledged: bool,
    pub unexpected_reboots: u32,
    /// Left out before it started, and why (drift found during the rollout).
    pub held: Option<String>,
    /// Its benchmark runs, before and after its update, with their journal times.
    pub bench: BTreeMap<BenchPhase, BenchRun>,
    /// Its way back to the previous kernel, once a rollback named it: the same step fields
    /// (`done_step`, `in_step`, `reboots`, `boot_id_before`, `reboot_at`, `done`, `failed`)
    /// for that transition. The fields above then describe the update, which is over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back: Option<Box<HostState>>,
}

/// One benchmark run of a host: when it was journaled (RFC 3339) and what it measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BenchRun {
    pub at: String,
    pub results: Vec<BenchResult>,
}

impl HostState {
    /// Finished one way or the other.
    pub fn settled(&self) -> bool {
        self.done || self.failed.is_some() || self.held.is_some()
    }

    /// The transition under way: its way back once a rollback named it, else its update.
    /// The way back's `previous_kernel` is the kernel it leaves (the target), so a boot that
    /// falls back to it is recognised as on the way there.
    pub fn current(&self, target: &str) -> HostState {
        match &self.back {
            Some(b) => HostState {
                stage: self.stage,
                previous_kernel: Some(target.to_string()),
                kernel: self.kernel.clone(),
                boot_id: self.boot_id.clone(),
                ..(**b).clone()
            },
            None => self.clone(),
        }
    }

    /// Back on its previous kernel after a rollback.
    pub fn rolled_back(&self) -> bool {
        self.back.as_ref().is_some_and(|b| b.done)
    }

    /// The step fields of the transition under way.
    fn transition(&mut self) -> &mut HostState {
        match self.back {
            Some(ref mut b) => b,
            None => self,
        }
    }

    /// Nothing has been done to it yet in this rollout.
    pub fn untouched(&self) -> bool {
        self.done_step.is_none() && self.in_step.is_none() && self.reboots == 0 && !self.settled()
    }

    /// The step to carry on from. A host whose reboot was issued goes on waiting for it
    /// (never a second reboot); a host interrupted mid-step repeats that step (steps other
    /// than the reboot are idempotent); otherwise the step after the last one done.
    pub fn resume_step(&self) -> Option<Step> {
        if self.settled() {
            return None;
        }
        if self.reboots > 0 && self.done_step < Some(Step::WaitUp) {
            return Some(Step::WaitUp);
        }
        if let Some(s) = self.in_step {
            return Some(s);
        }
        match self.done_step {
            None => Some(Step::PreCheck),
            Some(s) => s.next(),
        }
    }
}

/// A host that failed a step (quarantined), and where it was left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedHost {
    pub host: String,
    pub step: Step,
    pub output: String,
    pub acknowledged: bool,
    /// Its drain step finished and its undrain never did: still out of the load balancer
    /// (when the policy drains at all).
    pub still_drained: bool,
    /// The kernel and boot id it ran when last checked (`None`: never checked).
    pub kernel: Option<String>,
    pub boot_id: Option<String>,
    /// A reboot was issued to it in this rollout.
    pub rebooted: bool,
}

impl FailedHost {
    /// One line: the host, the step, where it was left, and why.
    pub fn describe(&self) -> String {
        format!(
            "{}: failed at {}{}; runs {}{}: {}",
            self.host,
            self.step.as_str(),
            if self.still_drained {
                ", still drained"
            } else {
                ""
            },
            match (&self.kernel, self.rebooted) {
                (Some(k), _) => k.as_str(),
                (None, false) => "the kernel it had (never rebooted)",
                (None, true) => "an unknown kernel (rebooted, not checked since)",
            },
            self.boot_id
                .as_deref()
                .map(|b| format!(" (boot id {b})"))
                .unwrap_or_default(),
            self.output
        )
    }
}

/// What one host runs, as far as the journal knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostKernel {
    pub host: String,
    pub kernel: String,
    /// `updated`, `failed at STEP`, `not started`, `in progress at STEP`, `held for drift`;
    /// after a rollback named it: `rolled back`, `rolling back at STEP`, `rollback failed at
    /// STEP`, `rollback pending`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    NotStarted,
    Running,
    Paused,
    Aborted,
    Completed,
    /// Every stage passed, with failed hosts no operator acknowledged.
    CompletedWithFailures,
    /// A rollback finished: every host it named is back on its previous kernel, or failed on
    /// the way (quarantined, listed).
    RolledBack,
}

impl Phase {
    /// The phase in words: `not started`, `running`, `paused`, `aborted`, `completed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::NotStarted => "not started",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Aborted => "aborted",
            Phase::Completed => "completed",
            Phase::CompletedWithFailures => "completed with failures",
            Phase::RolledBack => "rolled back",
        }
    }

    /// The phase as JSON and scenarios write it: `not_started`, `running`, `paused`,
    /// `aborted`, `completed`, `completed_with_failures`.
    pub fn key(&self) -> &'static str {
        match self {
            Phase::NotStarted => "not_started",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Aborted => "aborted",
            Phase::Completed => "completed",
            Phase::CompletedWithFailures => "completed_with_failures",
            Phase::RolledBack => "rolled_back",
        }
    }

    /// Finished: nothing more will be done unless an operator acknowledges failures.
    pub fn finished(&self) -> bool {
        matches!(
            self,
            Phase::Completed | Phase::Aborted | Phase::CompletedWithFailures | Phase::RolledBack
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutState {
    pub phase: Phase,
    pub target_kernel: String,
    pub stages: Vec<StagePlan>,
    /// The stage in progress (or last started).
    pub stage: Option<usize>,
    pub gates: BTreeMap<usize, (VerdictKind, Vec<String>)>,
    pub hosts: BTreeMap<String, HostState>,
    pub pause_reason: Option<String>,
    /// Policy hashes that made decisions, in order of first use.
    pub policies: Vec<String>,
    /// When each stage's bake ends (RFC 3339).
    pub bake_until: BTreeMap<usize, String>,
    /// When each stage's bake began (RFC 3339): the journal time of its `bake_started`.
    pub bake_from: BTreeMap<usize, String>,
    /// When each stage's before window ends (RFC 3339).
    pub before_until: BTreeMap<usize, String>,
    /// Each stage's control hosts.
    pub controls: BTreeMap<usize, Vec<String>>,
    /// Bake extensions per stage, with the reasons of each.
    pub extensions: BTreeMap<usize, Vec<Vec<String>>>,
    /// Verdicts journaled per stage, an operator's acceptance included: the next gate of the
    /// stage is its attempt of that number (the key of a gate shared across shards).
    #[serde(skip)]
    pub gate_runs: BTreeMap<usize, usize>,
    pub inventory: String,
    /// Hosts left out because of unresolved drift.
    pub held: Vec<super::event::HeldHost>,
    /// Recoveries after crashes, in order.
    pub recoveries: Vec<Recovery>,
    /// The last rollback, once one started.
    pub rollback: Option<Rollback>,
    /// The time of the last record (RFC 3339).
    pub last_at: Option<String>,
}

/// A rollback: why, its batches (later stages first), the hosts it left alone, when it
/// began, and, once finished, the hosts that failed on the way back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollback {
    pub reason: String,
    pub batches: Vec<super::event::RollbackBatch>,
    pub left: Vec<super::event::LeftHost>,
    /// Hosts of its scope the rollout never started.
    pub untouched: usize,
    pub at: String,
    pub failed: Vec<String>,
    pub finished: bool,
}

impl Rollback {
    /// The hosts it takes back, in order.
    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.batches.iter().flat_map(|b| b.hosts.iter())
    }
}

/// A recovery after a crash, as `status` and `explain` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovery {
    pub at: String,
    pub in_flight: Vec<super::event::InFlight>,
    pub reboots_resent: Vec<String>,
    pub torn_bytes: u64,
    pub lost_secs: u64,
}

impl Default for RolloutState {
    fn default() -> Self {
        RolloutState {
            phase: Phase::NotStarted,
            target_kernel: String::new(),
            stages: Vec::new(),
            stage: None,
            gates: BTreeMap::new(),
            hosts: BTreeMap::new(),
            pause_reason: None,
            policies: Vec::new(),
            bake_until: BTreeMap::new(),
            bake_from: BTreeMap::new(),
            before_until: BTreeMap::new(),
            controls: BTreeMap::new(),
            extensions: BTreeMap::new(),
            gate_runs: BTreeMap::new(),
            inventory: String::new(),
            held: Vec::new(),
            recoveries: Vec::new(),
            rollback: None,
            last_at: None,
        }
    }
}

impl RolloutState {
    pub fn fold(records: &[Record]) -> RolloutState {
        let mut s = RolloutState::default();
        for r in records {
            s.apply_record(r);
        }
        s
    }

    /// One journal record: its event, the policy that made it, and its time where state
    /// keeps it.
    pub fn apply_record(&mut self, r: &Record) {
        if !self.policies.contains(&r.policy) {
            self.policies.push(r.policy.clone());
        }
        if let Event::BakeStarted { stage, .. } = &r.event {
            self.bake_from.insert(*stage, r.at.clone());
        }
        if let Event::RebootIssued { host, .. } = &r.event {
            self.host(host).transition().reboot_at = Some(r.at.clone());
        }
        if let Event::Recovered { reboots_resent, .. } = &r.event {
            // A reboot sent again after a crash is waited for from when it was sent.
            for h in reboots_resent {
                self.host(h).transition().reboot_at = Some(r.at.clone());
            }
        }
        if let Event::RecoverIssued { host, wait, .. } = &r.event {
            self.host(host).transition().recover_at = Some((r.at.clone(), *wait));
        }
        self.last_at = Some(r.at.clone());
        self.apply(&r.event);
        if let Event::Benchmarked { host, phase, .. } = &r.event {
            if let Some(run) = self.host(host).bench.get_mut(phase) {
                run.at = r.at.clone();
            }
        }
    }

    fn host(&mut self, name: &str) -> &mut HostState {
        self.hosts.entry(name.to_string()).or_default()
    }

    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::Started {
                target_kernel,
                stages,
                inventory,
                held,
                ..
            } => {
                self.phase = Phase::Running;
                self.held = held.clone();
                self.inventory = inventory.clone();
                self.target_kernel = target_kernel.clone();
                self.stages = stages.clone();
                for st in stages {
                    for h in &st.hosts {
                        self.host(h).stage = st.index;
                    }
                }
            }
            Event::StageStarted { stage } => self.stage = Some(*stage),
            Event::HostHeld { host, reason } => {
                self.host(host).held = Some(reason.clone());
                self.held.push(super::event::HeldHost {
                    host: host.clone(),
                    reason: reason.clone(),
                });
            }
            Event::StepStarted { host, step } => self.host(host).transition().in_step = Some(*step),
            Event::StepSucceeded { host, step, .. } => {
                let h = self.host(host).transition();
                h.in_step = None;
                h.done_step = Some(*step);
            }
            Event::PreviousKernel {
                host,
                kernel,
                boot_entry,
            } => {
                let h = self.host(host);
                h.previous_kernel = Some(kernel.clone());
                h.previous_boot_entry = boot_entry.clone();
            }
            Event::RebootIssued { host, boot_id } => {
                let h = self.host(host).transition();
                h.reboots += 1;
                h.boot_id_before = Some(boot_id.clone());
            }
            Event::RecoverIssued { .. } => {}
            Event::HostChecked {
                host,
                kernel,
                boot_id,
            } => {
                let h = self.host(host);
                h.kernel = Some(kernel.clone());
                h.boot_id = Some(boot_id.clone());
            }
            Event::Benchmarked {
                host,
                phase,
                results,
            } => {
                // A second benchmark check of the same step adds its metrics.
                let run = self.host(host).bench.entry(*phase).or_default();
                for r in results {
                    run.results.retain(|x| x.metric != r.metric);
                    run.results.push(r.clone());
                }
            }
            Event::HostDone { host } => {
                let h = self.host(host).transition();
                h.in_step = None;
                h.done = true;
            }
            Event::HostFailed { host, step, output } => {
                let h = self.host(host).transition();
                h.in_step = None;
                h.failed = Some((*step, output.clone()));
            }
            Event::BakeStarted { stage, until } => {
                self.bake_until.insert(*stage, until.clone());
            }
            Event::ControlsChosen { stage, hosts } => {
                self.controls.insert(*stage, hosts.clone());
            }
            Event::BeforeStarted { stage, until } => {
                self.before_until.insert(*stage, until.clone());
            }
            Event::BakeExtended {
                stage,
                until,
                reasons,
            } => {
                self.bake_until.insert(*stage, until.clone());
                self.extensions
                    .entry(*stage)
                    .or_default()
                    .push(reasons.clone());
            }
            Event::UnexpectedReboot { host, boot_id } => {
                let h = self.host(host);
                h.unexpected_reboots += 1;
                h.boot_id = Some(boot_id.clone());
            }
            Event::GateEvaluated {
                stage,
                verdict,
                reasons,
                ..
            } => {
                self.gates.insert(*stage, (*verdict, reasons.clone()));
                *self.gate_runs.entry(*stage).or_default() += 1;
            }
            Event::OnFailDecided { .. } => {}
            Event::Paused { reason } => {
                self.phase = Phase::Paused;
                self.pause_reason = Some(reason.clone());
            }
            Event::Resumed { acknowledged } => {
                self.phase = Phase::Running;
                self.pause_reason = None;
                for a in acknowledged {
                    self.host(a).transition().acknowledged = true;
                }
            }
            Event::Aborted { reason } => {
                self.phase = Phase::Aborted;
                self.pause_reason = Some(reason.clone());
            }
            Event::Completed => self.phase = Phase::Completed,
            Event::RollbackStarted {
                reason,
                batches,
                left,
                untouched,
            } => {
                self.phase = Phase::Running;
                self.pause_reason = None;
                for b in batches {
                    for h in &b.hosts {
                        let hs = self.host(h);
                        if hs.back.is_none() {
                            hs.back = Some(Box::default());
                        }
                    }
                }
                self.rollback = Some(Rollback {
                    reason: reason.clone(),
                    batches: batches.clone(),
                    left: left.clone(),
                    untouched: *untouched,
                    at: self.last_at.clone().unwrap_or_default(),
                    failed: Vec::new(),
                    finished: false,
                });
            }
            Event::RolledBack { failed } => {
                self.phase = Phase::RolledBack;
                if let Some(r) = &mut self.rollback {
                    r.failed = failed.clone();
                    r.finished = true;
                }
            }
            Event::CompletedWithFailures { .. } => self.phase = Phase::CompletedWithFailures,
            Event::Recovered {
                in_flight,
                reboots_resent,
                torn_bytes,
                lost_secs,
            } => {
                for h in reboots_resent {
                    self.host(h).transition().reboot_resent = true;
                }
                self.recoveries.push(Recovery {
                    at: self.last_at.clone().unwrap_or_default(),
                    in_flight: in_flight.clone(),
                    reboots_resent: reboots_resent.clone(),
                    torn_bytes: *torn_bytes,
                    lost_secs: *lost_secs,
                });
            }
        }
    }

    /// The control hosts chosen for `stage` (none before `ControlsChosen`).
    pub fn controls_of(&self, stage: usize) -> std::collections::BTreeSet<String> {
        self.controls
            .get(&stage)
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// A stage may start only when every earlier stage's gate passed.
    pub fn stage_may_start(&self, stage: usize) -> bool {
        (0..stage).all(|s| matches!(self.gates.get(&s), Some((VerdictKind::Pass, _))))
    }

    /// Hosts interrupted mid-step (of the transition under way), which must be re-checked
    /// before anything else.
    pub fn interrupted(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|(_, h)| {
                let t = h.back.as_deref().unwrap_or(h);
                t.in_step.is_some() && !t.done && t.failed.is_none()
            })
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Which host runs which kernel: what the host reported when last checked, or its
    /// inventory kernel (`initial`) when it was never rebooted.
    pub fn kernels(&self, initial: &dyn Fn(&str) -> Option<String>) -> Vec<HostKernel> {
        let word = |s: Step| s.key();
        self.stages
            .iter()
            .flat_map(|st| st.hosts.iter())
            .map(|name| {
                let h = self.hosts.get(name).cloned().unwrap_or_default();
                let kernel = match (&h.kernel, h.reboots) {
                    (Some(k), _) => k.clone(),
                    (None, 0) => initial(name).unwrap_or_else(|| "unknown".into()),
                    (None, _) => "unknown (rebooted, not yet checked)".into(),
                };
                let back = h.back.as_deref();
                let status = if let Some(b) = back {
                    if b.done {
                        "rolled back".to_string()
                    } else if let Some((step, _)) = &b.failed {
                        format!("rollback failed at {}", word(*step))
                    } else if let Some(step) = b.in_step.or(b.done_step) {
                        format!("rolling back at {}", word(step))
                    } else {
                        "rollback pending".to_string()
                    }
                } else if h.done {
                    "updated".to_string()
                } else if let Some((step, _)) = &h.failed {
                    format!("failed at {}", word(*step))
                } else if h.held.is_some() {
                    "held for drift".to_string()
                } else if let Some(step) = h.in_step.or(h.done_step) {
                    format!("in progress at {}", word(step))
                } else {
                    "not started".to_string()
                };
                HostKernel {
                    host: name.clone(),
                    kernel,
                    status,
                }
            })
            .collect()
    }

    /// Failed hosts not acknowledged, in `stage` (or in all stages).
    pub fn failures(&self, stage: Option<usize>) -> usize {
        self.hosts
            .values()
            .filter(|h| h.failed.is_some() && !h.acknowledged)
            .filter(|h| stage.is_none_or(|s| h.stage == s))
            .count()
    }

    /// A failed host's record: the step, what it said, and where the host was left.
    /// Of its transition under way: a host a rollback named is judged by its way back.
    pub fn failure_of(&self, name: &str) -> Option<FailedHost> {
        let h = self.hosts.get(name)?;
        let t = h.back.as_deref().unwrap_or(h);
        let (step, output) = t.failed.clone()?;
        Some(FailedHost {
            host: name.to_string(),
            step,
            output,
            acknowledged: t.acknowledged,
            still_drained: t.done_step >= Some(Step::Drain) && t.done_step < Some(Step::Undrain),
            kernel: h.kernel.clone(),
            boot_id: h.boot_id.clone(),
            rebooted: h.reboots > 0,
        })
    }

    /// Hosts that failed on their way back in the rollback under way and no operator
    /// acknowledged.
    pub fn rollback_failures(&self) -> usize {
        self.rollback
            .iter()
            .flat_map(|r| r.hosts())
            .filter_map(|h| self.hosts.get(h)?.back.as_deref())
            .filter(|b| b.failed.is_some() && !b.acknowledged)
            .count()
    }

    /// Every failed host's record, by name.
    pub fn failed_hosts(&self) -> Vec<FailedHost> {
        self.hosts
            .keys()
            .filter_map(|n| self.failure_of(n))
            .collect()
    }

    /// Failed hosts no operator acknowledged, by name (a host a rollback named: failed on
    /// its way back).
    pub fn unacknowledged(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|(_, h)| {
                let t = h.back.as_deref().unwrap_or(h);
                t.failed.is_some() && !t.acknowledged
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Hosts in the plan.
    pub fn planned_hosts(&self) -> usize {
        self.stages.iter().map(|s| s.hosts.len()).sum()
    }

    /// The first stage whose gate has not passed, if any.
    pub fn next_stage(&self) -> Option<usize> {
        (0..self.stages.len()).find(|s| !matches!(self.gates.get(s), Some((VerdictKind::Pass, _))))
    }

    /// Whether the controller may issue a reboot to `host`: never twice in one transition
    /// (once for the update, once on the way back).
    pub fn may_reboot(&self, host: &str) -> bool {
        self.hosts
            .get(host)
            .is_none_or(|h| h.back.as_deref().unwrap_or(h).reboots == 0)
    }

    /// A rollback is under way (started, not finished).
    pub fn rolling_back(&self) -> bool {
        self.rollback.as_ref().is_some_and(|r| !r.finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, event: Event) -> Record {
        Record {
            seq,
            at: "t".into(),
            policy: if seq < 4 { "p1".into() } else { "p2".into() },
            event,
        }
    }

    #[test]
    fn folds_a_journal_and_answers_the_invariants() {
        let stage = |index: usize, name: &str, hosts: Vec<String>| StagePlan {
            index,
            name: name.into(),
            info: crate::plan::spec::StageInfo {
                index,
                name: name.into(),
                kind: crate::plan::spec::StageKind::Wave,
                wave: index,
                part: 1,
                parts: 1,
                percent: 100.0,
                size: hosts.len(),
            },
            fleet_groups: None,
            batches: vec![hosts.clone()],
            hosts,
            bake_secs: 0,
            batch_secs: vec![0],
        };
        let stages = vec![
            stage(0, "canary", vec!["a".into()]),
            stage(1, "wave 1", vec!["b".into(), "c".into()]),
        ];
        let records = vec![
            rec(
                1,
                Event::Started {
                    target_kernel: "6.8.0-45-generic".into(),
                    stages,
                    inventory: "inv".into(),
                    seed: 1,
                    held: Vec::new(),
                },
            ),
            rec(2, Event::StageStarted { stage: 0 }),
            rec(
                3,
                Event::StepStarted {
                    host: "a".into(),
                    step: Step::Reboot,
                },
            ),
            rec(
                4,
                Event::RebootIssued {
                    host: "a".into(),
                    boot_id: "b1".into(),
                },
            ),
        ];
        let s = RolloutState::fold(&records);
        assert_eq!(s.phase, Phase::Running);
        assert_eq!(s.interrupted(), vec!["a"]);
        assert!(!s.may_reboot("a"));
        assert!(s.may_reboot("b"));
        assert!(s.stage_may_start(0));
        assert!(!s.stage_may_start(1));
        assert_eq!(s.policies, vec!["p1", "p2"]);
        assert_eq!(s.hosts["c"].stage, 1);

        let mut more = records.clone();
        more.push(rec(
            5,
            Event::HostChecked {
                host: "a".into(),
                kernel: "6.8.0-45-generic".into(),
                boot_id: "b2".into(),
            },
        ));
        more.push(rec(6, Event::HostDone { host: "a".into() }));
        more.push(rec(
            7,
            Event::GateEvaluated {
                stage: 0,
                verdict: VerdictKind::Pause,
                reasons: vec!["slow".into()],
                groups: vec![],
            },
        ));
        more.push(rec(
            8,
            Event::Paused {
                reason: "gate paused".into(),
            },
        ));
        let s = RolloutState::fold(&more);
        assert_eq!(s.phase, Phase::Paused);
        assert!(s.interrupted().is_empty());
        assert!(
            !s.stage_may_start(1),
            "a paused gate does not open the next stage"
        );
        more.push(rec(
            9,
            Event::GateEvaluated {
                stage: 0,
                verdict: VerdictKind::Pass,
                reasons: vec![],
                groups: vec![],
            },
        ));
        more.push(rec(
            10,
            Event::Resumed {
                acknowledged: vec![],
            },
        ));
        let s = RolloutState::fold(&more);
        assert!(s.stage_may_start(1));
        assert_eq!(s.phase, Phase::Running);
    }

    #[test]
    fn a_reboot_keeps_its_journal_time_and_a_recovery_its_record() {
        let at = |seq: u64, at: &str, event: Event| Record {
            seq,
            at: at.into(),
            policy: "p".into(),
            event,
        };
        let records = vec![
            at(
                1,
                "2026-12-07T13:59:00Z",
                Event::StepSucceeded {
                    host: "a".into(),
                    step: Step::SetBoot,
                    output: String::new(),
                },
            ),
            at(
                1,
                "2026-12-07T14:00:00Z",
                Event::RebootIssued {
                    host: "a".into(),
                    boot_id: "b1".into(),
                },
            ),
            at(
                2,
                "2026-12-07T14:05:00Z",
                Event::Recovered {
                    in_flight: vec![super::super::event::InFlight {
                        host: "a".into(),
                        step: Step::Reboot,
                    }],
                    reboots_resent: vec!["a".into()],
                    torn_bytes: 17,
                    lost_secs: 290,
                },
            ),
            at(
                3,
                "2026-12-07T14:06:00Z",
                Event::HostFailed {
                    host: "a".into(),
                    step: Step::WaitUp,
                    output: "did not come back".into(),
                },
            ),
            at(
                4,
                "2026-12-07T14:06:01Z",
                Event::CompletedWithFailures {
                    hosts: vec!["a".into()],
                },
            ),
        ];
        let s = RolloutState::fold(&records);
        let a = &s.hosts["a"];
        // Sent again by the recovery: waited for from then.
        assert_eq!(a.reboot_at.as_deref(), Some("2026-12-07T14:05:00Z"));
        assert!(a.reboot_resent);
        assert_eq!(s.recoveries.len(), 1);
        assert_eq!(s.recoveries[0].at, "2026-12-07T14:05:00Z");
        assert_eq!(s.recoveries[0].torn_bytes, 17);
        assert_eq!(s.phase, Phase::CompletedWithFailures);
        assert!(s.phase.finished());
        assert_eq!(s.phase.key(), "completed_with_failures");
        assert_eq!(s.unacknowledged(), vec!["a".to_string()]);
        let f = s.failure_of("a").unwrap();
        assert!(f.still_drained && f.rebooted, "{f:?}");
        assert_eq!(
            f.describe(),
            "a: failed at wait-up, still drained; runs an unknown kernel (rebooted, not checked since): did not come back"
        );
    }

    #[test]
    fn steps_run_in_order() {
        let mut s = Step::PreCheck;
        let mut seen = vec![s];
        while let Some(n) = s.next() {
            seen.push(n);
            s = n;
        }
        assert_eq!(seen, Step::ALL);
    }
}
