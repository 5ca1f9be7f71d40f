//! `fleetward drift audit|remediate`: compare every host with `declared.toml`, classify each
//! difference with `drift.rhai`, and fix the safe ones. A dry run unless `--apply`.

use super::args::{FleetArgs, SshArgs};
use super::Ctx;
use crate::output::{json_line, Exit, Format};
use anyhow::Context;
use fleetward_engine::drift::audit::HostStatus;
use fleetward_engine::drift::session::{self, Progress, Setup};
use fleetward_engine::drift::{render, store};
use fleetward_engine::exec::Executor;
use jiff::Timestamp;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Sub,
}

#[derive(clap::Subcommand, Debug)]
pub enum Sub {
    /// Compare every host with its declared state: a fleet summary (by kind, group and class)
    /// and each host's findings. Exit 0 when nothing drifted, 2 when something did.
    Audit(Box<AuditArgs>),
    /// Audit, then show the exact commands that fix the safe (`auto`) findings; with
    /// `--apply`, run them and re-audit those hosts. `review` items are queued, never run.
    Remediate(Box<RemediateArgs>),
}

#[derive(clap::Args, Debug)]
pub struct Common {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The declared-state file. Default: `declared.toml` in the policy directory.
    #[arg(long)]
    pub declared: Option<PathBuf>,
    /// Audit simulated hosts described by this file instead of reaching hosts over SSH.
    #[arg(long, value_name = "FILE")]
    pub simulate: Option<PathBuf>,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Hosts audited (or remediated) at once at most.
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// Seconds each host's facts command, and each fix command, may take.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Judge acknowledgements as of this time (RFC 3339, or a date). Default: now.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Only this host; repeatable.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Where the audit, the review queue and the remediation log live. Default:
    /// `$XDG_STATE_HOME/fleetward` (or `~/.local/state/fleetward`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// List every drifting host in human output (default: the first 50).
    #[arg(long)]
    pub all: bool,
}

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(clap::Args, Debug)]
pub struct RemediateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Run the `auto` fixes (default: only show them).
    #[arg(long)]
    pub apply: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    match a.command {
        Sub::Audit(a) => audit(ctx, &a.common),
        Sub::Remediate(a) => remediate(ctx, &a.common, a.apply),
    }
}

fn parse_as_of(s: &str) -> anyhow::Result<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let d: jiff::civil::Date = s.parse().with_context(|| {
        format!("--as-of `{s}` is not an RFC 3339 time or a date such as `2026-12-31`")
    })?;
    Ok(d.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}

/// Loads everything once and picks the executor: simulated hosts or SSH.
fn setup(ctx: &Ctx, c: &Common) -> anyhow::Result<(Setup, Box<dyn Executor>)> {
    let req = session::Request {
        policy_dir: c.fleet.policy_dir.clone(),
        inventory: c.fleet.inventory.source(),
        declared: c.declared.clone(),
        hosts: c.hosts.clone(),
        as_of: c.as_of.as_deref().map(parse_as_of).transpose()?,
        state_dir: c
            .state_dir
            .clone()
            .unwrap_or_else(fleetward_engine::paths::default_state_dir),
        workers: c.workers,
        timeout: Duration::from_secs(c.timeout),
    };
    let s = session::prepare(&req, &ctx.load_options())?;
    let exec: Box<dyn Executor> = match &c.simulate {
        Some(file) => Box::new(fleetward_engine::sim::drift::executor(
            file,
            &s.declared,
            &s.hosts,
            s.now,
        )?),
        None => Box::new(c.ssh.settings().executor(&s.state_dir)?),
    };
    Ok((s, exec))
}

/// A progress bar per phase (none with JSON output).
struct Bar(Option<std::sync::Mutex<indicatif::ProgressBar>>);

impl Bar {
    fn new(ctx: &Ctx) -> Self {
        Bar((ctx.format == Format::Human)
            .then(|| std::sync::Mutex::new(indicatif::ProgressBar::hidden())))
    }

    fn with(&self, f: impl FnOnce(&mut indicatif::ProgressBar)) {
        if let Some(m) = &self.0 {
            if let Ok(mut b) = m.lock() {
                f(&mut b);
            }
        }
    }
}

impl Progress for Bar {
    fn start(&self, what: &str, hosts: usize) {
        self.with(|b| {
            *b = indicatif::ProgressBar::new(hosts as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} {elapsed}")
            {
                b.set_style(style);
            }
            b.set_message(what.to_string());
        });
    }
    fn step(&self) {
        self.with(|b| b.inc(1));
    }
    fn done(&self) {
        self.with(|b| b.finish_and_clear());
    }
}

fn audit(ctx: &Ctx, c: &Common) -> anyhow::Result<Exit> {
    let (s, exec) = setup(ctx, c)?;
    let a = session::audit(&s, exec.as_ref(), &Bar::new(ctx))?;
    let queue_file = store::queue_path(&s.state_dir).display().to_string();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "summary": a.summary,
            "at": a.report.at,
            "policy": a.report.policy,
            "declared": { "file": s.declared.path.display().to_string(), "hash": a.report.declared },
            "hosts": a.report.hosts.iter().filter(|h| h.status != HostStatus::Clean || !h.findings.is_empty()).collect::<Vec<_>>(),
            "review_queue": { "file": queue_file, "items": a.queue.items.len(), "held": a.queue.held },
            "warnings": s.warnings,
        })),
        Format::Human => {
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            print!(
                "{}",
                render::audit(&a.report, &a.summary, &s.declared.path, c.all)
            );
            println!(
                "review queue: {} item(s) in {queue_file}; {} host(s) held back from rollouts",
                a.queue.items.len(),
                a.queue.held.len()
            );
        }
    }
    Ok(if a.report.needs_attention() {
        Exit::Attention
    } else {
        Exit::Ok
    })
}

fn remediate(ctx: &Ctx, c: &Common, apply: bool) -> anyhow::Result<Exit> {
    let (s, exec) = setup(ctx, c)?;
    let r = session::remediate(&s, exec.as_ref(), apply, &Bar::new(ctx))?;
    let queue_file = store::queue_path(&s.state_dir).display().to_string();
    match (ctx.format, &r.results) {
        (Format::Json, None) => json_line(&serde_json::json!({
            "ok": true,
            "dry_run": true,
            "at": r.report.at,
            "policy": r.report.policy,
            "fixes": r.fixes,
            "review": r.review(),
            "held": r.queue.held,
            "review_queue": queue_file,
        })),
        (Format::Json, Some(results)) => json_line(&serde_json::json!({
            "ok": true,
            "dry_run": false,
            "policy": r.report.policy,
            "results": results,
            "review": r.review(),
            "held": r.queue.held,
            "review_queue": queue_file,
        })),
        (Format::Human, None) => {
            print!("{}", render::fixes(&r.fixes));
            print!("{}", render::review(&r.report));
            println!(
                "dry run: nothing was changed; `--apply` runs the {} command(s) above",
                r.fixes.iter().map(|f| f.commands.len()).sum::<usize>()
            );
        }
        (Format::Human, Some(results)) => {
            print!("{}", render::outcomes(&r.fixes, &r.outcomes, results));
            print!("{}", render::review(&r.report));
        }
    }
    Ok(if r.settled() {
        Exit::Ok
    } else {
        Exit::Attention
    })
}
