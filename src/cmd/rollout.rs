//! `fleetward rollout start|status|pause|resume|abort`: the rollout controller over SSH, with
//! its journal in a state directory. `start` freezes the plan and the run's settings there, so
//! `resume` needs nothing but the directory.

use super::{plan as plancmd, Ctx, InventoryArgs};
use crate::output::{json_line, Exit, Format};
use anyhow::{anyhow, bail, Context};
use fleetward_engine::alert::{
    Alert, AlertSink, Alerts, FileSink, LogSink, WebhookOptions, WebhookSink,
};
use fleetward_engine::clock::{Clock, WallClock};
use fleetward_engine::exec::ssh::{SshExecutor, SshOptions};
use fleetward_engine::exec::Executor;
use fleetward_engine::reload::{PolicyStore, ReloadEvent};
use fleetward_engine::rollout::controller::{
    ensure_new, phase_word, step_word, Control, ControlFile, Controller, Fleet, Io, Observer,
    Options, PolicySource, Request,
};
use fleetward_engine::rollout::state::HostKernel;
use fleetward_engine::rollout::{Event, Journal, Phase, Record, RolloutState};
use fleetward_engine::watch::{watch_loop, FsWatcher, DEFAULT_DEBOUNCE};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Plan a rollout and carry it out: canaries, then waves, each gated against baselines.
    Start(Box<StartArgs>),
    /// Where a rollout is: stages, hosts, gates, failures. Works while it runs and after.
    Status(StateArgs),
    /// Pause: no new hosts start; hosts in flight finish their current step.
    Pause(RequestArgs),
    /// Resume a paused or interrupted rollout (after a crash, hosts caught mid-step are
    /// re-checked first).
    Resume(ResumeArgs),
    /// Stop for good, leaving every host as it is, and report which host runs which kernel.
    Abort(RequestArgs),
}

#[derive(clap::Args, Debug)]
pub struct StateArgs {
    /// The rollout's state directory (journal, lock, samples, alerts).
    #[arg(long)]
    pub state_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct RequestArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Why, for the journal and the alert.
    #[arg(long, default_value = "operator request")]
    pub reason: String,
    /// How long to wait for a running controller to acknowledge, in seconds.
    #[arg(long, default_value_t = 600)]
    pub wait: u64,
}

/// How to reach hosts over SSH.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
pub struct SshArgs {
    /// Identity file. Default: whatever ssh uses (`~/.ssh/config`, agent, defaults).
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
    /// A known_hosts file instead of the user's.
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// An ssh config file instead of `~/.ssh/config`.
    #[arg(long)]
    pub ssh_config: Option<PathBuf>,
    /// Accept and record keys of hosts never seen before (host-key checking is strict
    /// otherwise; a changed key is always refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds to wait for an SSH connection.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
}

/// How the controller runs.
#[derive(clap::Args, Debug, Clone, Serialize, Deserialize)]
pub struct RunArgs {
    /// Hosts driven at once at most (a batch never exceeds its planned in-flight limit).
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// Bake every stage this many seconds instead of `bake(wave)`.
    #[arg(long, value_name = "SECS")]
    pub bake: Option<u64>,
    /// Start batches at any time, ignoring `windows()`.
    #[arg(long)]
    pub ignore_windows: bool,
    /// Append alerts as JSON lines here. Default: `alerts.jsonl` in the state directory.
    #[arg(long)]
    pub alert_file: Option<PathBuf>,
    /// POST each alert as JSON to this URL (retried in the background).
    #[arg(long)]
    pub webhook: Option<String>,
    /// Do not hot-reload the policy directory while running.
    #[arg(long)]
    pub no_watch: bool,
}

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// The policy directory.
    #[arg(long, default_value = "policies")]
    pub policy_dir: PathBuf,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// Production baseline: samples (`host, timestamp, metric, value`) or a summary frame.
    #[arg(long)]
    pub baseline: PathBuf,
    /// The kernel to roll out. Default: `target_kernel()`.
    #[arg(long)]
    pub kernel: Option<String>,
    /// Seed for the host order. Default: from the inventory's hash.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub drift: plancmd::DriftArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Hosts that failed so far stop counting against the failure budget.
    #[arg(long)]
    pub acknowledge_failures: bool,
    /// Accept the stage whose gate paused the rollout as passed (recorded in the journal).
    /// Without it, resuming a gate pause bakes and gates that stage again.
    #[arg(long)]
    pub accept_gate: bool,
    /// Override the saved `--webhook`.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Override the saved `--bake`.
    #[arg(long, value_name = "SECS")]
    pub bake: Option<u64>,
}

