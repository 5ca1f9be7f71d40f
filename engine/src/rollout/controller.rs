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

use super::event::{Event, Record, StagePlan, Step};
use super::journal::{Journal, JournalError};
use super::spec::{parse_metrics, CommandSpec, FailureBudget, Probe, Sample, Signals, Steps};
use super::state::{HostState, Phase, RolloutState};
use crate::alert::{Alert, AlertSink, Severity};
use crate::clock::{epoch_secs, Clock};
use crate::exec::{ExecError, Executor, RemoteCommand};
use crate::gate::frames::{self, DataError};
use crate::gate::{self, Cohort, GroupSpec};
use crate::model::{Host, Verdict, VerdictKind};
use crate::plan::policy::PolicyRules;
use crate::plan::{window, Plan, RolloutRules};
use crate::reload::{ErrorReport, PolicyStore};
use crate::runtime::typed::host_to_dynamic;
use crate::runtime::PolicySet;
use crate::PolicyError;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The live policy set, swapped by hot reload.
pub trait PolicySource: Send + Sync {
    fn current(&self) -> Option<Arc<PolicySet>>;
}

impl PolicySource for PolicyStore {
    fn current(&self) -> Option<Arc<PolicySet>> {
        PolicyStore::current(self)
    }
}

/// A fixed policy set.
impl PolicySource for Arc<PolicySet> {
    fn current(&self) -> Option<Arc<PolicySet>> {
        Some(Arc::clone(self))
    }
}

/// An operator's request to a running controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Request {
    Pause { reason: String },
    Abort { reason: String },
}

/// Where requests from outside the controller come from: an operator's pause or abort, and
/// hosts a drift audit says to leave alone.
pub trait Control: Send + Sync {
    /// The pending request, if any, consumed.
    fn take(&self) -> Option<Request>;

    /// Hosts to leave out from now on, with why; asked before each batch. Only hosts nothing
    /// has been done to yet are left out: one in the middle of its update finishes it.
    fn held(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// Requests as a file in the state directory: `rollout pause` and `rollout abort` write it
/// while a controller holds the lock; the controller reads and removes it between steps.
#[derive(Debug, Clone)]
pub struct ControlFile {
    path: PathBuf,
    /// The review queue of `drift audit`, read before each batch.
    drift_queue: Option<PathBuf>,
}

pub const CONTROL_FILE: &str = "control.json";

impl ControlFile {
    pub fn new(dir: &Path) -> Self {
        ControlFile {
            path: dir.join(CONTROL_FILE),
            drift_queue: None,
        }
    }

    /// Also holds back the hosts the drift review queue at `path` holds.
    pub fn with_drift_queue(mut self, path: Option<PathBuf>) -> Self {
        self.drift_queue = path;
        self
    }

    /// Leaves a request for the controller (written whole, then renamed into place).
    pub fn request(dir: &Path, req: &Request) -> std::io::Result<()> {
        let tmp = dir.join(format!("{CONTROL_FILE}.tmp"));
        let body = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, dir.join(CONTROL_FILE))
    }
}

impl Control for ControlFile {
    fn held(&self) -> BTreeMap<String, String> {
        let Some(path) = &self.drift_queue else {
            return BTreeMap::new();
        };
        match crate::drift::store::load_queue(path) {
            Ok(Some(q)) => q.held.into_iter().map(|h| (h.host, h.reason)).collect(),
            Ok(None) => BTreeMap::new(),
            Err(e) => {
                tracing::warn!("ignoring the drift review queue: {e}");
                BTreeMap::new()
            }
        }
    }

    fn take(&self) -> Option<Request> {
        let body = std::fs::read(&self.path).ok()?;
        let _ = std::fs::remove_file(&self.path);
        match serde_json::from_slice(&body) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("ignoring unreadable request `{}`: {e}", self.path.display());
                None
            }
        }
    }
}

/// No operator requests.
pub struct NoControl;

impl Control for NoControl {
    fn take(&self) -> Option<Request> {
        None
    }
}

/// Sees every record as it is appended, and notes that are not records.
pub trait Observer: Send + Sync {
    fn record(&self, record: &Record, state: &RolloutState);
    fn note(&self, _message: &str) {}
}

pub struct NoObserver;

impl Observer for NoObserver {
    fn record(&self, _: &Record, _: &RolloutState) {}
}

/// Everything the controller touches outside itself.
#[derive(Clone, Copy)]
pub struct Io<'a> {
    pub exec: &'a dyn Executor,
    pub clock: &'a dyn Clock,
    pub alerts: &'a dyn AlertSink,
    pub policies: &'a dyn PolicySource,
    pub control: &'a dyn Control,
    pub observer: &'a dyn Observer,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The rollout's name in alerts.
    pub name: String,
    /// Threads driving hosts at once (a batch never exceeds its planned size either).
    pub workers: usize,
    /// Overrides every bake, in seconds.
    pub bake: Option<u64>,
    /// Honour `windows()` before each batch.
    pub windows: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            name: "rollout".into(),
            workers: 64,
            bake: None,
            windows: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The hosts a rollout may touch, their groups as a frame, and the production baseline.
pub struct Fleet {
    hosts: HashMap<String, Host>,
    group_of: HashMap<String, String>,
    groups_df: DataFrame,
    baseline: Cohort,
}

