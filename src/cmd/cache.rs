//! `fleetward cache list|run|revert`: the runtime cache command catalogue of `cache.rhai`.
//! Parses arguments, calls `cache::session` and renders what it returns. `run --dry-run`
//! shows, per node, every round the command can build without a live reply, after the guard,
//! and connects to nothing.

use super::{Ctx, InventoryArgs};
use crate::output::{json_line, thousands, Exit, Format};
use anyhow::anyhow;
use fleetward_engine::cache::client::{RedisClient, RedisOptions};
use fleetward_engine::cache::guard::Safety;
use fleetward_engine::cache::session::{self, Paths};
use fleetward_engine::cache::{self, bind_params, select_nodes};
use fleetward_engine::exec::shell_quote;
use std::path::PathBuf;

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
        let cfg = set.cache_settings();
        Ok(RedisClient::new(RedisOptions {
            username: self.redis_user.clone().or_else(|| cfg.user.clone()),
            password: std::env::var(&cfg.password_env).ok(),
            connect_timeout: std::time::Duration::from_millis(self.connect_timeout_ms.max(1)),
            command_timeout: std::time::Duration::from_millis(self.command_timeout_ms.max(1)),
        })?)
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
            .unwrap_or_else(super::default_state_dir);
        Paths::in_dir(&dir, audit)
    }
}

/// Warns of reverts a killed run left behind.
fn report_orphans(paths: &Paths) {
    match session::orphans(paths) {
        Ok(p) => {
            for r in p {
                eprintln!(
                    "warning: pending revert: `{}` on `{}` back to `{}` was due at {} and the process that made the change ({}) is gone; `fleetward cache revert` applies it",
                    r.name, r.node.name, r.old, r.due, r.pid
                );
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
    let set = ctx.load(dir)?;
    let cat = cache::catalogue(&set)?;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({ "ok": true, "commands": cat })),
        Format::Human => {
            for (name, e) in &cat {
                println!("{name:<16} {:<9} {}", e.safety.word(), e.description);
                for (p, spec) in &e.params {
                    let default = match &spec.default {
                        Some(d) => format!("default {d}"),
                        None => "required".to_string(),
                    };
                    let kind = serde_json::to_value(spec.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    println!(
                        "{:<26} --param {p}=<{kind}>  ({default}){}",
                        "",
                        if spec.description.is_empty() {
                            String::new()
                        } else {
                            format!("  {}", spec.description)
                        }
                    );
                }
            }
        }
    }
    Ok(Exit::Ok)
}

fn line(c: &[String]) -> String {
    c.iter()
        .map(|x| shell_quote(x))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_command(ctx: &Ctx, a: RunArgs) -> anyhow::Result<Exit> {
    let paths = a.state.paths(a.audit_log.clone());
    report_orphans(&paths);
    let set = ctx.load(&a.policy_dir)?;
    let cat = cache::catalogue(&set)?;
    let entry = cat.get(&a.name).ok_or_else(|| {
        anyhow!(
            "no cache command `{}`; the catalogue has {}",
            a.name,
            cat.keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let given: Vec<(String, String)> = a
        .params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("--param `{p}` is not `k=v`"))
        })
        .collect::<anyhow::Result<_>>()?;
    let params = bind_params(entry, &given).map_err(|m| anyhow!("`{}`: {m}", a.name))?;
    let inv = a.inventory.load(&set)?;
    let selector = a
        .target
        .clone()
        .or_else(|| entry.target.clone())
        .ok_or_else(|| anyhow!("`{}` has no default target; pass --target", a.name))?;
    let nodes = select_nodes(&inv.hosts, &selector).map_err(|m| anyhow!(m))?;
    if !a.dry_run {
        return run_live(ctx, &a, &set, entry, &params, &nodes, &paths);
    }
    let dry = session::dry_run(&set, entry, &params, &nodes, a.confirm)?;
    let refused = dry
        .iter()
        .flat_map(|n| &n.rounds)
        .flat_map(|r| &r.send)
        .filter(|s| s.refused.is_some())
        .count();
    let needs_confirm = entry.safety == Safety::Dangerous && !a.confirm;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": refused == 0,
            "command": a.name,
            "dry_run": true,
            "needs_confirm": needs_confirm,
            "safety": entry.safety,
            "params": params,
            "nodes": dry,
        })),
        Format::Human => {
            println!(
                "dry run of `{}` ({}) on {} node(s); nothing is sent",
                a.name,
                entry.safety.word(),
                nodes.len()
            );
            for n in &dry {
                println!("{} ({}:{})", n.node.name, n.node.address, n.node.port);
                for r in &n.rounds {
                    println!("  round {}", r.n);
                    for s in &r.send {
                        match &s.refused {
                            None => println!("    {}", line(&s.command)),
                            Some(why) => println!("    REFUSED {}: {why}", line(&s.command)),
                        }
                        for need in &s.needs {
                            match need {
                                cache::guard::Need::Size { probe, max } => println!(
                                    "      checked first on the node: `{}` at most {max}",
                                    line(probe)
                                ),
                                cache::guard::Need::UsedMemoryAtMost { bytes } => println!(
                                    "      checked first on the node: used memory at most {bytes} bytes"
                                ),
                            }
                        }
                    }
                }
                if n.done {
                    println!("  done");
                } else if let Some(why) = &n.stops {
                    println!("  … {why}");
                }
            }
            if needs_confirm {
                println!("`{}` is dangerous: a real run needs --confirm", a.name);
            }
        }
    }
    Ok(if refused == 0 { Exit::Ok } else { Exit::Error })
}

