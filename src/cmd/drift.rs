//! `fleetward drift audit|remediate`: compare every host with `declared.toml`, classify each
//! difference with `drift.rhai`, and fix the safe ones. A dry run unless `--apply`.

use super::rollout::SshArgs;
use super::{default_state_dir, Ctx, FleetArgs};
use crate::output::{json_line, Exit, Format};
use anyhow::{anyhow, Context};
use fleetward_engine::drift::audit::{self, CollectOptions, HostStatus, Report};
use fleetward_engine::drift::declared::{self, Declared};
use fleetward_engine::drift::frame::{self, Summary};
use fleetward_engine::drift::remediate::{self, HostFix, HostOutcome};
use fleetward_engine::drift::{sim, store, Class};
use fleetward_engine::exec::sim::{Faults, SimExecutor, Timing};
use fleetward_engine::exec::{Executor, RemoteCommand};
use fleetward_engine::model::Host;
use fleetward_engine::PolicySet;
use jiff::Timestamp;
use std::collections::HashMap;
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
        Sub::Audit(a) => run_audit(ctx, &a.common),
        Sub::Remediate(a) => run_remediate(ctx, &a.common, a.apply),
    }
}

/// Everything an audit needs, loaded once: the policy set is never reloaded mid-run.
struct Setup {
    set: PolicySet,
    declared: Declared,
    hosts: Vec<Host>,
    exec: Box<dyn Executor>,
    state_dir: PathBuf,
    now: Timestamp,
    opts: CollectOptions,
    warnings: Vec<String>,
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

fn setup(ctx: &Ctx, c: &Common) -> anyhow::Result<Setup> {
    let set = ctx.load(&c.fleet.policy_dir)?;
    if !set.defines("drift", "classify", 1) {
        return Err(anyhow!(
            "`{}` has no drift policy: add `drift.rhai` with `fn classify(item)`",
            c.fleet.policy_dir.display()
        ));
    }
    let inv = c.fleet.inventory.load(&set)?;
    let path = c
        .declared
        .clone()
        .unwrap_or_else(|| c.fleet.policy_dir.join(declared::FILE_NAME));
    let declared = Declared::load(&path)?;
    let mut warnings: Vec<String> = declared
        .unknown_hosts(&inv.hosts)
        .into_iter()
        .map(|h| {
            format!(
                "`{}` declares host `{h}`, which the inventory does not have",
                path.display()
            )
        })
        .collect();
    let mut hosts = inv.hosts;
    if !c.hosts.is_empty() {
        for h in &c.hosts {
            if !hosts.iter().any(|x| &x.name == h) {
                return Err(anyhow!("--host `{h}` is not in the inventory"));
            }
        }
        hosts.retain(|h| c.hosts.contains(&h.name));
    }
    let now = match &c.as_of {
        Some(s) => parse_as_of(s)?,
        None => Timestamp::from_second(Timestamp::now().as_second())?,
    };
    let state_dir = c.state_dir.clone().unwrap_or_else(default_state_dir);
    let exec: Box<dyn Executor> = match &c.simulate {
        Some(file) => {
            let simfile = sim::SimFile::load(file).map_err(|e| anyhow!(e))?;
            let (tables, unreachable) =
                sim::tables(&declared, &hosts, &simfile).map_err(|e| anyhow!(e))?;
            let faults = Faults {
                unreachable,
                ..Faults::default()
            };
            let timing = Timing {
                command: Duration::ZERO,
                ..Timing::default()
            };
            Box::new(SimExecutor::new(&hosts, faults, timing, now).with_drift(tables))
        }
        None => Box::new(super::rollout::executor(&c.ssh, &state_dir)?),
    };
    if hosts.is_empty() {
        warnings.push("no hosts to audit".into());
    }
    Ok(Setup {
        set,
        declared,
        hosts,
        exec,
        state_dir,
        now,
        opts: CollectOptions {
            workers: c.workers.max(1),
            timeout: Duration::from_secs(c.timeout.max(1)),
        },
        warnings,
    })
}

fn progress_bar(ctx: &Ctx, n: usize, what: &str) -> indicatif::ProgressBar {
    if ctx.format == Format::Json {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} {elapsed}")
    {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    pb
}

fn audit_hosts(ctx: &Ctx, s: &Setup, hosts: &[Host]) -> anyhow::Result<Report> {
    let pb = progress_bar(ctx, hosts.len(), "auditing");
    let r = audit::audit(
        &s.set,
        &s.declared,
        s.exec.as_ref(),
        hosts,
        &s.opts,
        s.now,
        &|_| pb.inc(1),
    )?;
    pb.finish_and_clear();
    Ok(r)
}

fn run_audit(ctx: &Ctx, c: &Common) -> anyhow::Result<Exit> {
    let s = setup(ctx, c)?;
    let report = audit_hosts(ctx, &s, &s.hosts)?;
    let queue = save(&s, c, &report)?;
    let summary = frame::summary(&report)?;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "summary": summary,
            "at": report.at,
            "policy": report.policy,
            "declared": { "file": s.declared.path.display().to_string(), "hash": report.declared },
            "hosts": report.hosts.iter().filter(|h| h.status != HostStatus::Clean || !h.findings.is_empty()).collect::<Vec<_>>(),
            "review_queue": { "file": store::queue_path(&s.state_dir).display().to_string(), "items": queue.items.len(), "held": queue.held },
            "warnings": s.warnings,
        })),
        Format::Human => {
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", render_audit(&report, &summary, &s, c.all));
            println!(
                "review queue: {} item(s) in {}; {} host(s) held back from rollouts",
                queue.items.len(),
                store::queue_path(&s.state_dir).display(),
                queue.held.len()
            );
        }
    }
    Ok(if report.needs_attention() {
        Exit::Attention
    } else {
        Exit::Ok
    })
}

