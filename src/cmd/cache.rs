//! `fleetward cache list|run|revert`: the runtime cache command catalogue of `cache.rhai`.
//! Parses arguments, calls `cache::session` and renders what it returns. `run --dry-run`
//! shows, per node, every round the command can build without a live reply, after the guard,
//! and connects to nothing.

use super::{Ctx, InventoryArgs};
use crate::output::{json_line, Exit, Format};
use fleetward_engine::cache::client::{RedisClient, RedisOptions};
use fleetward_engine::cache::guard::Safety;
use fleetward_engine::cache::session::{self, Paths};
use fleetward_engine::cache::{self, render};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// The catalogue: each command with its parameters and safety class.
    List {
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
    },
    /// Run a catalogue command on the cache nodes a target selects.
    Run(Box<RunArgs>),
    /// Apply the reverts that killed runs left pending (each through the guard).
    Revert(Box<RevertArgs>),
}

/// How to reach the cache nodes.
#[derive(clap::Args, Debug)]
pub struct ConnArgs {
    /// ACL user for the cache nodes. Default: `[cache] user` in `fleetward.toml`; the password
    /// comes from the environment variable `[cache] password_env` names
    /// (`FLEETWARD_REDIS_PASSWORD` by default).
    #[arg(long)]
    pub redis_user: Option<String>,
    /// Connect timeout per node, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub connect_timeout_ms: u64,
    /// Timeout per round of commands, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub command_timeout_ms: u64,
}

impl ConnArgs {
    fn client(&self, set: &fleetward_engine::PolicySet) -> anyhow::Result<RedisClient> {
        Ok(RedisClient::new(RedisOptions::for_set(
            set,
            self.redis_user.clone(),
            Duration::from_millis(self.connect_timeout_ms),
            Duration::from_millis(self.command_timeout_ms),
        ))?)
    }
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The catalogue command.
    pub name: String,
    #[arg(long, default_value = "policies")]
    pub policy_dir: PathBuf,
    #[command(flatten)]
    pub inventory: InventoryArgs,
    /// A parameter, `k=v`; repeatable.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// Which nodes: `key=value[,key=value]` over host fields, `tag` and facts. Default: the
    /// entry's `target`.
    #[arg(long)]
    pub target: Option<String>,
    /// Print the exact commands for each node and connect to nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a `dangerous` command.
    #[arg(long)]
    pub confirm: bool,
    /// Nodes worked on at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The whole command must finish on each node within this many seconds. Default: the
    /// entry's `deadline_secs` guard.
    #[arg(long)]
    pub deadline_secs: Option<u64>,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Where `write` and `dangerous` commands are recorded (JSON lines). Default:
    /// `cache-audit.jsonl` in the state directory.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(clap::Args, Debug)]
pub struct RevertArgs {
    /// The policy set whose catalogue guards the reverts and whose `[cache]` settings give the
    /// credentials.
    #[arg(long, default_value = "policies")]
    pub policy_dir: PathBuf,
    /// Also revert settings outside the `write` allowlist (a journal entry can be edited by
    /// hand: such a revert is refused without this).
    #[arg(long)]
    pub confirm: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(clap::Args, Debug)]
pub struct StateArgs {
    /// Where the audit log and the revert journal live. Default: `$XDG_STATE_HOME/fleetward`
    /// (or `~/.local/state/fleetward`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    fn paths(&self, audit: Option<PathBuf>) -> Paths {
        let dir = self
            .state_dir
            .clone()
            .unwrap_or_else(fleetward_engine::paths::default_state_dir);
        Paths::in_dir(&dir, audit)
    }
}

/// Warns of reverts a killed run left behind.
fn report_orphans(paths: &Paths) {
    match session::orphans(paths) {
        Ok(p) => {
            for r in p {
                eprintln!("warning: {}", render::orphan(&r));
            }
        }
        Err(e) => eprintln!("warning: {e}"),
    }
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    match a.command {
        Sub::List { policy_dir } => list(ctx, &policy_dir),
        Sub::Revert(r) => revert(ctx, &r),
        Sub::Run(r) => run_command(ctx, *r),
    }
}