impl Fleet {
    /// The inventory's hosts with their groups, and the baseline at `baseline` (long-form
    /// samples, joined with those groups, or a precomputed summary).
    pub fn load(hosts: &[Host], baseline: &Path) -> Result<Fleet, DataError> {
        let pairs: Vec<(String, String)> = hosts
            .iter()
            .map(|h| (h.name.clone(), group_name(h)))
            .collect();
        let groups_df = frames::host_groups(&pairs)?;
        let file = baseline.display().to_string();
        let baseline = match frames::scan_baseline(baseline)? {
            frames::Baseline::Samples(lf) => frames::cohort(lf, &groups_df, &file)?,
            frames::Baseline::Summary(lf) => frames::summary_cohort(lf, &file)?,
        };
        Ok(Fleet {
            groups_df,
            group_of: pairs.into_iter().collect(),
            hosts: hosts.iter().map(|h| (h.name.clone(), h.clone())).collect(),
            baseline,
        })
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }
}

fn group_name(h: &Host) -> String {
    format!("{}/{}", h.hardware, h.workload)
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

const SAMPLES_HEADER: &str = "host,timestamp,metric,value\n";

/// The last `n` bytes of a command's output, on one line, for a host's failure record.
fn tail(text: &str, n: usize) -> String {
    let t = text.trim();
    let mut start = t.len().saturating_sub(n);
    while !t.is_char_boundary(start) {
        start += 1;
    }
    let s = t.get(start..).unwrap_or("").replace('\n', " | ");
    if start > 0 {
        format!("…{s}")
    } else {
        s
    }
}

/// A finished command against its `expect`: its output for the record, or why it failed.
fn judged(c: &CommandSpec, out: &crate::exec::Output) -> StepResult {
    match c.expect.judge(out.status, &out.stdout) {
        None => Ok(tail(&out.stdout, 200)),
        Some(why) => Err(format!(
            "`{}`: {why}; output: {}",
            c.label(),
            tail(&format!("{}\n{}", out.stdout, out.stderr), 400)
        )),
    }
}

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
    /// Each host's probe commands, from its last `steps(host)`.
    probes: Mutex<HashMap<String, Probe>>,
}

/// What a step did: its output for the record, or why it failed.
type StepResult = Result<String, String>;