/// Who runs the command, for the audit log: the sudo caller, the login name, or the uid.
fn user() -> String {
    use std::os::unix::fs::MetadataExt as _;
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| match std::fs::metadata("/proc/self") {
            Ok(m) => format!("uid {}", m.uid()),
            Err(_) => "unknown".into(),
        })
}

fn run_live(
    ctx: &Ctx,
    a: &RunArgs,
    set: &fleetward_engine::PolicySet,
    entry: &cache::Entry,
    params: &std::collections::BTreeMap<String, serde_json::Value>,
    nodes: &[cache::Node],
    paths: &Paths,
) -> anyhow::Result<Exit> {
    let client = a.conn.client(set)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = std::sync::Arc::clone(&stop);
        // If a handler is already installed (a second run in one process), waiting out the
        // timer still reverts.
        let _ = ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst));
    }
    let live = session::Live {
        set,
        name: &a.name,
        entry,
        params,
        nodes,
        confirmed: a.confirm,
        concurrency: a.concurrency,
        deadline: a.deadline_secs.map(std::time::Duration::from_secs),
        paths,
        user: user(),
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
            "safety": entry.safety,
            "params": params,
            "nodes": report.results,
            "failed": report.results.iter().filter(|r| r.error.is_some()).count(),
            "reverts": report.reverts.iter().map(|r| r.line()).collect::<Vec<_>>(),
            "revert_outcomes": report.reverts,
        })),
        Format::Human => {
            print!("{}", render(&a.name, &report.results));
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

/// Rows of every node as one table (columns in order of first appearance), then failures.
fn render(name: &str, results: &[fleetward_engine::cache::runner::NodeResult]) -> String {
    use std::fmt::Write as _;
    let mut cols: Vec<String> = Vec::new();
    for r in results {
        for row in &r.rows {
            if let Some(m) = row.as_object() {
                for k in m.keys() {
                    if !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
        }
    }
    let cell = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut table: Vec<Vec<String>> = vec![std::iter::once("node".to_string())
        .chain(cols.iter().cloned())
        .collect()];
    for r in results {
        for row in &r.rows {
            let mut line = vec![r.node.name.clone()];
            for c in &cols {
                line.push(cell(row.get(c)));
            }
            table.push(line);
        }
    }
    let widths: Vec<usize> = (0..=cols.len())
        .map(|i| {
            table
                .iter()
                .map(|l| l.get(i).map(|c| c.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut o = String::new();
    let ok = results.iter().filter(|r| r.error.is_none()).count();
    let _ = writeln!(o, "{name}: {ok} of {} node(s) answered", results.len());
    for l in &table {
        let line: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(o, "{}", line.join("  ").trim_end());
    }
    for r in results {
        if let Some(c) = &r.coverage {
            let _ = writeln!(o, "{}: examined {}", r.node.name, coverage_line(c));
        }
        if let Some(e) = &r.error {
            let _ = writeln!(
                o,
                "FAILED {} ({}:{}): {e}",
                r.node.name, r.node.address, r.node.port
            );
        }
        if let Some(c) = &r.cleanup {
            let _ = writeln!(o, "{}: after the timeout, {c}", r.node.name);
        }
    }
    o
}

/// One line for people: "100,000 of 1,000,000 keys (10%); stopped before ... (why)".
fn coverage_line(c: &fleetward_engine::cache::runner::Coverage) -> String {
    let mut s = match (&c.pattern, c.total) {
        (None, Some(t)) if t > 0 => format!(
            "{} of {} keys ({:.0}%)",
            thousands(c.examined),
            thousands(t),
            (c.examined as f64 / t as f64 * 100.0).min(100.0)
        ),
        (Some(p), total) => format!(
            "{} keys matching `{p}` of {} keys",
            thousands(c.examined),
            total.map_or_else(|| "?".into(), thousands)
        ),
        _ => format!("{} keys", thousands(c.examined)),
    };
    if c.complete {
        s.push_str("; the whole keyspace");
    } else {
        s.push_str("; stopped before the end of the keyspace");
        if let Some(why) = &c.stopped_by {
            s.push_str(&format!(" ({why})"));
        }
    }
    s
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