fn list(ctx: &Ctx, dir: &std::path::Path) -> anyhow::Result<Exit> {
    let cat = cache::catalogue(&ctx.load(dir)?)?;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({ "ok": true, "commands": cat })),
        Format::Human => print!("{}", render::catalogue(&cat)),
    }
    Ok(Exit::Ok)
}

fn run_command(ctx: &Ctx, a: RunArgs) -> anyhow::Result<Exit> {
    let paths = a.state.paths(a.audit_log.clone());
    report_orphans(&paths);
    let set = ctx.load(&a.policy_dir)?;
    let inv = session::invoke(
        &set,
        &a.inventory.source(),
        &a.name,
        &a.params,
        a.target.as_deref(),
    )?;
    if !a.dry_run {
        return run_live(ctx, &a, &set, &inv, &paths);
    }
    let dry = session::dry_run(&set, &inv.entry, &inv.params, &inv.nodes, a.confirm)?;
    let refused = dry
        .iter()
        .flat_map(|n| &n.rounds)
        .flat_map(|r| &r.send)
        .filter(|s| s.refused.is_some())
        .count();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": refused == 0,
            "command": a.name,
            "dry_run": true,
            "needs_confirm": inv.entry.safety == Safety::Dangerous && !a.confirm,
            "safety": inv.entry.safety,
            "params": inv.params,
            "nodes": dry,
        })),
        Format::Human => print!("{}", render::dry_run(&a.name, &inv.entry, &dry, a.confirm)),
    }
    Ok(if refused == 0 { Exit::Ok } else { Exit::Error })
}

fn run_live(
    ctx: &Ctx,
    a: &RunArgs,
    set: &fleetward_engine::PolicySet,
    inv: &session::Invocation,
    paths: &Paths,
) -> anyhow::Result<Exit> {
    let client = a.conn.client(set)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        // If a handler is already installed (a second run in one process), waiting out the
        // timer still reverts.
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let live = session::Live {
        set,
        name: &a.name,
        entry: &inv.entry,
        params: &inv.params,
        nodes: &inv.nodes,
        confirmed: a.confirm,
        concurrency: a.concurrency,
        deadline: a.deadline_secs.map(Duration::from_secs),
        paths,
        user: session::user(),
    };
    let report = session::run_live(
        &live,
        &client,
        &fleetward_engine::clock::WallClock,
        &stop,
        &|n, due, secs| {
            eprintln!(
                "{n} setting(s) changed; reverting at {due} (in {secs} s). Ctrl-C reverts now."
            )
        },
    )?;
    let failed = report.results.iter().filter(|r| r.error.is_some()).count()
        + report.reverts.iter().filter(|r| r.error.is_some()).count();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": failed == 0,
            "command": a.name,
            "safety": inv.entry.safety,
            "params": inv.params,
            "nodes": report.results,
            "failed": report.results.iter().filter(|r| r.error.is_some()).count(),
            "reverts": report.reverts.iter().map(|r| r.line()).collect::<Vec<_>>(),
            "revert_outcomes": report.reverts,
        })),
        Format::Human => {
            print!("{}", render::results(&a.name, &report.results));
            for r in &report.reverts {
                println!("{}", r.line());
            }
        }
    }
    Ok(if failed == 0 {
        Exit::Ok
    } else {
        Exit::Attention
    })
}

/// `cache revert`: settles the reverts whose process is gone.
fn revert(ctx: &Ctx, a: &RevertArgs) -> anyhow::Result<Exit> {
    let set = ctx.load(&a.policy_dir)?;
    let cat = cache::catalogue(&set)?;
    let client = a.conn.client(&set)?;
    let out = session::revert_orphans(&a.state.paths(None), &cat, &client, a.confirm)?;
    let failed = out.iter().filter(|o| o.error.is_some()).count();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({ "ok": failed == 0, "reverted": out })),
        Format::Human => {
            if out.is_empty() {
                println!("no pending reverts");
            }
            for o in &out {
                println!("{}", o.line());
            }
        }
    }
    Ok(if failed == 0 {
        Exit::Ok
    } else {
        Exit::Attention
    })
}
