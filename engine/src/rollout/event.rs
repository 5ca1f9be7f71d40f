//! What the rollout journal records: one event per decision or observation, each with its
//! sequence number, time and the hash of the policy set that made it.

use crate::model::VerdictKind;
use crate::plan::spec::StageInfo;
use serde::{Deserialize, Serialize};

/// The steps of updating one host, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    PreCheck,
    Drain,
    Install,
    SetBoot,
    Reboot,
    WaitUp,
    Verify,
    PostCheck,
    /// The new kernel becomes the permanent default (after a one-shot boot, verification and
    /// post-checks passed).
    CommitBoot,
    Undrain,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Step {
    /// The step as the journal and JSON write it: `pre_check`, `drain`, … `undrain`.
    pub fn key(self) -> &'static str {
        match self {
            Step::PreCheck => "pre_check",
            Step::Drain => "drain",
            Step::Install => "install",
            Step::SetBoot => "set_boot",
            Step::Reboot => "reboot",
            Step::WaitUp => "wait_up",
            Step::Verify => "verify",
            Step::PostCheck => "post_check",
            Step::CommitBoot => "commit_boot",
            Step::Undrain => "undrain",
        }
    }

    /// The step in words: `pre-check`, `drain`, … `undrain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::PreCheck => "pre-check",
            Step::Drain => "drain",
            Step::Install => "install",
            Step::SetBoot => "set-boot",
            Step::Reboot => "reboot",
            Step::WaitUp => "wait-up",
            Step::Verify => "verify",
            Step::PostCheck => "post-check",
            Step::CommitBoot => "commit-boot",
            Step::Undrain => "undrain",
        }
    }

    pub const ALL: [Step; 10] = [
        Step::PreCheck,
        Step::Drain,
        Step::Install,
        Step::SetBoot,
        Step::Reboot,
        Step::WaitUp,
        Step::Verify,
        Step::PostCheck,
        Step::CommitBoot,
        Step::Undrain,
    ];

    /// The step after this one, if any.
    pub fn next(self) -> Option<Step> {
        let i = Step::ALL.iter().position(|s| *s == self)?;
        Step::ALL.get(i + 1).copied()
    }
}

/// A stage of the plan as the journal keeps it: enough to resume without re-planning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    pub index: usize,
    pub name: String,
    pub hosts: Vec<String>,
    /// The stage as `bake(wave)` sees it.
    pub info: StageInfo,
    /// Hosts that may update at once, in order (from the plan's in-flight limits).
    pub batches: Vec<Vec<String>>,
    /// The planned bake; `bake(wave)` is asked again when the bake starts.
    pub bake_secs: u64,
    /// Planned seconds per batch, to fit each in a maintenance window.
    #[serde(default)]
    pub batch_secs: Vec<u64>,
    /// With controllers per shard: the whole stage's hosts per group, every shard's. Each
    /// shard chooses controls for all of them, its share of each group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_groups: Option<std::collections::BTreeMap<String, usize>>,
}