/// What `start` saves in the state directory for `resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    policy_dir: PathBuf,
    inventory: PathBuf,
    inventory_format: Option<String>,
    fields: Vec<String>,
    baseline: PathBuf,
    ssh: SshArgs,
    run: RunArgs,
    /// The drift review queue read before each batch (hosts it holds are left out).
    #[serde(default)]
    drift_queue: Option<PathBuf>,
}

const SAVED_FILE: &str = "rollout.json";

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    match a.command {
        Sub::Start(s) => start(ctx, *s),
        Sub::Status(s) => status(ctx, &s.state_dir),
        Sub::Pause(r) => request(ctx, r, false),
        Sub::Abort(r) => request(ctx, r, true),
        Sub::Resume(r) => resume(ctx, r),
    }
}

/// Prints what the controller does: JSON lines, or a progress bar with a line per notable
/// event.
pub struct Printer {
    format: Format,
    bar: ProgressBar,
    /// Print host-level lines (off for big simulations).
    hosts: bool,
    /// Hosts settled so far; counted from the state once, then kept up by events.
    settled: std::sync::atomic::AtomicI64,
}

impl Printer {
    pub fn new(format: Format, total: usize, hosts: bool) -> Self {
        let bar = if format == Format::Human {
            let b = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} hosts  {msg}",
            ) {
                b.set_style(style);
            }
            b
        } else {
            ProgressBar::hidden()
        };
        Printer {
            format,
            bar,
            hosts,
            settled: std::sync::atomic::AtomicI64::new(-1),
        }
    }

    fn line(&self, s: String) {
        self.bar.suspend(|| println!("{s}"));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for Printer {
    fn record(&self, r: &Record, st: &RolloutState) {
        if self.format == Format::Json {
            json_line(
                &serde_json::json!({ "type": "event", "seq": r.seq, "at": r.at, "policy": r.policy, "event": r.event }),
            );
            return;
        }
        use std::sync::atomic::Ordering;
        if self.settled.load(Ordering::Relaxed) < 0 {
            let n = st.hosts.values().filter(|h| h.settled()).count();
            self.settled.store(n as i64, Ordering::Relaxed);
        } else if matches!(
            r.event,
            Event::HostDone { .. } | Event::HostFailed { .. } | Event::HostHeld { .. }
        ) {
            self.settled.fetch_add(1, Ordering::Relaxed);
        }
        self.bar
            .set_position(self.settled.load(Ordering::Relaxed).max(0) as u64);
        let stage_name = |i: usize| st.stages.get(i).map(|s| s.name.clone()).unwrap_or_default();
        match &r.event {
            Event::Started {
                target_kernel,
                stages,
                ..
            } => self.line(format!(
                "rollout of {target_kernel}: {} host(s) in {} stage(s), policy {}",
                st.planned_hosts(),
                stages.len(),
                short(&r.policy)
            )),
            Event::StageStarted { stage } => {
                let n = st.stages.get(*stage).map(|s| s.hosts.len()).unwrap_or(0);
                self.bar.set_message(stage_name(*stage));
                self.line(format!(
                    "{}  stage {}: {n} host(s)",
                    r.at,
                    stage_name(*stage)
                ));
            }
            Event::HostFailed { host, step, output } => self.line(format!(
                "{}  host {host} failed at {}: {output}",
                r.at,
                step_word(*step)
            )),
            Event::HostDone { host } if self.hosts => {
                self.line(format!("{}  host {host} updated", r.at))
            }
            Event::BakeStarted { stage, until } => {
                self.bar
                    .set_message(format!("{} baking", stage_name(*stage)));
                self.line(format!(
                    "{}  stage {}: baking until {until}",
                    r.at,
                    stage_name(*stage)
                ))
            }
            Event::UnexpectedReboot { host, .. } => {
                self.line(format!("{}  host {host} rebooted unexpectedly", r.at))
            }
            Event::GateEvaluated {
                stage,
                verdict,
                reasons,
            } => {
                let word = serde_json::to_value(verdict)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_uppercase))
                    .unwrap_or_default();
                self.line(format!(
                    "{}  gate {}: {word} (policy {})",
                    r.at,
                    stage_name(*stage),
                    short(&r.policy)
                ));
                for x in reasons {
                    self.line(format!("      - {x}"));
                }
            }
            Event::HostHeld { host, reason } => {
                self.line(format!("{}  {host}: held back by drift: {reason}", r.at))
            }
            Event::Paused { reason } => self.line(format!("{}  PAUSED: {reason}", r.at)),
            Event::Resumed { acknowledged } => self.line(format!(
                "{}  resumed{}",
                r.at,
                if acknowledged.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failure(s) acknowledged)", acknowledged.len())
                }
            )),
            Event::Aborted { reason } => self.line(format!("{}  ABORTED: {reason}", r.at)),
            Event::Completed => self.line(format!("{}  rollout completed", r.at)),
            _ => {}
        }
    }

    fn note(&self, message: &str) {
        match self.format {
            Format::Json => json_line(&serde_json::json!({ "type": "note", "message": message })),
            Format::Human => self.line(format!("  note: {message}")),
        }
    }
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