/// Saves the audit and its review queue. An audit of some hosts (`--host`) updates those
/// hosts in the last full audit instead of replacing it, so other hosts stay held.
fn save(s: &Setup, c: &Common, report: &Report) -> anyhow::Result<store::Queue> {
    let mut whole = report.clone();
    if !c.hosts.is_empty() {
        if let Some(mut prev) = store::load_audit(&s.state_dir)? {
            prev.merge(report.clone());
            whole = prev;
        }
    }
    Ok(store::save(&s.state_dir, &whole)?)
}

fn short(h: &str) -> &str {
    &h[..12.min(h.len())]
}

/// The human audit: header, fleet summary, then each host that needs attention.
fn render_audit(r: &Report, sm: &Summary, s: &Setup, all: bool) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "drift audit  ·  {} hosts, {} declared facts checked  ·  as of {}",
        sm.hosts, sm.checked, r.at
    );
    let _ = writeln!(
        o,
        "      declared {} ({})  ·  policy {}",
        s.declared.path.display(),
        short(&r.declared),
        short(&r.policy)
    );
    let _ = writeln!(
        o,
        "hosts: {} clean, {} drifting, {} with unreadable facts, {} unreachable",
        sm.clean, sm.drifting, sm.unknown, sm.unreachable
    );
    let classes = ["auto", "review", "acknowledged", "unknown"];
    let n = |m: &std::collections::BTreeMap<String, usize>, c: &str| m.get(c).copied().unwrap_or(0);
    let _ = writeln!(
        o,
        "findings: {} auto, {} review, {} acknowledged, {} unknown",
        n(&sm.by_class, "auto"),
        n(&sm.by_class, "review"),
        n(&sm.by_class, "acknowledged"),
        n(&sm.by_class, "unknown")
    );
    for (title, table) in [("kind", &sm.by_kind), ("group", &sm.by_group)] {
        if table.is_empty() {
            continue;
        }
        let _ = writeln!(o);
        let _ = write!(o, "{title:<20}");
        for c in classes {
            let _ = write!(o, " {c:>12}");
        }
        let _ = writeln!(o);
        for (k, m) in table {
            let _ = write!(o, "{k:<20}");
            for c in classes {
                let _ = write!(o, " {:>12}", n(m, c));
            }
            let _ = writeln!(o);
        }
    }
    let shown: Vec<_> = r
        .hosts
        .iter()
        .filter(|h| h.status != HostStatus::Clean)
        .collect();
    let limit = if all { usize::MAX } else { 50 };
    for h in shown.iter().take(limit) {
        let _ = writeln!(o);
        match &h.error {
            Some(e) => {
                let _ = writeln!(o, "{}  {}  unreachable: {e}", h.host, h.group);
            }
            None => {
                let status = match h.status {
                    HostStatus::Drift => "drift",
                    HostStatus::Unknown => "facts unreadable",
                    HostStatus::Clean => "clean",
                    HostStatus::Unreachable => "unreachable",
                };
                let _ = writeln!(o, "{}  {}  {status}", h.host, h.group);
            }
        }
        for f in h.findings.iter().filter(|f| f.class != Class::Acknowledged) {
            let _ = writeln!(
                o,
                "  {:<8} {:<40} declared `{}`, actual `{}`",
                f.class.as_str(),
                f.subject(),
                f.declared,
                f.actual
            );
            let _ = writeln!(o, "  {:<8} {}", "", f.reason);
        }
    }
    if shown.len() > limit {
        let _ = writeln!(
            o,
            "\n… and {} more host(s); `--all` lists them, `-o json` gives everything",
            shown.len() - limit
        );
    }
    let _ = writeln!(o);
    o
}

