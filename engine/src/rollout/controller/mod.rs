//! The rollout controller: carries a frozen plan out on hosts, stage by stage, through an
//! [`Executor`], and decides everything from the state folded out of its journal.
//!
//! Every event is appended (and flushed) before the action it allows: `StepStarted` before a
//! step's commands, `RebootIssued` before the reboot. So after a crash the journal says which
//! hosts may have been mid-step; they are re-checked (kernel and boot id) before anything else,
//! a host whose reboot was issued is only ever waited for, never rebooted again, and a stage
//! starts only once the gate of every stage before it passed.
//!
//! All I/O goes through [`Io`]: the executor, the clock, alerts, the policy store, operator
//! requests and an observer. The same code drives SSH hosts on the wall clock and simulated
//! hosts on a virtual clock.

use super::bench::BenchPhase;
use super::event::{Event, InFlight, Record, StagePlan, Step};
use super::journal::{Journal, JournalError};
use super::spec::{
    parse_metrics, CommandSpec, FailureBudget, Probe, Recover, Sample, Signals, Steps,
};
use super::state::{HostState, Phase, RolloutState};
use crate::alert::{Alert, AlertSink, Severity};
use crate::clock::{epoch_secs, Clock};
use crate::exec::{ExecError, Executor, RemoteCommand};
use crate::gate;
use crate::gate::frames::DataError;
use crate::model::{Host, Verdict, VerdictKind};
use crate::plan::policy::PolicyRules;
use crate::plan::{window, Plan, RolloutRules};
use crate::reload::{ErrorReport, PolicyStore};
use crate::runtime::typed::host_to_dynamic;
use crate::runtime::PolicySet;
use crate::PolicyError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

mod bake;
mod fleet;
mod host;
mod io;
mod requests;
mod rollback;
mod run;
mod verdict;

pub use bake::default_controls;
pub use fleet::{stage_plans, Fleet};
pub use io::*;

fn rfc3339(t: jiff::Timestamp) -> String {
    t.to_string()
}

fn policy_message(e: &PolicyError) -> String {
    ErrorReport::from(e).message
}

struct Shared {
    journal: Journal,
    state: RolloutState,
}

/// Drives one rollout, owning its journal (and so its lock).
pub struct Controller<'a> {
    io: Io<'a>,
    opts: Options,
    fleet: &'a Fleet,
    shared: Mutex<Shared>,
    samples: Mutex<()>,
    halt: AtomicBool,
    /// Interrupted hosts were re-checked (once per controller, before anything else).
    recovered: AtomicBool,
    /// Each host's probe commands, from its last `steps(host)`.
    probes: Mutex<HashMap<String, Probe>>,
    /// Set when the journal's last record was not a clean stop: taken by the first `run`,
    /// which records the recovery.
    crashed: Mutex<Option<Crash>>,
}

/// What opening a journal left by a crash found.
#[derive(Debug, Clone)]
struct Crash {
    /// The time of the last record before the crash (RFC 3339).
    last_at: Option<String>,
    torn_bytes: u64,
}

/// What a step did: its output for the record, or why it failed.
type StepResult = Result<String, StepFailure>;

crate::error::message_error! {
    /// Why a host step failed, in words, as the journal records it.
    struct StepFailure;
}

impl<'a> Controller<'a> {
    /// A controller over an existing journal (`resume`, `pause`, `abort`).
    pub fn open(journal: Journal, fleet: &'a Fleet, io: Io<'a>, opts: Options) -> Self {
        let state = RolloutState::fold(journal.records());
        // A running phase on open means the last controller did not stop cleanly.
        let crashed = (state.phase == Phase::Running).then(|| Crash {
            last_at: state.last_at.clone(),
            torn_bytes: journal.recovery().torn_bytes,
        });
        Controller {
            io,
            opts,
            fleet,
            shared: Mutex::new(Shared { journal, state }),
            samples: Mutex::new(()),
            halt: AtomicBool::new(false),
            recovered: AtomicBool::new(false),
            probes: Mutex::new(HashMap::new()),
            crashed: Mutex::new(crashed),
        }
    }