/// Loads the policy store through the one load path and fails on an invalid set.
pub fn load_store(ctx: &Ctx, dir: &Path) -> anyhow::Result<Arc<PolicyStore>> {
    let store = Arc::new(PolicyStore::new(dir, ctx.load_options()));
    match store.reload() {
        ReloadEvent::Reloaded { .. } | ReloadEvent::Unchanged { .. } => {}
        ReloadEvent::ReloadFailed { .. } => {
            // Load again the direct way for the typed diagnostics.
            ctx.load(dir)?;
            bail!("the policy set in `{}` is invalid", dir.display());
        }
    }
    Ok(store)
}

pub fn executor(ssh: &SshArgs, state_dir: &Path) -> anyhow::Result<SshExecutor> {
    let control_dir = state_dir.join("ssh");
    std::fs::create_dir_all(&control_dir)
        .with_context(|| format!("cannot create `{}`", control_dir.display()))?;
    Ok(SshExecutor::new(SshOptions {
        keyfile: ssh.ssh_key.clone(),
        known_hosts_file: ssh.known_hosts.clone(),
        config_file: ssh.ssh_config.clone(),
        accept_new_host_keys: ssh.accept_new_host_keys,
        connect_timeout: Duration::from_secs(ssh.connect_timeout.max(1)),
        control_dir: Some(control_dir),
    })?)
}

struct Sinks {
    all: Alerts,
    webhook: Option<Arc<WebhookSink>>,
}

fn sinks(run: &RunArgs, state_dir: &Path) -> Sinks {
    let mut all = Alerts::default();
    all.sinks.push(Arc::new(LogSink));
    all.sinks.push(Arc::new(FileSink {
        path: run
            .alert_file
            .clone()
            .unwrap_or_else(|| state_dir.join("alerts.jsonl")),
    }));
    let webhook = run
        .webhook
        .as_ref()
        .map(|u| Arc::new(WebhookSink::new(WebhookOptions::new(u))));
    if let Some(w) = &webhook {
        all.sinks.push(Arc::clone(w) as Arc<dyn AlertSink>);
    }
    Sinks { all, webhook }
}

