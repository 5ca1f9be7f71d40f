//! `fleetward rollout start|status|pause|resume|abort|rollback`: the rollout controller over SSH, with
//! its journal in a state directory. `start` freezes the plan and the run's settings there, so
//! `resume` needs nothing but the directory.

use super::args::{DriftArgs, InventoryArgs, RunArgs, ShardArgs, SshArgs};
use super::Ctx;
use crate::output::{json_line, Exit, Format};
use crate::progress::Printer;
use fleetward_engine::rollout::controller::Request;
use fleetward_engine::rollout::rollback::Scope;
use fleetward_engine::rollout::session::{
    self, ResumeRequest, RollbackRequest, StartRequest, Status,
};
use fleetward_engine::rollout::settings::Settings;
use fleetward_engine::rollout::{render, Phase};
use std::path::PathBuf;
use std::sync::Arc;
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
    /// Put updated hosts back on the kernel each ran before the rollout: later stages first,
    /// in the stages' own batches (same in-flight and blast-radius limits), through the
    /// policy's `rollback_steps(host, previous)`: drain, one-shot boot of the previous entry,
    /// reboot, verify, post-checks, default entry, undrain. Journaled; `rollout resume`
    /// carries it on after a crash or pause. Hosts never rebooted are left alone; quarantined
    /// hosts too, unless named with --host.
    Rollback(RollbackArgs),
}

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Roll back only this stage's hosts, as `status` names it (`canary`, `wave 1`, …;
    /// repeatable).
    #[arg(long, value_name = "NAME", conflicts_with = "host")]
    pub stage: Vec<String>,
    /// Roll back only this host (repeatable); a quarantined host goes back only when named.
    #[arg(long, value_name = "NAME")]
    pub host: Vec<String>,
    /// Why, for the journal and the alert.
    #[arg(long, default_value = "operator request")]
    pub reason: String,
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
    pub drift: DriftArgs,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
}

#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Hosts that failed so far stop counting against the failure budget.
    #[arg(long)]
    pub acknowledge_failures: bool,
    /// Acknowledge this failed host (repeatable): it stops counting against the failure
    /// budget, and a rollout that completed with failures completes once none is left.
    #[arg(long, value_name = "HOST")]
    pub acknowledge: Vec<String>,
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

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    match a.command {
        Sub::Start(s) => start(ctx, *s),
        Sub::Status(s) => report(ctx, &session::status(&s.state_dir, &ctx.load_options())?),
        Sub::Pause(r) => request(ctx, r, false),
        Sub::Abort(r) => request(ctx, r, true),
        Sub::Resume(r) => resume(ctx, r),
        Sub::Rollback(r) => rollback(ctx, r),
    }
}

fn start(ctx: &Ctx, a: StartArgs) -> anyhow::Result<Exit> {
    let req = StartRequest {
        settings: Settings {
            version: 0,
            policy_dir: a.policy_dir,
            inventory: a.inventory.source(),
            baseline: a.baseline,
            ssh: a.ssh.settings(),
            run: a.run.settings(),
            drift_queue: None,
            shard: None,
        },
        drift: a.drift.choice(),
        kernel: a.kernel,
        seed: a.seed,
        shard: a.shard.request()?,
    };
    let printer = Arc::new(Printer::new(ctx.format, true));
    let st = session::start(&a.state.state_dir, req, &ctx.load_options(), printer)?;
    report(ctx, &st)
}

fn resume(ctx: &Ctx, a: ResumeArgs) -> anyhow::Result<Exit> {
    let req = ResumeRequest {
        acknowledge_failures: a.acknowledge_failures,
        acknowledge: a.acknowledge,
        accept_gate: a.accept_gate,
        webhook: a.webhook,
        bake: a.bake,
    };
    let printer = Arc::new(Printer::new(ctx.format, true));
    let st = session::resume(&a.state.state_dir, &req, &ctx.load_options(), printer)?;
    report(ctx, &st)
}

fn rollback(ctx: &Ctx, a: RollbackArgs) -> anyhow::Result<Exit> {
    let scope = if !a.host.is_empty() {
        Scope::Hosts(a.host)
    } else if !a.stage.is_empty() {
        Scope::Stages(a.stage)
    } else {
        Scope::All
    };
    let req = RollbackRequest {
        scope,
        reason: a.reason,
    };
    let printer = Arc::new(Printer::new(ctx.format, true));
    let st = session::rollback(&a.state.state_dir, &req, &ctx.load_options(), printer)?;
    report(ctx, &st)
}

fn request(ctx: &Ctx, a: RequestArgs, abort: bool) -> anyhow::Result<Exit> {
    let reason = a.reason.clone();
    let req = if abort {
        Request::Abort { reason }
    } else {
        Request::Pause { reason }
    };
    let dir = &a.state.state_dir;
    session::request(dir, &req, Duration::from_secs(a.wait))?;
    report(ctx, &session::status(dir, &ctx.load_options())?)
}

fn report(ctx: &Ctx, st: &Status) -> anyhow::Result<Exit> {
    match ctx.format {
        Format::Json => {
            let mut v = serde_json::to_value(st)?;
            v["type"] = "status".into();
            v["ok"] = true.into();
            json_line(&v);
        }
        Format::Human => print!("{}", render::status(st)),
    }
    Ok(match st.phase {
        Phase::Completed => Exit::Ok,
        Phase::RolledBack if st.rollback.as_ref().is_some_and(|r| r.failed.is_empty()) => Exit::Ok,
        Phase::RolledBack => Exit::Attention,
        Phase::Paused | Phase::Running | Phase::NotStarted | Phase::CompletedWithFailures => {
            Exit::Attention
        }
        Phase::Aborted => Exit::Failed,
    })
}