impl<'a> Controller<'a> {
    /// A controller over an existing journal (`resume`, `pause`, `abort`).
    pub fn open(journal: Journal, fleet: &'a Fleet, io: Io<'a>, opts: Options) -> Self {
        let state = RolloutState::fold(journal.records());
        Controller {
            io,
            opts,
            fleet,
            shared: Mutex::new(Shared { journal, state }),
            samples: Mutex::new(()),
            halt: AtomicBool::new(false),
            probes: Mutex::new(HashMap::new()),
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
        self.signals(&set).map_err(ControllerError::Invalid)?;
        self.budget(&set).map_err(ControllerError::Invalid)?;
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
                problems.push(m);
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
            Event::Paused { .. } | Event::Aborted { .. } | Event::Completed
        ) {
            self.halt.store(true, Ordering::SeqCst);
        }
        let at = rfc3339(clock.now());
        sh.journal.append(event, hash, &at)?;
        if let Some(r) = sh.journal.records().last() {
            sh.state.apply(&r.event);
            if !sh.state.policies.contains(&r.policy) {
                sh.state.policies.push(r.policy.clone());
            }
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

    /// Pauses (if running) and alerts.
    fn pause(
        &self,
        kind: &str,
        severity: Severity,
        stage: Option<usize>,
        summary: String,
        reasons: Vec<String>,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        let hash = self.hash();
        {
            let mut sh = self.lock();
            if sh.state.phase != Phase::Running {
                return Ok(());
            }
            self.append_locked(
                &mut sh,
                Event::Paused {
                    reason: summary.clone(),
                },
                &hash,
                clock,
            )?;
        }
        self.alert(severity, kind, stage, summary, reasons);
        Ok(())
    }

    /// Pauses because the live policy could not decide (the message names `file:line:col`).
    fn policy_pause(
        &self,
        stage: Option<usize>,
        message: String,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        self.pause(
            "policy_error",
            Severity::Critical,
            stage,
            message,
            vec![],
            clock,
        )
    }

    /// Applies an operator request.
    fn apply_request(&self, req: Request, clock: &dyn Clock) -> Result<(), ControllerError> {
        match req {
            Request::Pause { reason } => self.pause(
                "manual_pause",
                Severity::Info,
                None,
                format!("paused by an operator: {reason}"),
                vec![],
                clock,
            ),
            Request::Abort { reason } => self.abort(&reason, clock),
        }
    }

    /// Stops the rollout for good; hosts stay as they are.
    pub fn abort(&self, reason: &str, clock: &dyn Clock) -> Result<(), ControllerError> {
        let done = self.with_state(|s| matches!(s.phase, Phase::Aborted | Phase::Completed));
        if done {
            return Ok(());
        }
        self.emit(
            Event::Aborted {
                reason: reason.to_string(),
            },
            clock,
        )?;
        self.alert(
            Severity::Warning,
            "aborted",
            None,
            format!("rollout aborted: {reason}"),
            vec![],
        );
        Ok(())
    }

    /// Pauses a rollout that no controller is running (the caller holds the lock).
    pub fn pause_now(&self, reason: &str) -> Result<(), ControllerError> {
        self.apply_request(
            Request::Pause {
                reason: reason.to_string(),
            },
            self.io.clock,
        )
    }

    /// Marks a paused rollout running again. With `acknowledge`, hosts that failed so far
    /// stop counting against the failure budget. With `accept_gate`, the stage whose gate
    /// paused is recorded as passed by the operator.
    pub fn resume(&self, acknowledge: bool, accept_gate: bool) -> Result<(), ControllerError> {
        let (phase, failed, paused_gate) = self.with_state(|s| {
            let failed: Vec<String> = s
                .hosts
                .iter()
                .filter(|(_, h)| h.failed.is_some() && !h.acknowledged)
                .map(|(n, _)| n.clone())
                .collect();
            let gate = s.next_stage().and_then(|st| {
                s.gates
                    .get(&st)
                    .filter(|(v, _)| *v != VerdictKind::Pass)
                    .map(|(_, r)| (st, r.clone()))
            });
            (s.phase.clone(), failed, gate)
        });
        match phase {
            Phase::Paused => {}
            Phase::Running => return Ok(()),
            other => {
                return Err(ControllerError::Invalid(format!(
                    "the rollout is {}; only a paused rollout can be resumed",
                    phase_word(&other)
                )))
            }
        }
        if accept_gate {
            if let Some((stage, reasons)) = paused_gate {
                let mut r = vec!["accepted by an operator at resume".to_string()];
                r.extend(reasons.into_iter().map(|x| format!("the gate said: {x}")));
                self.emit(
                    Event::GateEvaluated {
                        stage,
                        verdict: VerdictKind::Pass,
                        reasons: r,
                    },
                    self.io.clock,
                )?;
            }
        }
        self.halt.store(false, Ordering::SeqCst);
        self.emit(
            Event::Resumed {
                acknowledged: if acknowledge { failed } else { Vec::new() },
            },
            self.io.clock,
        )
    }

    /// Whether hosts must stop at their next step boundary. Takes pending operator requests.
    fn halted(&self, clock: &dyn Clock) -> Result<bool, ControllerError> {
        if let Some(req) = self.io.control.take() {
            self.apply_request(req, clock)?;
        }
        Ok(self.halt.load(Ordering::SeqCst))
    }

    /// Runs until the rollout completes, pauses or aborts. Returns the phase it stopped in.
    pub fn run(&self) -> Result<Phase, ControllerError> {
        let phase = self.with_state(|s| s.phase.clone());
        if phase != Phase::Running {
            return Ok(phase);
        }
        self.halt.store(false, Ordering::SeqCst);
        self.recover()?;
        loop {
            if self.halted(self.io.clock)? {
                break;
            }
            let (next, current) = self.with_state(|s| (s.next_stage(), s.stage));
            let Some(stage) = next else {
                self.emit(Event::Completed, self.io.clock)?;
                let (n, failed) = self.with_state(|s| (s.planned_hosts(), s.failures(None)));
                self.alert(
                    Severity::Info,
                    "completed",
                    None,
                    format!(
                        "rollout completed: {} host(s), {failed} failed",
                        n - failed.min(n)
                    ),
                    vec![],
                );
                break;
            };
            if !self.with_state(|s| s.stage_may_start(stage)) {
                return Err(ControllerError::Invalid(format!(
                    "stage {stage} cannot start: an earlier gate has not passed"
                )));
            }
            if current != Some(stage) {
                self.emit(Event::StageStarted { stage }, self.io.clock)?;
            }
            if !self.run_stage(stage)? {
                continue; // halted: the loop head stops
            }
            if self.check_budget(stage, self.io.clock)? {
                continue;
            }
            self.bake(stage)?;
            if self.halted(self.io.clock)? {
                continue;
            }
            self.gate(stage)?;
        }
        Ok(self.with_state(|s| s.phase.clone()))
    }

    /// Runs `f` for each name on up to `workers` threads, each name on its own fork of the
    /// clock (so a virtual clock sees them side by side); the clock then joins the forks.
    fn parallel<F>(&self, names: &[String], limit: usize, f: F) -> Result<(), ControllerError>
    where
        F: Fn(&str, &dyn Clock) -> Result<(), ControllerError> + Sync,
    {
        if names.is_empty() {
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let forks: Mutex<Vec<Box<dyn Clock>>> = Mutex::new(Vec::with_capacity(names.len()));
        let first_err: Mutex<Option<ControllerError>> = Mutex::new(None);
        let threads = self.opts.workers.max(1).min(limit.max(1)).min(names.len());
        let work = || loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(name) = names.get(i) else { break };
            let clock = self.io.clock.fork();
            if let Err(e) = f(name, clock.as_ref()) {
                self.halt.store(true, Ordering::SeqCst);
                if let Ok(mut slot) = first_err.lock() {
                    slot.get_or_insert(e);
                }
            }
            if let Ok(mut v) = forks.lock() {
                v.push(clock);
            }
        };
        if threads == 1 {
            work();
        } else {
            std::thread::scope(|sc| {
                for _ in 0..threads {
                    sc.spawn(work);
                }
            });
        }
        if let Ok(v) = forks.lock() {
            self.io.clock.join(&v);
        }
        match first_err.into_inner() {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Re-checks hosts a crash interrupted mid-step: their kernel and boot id go on record
    /// before anything else is done to them.
    fn recover(&self) -> Result<(), ControllerError> {
        let hosts: Vec<String> =
            self.with_state(|s| s.interrupted().into_iter().map(str::to_string).collect());
        if hosts.is_empty() {
            return Ok(());
        }
        self.io.observer.note(&format!(
            "re-checking {} host(s) interrupted mid-step",
            hosts.len()
        ));
        let set = self.policy()?;
        self.parallel(&hosts, usize::MAX, |name, clock| {
            let Some(host) = self.fleet.host(name) else {
                return Ok(());
            };
            let steps = match self.steps_for(&set, host) {
                Ok(s) => s,
                Err(m) => return self.policy_pause(None, m, clock),
            };
            let k = self.probe(host, &steps.probe.kernel, steps.probe.timeout, clock);
            let b = self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock);
            match (k, b) {
                (Ok(kernel), Ok(boot_id)) => self.emit(
                    Event::HostChecked {
                        host: name.to_string(),
                        kernel,
                        boot_id,
                    },
                    clock,
                ),
                (Err(e), _) | (_, Err(e)) => {
                    self.io
                        .observer
                        .note(&format!("host `{name}` could not be re-checked: {e}"));
                    Ok(())
                }
            }
        })
    }

    fn steps_for(&self, set: &PolicySet, host: &Host) -> Result<Steps, String> {
        if !set.defines("rollout", "steps", 1) {
            return Err(
                "`rollout.rhai` does not define `steps(host)`, so fleetward cannot know how to install a kernel on these hosts".into(),
            );
        }
        let v = set
            .eval_json("rollout", "steps", vec![host_to_dynamic(host)])
            .map_err(|e| format!("`steps(host)` for `{}`: {}", host.name, policy_message(&e)))?
            .value;
        let steps: Steps = serde_json::from_value(v).map_err(|e| format!("`steps(host)`: {e}"))?;
        if let Ok(mut p) = self.probes.lock() {
            p.insert(host.name.clone(), steps.probe.clone());
        }
        Ok(steps)
    }

    /// The host's probe commands, from the cache or a fresh `steps(host)`.
    fn probe_for(&self, set: &PolicySet, host: &Host) -> Option<Probe> {
        let cached = self
            .probes
            .lock()
            .ok()
            .and_then(|p| p.get(&host.name).cloned());
        cached.or_else(|| self.steps_for(set, host).ok().map(|s| s.probe))
    }

    fn budget(&self, set: &PolicySet) -> Result<FailureBudget, String> {
        if !set.defines("rollout", "failure_budget", 0) {
            return Ok(FailureBudget::default());
        }
        let v = set
            .eval_json("rollout", "failure_budget", vec![])
            .map_err(|e| policy_message(&e))?
            .value;
        serde_json::from_value(v).map_err(|e| format!("`failure_budget()`: {e}"))
    }

    fn signals(&self, set: &PolicySet) -> Result<Signals, String> {
        if !set.defines("rollout", "signals", 0) {
            return Err("`rollout.rhai` does not define `signals()`, so fleetward cannot collect metrics to gate on".into());
        }
        let v = set
            .eval_json("rollout", "signals", vec![])
            .map_err(|e| policy_message(&e))?
            .value;
        serde_json::from_value(v).map_err(|e| format!("`signals()`: {e}"))
    }

    /// Pauses when failures in `stage`, or in all, exceed the budget. Returns whether it did.
    fn check_budget(&self, stage: usize, clock: &dyn Clock) -> Result<bool, ControllerError> {
        let set = self.policy()?;
        let budget = match self.budget(&set) {
            Ok(b) => b,
            Err(m) => {
                self.policy_pause(Some(stage), m, clock)?;
                return Ok(true);
            }
        };
        let (stage_failed, stage_size, all_failed, all, names) = self.with_state(|s| {
            let names: Vec<String> = s
                .hosts
                .iter()
                .filter(|(_, h)| h.failed.is_some() && !h.acknowledged)
                .map(|(n, h)| {
                    let (step, out) = h.failed.clone().unwrap_or((Step::PreCheck, String::new()));
                    format!("{n}: {} failed: {out}", step_word(step))
                })
                .collect();
            (
                s.failures(Some(stage)),
                s.stages.get(stage).map(|p| p.hosts.len()).unwrap_or(0),
                s.failures(None),
                s.planned_hosts(),
                names,
            )
        });
        let per = FailureBudget::allowed(budget.per_stage, stage_size);
        let total = FailureBudget::allowed(budget.total, all);
        let why = if stage_failed > per {
            Some(format!(
                "{stage_failed} host(s) failed in this stage; the budget allows {per}"
            ))
        } else if all_failed > total {
            Some(format!(
                "{all_failed} host(s) failed in the rollout; the budget allows {total}"
            ))
        } else {
            None
        };
        match why {
            Some(w) => {
                self.pause(
                    "budget_exceeded",
                    Severity::Critical,
                    Some(stage),
                    format!("failure budget exceeded: {w}"),
                    names,
                    clock,
                )?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Updates the stage's hosts batch by batch. Returns whether every host settled.
    fn run_stage(&self, stage: usize) -> Result<bool, ControllerError> {
        let (batches, secs) = self.with_state(|s| {
            s.stages
                .get(stage)
                .map(|p| (p.batches.clone(), p.batch_secs.clone()))
                .unwrap_or_default()
        });
        for (i, batch) in batches.iter().enumerate() {
            if self.halted(self.io.clock)? {
                return Ok(false);
            }
            let held = self.io.control.held();
            if !held.is_empty() {
                let newly: Vec<(String, String)> = self.with_state(|s| {
                    batch
                        .iter()
                        .filter(|h| s.hosts.get(*h).is_none_or(HostState::untouched))
                        .filter_map(|h| held.get(h).map(|r| (h.clone(), r.clone())))
                        .collect()
                });
                for (host, reason) in newly {
                    self.emit(Event::HostHeld { host, reason }, self.io.clock)?;
                }
            }
            let pending: Vec<String> = self.with_state(|s| {
                batch
                    .iter()
                    .filter(|h| !s.hosts.get(*h).is_some_and(HostState::settled))
                    .cloned()
                    .collect()
            });
            if pending.is_empty() {
                continue;
            }
            if self.opts.windows {
                self.wait_for_window(secs.get(i).copied().unwrap_or(0))?;
            }
            self.parallel(&pending, batch.len(), |name, clock| {
                let r = self.drive_host(stage, name, clock);
                if let Some(h) = self.fleet.host(name) {
                    self.io.exec.release(h);
                }
                r
            })?;
        }
        Ok(self.with_state(|s| {
            s.stages.get(stage).is_some_and(|p| {
                p.hosts
                    .iter()
                    .all(|h| s.hosts.get(h).is_some_and(HostState::settled))
            })
        }))
    }

    /// Sleeps until a batch lasting `secs` fits in a maintenance window.
    fn wait_for_window(&self, secs: u64) -> Result<(), ControllerError> {
        let set = self.policy()?;
        let windows = PolicyRules::new(&set)
            .windows()
            .map_err(|e| ControllerError::Invalid(e.to_string()))?;
        let now = self.io.clock.now();
        let d = jiff::SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX));
        match window::next_fit(&windows, now, d) {
            Some(t) if t > now => {
                self.io
                    .observer
                    .note(&format!("waiting for the maintenance window at {t}"));
                let wait = t.duration_since(now).unsigned_abs();
                self.io.clock.sleep(wait);
                Ok(())
            }
            Some(_) => Ok(()),
            None => Err(ControllerError::Invalid(format!(
                "no maintenance window fits a batch of {secs} s"
            ))),
        }
    }

    /// Takes one host through its remaining steps, stopping at a step boundary if halted.
    fn drive_host(
        &self,
        stage: usize,
        name: &str,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        let Some(host) = self.fleet.host(name) else {
            return self.fail_host(
                stage,
                name,
                Step::PreCheck,
                "not in the inventory".into(),
                clock,
            );
        };
        let set = self.policy()?;
        let steps = match self.steps_for(&set, host) {
            Ok(s) => s,
            Err(m) => return self.policy_pause(Some(stage), m, clock),
        };
        drop(set);
        loop {
            let hs = self.with_state(|s| s.hosts.get(name).cloned().unwrap_or_default());
            if hs.settled() {
                return Ok(());
            }
            let Some(step) = hs.resume_step() else {
                return self.emit(
                    Event::HostDone {
                        host: name.to_string(),
                    },
                    clock,
                );
            };
            if self.halted(clock)? {
                return Ok(());
            }
            self.emit(
                Event::StepStarted {
                    host: name.to_string(),
                    step,
                },
                clock,
            )?;
            let result = match step {
                Step::PreCheck => self.run_commands(host, &steps.pre_check, clock),
                Step::Drain => self.run_commands(host, &steps.drain, clock),
                Step::Install => self.run_commands(host, &steps.install, clock),
                Step::SetBoot => self.run_commands(host, &steps.set_boot, clock),
                Step::Reboot => self.reboot(host, &steps, clock)?,
                Step::WaitUp => self.wait_up(host, &steps, &hs, clock),
                Step::Verify => self.verify(host, &steps, &hs, clock)?,
                Step::PostCheck => self.run_commands(host, &steps.post_check, clock),
                Step::Undrain => self.run_commands(host, &steps.undrain, clock),
            };
            match result {
                Ok(output) => self.emit(
                    Event::StepSucceeded {
                        host: name.to_string(),
                        step,
                        output,
                    },
                    clock,
                )?,
                Err(why) => return self.fail_host(stage, name, step, why, clock),
            }
        }
    }

    /// Marks a host failed (quarantined: never retried by the controller), then checks the
    /// failure budget.
    fn fail_host(
        &self,
        stage: usize,
        name: &str,
        step: Step,
        output: String,
        clock: &dyn Clock,
    ) -> Result<(), ControllerError> {
        self.emit(
            Event::HostFailed {
                host: name.to_string(),
                step,
                output,
            },
            clock,
        )?;
        self.check_budget(stage, clock).map(|_| ())
    }

    fn run_one(&self, host: &Host, c: &CommandSpec, clock: &dyn Clock) -> StepResult {
        match self.io.exec.run_at(host, &c.command(), c.timeout(), clock) {
            Ok(out) => judged(c, &out),
            Err(e) => Err(format!("`{}`: {e}", c.label())),
        }
    }

    fn run_commands(&self, host: &Host, cmds: &[CommandSpec], clock: &dyn Clock) -> StepResult {
        let mut outs = Vec::new();
        for c in cmds {
            let o = self.run_one(host, c, clock)?;
            if !o.is_empty() {
                outs.push(o);
            }
        }
        Ok(outs.join(" | "))
    }

    fn probe(
        &self,
        host: &Host,
        argv: &[String],
        timeout: u64,
        clock: &dyn Clock,
    ) -> Result<String, String> {
        let cmd = RemoteCommand::new(argv.iter().cloned());
        match self
            .io
            .exec
            .run_at(host, &cmd, Duration::from_secs(timeout), clock)
        {
            Ok(o) if o.success() && !o.stdout.trim().is_empty() => Ok(o.stdout.trim().to_string()),
            Ok(o) => Err(format!(
                "`{}` exited {}: {}",
                cmd.shell_line(),
                o.status,
                tail(&o.stderr, 200)
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records the boot id, then reboots, at most once per host per rollout.
    fn reboot(
        &self,
        host: &Host,
        steps: &Steps,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        if !self.with_state(|s| s.may_reboot(&host.name)) {
            return Ok(Err(
                "a reboot was already issued in this rollout; refusing to issue a second".into(),
            ));
        }
        let before = match self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock) {
            Ok(b) => b,
            Err(e) => {
                return Ok(Err(format!(
                    "cannot read the boot id before rebooting: {e}"
                )))
            }
        };
        self.emit(
            Event::RebootIssued {
                host: host.name.clone(),
                boot_id: before.clone(),
            },
            clock,
        )?;
        crate::failpoint::hit("rollout.after_reboot_issued");
        Ok(self.send_reboot(host, steps, &before, clock))
    }

    /// Sends the reboot through the one-shot wrapper, its token fixed by the host and the
    /// boot id before the reboot: sent twice in one boot, it reboots once.
    fn send_reboot(
        &self,
        host: &Host,
        steps: &Steps,
        before: &str,
        clock: &dyn Clock,
    ) -> StepResult {
        use sha2::{Digest, Sha256};
        let token: String = Sha256::digest(format!("{}\n{before}", host.name).as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        let c = &steps.reboot;
        let cmd = crate::exec::reboot_once(&token, &c.run);
        match self.io.exec.run_at(host, &cmd, c.timeout(), clock) {
            Ok(out) => judged(c, &out),
            // The connection dropping under a reboot is what a reboot looks like.
            Err(ExecError::Unreachable { .. } | ExecError::Timeout { .. }) => {
                Ok("connection closed by the reboot".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Polls the boot id with backoff until it differs from the one before the reboot.
    fn wait_up(&self, host: &Host, steps: &Steps, hs: &HostState, clock: &dyn Clock) -> StepResult {
        let Some(before) = hs.boot_id_before.clone() else {
            return Err("no boot id was recorded before the reboot".into());
        };
        let w = &steps.wait_up;
        let start = clock.now();
        let deadline = start
            .checked_add(jiff::SignedDuration::from_secs(w.timeout as i64))
            .unwrap_or(start);
        let mut interval = Duration::from_secs(1);
        let max = Duration::from_secs(w.max_interval.max(1));
        // A crash between `RebootIssued` and the reboot's answer leaves it unknown whether the
        // reboot reached the host. If the host still runs the old boot, the reboot goes again
        // through the one-shot wrapper: it reboots only if the first one never arrived.
        let mut resent = String::new();
        if hs.done_step < Some(Step::Reboot) {
            if let Ok(id) = self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock) {
                if id == before {
                    resent = match self.send_reboot(host, steps, &before, clock) {
                        Ok(o) => format!("; the reboot was sent again after a restart ({o})"),
                        Err(e) => format!("; sending the reboot again after a restart failed: {e}"),
                    };
                }
            }
        }
        clock.sleep(Duration::from_secs(w.first));
        loop {
            let last = match self.probe(host, &steps.probe.boot_id, steps.probe.timeout, clock) {
                Ok(id) if id != before => {
                    let secs = clock.now().duration_since(start).as_secs_f64();
                    return Ok(format!("up after {secs:.1} s, boot id {id}{resent}"));
                }
                Ok(_) => format!("boot id unchanged{resent}"),
                Err(e) => e,
            };
            let now = clock.now();
            if now >= deadline {
                return Err(format!(
                    "did not come back within {} s after the reboot (last: {last})",
                    w.timeout
                ));
            }
            let left = deadline.duration_since(now).unsigned_abs();
            clock.sleep(interval.min(left));
            interval = (interval * 2).min(max);
        }
    }

    /// Reads kernel and boot id: the kernel must be the target and the boot id new.
    fn verify(
        &self,
        host: &Host,
        steps: &Steps,
        hs: &HostState,
        clock: &dyn Clock,
    ) -> Result<StepResult, ControllerError> {
        let p = &steps.probe;
        let kernel = match self.probe(host, &p.kernel, p.timeout, clock) {
            Ok(k) => k,
            Err(e) => return Ok(Err(format!("cannot read the kernel: {e}"))),
        };
        let boot_id = match self.probe(host, &p.boot_id, p.timeout, clock) {
            Ok(b) => b,
            Err(e) => return Ok(Err(format!("cannot read the boot id: {e}"))),
        };
        self.emit(
            Event::HostChecked {
                host: host.name.clone(),
                kernel: kernel.clone(),
                boot_id: boot_id.clone(),
            },
            clock,
        )?;
        let target = self.with_state(|s| s.target_kernel.clone());
        Ok(if kernel != target {
            Err(format!("runs `{kernel}` after the reboot, not `{target}`"))
        } else if hs.boot_id_before.as_deref() == Some(boot_id.as_str()) {
            Err(format!(
                "boot id `{boot_id}` did not change: the host did not reboot"
            ))
        } else {
            Ok(format!("{kernel}, boot id {boot_id}"))
        })
    }

    pub fn samples_path(&self, stage: usize) -> PathBuf {
        let dir = self.lock().journal.dir().to_path_buf();
        dir.join(format!("stage-{stage:02}.samples.csv"))
    }

    /// Bakes a stage: collects signals every `signals().every` until the bake ends (which
    /// the journal keeps, so a restart bakes only what is left).
    fn bake(&self, stage: usize) -> Result<(), ControllerError> {
        let clock = self.io.clock;
        let set = self.policy()?;
        let signals = match self.signals(&set) {
            Ok(s) => s,
            Err(m) => return self.policy_pause(Some(stage), m, clock),
        };
        let until = match self.with_state(|s| s.bake_until.get(&stage).cloned()) {
            Some(u) => u
                .parse::<jiff::Timestamp>()
                .map_err(|e| ControllerError::Invalid(format!("journal bake end `{u}`: {e}")))?,
            None => {
                let secs = match self.opts.bake {
                    Some(b) => b,
                    None => {
                        let info = self.with_state(|s| s.stages.get(stage).map(|p| p.info.clone()));
                        match info.map(|i| PolicyRules::new(&set).bake(&i)) {
                            Some(Ok(b)) => b,
                            Some(Err(e)) => {
                                return self.policy_pause(
                                    Some(stage),
                                    format!("`bake(wave)`: {e}"),
                                    clock,
                                )
                            }
                            None => 0,
                        }
                    }
                };
                let now = clock.now();
                let until = now
                    .checked_add(jiff::SignedDuration::from_secs(
                        i64::try_from(secs).unwrap_or(i64::MAX),
                    ))
                    .unwrap_or(now);
                self.emit(
                    Event::BakeStarted {
                        stage,
                        until: rfc3339(until),
                    },
                    clock,
                )?;
                until
            }
        };
        drop(set);
        loop {
            if self.halted(clock)? {
                return Ok(());
            }
            self.collect(stage, &signals)?;
            let now = clock.now();
            if now >= until {
                return Ok(());
            }
            let left = until.duration_since(now).unsigned_abs();
            clock.sleep(Duration::from_secs(signals.every).min(left));
        }
    }

    /// One round of signals from the stage's updated hosts: metrics, and a boot-id check for
    /// unexpected reboots. Appended to the stage's sample file.
    fn collect(&self, stage: usize, signals: &Signals) -> Result<(), ControllerError> {
        let hosts: Vec<String> = self.with_state(|s| {
            s.stages
                .get(stage)
                .map(|p| {
                    p.hosts
                        .iter()
                        .filter(|h| s.hosts.get(*h).is_some_and(|x| x.done))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        });
        let set = self.policy()?;
        let rows: Mutex<Vec<(String, Sample)>> = Mutex::new(Vec::new());
        let cmd = RemoteCommand::new(signals.metrics.iter().cloned());
        self.parallel(&hosts, usize::MAX, |name, clock| {
            let Some(host) = self.fleet.host(name) else {
                return Ok(());
            };
            let now = epoch_secs(clock.now());
            let mut mine = Vec::new();
            match self
                .io
                .exec
                .run_at(host, &cmd, Duration::from_secs(signals.timeout), clock)
            {
                Ok(o) if o.success() => {
                    let (samples, bad) = parse_metrics(&o.stdout, now);
                    if !bad.is_empty() {
                        self.io.observer.note(&format!(
                            "host `{name}`: {} unreadable metrics line(s), e.g. `{}`",
                            bad.len(),
                            bad.first().map(String::as_str).unwrap_or("")
                        ));
                    }
                    mine.extend(samples);
                }
                Ok(o) => self.io.observer.note(&format!(
                    "host `{name}`: metrics command exited {}",
                    o.status
                )),
                Err(e) => self.io.observer.note(&format!("host `{name}`: {e}")),
            }
            // Unexpected reboots: the boot id moved since the host was verified.
            if let Some(probe) = self.probe_for(&set, host) {
                let known = self.with_state(|s| s.hosts.get(name).and_then(|h| h.boot_id.clone()));
                if let (Ok(id), Some(known)) = (
                    self.probe(host, &probe.boot_id, probe.timeout, clock),
                    known,
                ) {
                    let rebooted = id != known;
                    if rebooted {
                        self.emit(
                            Event::UnexpectedReboot {
                                host: name.to_string(),
                                boot_id: id,
                            },
                            clock,
                        )?;
                    }
                    mine.push(Sample {
                        timestamp: now,
                        metric: gate::EVENTS[0].to_string(),
                        value: if rebooted { 1.0 } else { 0.0 },
                    });
                }
            }
            if let Ok(mut r) = rows.lock() {
                r.extend(mine.into_iter().map(|s| (name.to_string(), s)));
            }
            self.io.exec.release(host);
            Ok(())
        })?;
        let rows = rows.into_inner().unwrap_or_default();
        self.append_samples(stage, &rows)
    }

    fn append_samples(
        &self,
        stage: usize,
        rows: &[(String, Sample)],
    ) -> Result<(), ControllerError> {
        let _guard = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.samples_path(stage);
        let io_err = |source| ControllerError::Io {
            path: path.clone(),
            source,
        };
        let fresh = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err)?;
        let mut buf = String::with_capacity(rows.len() * 48 + SAMPLES_HEADER.len());
        if fresh {
            buf.push_str(SAMPLES_HEADER);
        }
        for (host, s) in rows {
            // Host names and metric names never hold commas or quotes in an inventory
            // fleetward accepts; quote anyway so a stray one cannot shift columns.
            let q = |x: &str| {
                if x.contains([',', '"', '\n']) {
                    format!("\"{}\"", x.replace('"', "\"\""))
                } else {
                    x.to_string()
                }
            };
            buf.push_str(&format!(
                "{},{},{},{}\n",
                q(host),
                s.timestamp,
                q(&s.metric),
                s.value
            ));
        }
        f.write_all(buf.as_bytes()).map_err(io_err)?;
        f.sync_data().map_err(io_err)
    }

    /// Compares the stage's samples with the baseline and asks `gates.rhai`.
    fn gate(&self, stage: usize) -> Result<(), ControllerError> {
        let clock = self.io.clock;
        let set = self.policy()?;
        let path = self.samples_path(stage);
        let file = path.display().to_string();
        let updated = if path.exists() {
            frames::cohort(frames::scan(&path)?, &self.fleet.groups_df, &file)?
        } else {
            Cohort::default()
        };
        let (name, expected) = self.with_state(|s| {
            let mut expected: BTreeMap<String, usize> = BTreeMap::new();
            if let Some(p) = s.stages.get(stage) {
                for h in &p.hosts {
                    if s.hosts.get(h).is_some_and(|x| x.done) {
                        if let Some(g) = self.fleet.group_of.get(h) {
                            *expected.entry(g.clone()).or_default() += 1;
                        }
                    }
                }
            }
            let name = s
                .stages
                .get(stage)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            (name, expected)
        });
        let specs: Vec<GroupSpec> = expected
            .iter()
            .map(|(g, n)| {
                let (hw, wl) = g.split_once('/').unwrap_or((g.as_str(), ""));
                GroupSpec {
                    name: g.clone(),
                    hardware: hw.to_string(),
                    workload: wl.to_string(),
                    expected_hosts: Some(*n),
                }
            })
            .collect();
        let cmp = gate::compare(
            stage,
            &name,
            &specs,
            &updated,
            &self.fleet.baseline,
            set.gate_settings(),
        );
        let gate_file = path.with_file_name(format!("stage-{stage:02}.gate.json"));
        if let Ok(body) = serde_json::to_vec_pretty(&cmp) {
            std::fs::write(&gate_file, body).map_err(|source| ControllerError::Io {
                path: gate_file.clone(),
                source,
            })?;
        }
        let verdict = match set.call::<Verdict>("gates", "gate", (&cmp,)) {
            Ok(v) => v,
            Err(e) => Verdict {
                verdict: VerdictKind::Pause,
                reasons: vec![format!("the gate policy failed: {}", policy_message(&e))],
            },
        };
        self.emit(
            Event::GateEvaluated {
                stage,
                verdict: verdict.verdict,
                reasons: verdict.reasons.clone(),
            },
            clock,
        )?;
        match verdict.verdict {
            VerdictKind::Pass => {
                let canary = self.with_state(|s| {
                    s.stages
                        .get(stage)
                        .is_some_and(|p| p.info.kind == crate::plan::StageKind::Canary)
                });
                if canary {
                    let kernel = self.with_state(|s| s.target_kernel.clone());
                    self.alert(
                        Severity::Info,
                        "canary_approved",
                        Some(stage),
                        format!(
                            "kernel `{kernel}` approved by the canaries: all {} hardware × workload group(s) passed",
                            specs.len()
                        ),
                        verdict.reasons,
                    );
                }
                Ok(())
            }
            VerdictKind::Pause => self.pause(
                "gate_paused",
                Severity::Warning,
                Some(stage),
                format!("the gate of `{name}` paused the rollout"),
                verdict.reasons,
                clock,
            ),
            VerdictKind::Fail => self.pause(
                "gate_failed",
                Severity::Critical,
                Some(stage),
                format!("the gate of `{name}` failed the kernel"),
                verdict.reasons,
                clock,
            ),
        }
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
        phase_word(&st.phase)
    )))
}

pub fn phase_word(p: &Phase) -> &'static str {
    match p {
        Phase::NotStarted => "not started",
        Phase::Running => "running",
        Phase::Paused => "paused",
        Phase::Aborted => "aborted",
        Phase::Completed => "completed",
    }
}

pub fn step_word(s: Step) -> &'static str {
    match s {
        Step::PreCheck => "pre-check",
        Step::Drain => "drain",
        Step::Install => "install",
        Step::SetBoot => "set-boot",
        Step::Reboot => "reboot",
        Step::WaitUp => "wait-up",
        Step::Verify => "verify",
        Step::PostCheck => "post-check",
        Step::Undrain => "undrain",
    }
}

#[cfg(test)]
mod tests;
