//! The rollout's state as a fold over its journal: which stage is running, what each host has
//! done, which gates passed. Pure: the controller decides from this, and `rollout status`
//! prints it.

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
    /// Kernel and boot id seen at the last check.
    pub kernel: Option<String>,
    pub boot_id: Option<String>,
    pub done: bool,
    pub failed: Option<(Step, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    NotStarted,
    Running,
    Paused,
    Aborted,
    Completed,
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
        }
    }
}

impl RolloutState {
    pub fn fold(records: &[Record]) -> RolloutState {
        let mut s = RolloutState::default();
        for r in records {
            if !s.policies.contains(&r.policy) {
                s.policies.push(r.policy.clone());
            }
            s.apply(&r.event);
        }
        s
    }

    fn host(&mut self, name: &str) -> &mut HostState {
        self.hosts.entry(name.to_string()).or_default()
    }

    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::Started {
                target_kernel,
                stages,
            } => {
                self.phase = Phase::Running;
                self.target_kernel = target_kernel.clone();
                self.stages = stages.clone();
                for st in stages {
                    for h in &st.hosts {
                        self.host(h).stage = st.index;
                    }
                }
            }
            Event::StageStarted { stage } => self.stage = Some(*stage),
            Event::StepStarted { host, step } => self.host(host).in_step = Some(*step),
            Event::StepSucceeded { host, step, .. } => {
                let h = self.host(host);
                h.in_step = None;
                h.done_step = Some(*step);
            }
            Event::RebootIssued { host, boot_id } => {
                let h = self.host(host);
                h.reboots += 1;
                h.boot_id_before = Some(boot_id.clone());
            }
            Event::HostChecked {
                host,
                kernel,
                boot_id,
            } => {
                let h = self.host(host);
                h.kernel = Some(kernel.clone());
                h.boot_id = Some(boot_id.clone());
            }
            Event::HostDone { host } => {
                let h = self.host(host);
                h.in_step = None;
                h.done = true;
            }
            Event::HostFailed { host, step, output } => {
                let h = self.host(host);
                h.in_step = None;
                h.failed = Some((*step, output.clone()));
            }
            Event::GateEvaluated {
                stage,
                verdict,
                reasons,
            } => {
                self.gates.insert(*stage, (*verdict, reasons.clone()));
            }
            Event::Paused { reason } => {
                self.phase = Phase::Paused;
                self.pause_reason = Some(reason.clone());
            }
            Event::Resumed => {
                self.phase = Phase::Running;
                self.pause_reason = None;
            }
            Event::Aborted { reason } => {
                self.phase = Phase::Aborted;
                self.pause_reason = Some(reason.clone());
            }
            Event::Completed => self.phase = Phase::Completed,
        }
    }

    /// A stage may start only when every earlier stage's gate passed.
    pub fn stage_may_start(&self, stage: usize) -> bool {
        (0..stage).all(|s| matches!(self.gates.get(&s), Some((VerdictKind::Pass, _))))
    }

    /// Hosts interrupted mid-step, which must be re-checked before anything else.
    pub fn interrupted(&self) -> Vec<&str> {
        self.hosts
            .iter()
            .filter(|(_, h)| h.in_step.is_some() && !h.done && h.failed.is_none())
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Whether the controller may issue a reboot to `host`: never twice in one rollout.
    pub fn may_reboot(&self, host: &str) -> bool {
        self.hosts.get(host).is_none_or(|h| h.reboots == 0)
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
        let stages = vec![
            StagePlan {
                index: 0,
                name: "canary".into(),
                hosts: vec!["a".into()],
            },
            StagePlan {
                index: 1,
                name: "wave 1".into(),
                hosts: vec!["b".into(), "c".into()],
            },
        ];
        let records = vec![
            rec(
                1,
                Event::Started {
                    target_kernel: "6.8.0-45-generic".into(),
                    stages,
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
            },
        ));
        more.push(rec(10, Event::Resumed));
        let s = RolloutState::fold(&more);
        assert!(s.stage_may_start(1));
        assert_eq!(s.phase, Phase::Running);
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
