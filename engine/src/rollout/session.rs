//! A whole rollout over SSH, as `fleetward rollout` runs it: `start` freezes the plan and the
//! settings in the state directory and drives the controller; `resume` needs nothing but the
//! directory; `request` is the pause/abort protocol with a running (or dead) controller;
//! `status` reads the journal. The CLI parses flags into these calls and renders the result.

use super::controller::{
    ensure_new, Control, ControlFile, Controller, ControllerError, Fleet, Io, Observer, Options,
    PolicySource, Request, CONTROL_FILE,
};
use super::event::HeldHost;
use super::settings::{Settings, SettingsError, ShardSettings};
use super::state::HostKernel;
use super::{Event, Journal, JournalError, Phase, RolloutState};
use crate::alert::{AlertSink, Alerts, FileSink, LogSink, WebhookOptions, WebhookSink};
use crate::clock::{Clock, WallClock};
use crate::drift::store::{QueueChoice, StoreError};
use crate::exec::Executor;
use crate::gate::frames::DataError;
use crate::inventory::{Inventory, InventoryError};
use crate::plan::PlanError;
use crate::reload::{PolicyStore, ReloadEvent};
use crate::runtime::{LoadOptions, PolicySet};
use crate::source::short_hash;
use crate::watch::{watch_loop, FsWatcher, DEFAULT_DEBOUNCE};
use crate::PolicyError;
use serde::Serialize;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Drift(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error("`{}` holds no rollout: {source}", dir.display())]
    NoRollout {
        dir: PathBuf,
        #[source]
        source: JournalError,
    },
    #[error(transparent)]
    Invalid(#[from] crate::error::Invalid),
    #[error("the rollout is {phase}; nothing to {what}")]
    Finished { phase: Phase, what: &'static str },
    #[error("the controller has not acknowledged the request within {secs} s; it stays pending in `{}`", file.display())]
    NotAcknowledged { secs: u64, file: PathBuf },
    #[error(transparent)]
    Coord(#[from] crate::coord::etcd::CoordError),
    #[error("the controllers of shard(s) {} have not taken the request within {secs} s; it stays in etcd, and each takes it when it runs", shards.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "))]
    NotTakenByShards { secs: u64, shards: Vec<String> },
    #[error("{what} `{}`: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `rollout start` asks for beyond the saved settings.
pub struct StartRequest {
    /// The settings to freeze (made absolute before they are saved).
    pub settings: Settings,
    /// Which drift review queue holds hosts back.
    pub drift: QueueChoice,
    /// The kernel; default `target_kernel()`.
    pub kernel: Option<String>,
    /// The host-order seed; default from the inventory's hash.
    pub seed: Option<u64>,
    /// Run as the controller of one shard among several, coordinated through etcd.
    pub shard: Option<super::shard::ShardRequest>,
}

/// What `rollout resume` changes.
#[derive(Debug, Clone, Default)]
pub struct ResumeRequest {
    pub acknowledge_failures: bool,
    /// Failed hosts to acknowledge by name (each must have failed).
    pub acknowledge: Vec<String>,
    pub accept_gate: bool,
    pub webhook: Option<String>,
    pub bake: Option<u64>,
}

/// Everything a running rollout uses, loaded from its settings.
struct Setup {
    store: Arc<PolicyStore>,
    set: Arc<PolicySet>,
    fleet: Fleet,
    inventory: Inventory,
}

impl Setup {
    /// Only the hosts of `shard` are this controller's to touch; the fleet keeps the whole
    /// inventory's groups and baseline, which its gates share with the other shards'.
    fn only(mut self, shard: &crate::coord::Shard) -> Result<Setup, SessionError> {
        let keep: Vec<bool> = self
            .inventory
            .hosts
            .iter()
            .map(|h| shard.holds(h))
            .collect();
        if !keep.iter().any(|k| *k) {
            return Err(crate::error::Invalid(format!(
                "no host of `{}` is in shard `{}`",
                self.inventory.file,
                shard.name()
            ))
            .into());
        }
        let mut i = keep.iter();
        self.inventory
            .hosts
            .retain(|_| i.next().copied().unwrap_or(false));
        let mut i = keep.iter();
        self.inventory
            .lines
            .retain(|_| i.next().copied().unwrap_or(false));
        self.fleet = self.fleet.only(|h| shard.holds(h));
        Ok(self)
    }
}

fn setup(s: &Settings, load: &LoadOptions) -> Result<Setup, SessionError> {
    let (store, set) = PolicyStore::load_valid(&s.policy_dir, load.clone())?;
    let inventory = s.inventory.load(set.field_map())?;
    let fleet = Fleet::load(&inventory.hosts, &s.baseline)?;
    Ok(Setup {
        store,
        set,
        fleet,
        inventory,
    })
}

/// Plans and carries out a new rollout in `dir`.
pub fn start(
    dir: &Path,
    req: StartRequest,
    load: &LoadOptions,
    observer: Arc<dyn Observer>,
) -> Result<Status, SessionError> {
    std::fs::create_dir_all(dir).map_err(|source| SessionError::Io {
        what: "cannot create",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut settings = Settings {
        drift_queue: req.drift.path(),
        ..req.settings
    }
    .frozen();
    let s = setup(&settings, load)?;
    let held = req.drift.held(&s.inventory.hosts)?;
    // One plan for the whole fleet, whichever shard this controller drives: stage k is then
    // the same stage in every shard, and its gate judges them all.
    let plan = crate::plan::for_inventory(
        &s.set,
        &s.inventory,
        req.kernel,
        req.seed,
        None,
        &held.hosts,
        Some(&settings.baseline),
    )?;
    let (s, plan, view) = match &req.shard {
        Some(sh) => {
            let (s, view) = shard_view(s, &sh.shard)?;
            let plan = plan.only(|h| s.fleet.host(h).is_some());
            let rollout = sh.rollout_name(&plan.target_kernel, &s.inventory.hash);
            settings.shard = Some(ShardSettings {
                endpoints: sh.endpoints.clone(),
                shard: sh.shard.name(),
                lease_ttl_secs: sh.ttl.as_secs(),
                rollout: rollout.clone(),
            });
            (s, plan, Some((sh, rollout, view)))
        }
        None => (s, plan, None),
    };
    let journal = Journal::open(dir)?;
    // Checked before `rollout.json` is written, so an existing rollout keeps its settings.
    ensure_new(&journal)?;
    // One of several controllers: lead the shard first (standing by while another does),
    // then start it, or carry on from etcd's journal where the last leader stopped.
    let led = match view {
        Some((sh, rollout, view)) => Some(lead_shard(sh, &rollout, view, observer.as_ref())?),
        None => None,
    };
    let journal = match &led {
        Some(l) => journal.adopt(&l.records)?,
        None => journal,
    };
    let led = match led {
        Some(l) if !l.records.is_empty() => l,
        led => {
            observer.begin(plan.stages.iter().map(|st| st.info.size).sum());
            return drive(
                &settings,
                s,
                journal,
                Mode::Start(Box::new(plan)),
                observer,
                led,
            );
        }
    };
    // Taken over: the settings `resume` needs, then on from the last leader's record. A
    // rollout that is no longer running (paused, finished) is reported, not resumed.
    settings.save(dir)?;
    let st = RolloutState::fold(journal.records());
    if st.phase != Phase::Running {
        return Ok(Status::of(&st, &initial_kernels(&s.inventory), dir));
    }
    observer.begin(st.planned_hosts());
    drive(
        &settings,
        s,
        journal,
        Mode::Resume(ResumeRequest::default()),
        observer,
        Some(led),
    )
}

/// What a shard's controller shares with the others, read from the whole inventory before
/// it keeps only its shard's hosts.
pub(crate) struct ShardView {
    /// Per host of the shard, its in-flight limits sized from the whole fleet.
    limits: std::collections::BTreeMap<String, Vec<(String, usize)>>,
    /// Every shard of the key, by name: whose parts each gate waits for.
    shards: Vec<String>,
}

impl ShardView {
    /// The view of `shard` from the whole inventory's `hosts`.
    pub(crate) fn of(
        set: &PolicySet,
        hosts: &[crate::model::Host],
        shard: &crate::coord::Shard,
    ) -> Result<ShardView, SessionError> {
        use crate::plan::RolloutRules;
        let blast = crate::plan::policy::PolicyRules::new(set).blast_radius()?;
        let mut limits = crate::plan::in_flight_slots(&blast, hosts);
        let shards = crate::coord::Shard::all(&shard.key, hosts)?;
        let mine: std::collections::HashSet<&str> = hosts
            .iter()
            .filter(|h| shard.holds(h))
            .map(|h| h.name.as_str())
            .collect();
        limits.retain(|h, _| mine.contains(h.as_str()));
        Ok(ShardView { limits, shards })
    }
}

fn shard_view(s: Setup, shard: &crate::coord::Shard) -> Result<(Setup, ShardView), SessionError> {
    let view = ShardView::of(&s.set, &s.inventory.hosts, shard)?;
    Ok((s.only(shard)?, view))
}

/// Campaigns for the shard of `sh` in rollout `rollout`, standing by until elected.
pub(crate) fn lead_shard(
    sh: &super::shard::ShardRequest,
    rollout: &str,
    view: ShardView,
    observer: &dyn Observer,
) -> Result<super::shard::Led, SessionError> {
    let me = format!(
        "pid {} on {}",
        std::process::id(),
        std::env::var("HOSTNAME").unwrap_or_else(|_| "this machine".into())
    );
    let mut led = super::shard::lead(sh, rollout, &me, &|m| observer.note(m))?;
    observer.note(&format!(
        "leading shard `{}` of rollout `{rollout}` ({} journal record(s) in etcd)",
        led.shard.name(),
        led.records.len()
    ));
    led.limits = view.limits;
    led.shards = view.shards;
    Ok(led)
}

/// A shard's controller leads its shard again before `resume` or `rollback` acts: it stands
/// by while another leads, then goes on from etcd's journal, which is the record. Anything
/// else goes on alone.
fn rejoin(
    settings: &Settings,
    s: Setup,
    journal: Journal,
    observer: &dyn Observer,
) -> Result<(Setup, Journal, Option<super::shard::Led>), SessionError> {
    let Some(sh) = &settings.shard else {
        return Ok((s, journal, None));
    };
    let shard = crate::coord::Shard::parse(&sh.shard)?;
    let (s, view) = shard_view(s, &shard)?;
    let req = super::shard::ShardRequest {
        endpoints: sh.endpoints.clone(),
        shard,
        ttl: Duration::from_secs(sh.lease_ttl_secs),
        rollout: Some(sh.rollout.clone()),
    };
    let led = lead_shard(&req, &sh.rollout, view, observer)?;
    if led.records.is_empty() {
        return Err(crate::error::Invalid(format!(
            "etcd holds no journal of shard `{}` in rollout `{}`: was the rollout started against this etcd?",
            sh.shard, sh.rollout
        ))
        .into());
    }
    let journal = journal.adopt(&led.records)?;
    // An operator's resume (or rollback) supersedes a pause left for the shard in etcd; an
    // abort left there stands.
    let key = led.session.keys().shard_request(&sh.shard);
    if let Some(body) = led.session.get(&key)? {
        if let Ok(Request::Pause { .. }) = serde_json::from_slice::<Request>(&body) {
            led.session.delete_fenced(&led.leader, &key)?;
        }
    }
    Ok((s, journal, Some(led)))
}

/// Resumes the rollout in `dir` (paused, or interrupted by a crash).
pub fn resume(
    dir: &Path,
    req: &ResumeRequest,
    load: &LoadOptions,
    observer: Arc<dyn Observer>,
) -> Result<Status, SessionError> {
    let mut settings = Settings::load(dir)?;
    if req.webhook.is_some() {
        settings.run.webhook = req.webhook.clone();
    }
    if req.bake.is_some() {
        settings.run.bake = req.bake;
    }
    let journal = Journal::open(dir)?;
    let s = setup(&settings, load)?;
    let (s, journal, led) = rejoin(&settings, s, journal, observer.as_ref())?;
    observer.begin(RolloutState::fold(journal.records()).planned_hosts());
    drive(
        &settings,
        s,
        journal,
        Mode::Resume(req.clone()),
        observer,
        led,
    )
}

impl ResumeRequest {
    fn acknowledge_choice(&self) -> super::controller::Acknowledge {
        use super::controller::Acknowledge;
        if self.acknowledge_failures {
            Acknowledge::All
        } else if self.acknowledge.is_empty() {
            Acknowledge::None
        } else {
            Acknowledge::Hosts(self.acknowledge.clone())
        }
    }
}

/// What `rollout rollback` asks for.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub scope: super::rollback::Scope,
    pub reason: String,
}

/// Rolls back hosts of the rollout in `dir` to the kernel each ran before it, through the
/// same controller (limits, steps, journal) as the update; see [`super::rollback::plan`].
pub fn rollback(
    dir: &Path,
    req: &RollbackRequest,
    load: &LoadOptions,
    observer: Arc<dyn Observer>,
) -> Result<Status, SessionError> {
    // A clear error for a directory that holds no rollout, before anything else is read.
    read_journal(dir)?;
    let settings = Settings::load(dir)?;
    let journal = Journal::open(dir)?;
    let s = setup(&settings, load)?;
    let (s, journal, led) = rejoin(&settings, s, journal, observer.as_ref())?;
    drive(
        &settings,
        s,
        journal,
        Mode::Rollback(req.clone()),
        observer,
        led,
    )
}

enum Mode {
    Start(Box<crate::plan::Plan>),
    Resume(ResumeRequest),
    Rollback(RollbackRequest),
}

fn sinks(s: &Settings, dir: &Path) -> (Alerts, Option<Arc<WebhookSink>>) {
    let mut all = Alerts::default();
    all.sinks.push(Arc::new(LogSink));
    all.sinks.push(Arc::new(FileSink {
        path: s
            .run
            .alert_file
            .clone()
            .unwrap_or_else(|| dir.join("alerts.jsonl")),
    }));
    let webhook = s
        .run
        .webhook
        .as_ref()
        .map(|u| Arc::new(WebhookSink::new(WebhookOptions::new(u))));
    if let Some(w) = &webhook {
        all.sinks.push(Arc::clone(w) as Arc<dyn AlertSink>);
    }
    (all, webhook)
}

/// Notes each hot reload to the observer.
fn watch(store: &PolicyStore, observer: &dyn Observer) -> Result<(), SessionError> {
    let mut w = FsWatcher::new(store.dir(), DEFAULT_DEBOUNCE).map_err(|e| SessionError::Io {
        what: "cannot watch",
        path: store.dir().to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    watch_loop(store, &mut w, |ev| {
        match ev {
            ReloadEvent::Reloaded { hash, .. } => observer.note(&format!(
                "policy reloaded: {} is live from the next decision",
                short_hash(hash)
            )),
            ReloadEvent::ReloadFailed { error, hash, .. } => observer.note(&format!(
                "policy reload failed, keeping {}: {}",
                hash.as_deref()
                    .map(short_hash)
                    .unwrap_or("the last good set"),
                error.message
            )),
            ReloadEvent::Unchanged { .. } => {}
        }
        ControlFlow::Continue(())
    });
    Ok(())
}

/// A shard's controller's coordination through etcd, set up once it leads: its journal
/// mirrored to etcd, its in-flight limits as etcd semaphores (freeing the slots of hosts its
/// predecessors had finished), and its gates shared with every shard's. `waiting` is told
/// each time etcd stops answering a journal write.
pub(crate) fn coordinate(
    l: &super::shard::Led,
    journal: &mut Journal,
    observer: &dyn Observer,
    waiting: Box<dyn Fn(&str) + Send>,
) -> Result<(super::shard::EtcdLimits, super::shard::EtcdGates), SessionError> {
    journal.set_mirror(Box::new(super::shard::EtcdMirror {
        session: Arc::clone(&l.session),
        leader: l.leader.clone(),
        shard: l.shard.name(),
        waiting,
    }));
    let limits =
        super::shard::EtcdLimits::new(Arc::clone(&l.session), l.leader.clone(), l.limits.clone());
    // Slots outlive a controller: free those its predecessors' hosts no longer need.
    let st = RolloutState::fold(journal.records());
    let in_flight: std::collections::BTreeSet<String> =
        st.interrupted().into_iter().map(str::to_string).collect();
    let freed = limits.reclaim(&in_flight)?;
    if freed > 0 {
        observer.note(&format!(
            "freed {freed} in-flight slot(s) held by hosts a previous controller of this shard had finished"
        ));
    }
    let gates = super::shard::EtcdGates::new(
        Arc::clone(&l.session),
        l.leader.clone(),
        l.shard.name(),
        l.shards.clone(),
    );
    // The windows of the stage in progress, as its previous controller recorded them.
    if let Some(stage) = st.stage {
        let restored = gates.restore_samples(journal.dir(), stage)?;
        if restored > 0 {
            observer.note(&format!(
                "restored {restored} sample file(s) of stage {stage} kept in etcd by a previous controller of this shard"
            ));
        }
    }
    Ok((limits, gates))
}

fn drive(
    settings: &Settings,
    s: Setup,
    mut journal: Journal,
    mode: Mode,
    observer: Arc<dyn Observer>,
    led: Option<super::shard::Led>,
) -> Result<Status, SessionError> {
    let dir = journal.dir().to_path_buf();
    if journal.recovery().torn_bytes > 0 {
        tracing::warn!(
            "dropped a torn last journal record ({} bytes) left by a crash",
            journal.recovery().torn_bytes
        );
    }
    // We hold the directory's lock: masters left here belong to a controller that died.
    let stale = crate::exec::ssh::close_stale_masters(&dir);
    if stale > 0 {
        observer.note(&format!(
            "closed {stale} ssh master connection(s) left by a controller that did not stop cleanly"
        ));
    }
    let exec = settings
        .ssh
        .executor(&dir)
        .map_err(|source| SessionError::Io {
            what: "cannot start ssh for",
            path: dir.clone(),
            source,
        })?;
    let (alerts, webhook) = sinks(settings, &dir);
    let local = ControlFile::new(&dir).with_drift_queue(settings.drift_queue.clone());
    // A shard's controller also takes the requests left in etcd for every shard.
    let etcd_control = led.as_ref().map(|l| {
        super::shard::EtcdControl::new(
            &local,
            Arc::clone(&l.session),
            l.leader.clone(),
            l.shard.name(),
        )
    });
    let control: &dyn Control = match &etcd_control {
        Some(c) => c,
        None => &local,
    };
    let clock = WallClock;
    let metrics = crate::signals::prometheus::HttpStore::new();
    if !settings.run.no_watch {
        let store = Arc::clone(&s.store);
        let obs = Arc::clone(&observer);
        // Detached: it blocks on file events and ends with the process.
        std::thread::Builder::new()
            .name("fleetward-watch".into())
            .spawn(move || {
                if let Err(e) = watch(&store, obs.as_ref()) {
                    obs.note(&e.to_string());
                }
            })
            .map_err(|source| SessionError::Io {
                what: "cannot start the policy watcher for",
                path: s.store.dir().to_path_buf(),
                source,
            })?;
    }
    let coordinated = match &led {
        Some(l) => {
            let obs = Arc::clone(&observer);
            let waiting = Box::new(move |m: &str| obs.note(m));
            Some(coordinate(l, &mut journal, observer.as_ref(), waiting)?)
        }
        None => None,
    };
    let fence: &dyn crate::coord::Fence = match &led {
        Some(l) => l.session.as_ref(),
        None => &crate::coord::Unfenced,
    };
    let limits: &dyn super::controller::Limits = match &coordinated {
        Some((l, _)) => l,
        None => &super::controller::Unshared,
    };
    let obs = Arc::clone(&observer);
    let announced = crate::coord::Announced::new(fence, Box::new(move |m: &str| obs.note(m)));
    let fence = &announced;
    // A shard's progress goes to etcd too, for `rollout status` and `pause` of every shard.
    let progress = led
        .as_ref()
        .map(|l| super::shard::ProgressObserver::new(observer.as_ref(), l));
    let fenced = crate::coord::FencedExecutor {
        inner: &exec as &dyn Executor,
        fence,
    };
    let io = Io {
        exec: &fenced as &dyn Executor,
        fence,
        limits,
        clock: &clock as &dyn Clock,
        alerts: &alerts,
        policies: s.store.as_ref() as &dyn PolicySource,
        control,
        observer: match &progress {
            Some(p) => p as &dyn Observer,
            None => observer.as_ref(),
        },
        metrics: &metrics,
        http: &crate::probe::UreqProbe as &dyn crate::probe::HttpProbe,
        oob: &crate::exec::oob::LocalProcess as &dyn crate::exec::oob::OutOfBand,
        gates: coordinated
            .as_ref()
            .map(|(_, g)| g as &dyn super::controller::SharedGates),
    };
    let opts = Options {
        name: format!("{}", dir.display()),
        workers: settings.run.workers.max(1),
        bake: settings.run.bake,
        windows: !settings.run.ignore_windows,
    };
    let c = match mode {
        Mode::Start(plan) => {
            // The settings `resume` needs: written before the rollout goes on record,
            // removed again if it cannot start.
            let path = settings.save(&dir)?;
            match Controller::start(journal, &s.fleet, io, opts, &plan, &s.inventory.hash) {
                Ok(c) => c,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(e.into());
                }
            }
        }
        Mode::Resume(r) => {
            let c = Controller::open(journal, &s.fleet, io, opts);
            if c.with_state(|st| st.inventory.clone()) != s.inventory.hash {
                observer.note(
                    "the inventory changed since the rollout started; the frozen plan is kept",
                );
            }
            c.resume(&r.acknowledge_choice(), r.accept_gate)?;
            c
        }
        Mode::Rollback(r) => {
            let c = Controller::open(journal, &s.fleet, io, opts);
            let n = c.rollback(&r.scope, &r.reason)?;
            observer.begin(n);
            c
        }
    };
    let phase = c.run();
    if let Some(l) = &led {
        let (n, hosts) = (l.session.requests(), s.inventory.hosts.len());
        observer.note(&format!(
            "etcd: {n} request(s) for the {hosts} host(s) of shard `{}`, {:.1} per host, lease keep-alives included",
            l.shard.name(),
            n as f64 / hosts.max(1) as f64
        ));
    }
    match &progress {
        Some(p) => p.finish(),
        None => observer.finish(),
    }
    phase?;
    let st = c.state();
    drop(c);
    drop(coordinated);
    drop(etcd_control);
    drop(announced);
    drop(progress);
    if let Some(l) = led {
        if let Err(e) = l.step_down() {
            observer.note(&format!(
                "could not end the shard's lease at exit, so a standby takes over at its end: {e}"
            ));
        }
    }
    if let Some(w) = &webhook {
        if !w.flush(Duration::from_secs(15)) {
            observer.note("webhook deliveries still pending at exit were dropped");
        }
        for d in w.deliveries().iter().filter(|d| !d.delivered) {
            observer.note(&format!(
                "webhook: alert `{}` not delivered after {} attempt(s): {}",
                d.kind,
                d.attempts,
                d.error.as_deref().unwrap_or("unknown error")
            ));
        }
    }
    Ok(Status::of(&st, &initial_kernels(&s.inventory), &dir))
}

fn initial_kernels(inv: &Inventory) -> HashMap<String, String> {
    inv.hosts
        .iter()
        .map(|h| (h.name.clone(), h.kernel.clone()))
        .collect()
}

/// Why each decision of the rollout in `dir` was made (see [`super::explain`]).
pub fn explain(
    dir: &Path,
    stage: Option<&str>,
    host: Option<&str>,
) -> Result<super::explain::Explanation, SessionError> {
    let records = Journal::read_only(dir).map_err(|source| SessionError::NoRollout {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(super::explain::explain(&records, stage, host)?)
}

fn read_journal(dir: &Path) -> Result<RolloutState, SessionError> {
    let records = Journal::read_only(dir).map_err(|source| SessionError::NoRollout {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(RolloutState::fold(&records))
}

/// Pause or abort: appended directly when no controller runs, else left as a request for the
/// running controller and waited for until the journal shows it was taken. A request a dead
/// controller left behind is taken over.
pub fn request(dir: &Path, req: &Request, wait: Duration) -> Result<(), SessionError> {
    let abort = matches!(req, Request::Abort { .. });
    let st = read_journal(dir)?;
    if let Ok(Settings {
        shard: Some(sh), ..
    }) = Settings::load(dir)
    {
        return request_shards(&sh, req, wait);
    }
    if st.phase.finished() {
        return Err(SessionError::Finished {
            phase: st.phase,
            what: if abort { "abort" } else { "pause" },
        });
    }
    if !abort && st.phase == Phase::Paused {
        return Ok(());
    }
    let record = |mut j: Journal, st: &RolloutState| -> Result<(), SessionError> {
        let policy = st.policies.last().cloned().unwrap_or_default();
        let event = match req {
            Request::Abort { reason } => Event::Aborted {
                reason: reason.clone(),
            },
            Request::Pause { reason } => Event::Paused {
                reason: format!("paused by an operator: {reason}"),
            },
        };
        j.append(event, &policy, &jiff::Timestamp::now().to_string())?;
        Ok(())
    };
    match Journal::open(dir) {
        Ok(j) => record(j, &st),
        Err(JournalError::Locked { .. }) => {
            ControlFile::request(dir, req).map_err(|source| SessionError::Io {
                what: "cannot leave a request in",
                path: dir.to_path_buf(),
                source,
            })?;
            let deadline = Instant::now() + wait;
            loop {
                let st = RolloutState::fold(&Journal::read_only(dir)?);
                let done = if abort {
                    st.phase == Phase::Aborted
                } else {
                    st.phase != Phase::Running
                };
                if done {
                    return Ok(());
                }
                // A controller that exited without taking the request leaves it to us.
                if Journal::holder(dir).is_none() && st.phase == Phase::Running {
                    if let Ok(j) = Journal::open(dir) {
                        let _ = ControlFile::new(dir).take();
                        return record(j, &st);
                    }
                }
                if Instant::now() >= deadline {
                    return Err(SessionError::NotAcknowledged {
                        secs: wait.as_secs(),
                        file: dir.join(CONTROL_FILE),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// A sharded rollout's pause or abort goes to every shard's controller: left in etcd for each
/// shard whose rollout is still running (or, for an abort, not finished), and waited for
/// until each controller took it. A shard with no controller running takes it when one runs;
/// the wait's error names the shards that have not.
fn request_shards(sh: &ShardSettings, req: &Request, wait: Duration) -> Result<(), SessionError> {
    let abort = matches!(req, Request::Abort { .. });
    let session = operator_session(sh)?;
    let keys = session.keys().clone();
    let body = serde_json::to_vec(req).map_err(|e| crate::error::Invalid(e.to_string()))?;
    let mut pending = Vec::new();
    // Each shard whose controller has started, from the progress it put in etcd.
    for p in super::shard::progress(&session)? {
        if p.phase.finished() || (!abort && p.phase == Phase::Paused) {
            continue;
        }
        let rev = session.put(&keys.shard_request(&p.shard), &body)?;
        pending.push((p.shard, rev));
    }
    let deadline = Instant::now() + wait;
    loop {
        // Done when each shard's controller has acted on it, as its progress shows: stopped
        // (paused, or finished) for a pause, finished for an abort.
        let now: HashMap<String, Phase> = super::shard::progress(&session)?
            .into_iter()
            .map(|p| (p.shard, p.phase))
            .collect();
        let mut left = Vec::new();
        for (shard, rev) in &pending {
            let taken = session
                .get(&keys.shard_request_taken(shard))?
                .and_then(|b| String::from_utf8_lossy(&b).parse::<i64>().ok())
                .unwrap_or(0);
            let acted = now.get(shard).is_some_and(|p| {
                if abort {
                    p.finished()
                } else {
                    *p != Phase::Running
                }
            });
            if taken < *rev || !acted {
                left.push(shard.clone());
            }
        }
        if left.is_empty() {
            let _ = session.close();
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = session.close();
            return Err(SessionError::NotTakenByShards {
                secs: wait.as_secs(),
                shards: left,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where the rollout in `dir` is, from its journal, with the kernel of every host.
pub fn status(dir: &Path, load: &LoadOptions) -> Result<Status, SessionError> {
    let st = read_journal(dir)?;
    let settings = Settings::load(dir).ok();
    let initial = settings
        .clone()
        .and_then(|s| {
            let set = PolicySet::load(&s.policy_dir, load).ok()?;
            s.inventory.load(set.field_map()).ok()
        })
        .map(|inv| initial_kernels(&inv))
        .unwrap_or_default();
    let mut status = Status::of(&st, &initial, dir);
    if let Some(sh) = settings.and_then(|s| s.shard) {
        match shards_progress(&sh) {
            Ok(p) => status.shards = p,
            Err(e) => status.shards_error = Some(e.to_string()),
        }
    }
    Ok(status)
}

/// An operator's session with the rollout's etcd (`pause`, `abort`, `status`).
fn operator_session(
    sh: &ShardSettings,
) -> Result<crate::coord::etcd::Session, crate::coord::etcd::CoordError> {
    use crate::coord::etcd::{Session, SessionOptions};
    Session::connect(
        SessionOptions::new(
            sh.endpoints.clone(),
            Duration::from_secs(sh.lease_ttl_secs.max(2)),
        ),
        crate::coord::Keys::new(&sh.rollout),
    )
}

/// Every shard's progress, from the rollout's etcd.
fn shards_progress(
    sh: &ShardSettings,
) -> Result<Vec<super::shard::ShardProgress>, crate::coord::etcd::CoordError> {
    let session = operator_session(sh)?;
    let p = super::shard::progress(&session);
    let _ = session.close();
    p
}

/// One stage's progress.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    pub index: usize,
    pub name: String,
    pub hosts: usize,
    pub updated: usize,
    pub failed: usize,
    pub in_flight: usize,
    pub gate: Option<String>,
    pub reasons: Vec<String>,
}

pub use super::state::FailedHost;

/// Where a rollout is: `rollout status`, and the end of `start` and `resume`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state_dir: String,
    pub phase: Phase,
    /// The running controller, if one holds the journal.
    pub controller: Option<String>,
    pub target_kernel: String,
    pub stage: Option<usize>,
    pub pause_reason: Option<String>,
    pub stages: Vec<StageRow>,
    pub failed: Vec<FailedHost>,
    /// The policy sets that made decisions.
    pub policies: Vec<String>,
    pub held_for_drift: Vec<HeldHost>,
    pub hosts: Vec<HostKernel>,
    /// Recoveries after crashes (`kill -9`, power loss), in order.
    pub recoveries: Vec<super::state::Recovery>,
    /// The last rollback, once one started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackStatus>,
    /// A sharded rollout: every shard's progress as its controller last put it in etcd.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<super::shard::ShardProgress>,
    /// Why the shards' progress could not be read from etcd.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards_error: Option<String>,
}

/// Where a rollback is: how many of its hosts are back, in flight or failed on the way, and
/// the hosts of its scope it left alone.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackStatus {
    pub reason: String,
    pub at: String,
    pub hosts: usize,
    pub back: usize,
    pub in_flight: usize,
    /// `HOST: failed at STEP on its way back: OUTPUT`.
    pub failed: Vec<String>,
    pub left: Vec<super::event::LeftHost>,
    /// Hosts of its scope the rollout never started.
    pub untouched: usize,
    pub finished: bool,
}

impl RollbackStatus {
    fn of(st: &RolloutState) -> Option<RollbackStatus> {
        let r = st.rollback.as_ref()?;
        let backs: Vec<(&String, &super::HostState)> = r
            .hosts()
            .filter_map(|h| Some((h, st.hosts.get(h)?.back.as_deref()?)))
            .collect();
        Some(RollbackStatus {
            reason: r.reason.clone(),
            at: r.at.clone(),
            hosts: r.hosts().count(),
            back: backs.iter().filter(|(_, b)| b.done).count(),
            in_flight: backs
                .iter()
                .filter(|(_, b)| !b.settled() && (b.in_step.is_some() || b.done_step.is_some()))
                .count(),
            failed: backs
                .iter()
                .filter_map(|(h, b)| {
                    let (step, out) = b.failed.as_ref()?;
                    Some(format!("{h}: failed at {} {out}", step.key()))
                })
                .collect(),
            left: r.left.clone(),
            untouched: r.untouched,
            finished: r.finished,
        })
    }
}

impl Status {
    pub fn of(st: &RolloutState, initial: &HashMap<String, String>, dir: &Path) -> Status {
        let stages = st
            .stages
            .iter()
            .map(|p| {
                let hs: Vec<_> = p.hosts.iter().filter_map(|h| st.hosts.get(h)).collect();
                let (gate, reasons) = st
                    .gates
                    .get(&p.index)
                    .map(|(v, r)| (Some(v.as_str().to_string()), r.clone()))
                    .unwrap_or((None, Vec::new()));
                StageRow {
                    index: p.index,
                    name: p.name.clone(),
                    hosts: p.hosts.len(),
                    updated: hs.iter().filter(|h| h.done).count(),
                    failed: hs.iter().filter(|h| h.failed.is_some()).count(),
                    in_flight: hs
                        .iter()
                        .filter(|h| !h.settled() && (h.in_step.is_some() || h.done_step.is_some()))
                        .count(),
                    gate,
                    reasons,
                }
            })
            .collect();
        let failed = st
            .failed_hosts()
            .into_iter()
            .map(|mut f| {
                if f.kernel.is_none() && !f.rebooted {
                    f.kernel = initial.get(&f.host).cloned();
                }
                f
            })
            .collect();
        Status {
            state_dir: dir.display().to_string(),
            phase: st.phase.clone(),
            controller: Journal::holder(dir),
            target_kernel: st.target_kernel.clone(),
            stage: st.stage,
            pause_reason: st.pause_reason.clone(),
            stages,
            failed,
            policies: st.policies.clone(),
            held_for_drift: st.held.clone(),
            hosts: st.kernels(&|h| initial.get(h).cloned()),
            recoveries: st.recoveries.clone(),
            rollback: RollbackStatus::of(st),
            shards: Vec::new(),
            shards_error: None,
        }
    }
}