fn run_remediate(ctx: &Ctx, c: &Common, apply: bool) -> anyhow::Result<Exit> {
    let s = setup(ctx, c)?;
    let mut report = audit_hosts(ctx, &s, &s.hosts)?;
    let fixes = remediate::fixes(&report);
    if !apply {
        let queue = save(&s, c, &report)?;
        match ctx.format {
            Format::Json => json_line(&serde_json::json!({
                "ok": true,
                "dry_run": true,
                "at": report.at,
                "policy": report.policy,
                "fixes": fixes,
                "review": queue.items,
                "held": queue.held,
                "review_queue": store::queue_path(&s.state_dir).display().to_string(),
            })),
            Format::Human => {
                print!("{}", render_fixes(&fixes));
                print!("{}", render_review(&report));
                println!(
                    "dry run: nothing was changed; `--apply` runs the {} command(s) above",
                    fixes.iter().map(|f| f.commands.len()).sum::<usize>()
                );
            }
        }
        let pending = !fixes.is_empty() || report.needs_attention();
        return Ok(if pending { Exit::Attention } else { Exit::Ok });
    }

    // Apply: only the commands of `auto` findings, decided above by the set loaded at start.
    let by_name: HashMap<&str, &Host> = s.hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    let pb = progress_bar(ctx, fixes.len(), "remediating");
    let outcomes = remediate::apply(
        s.exec.as_ref(),
        &by_name,
        &fixes,
        s.opts.workers,
        s.opts.timeout,
        &|_| pb.inc(1),
    );
    pb.finish_and_clear();
    for o in &outcomes {
        store::log(
            &s.state_dir,
            &serde_json::json!({
                "at": Timestamp::now().to_string(),
                "policy": report.policy,
                "outcome": o,
            }),
        )?;
    }
    // Re-audit the hosts that were touched, with the same set.
    let touched: Vec<Host> = s
        .hosts
        .iter()
        .filter(|h| fixes.iter().any(|f| f.host == h.name))
        .cloned()
        .collect();
    let after = audit_hosts(ctx, &s, &touched)?;
    let results: Vec<serde_json::Value> = fixes
        .iter()
        .map(|f| {
            let o = outcomes.iter().find(|o| o.host == f.host);
            let h = after.hosts.iter().find(|h| h.host == f.host);
            let remaining: Vec<String> = h
                .map(|h| {
                    h.findings
                        .iter()
                        .filter(|x| {
                            x.class != Class::Acknowledged && f.fixes.contains(&x.subject())
                        })
                        .map(|x| x.subject())
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "host": f.host,
                "fixes": f.fixes,
                "runs": o.map(|o| o.runs.clone()).unwrap_or_default(),
                "failed": o.and_then(|o| o.failed.clone()),
                "converged": o.is_some_and(|o| o.failed.is_none()) && remaining.is_empty(),
                "remaining": remaining,
            })
        })
        .collect();
    report.merge(after);
    let queue = save(&s, c, &report)?;
    let all_converged = results.iter().all(|r| r["converged"] == true);
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": true,
            "dry_run": false,
            "policy": report.policy,
            "results": results,
            "review": queue.items,
            "held": queue.held,
            "review_queue": store::queue_path(&s.state_dir).display().to_string(),
        })),
        Format::Human => {
            print!("{}", render_outcomes(&fixes, &outcomes, &results));
            print!("{}", render_review(&report));
        }
    }
    Ok(if all_converged && !report.needs_attention() {
        Exit::Ok
    } else {
        Exit::Attention
    })
}