    /// Starts a new rollout of `plan` in an empty journal.
    pub fn start(
        journal: Journal,
        fleet: &'a Fleet,
        io: Io<'a>,
        opts: Options,
        plan: &Plan,
        inventory_hash: &str,
    ) -> Result<Self, ControllerError> {
        ensure_new(&journal)?;
        let c = Controller::open(journal, fleet, io, opts);
        c.preflight(plan)?;
        c.emit(
            Event::Started {
                target_kernel: plan.target_kernel.clone(),
                stages: stage_plans(plan),
                inventory: inventory_hash.to_string(),
                seed: plan.seed,
                held: plan
                    .excluded
                    .iter()
                    .filter(|e| e.kind == crate::plan::ExclusionKind::Drift)
                    .map(|e| crate::rollout::event::HeldHost {
                        host: e.host.clone(),
                        reason: e.reason.clone(),
                    })
                    .collect(),
            },
            io.clock,
        )?;
        Ok(c)
    }

    /// Before anything is recorded: the policy can tell how to update every planned host,
    /// how to collect signals, and what the failure budget is.
    fn preflight(&self, plan: &Plan) -> Result<(), ControllerError> {
        let set = self.policy()?;
        self.signals(&set)?;
        self.budget(&set)?;
        let mut problems = Vec::new();
        for name in plan
            .stages
            .iter()
            .flat_map(|s| s.batches.iter().flat_map(|b| &b.hosts))
        {
            let Some(host) = self.fleet.host(name) else {
                problems.push(format!("planned host `{name}` is not in the inventory"));
                continue;
            };
            if let Err(m) = self.steps_for(&set, host) {
                problems.push(m.0);
            }
            if problems.len() >= 5 {
                break;
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ControllerError::Invalid(format!(
                "the rollout cannot start: {}",
                problems.join("; ")
            )))
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the state without copying it.
    pub fn with_state<R>(&self, f: impl FnOnce(&RolloutState) -> R) -> R {
        f(&self.lock().state)
    }

    pub fn state(&self) -> RolloutState {
        self.with_state(Clone::clone)
    }

    fn policy(&self) -> Result<Arc<PolicySet>, ControllerError> {
        self.io
            .policies
            .current()
            .ok_or_else(|| ControllerError::Invalid("no valid policy set is loaded".into()))
    }

    fn hash(&self) -> String {
        self.io
            .policies
            .current()
            .map(|s| s.hash().to_string())
            .unwrap_or_default()
    }

    /// Appends an event (flushed) and folds it into the state.
    fn emit(&self, event: Event, clock: &dyn Clock) -> Result<(), ControllerError> {
        let hash = self.hash();
        let mut sh = self.lock();
        self.append_locked(&mut sh, event, &hash, clock)
    }

    fn append_locked(
        &self,
        sh: &mut Shared,
        event: Event,
        hash: &str,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        if matches!(
            event,
            Event::Paused { .. }
                | Event::Aborted { .. }
                | Event::Completed
                | Event::CompletedWithFailures { .. }
                | Event::RolledBack { .. }
        ) {
            self.halt.store(true, Ordering::SeqCst);
        }
        let at = rfc3339(clock.now());
        sh.journal.append(event, hash, &at)?;
        if let Some(r) = sh.journal.records().last() {
            sh.state.apply_record(r);
            self.io.observer.record(r, &sh.state);
        }
        Ok(())
    }

    fn alert(
        &self,
        severity: Severity,
        kind: &str,
        stage: Option<usize>,
        summary: String,
        reasons: Vec<String>,
    ) {
        let stage =
            stage.and_then(|s| self.with_state(|st| st.stages.get(s).map(|p| p.name.clone())));
        self.io.alerts.send(&Alert {
            severity,
            kind: kind.to_string(),
            rollout: self.opts.name.clone(),
            stage,
            summary,
            reasons,
            at: rfc3339(self.io.clock.now()),
            policy: self.hash(),
        });
    }
}

/// Refuses a journal that already holds a rollout: a new rollout needs its own directory.
pub fn ensure_new(journal: &Journal) -> Result<(), ControllerError> {
    if journal.records().is_empty() {
        return Ok(());
    }
    let st = RolloutState::fold(journal.records());
    Err(ControllerError::Invalid(format!(
        "`{}` already holds a rollout of `{}` ({}); use `rollout resume`, or another --state-dir",
        journal.dir().display(),
        st.target_kernel,
        st.phase.as_str()
    )))
}

#[cfg(test)]
mod tests;