/// A host a rollout leaves alone because of its drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldHost {
    pub host: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The rollout and its plan, frozen at start.
    Started {
        target_kernel: String,
        stages: Vec<StagePlan>,
        /// The inventory's content hash and the plan's seed, for the record.
        inventory: String,
        seed: u64,
        /// Hosts left out because of unresolved drift, and why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        held: Vec<HeldHost>,
    },
    StageStarted {
        stage: usize,
    },
    /// A host that had not started is left out from now on: a drift audit during the
    /// rollout found unresolved drift on it.
    HostHeld {
        host: String,
        reason: String,
    },
    /// Recorded before the step's command runs.
    StepStarted {
        host: String,
        step: Step,
    },
    StepSucceeded {
        host: String,
        step: Step,
        output: String,
    },
    /// Recorded before a host's first step: the kernel it runs and its default boot entry
    /// (`None`: the probe could not read one), so it can be put back.
    PreviousKernel {
        host: String,
        kernel: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        boot_entry: Option<String>,
    },
    /// Recorded before the reboot command runs, with the boot id it must change from.
    RebootIssued {
        host: String,
        boot_id: String,
    },
    /// Recorded before a host that did not come back from its reboot gets the policy's
    /// out-of-band recovery (`recover(host)`), run on the controller: at most once per host
    /// per transition, so a restart never runs it again; the wait for the host then ends
    /// `wait` seconds after this record.
    RecoverIssued {
        host: String,
        /// The argument vector run.
        command: Vec<String>,
        /// Seconds the controller waits for the host afterwards.
        wait: u64,
    },
    /// A host checked after an interruption: what it runs now.
    HostChecked {
        host: String,
        kernel: String,
        boot_id: String,
    },
    HostDone {
        host: String,
    },
    /// A host's `benchmark` check ran: before its update (right before its install) or after
    /// it (its post-check); per metric, the tool and each repetition's value.
    Benchmarked {
        host: String,
        phase: super::bench::BenchPhase,
        results: Vec<super::bench::BenchResult>,
    },
    HostFailed {
        host: String,
        step: Step,
        output: String,
    },
    /// The control hosts of a stage: not-updated hosts of its groups, recorded over the same
    /// windows as the stage's hosts.
    ControlsChosen {
        stage: usize,
        hosts: Vec<String>,
    },
    /// The before window of a stage began (its hosts and controls recorded before any update);
    /// it ends at `until` (RFC 3339).
    BeforeStarted {
        stage: usize,
        until: String,
    },
    /// An inconclusive gate extended the bake to `until`, for the reasons given.
    BakeExtended {
        stage: usize,
        until: String,
        reasons: Vec<String>,
    },
    /// The bake of a stage began; it ends at `until` (RFC 3339), also after a restart.
    BakeStarted {
        stage: usize,
        until: String,
    },
    /// An updated host's boot id changed while nothing was being done to it.
    UnexpectedReboot {
        host: String,
        boot_id: String,
    },
    GateEvaluated {
        stage: usize,
        verdict: VerdictKind,
        reasons: Vec<String>,
        /// Each hardware × workload group of the gate and how it came out: `passed` (tested
        /// on its own), `inconclusive`, `paused`, `failed` or `not_judged`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<crate::gate::GroupJudgement>,
    },
    /// A gate paused or failed and the policy's `on_fail(stage, verdict)` decided what
    /// happens next (the record's policy hash says which policy): `pause`, `rollback`,
    /// `rollback_all` or `abort`, with the verdict's reasons.
    OnFailDecided {
        stage: usize,
        verdict: VerdictKind,
        decision: super::spec::OnFail,
        reasons: Vec<String>,
    },
    Paused {
        reason: String,
    },
    /// An operator resumed; the failed hosts named are acknowledged and no longer count
    /// against the failure budget.
    Resumed {
        #[serde(default)]
        acknowledged: Vec<String>,
    },
    Aborted {
        reason: String,
    },
    Completed,
    /// A rollback began: the hosts named go back to the kernel each ran before the rollout,
    /// batch by batch, later stages first. From here on, a named host's step events
    /// (`step_started` … `host_done`, `host_failed`, `reboot_issued`) are its way back: one
    /// more transition, with its own steps and its own single reboot.
    RollbackStarted {
        reason: String,
        batches: Vec<RollbackBatch>,
        /// Hosts of the scope the rollout touched that are left as they are (never rebooted,
        /// quarantined, already back), and why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left: Vec<LeftHost>,
        /// Hosts of the scope the rollout never started: left as they are.
        #[serde(default)]
        untouched: usize,
    },
    /// Every host of the rollback settled: back on its previous kernel, or failed on the way
    /// (named here, quarantined).
    RolledBack {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        failed: Vec<String>,
    },
    /// Every stage passed, but failed hosts remain that no operator acknowledged: the
    /// rollout is not done until they are (`rollout resume --acknowledge HOST`).
    CompletedWithFailures {
        hosts: Vec<String>,
    },
    /// A controller took over a journal whose last record was not a clean stop (a crash or
    /// `kill -9`): what was in flight, which reboots it sent again through the one-shot
    /// wrapper, the torn bytes it dropped, and the time between the last record and now.
    Recovered {
        in_flight: Vec<InFlight>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reboots_resent: Vec<String>,
        #[serde(default)]
        torn_bytes: u64,
        /// Seconds from the last record before the crash to this record.
        lost_secs: u64,
    },
}

/// One batch of a rollback: hosts of one stage that may go back at once (the stage's own
/// batches, so its in-flight and blast-radius limits hold on the way back too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackBatch {
    pub stage: usize,
    pub hosts: Vec<String>,
}

/// A host a rollback leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftHost {
    pub host: String,
    pub why: String,
}

/// A host a crash interrupted, and the step it was in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub host: String,
    pub step: Step,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub seq: u64,
    /// When it was recorded, RFC 3339.
    pub at: String,
    /// The hash of the policy set that made the decision.
    pub policy: String,
    pub event: Event,
}