fn render_fixes(fixes: &[HostFix]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "auto fixes: {} host(s)", fixes.len());
    for f in fixes {
        let _ = writeln!(o, "{}  ({})", f.host, f.fixes.join(", "));
        for c in &f.commands {
            let _ = writeln!(
                o,
                "  $ {}",
                RemoteCommand::new(c.iter().cloned()).shell_line()
            );
        }
    }
    let _ = writeln!(o);
    o
}

fn render_outcomes(
    fixes: &[HostFix],
    outcomes: &[HostOutcome],
    results: &[serde_json::Value],
) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let converged = results.iter().filter(|r| r["converged"] == true).count();
    let _ = writeln!(
        o,
        "applied: {} host(s), {converged} converged on re-audit",
        fixes.len()
    );
    for (f, r) in fixes.iter().zip(results) {
        let out = outcomes.iter().find(|x| x.host == f.host);
        let state = if r["converged"] == true {
            "converged".to_string()
        } else if let Some(e) = out.and_then(|x| x.failed.as_deref()) {
            format!("FAILED: {e}")
        } else {
            format!("not converged: {}", r["remaining"])
        };
        let _ = writeln!(o, "{}  {state}", f.host);
        for run in out.map(|x| x.runs.as_slice()).unwrap_or(&[]) {
            let _ = writeln!(
                o,
                "  $ {}  → {}",
                RemoteCommand::new(run.argv.iter().cloned()).shell_line(),
                run.status
                    .map(|s| format!("exit {s}"))
                    .unwrap_or_else(|| "did not finish".into())
            );
        }
    }
    let _ = writeln!(o);
    o
}

fn render_review(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let items: Vec<_> = r
        .hosts
        .iter()
        .flat_map(|h| {
            h.findings
                .iter()
                .filter(|f| f.class == Class::Review)
                .map(move |f| (h, f))
        })
        .collect();
    let _ = writeln!(o, "for review (queued, never run): {} item(s)", items.len());
    for (h, f) in items {
        let _ = writeln!(o, "  {:<20} {:<40} {}", h.host, f.subject(), f.reason);
    }
    let unreadable: usize = r.hosts.iter().map(|h| h.count(Class::Unknown)).sum();
    let unreachable = r
        .hosts
        .iter()
        .filter(|h| h.status == HostStatus::Unreachable)
        .count();
    if unreadable + unreachable > 0 {
        let _ = writeln!(
            o,
            "not audited: {unreachable} unreachable host(s), {unreadable} unreadable fact(s)"
        );
    }
    o
}