/// Watches the policy directory and reloads through the store; notes each reload.
fn spawn_watch(store: Arc<PolicyStore>, printer: Arc<Printer>) -> anyhow::Result<()> {
    let mut w = FsWatcher::new(store.dir(), DEFAULT_DEBOUNCE)?;
    std::thread::Builder::new()
        .name("fleetward-watch".into())
        .spawn(move || {
            watch_loop(&store, &mut w, |ev| {
                match ev {
                    ReloadEvent::Reloaded { hash, .. } => printer.note(&format!(
                        "policy reloaded: {} is live from the next decision",
                        short(hash)
                    )),
                    ReloadEvent::ReloadFailed { error, hash, .. } => printer.note(&format!(
                        "policy reload failed, keeping {}: {}",
                        hash.as_deref().map(short).unwrap_or("the last good set"),
                        error.message
                    )),
                    ReloadEvent::Unchanged { .. } => {}
                }
                ControlFlow::Continue(())
            });
        })?;
    Ok(())
}

struct Setup {
    store: Arc<PolicyStore>,
    fleet: Fleet,
    inventory_hash: String,
    initial: std::collections::HashMap<String, String>,
}

fn setup(
    ctx: &Ctx,
    saved: &Saved,
) -> anyhow::Result<(Setup, fleetward_engine::inventory::Inventory)> {
    let store = load_store(ctx, &saved.policy_dir)?;
    let set = store
        .current()
        .ok_or_else(|| anyhow!("no policy set loaded"))?;
    let inv = InventoryArgs {
        inventory: saved.inventory.clone(),
        inventory_format: saved.inventory_format.clone(),
        fields: saved.fields.clone(),
    }
    .load(&set)?;
    let fleet = Fleet::load(&inv.hosts, &saved.baseline)?;
    let initial = inv
        .hosts
        .iter()
        .map(|h| (h.name.clone(), h.kernel.clone()))
        .collect();
    Ok((
        Setup {
            store,
            fleet,
            inventory_hash: inv.hash.clone(),
            initial,
        },
        inv,
    ))
}

fn start(ctx: &Ctx, a: StartArgs) -> anyhow::Result<Exit> {
    let dir = &a.state.state_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let saved = Saved {
        policy_dir: absolute(&a.policy_dir),
        inventory: absolute(&a.inventory.inventory),
        inventory_format: a.inventory.inventory_format.clone(),
        fields: a.inventory.fields.clone(),
        baseline: absolute(&a.baseline),
        ssh: SshArgs {
            ssh_key: a.ssh.ssh_key.as_deref().map(absolute),
            known_hosts: a.ssh.known_hosts.as_deref().map(absolute),
            ssh_config: a.ssh.ssh_config.as_deref().map(absolute),
            ..a.ssh.clone()
        },
        run: RunArgs {
            alert_file: a.run.alert_file.as_deref().map(absolute),
            ..a.run.clone()
        },
        drift_queue: a.drift.queue_path().as_deref().map(absolute),
    };
    let (s, inv) = setup(ctx, &saved)?;
    let set = s
        .store
        .current()
        .ok_or_else(|| anyhow!("no policy set loaded"))?;
    let held = a.drift.held(&inv.hosts)?;
    let plan = plancmd::make_plan(&set, &inv, a.kernel.clone(), a.seed, None, &held.hosts)?;
    let journal = Journal::open(dir)?;
    // Checked before `rollout.json` is written, so an existing rollout keeps its settings.
    ensure_new(&journal)?;
    let total = plan.stages.iter().map(|s| s.info.size).sum();
    drive(ctx, &saved, s, journal, Mode::Start(Box::new(plan)), total)
}

enum Mode {
    Start(Box<fleetward_engine::plan::Plan>),
    Resume {
        acknowledge: bool,
        accept_gate: bool,
    },
}

fn drive(
    ctx: &Ctx,
    saved: &Saved,
    s: Setup,
    journal: Journal,
    mode: Mode,
    total: usize,
) -> anyhow::Result<Exit> {
    let dir = journal.dir().to_path_buf();
    if journal.recovery().torn_bytes > 0 {
        tracing::warn!(
            "dropped a torn last journal record ({} bytes) left by a crash",
            journal.recovery().torn_bytes
        );
    }
    let printer = Arc::new(Printer::new(ctx.format, total, true));
    if !saved.run.no_watch {
        spawn_watch(Arc::clone(&s.store), Arc::clone(&printer))?;
    }
    let exec = executor(&saved.ssh, &dir)?;
    let sinks = sinks(&saved.run, &dir);
    let control = ControlFile::new(&dir).with_drift_queue(saved.drift_queue.clone());
    let clock = WallClock;
    let io = Io {
        exec: &exec as &dyn Executor,
        clock: &clock as &dyn Clock,
        alerts: &sinks.all,
        policies: s.store.as_ref() as &dyn PolicySource,
        control: &control as &dyn Control,
        observer: printer.as_ref(),
    };
    let opts = Options {
        name: format!("{}", dir.display()),
        workers: saved.run.workers.max(1),
        bake: saved.run.bake,
        windows: !saved.run.ignore_windows,
    };
    let c = match mode {
        Mode::Start(plan) => {
            // The settings `resume` needs: written before the rollout goes on record, removed
            // again if it cannot start.
            let path = dir.join(SAVED_FILE);
            std::fs::write(&path, serde_json::to_vec_pretty(saved)?)
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            match Controller::start(journal, &s.fleet, io, opts, &plan, &s.inventory_hash) {
                Ok(c) => c,
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    return Err(e.into());
                }
            }
        }
        Mode::Resume {
            acknowledge,
            accept_gate,
        } => {
            let c = Controller::open(journal, &s.fleet, io, opts);
            let inv = c.with_state(|st| st.inventory.clone());
            if inv != s.inventory_hash {
                printer.note(
                    "the inventory changed since the rollout started; the frozen plan is kept",
                );
            }
            c.resume(acknowledge, accept_gate)?;
            c
        }
    };
    let phase = c.run();
    printer.finish();
    phase?;
    let st = c.state();
    drop(c);
    if let Some(w) = &sinks.webhook {
        if !w.flush(Duration::from_secs(15)) {
            printer.note("webhook deliveries still pending at exit were dropped");
        }
        for d in w.deliveries().iter().filter(|d| !d.delivered) {
            printer.note(&format!(
                "webhook: alert `{}` not delivered after {} attempt(s): {}",
                d.kind,
                d.attempts,
                d.error.as_deref().unwrap_or("unknown error")
            ));
        }
    }
    report(ctx, &st, &s.initial, &dir)?;
    Ok(exit_for(&st.phase))
}

fn exit_for(p: &Phase) -> Exit {
    match p {
        Phase::Completed => Exit::Ok,
        Phase::Paused | Phase::Running | Phase::NotStarted => Exit::Attention,
        Phase::Aborted => Exit::Failed,
    }
}

fn load_saved(dir: &Path) -> anyhow::Result<Saved> {
    let p = dir.join(SAVED_FILE);
    let body = std::fs::read(&p).with_context(|| {
        format!(
            "`{}` holds no rollout (no `{SAVED_FILE}`); start one with `rollout start`",
            dir.display()
        )
    })?;
    serde_json::from_slice(&body).with_context(|| format!("`{}` is damaged", p.display()))
}

fn resume(ctx: &Ctx, a: ResumeArgs) -> anyhow::Result<Exit> {
    let dir = &a.state.state_dir;
    let mut saved = load_saved(dir)?;
    if a.webhook.is_some() {
        saved.run.webhook = a.webhook.clone();
    }
    if a.bake.is_some() {
        saved.run.bake = a.bake;
    }
    let journal = Journal::open(dir)?;
    let (s, _) = setup(ctx, &saved)?;
    let total = RolloutState::fold(journal.records()).planned_hosts();
    drive(
        ctx,
        &saved,
        s,
        journal,
        Mode::Resume {
            acknowledge: a.acknowledge_failures,
            accept_gate: a.accept_gate,
        },
        total,
    )
}

/// Pause or abort: appended directly when no controller runs, else left as a request for
/// the running controller, waiting until it is acknowledged in the journal.
fn request(ctx: &Ctx, a: RequestArgs, abort: bool) -> anyhow::Result<Exit> {
    let dir = &a.state.state_dir;
    let records =
        Journal::read_only(dir).with_context(|| format!("`{}` holds no rollout", dir.display()))?;
    let st = RolloutState::fold(&records);
    if matches!(st.phase, Phase::Completed | Phase::Aborted) {
        bail!(
            "the rollout is {}; nothing to {}",
            phase_word(&st.phase),
            if abort { "abort" } else { "pause" }
        );
    }
    if !abort && st.phase == Phase::Paused {
        return status(ctx, dir);
    }
    let req = if abort {
        Request::Abort {
            reason: a.reason.clone(),
        }
    } else {
        Request::Pause {
            reason: a.reason.clone(),
        }
    };
    // Records the request when no controller runs (it holds the lock otherwise).
    let record = |mut j: Journal, st: &RolloutState| -> anyhow::Result<()> {
        let policy = st.policies.last().cloned().unwrap_or_default();
        let event = match &req {
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
        Ok(j) => record(j, &st)?,
        Err(fleetward_engine::rollout::JournalError::Locked { .. }) => {
            ControlFile::request(dir, &req)
                .with_context(|| format!("cannot leave a request in `{}`", dir.display()))?;
            let deadline = std::time::Instant::now() + Duration::from_secs(a.wait);
            loop {
                let st = RolloutState::fold(&Journal::read_only(dir)?);
                let done = if abort {
                    st.phase == Phase::Aborted
                } else {
                    st.phase != Phase::Running
                };
                if done {
                    break;
                }
                // A controller that exited without taking the request leaves it to us.
                if Journal::holder(dir).is_none() && st.phase == Phase::Running {
                    if let Ok(j) = Journal::open(dir) {
                        let _ = ControlFile::new(dir).take();
                        record(j, &st)?;
                        break;
                    }
                }
                if std::time::Instant::now() >= deadline {
                    bail!(
                        "the controller has not acknowledged the request within {} s; it stays pending in `{}`",
                        a.wait,
                        dir.join(fleetward_engine::rollout::controller::CONTROL_FILE).display()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Err(e) => return Err(e.into()),
    }
    status(ctx, dir)
}

/// Stage-by-stage progress from the journal, with the kernel of every host.
fn status(ctx: &Ctx, dir: &Path) -> anyhow::Result<Exit> {
    let records =
        Journal::read_only(dir).with_context(|| format!("`{}` holds no rollout", dir.display()))?;
    let st = RolloutState::fold(&records);
    let saved = load_saved(dir).ok();
    let initial: std::collections::HashMap<String, String> = saved
        .as_ref()
        .and_then(|s| {
            let set = fleetward_engine::PolicySet::load(&s.policy_dir, &ctx.load_options()).ok()?;
            InventoryArgs {
                inventory: s.inventory.clone(),
                inventory_format: s.inventory_format.clone(),
                fields: s.fields.clone(),
            }
            .load(&set)
            .ok()
        })
        .map(|inv| inv.hosts.into_iter().map(|h| (h.name, h.kernel)).collect())
        .unwrap_or_default();
    report(ctx, &st, &initial, dir)?;
    Ok(exit_for(&st.phase))
}

#[derive(Serialize)]
struct StageRow {
    index: usize,
    name: String,
    hosts: usize,
    updated: usize,
    failed: usize,
    in_flight: usize,
    gate: Option<String>,
    reasons: Vec<String>,
}

fn rows(st: &RolloutState) -> Vec<StageRow> {
    st.stages
        .iter()
        .map(|p| {
            let hs: Vec<_> = p.hosts.iter().filter_map(|h| st.hosts.get(h)).collect();
            let (v, r) = st
                .gates
                .get(&p.index)
                .map(|(v, r)| {
                    (
                        serde_json::to_value(v)
                            .ok()
                            .and_then(|x| x.as_str().map(str::to_string)),
                        r.clone(),
                    )
                })
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
                gate: v,
                reasons: r,
            }
        })
        .collect()
}

fn report(
    ctx: &Ctx,
    st: &RolloutState,
    initial: &std::collections::HashMap<String, String>,
    dir: &Path,
) -> anyhow::Result<()> {
    let kernels: Vec<HostKernel> = st.kernels(&|h| initial.get(h).cloned());
    let running = Journal::holder(dir);
    let failed: Vec<serde_json::Value> = st
        .hosts
        .iter()
        .filter_map(|(n, h)| {
            h.failed.as_ref().map(|(step, out)| {
                serde_json::json!({ "host": n, "step": step, "output": out, "acknowledged": h.acknowledged })
            })
        })
        .collect();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "type": "status",
            "ok": true,
            "state_dir": dir.display().to_string(),
            "phase": st.phase,
            "controller": running,
            "target_kernel": st.target_kernel,
            "stage": st.stage,
            "pause_reason": st.pause_reason,
            "stages": rows(st),
            "failed": failed,
            "policies": st.policies,
            "held_for_drift": st.held,
            "hosts": kernels,
        })),
        Format::Human => {
            println!(
                "rollout of {}: {}{}",
                st.target_kernel,
                phase_word(&st.phase).to_uppercase(),
                match &running {
                    Some(h) => format!(" (controller running, {h})"),
                    None => String::new(),
                }
            );
            if let Some(r) = &st.pause_reason {
                println!("  reason: {r}");
            }
            println!();
            println!(
                "{:<14} {:>6} {:>8} {:>7} {:>10}  gate",
                "stage", "hosts", "updated", "failed", "in flight"
            );
            for r in rows(st) {
                println!(
                    "{:<14} {:>6} {:>8} {:>7} {:>10}  {}",
                    r.name,
                    r.hosts,
                    r.updated,
                    r.failed,
                    r.in_flight,
                    r.gate.as_deref().unwrap_or("-")
                );
                for x in &r.reasons {
                    println!("{:<14}   - {x}", "");
                }
            }
            if !failed.is_empty() {
                println!();
                println!("failed hosts (quarantined):");
                for (n, h) in st.hosts.iter().filter(|(_, h)| h.failed.is_some()) {
                    if let Some((step, out)) = &h.failed {
                        println!(
                            "  {n}: {} failed{}: {out}",
                            step_word(*step),
                            if h.acknowledged {
                                " (acknowledged)"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
            if !st.held.is_empty() {
                println!();
                println!(
                    "held back by drift (not in this rollout): {}",
                    st.held.len()
                );
                for h in &st.held {
                    println!("  {}: {}", h.host, h.reason);
                }
            }
            if matches!(st.phase, Phase::Aborted | Phase::Paused) {
                let mut by_kernel: std::collections::BTreeMap<&str, usize> = Default::default();
                for k in &kernels {
                    *by_kernel.entry(k.kernel.as_str()).or_default() += 1;
                }
                println!();
                println!("kernels now:");
                for (k, n) in by_kernel {
                    println!("  {k}: {n} host(s)");
                }
                if st.phase == Phase::Aborted {
                    println!();
                    println!("{:<24} {:<24} status", "host", "kernel");
                    for k in &kernels {
                        println!("{:<24} {:<24} {}", k.host, k.kernel, k.status);
                    }
                }
            }
            println!();
            println!(
                "policy sets that made decisions: {}",
                st.policies
                    .iter()
                    .map(|p| short(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

/// Collects alerts in memory (for simulations, which report them at the end).
#[derive(Default)]
pub struct Collected(pub Mutex<Vec<Alert>>);

impl AlertSink for Collected {
    fn send(&self, a: &Alert) {
        if let Ok(mut v) = self.0.lock() {
            v.push(a.clone());
        }
    }
}
