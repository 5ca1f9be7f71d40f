//! `fleetward cache list|run`: the runtime cache command catalogue of `cache.rhai`. `run
//! --dry-run` shows, per node, exactly what the command's first round would send, after the
//! guard, and connects to nothing.

use super::{Ctx, InventoryArgs};
use crate::output::{json_line, Exit, Format};
use anyhow::{anyhow, bail};
use fleetward_engine::cache::guard::{self, Safety};
use fleetward_engine::cache::revert::{self, RevertEvent, RevertJournal};
use fleetward_engine::cache::{self, bind_params, select_nodes, Round};
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
    /// Apply the reverts that runs killed before their revert time left pending.
    Revert {
        #[command(flatten)]
        state: StateArgs,
        /// Timeout per node, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        command_timeout_ms: u64,
    },
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
    /// Where `write` and `dangerous` commands are recorded (JSON lines). Default:
    /// `cache-audit.jsonl` in the state directory.
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
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
    fn dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(super::default_state_dir)
    }

    fn reverts(&self) -> RevertJournal {
        RevertJournal::new(&self.dir().join("cache-reverts.jsonl"))
    }
}

/// Reports reverts a killed run left behind.
fn report_pending(state: &StateArgs) {
    match state.reverts().pending() {
        Ok(p) => {
            for r in p.iter().filter(|r| !revert::alive(r.pid)) {
                eprintln!(
                    "warning: pending revert: `{}` on `{}` back to `{}` was due at {} and the process that made the change ({}) is gone; `fleetward cache revert` applies it",
                    r.name, r.node.name, r.old, r.due, r.pid
                );
            }
        }
        Err(e) => eprintln!("warning: {e}"),
    }
}

/// Appends one audit record, flushed.
fn audit(path: &std::path::Path, record: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{record}")?;
    f.sync_data()?;
    Ok(())
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    match a.command {
        Sub::List { policy_dir } => list(ctx, &policy_dir),
        Sub::Revert {
            state,
            command_timeout_ms,
        } => revert_pending(ctx, &state, command_timeout_ms),
        Sub::Run(r) => run_command(ctx, *r),
    }
}

fn safety_word(s: Safety) -> &'static str {
    match s {
        Safety::Read => "read",
        Safety::Write => "write",
        Safety::Dangerous => "dangerous",
    }
}

fn list(ctx: &Ctx, dir: &std::path::Path) -> anyhow::Result<Exit> {
    let set = ctx.load(dir)?;
    let cat = cache::catalogue(&set)?;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({ "ok": true, "commands": cat })),
        Format::Human => {
            for (name, e) in &cat {
                println!("{name:<16} {:<9} {}", safety_word(e.safety), e.description);
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

fn run_command(ctx: &Ctx, a: RunArgs) -> anyhow::Result<Exit> {
    report_pending(&a.state);
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
        return run_live(ctx, &a, &set, entry, &params, &nodes);
    }
    let mut out = Vec::new();
    let mut refused = 0;
    for node in &nodes {
        let round = Round {
            n: 0,
            state: serde_json::Value::Null,
            replies: Vec::new(),
            node: node.clone(),
        };
        let step = cache::call_round(&set, entry, &params, &round)?;
        let mut sends = Vec::new();
        for cmd in &step.send {
            let verdict = guard::check(cmd, entry.safety, &entry.guards, a.confirm);
            if verdict.is_err() {
                refused += 1;
            }
            sends.push((cmd.clone(), verdict.err().map(|e| e.to_string())));
        }
        out.push((node.clone(), sends, step.done));
    }
    let needs_confirm = entry.safety == Safety::Dangerous && !a.confirm;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": refused == 0,
            "command": a.name,
            "dry_run": true,
            "needs_confirm": needs_confirm,
            "safety": entry.safety,
            "params": params,
            "nodes": out.iter().map(|(n, sends, done)| serde_json::json!({
                "node": n,
                "send": sends.iter().map(|(c, r)| serde_json::json!({ "command": c, "refused": r })).collect::<Vec<_>>(),
                "more_rounds": !done,
            })).collect::<Vec<_>>(),
        })),
        Format::Human => {
            println!(
                "dry run of `{}` ({}) on {} node(s); nothing is sent",
                a.name,
                safety_word(entry.safety),
                nodes.len()
            );
            for (n, sends, done) in &out {
                println!("{} ({}:{})", n.name, n.address, n.port);
                for (c, r) in sends {
                    let line = c
                        .iter()
                        .map(|x| shell_quote(x))
                        .collect::<Vec<_>>()
                        .join(" ");
                    match r {
                        None => println!("  {line}"),
                        Some(why) => println!("  REFUSED {line}: {why}"),
                    }
                }
                if !done {
                    println!("  … then further rounds, built from the replies");
                }
            }
            if needs_confirm {
                println!("`{}` is dangerous: a real run needs --confirm", a.name);
            }
        }
    }
    Ok(if refused == 0 { Exit::Ok } else { Exit::Error })
}

fn user() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into())
}

fn run_live(
    ctx: &Ctx,
    a: &RunArgs,
    set: &fleetward_engine::PolicySet,
    entry: &cache::Entry,
    params: &std::collections::BTreeMap<String, serde_json::Value>,
    nodes: &[cache::Node],
) -> anyhow::Result<Exit> {
    use fleetward_engine::cache::client::{RedisClient, RedisOptions};
    use fleetward_engine::cache::runner;
    if entry.safety == Safety::Dangerous && !a.confirm {
        bail!(
            "`{}` is a dangerous command; run it with --confirm (or --dry-run to see what it would send)",
            a.name
        );
    }
    let revert_secs = entry
        .revert_after
        .as_ref()
        .and_then(|p| params.get(p))
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    let cfg = set.cache_settings();
    let client = RedisClient::new(RedisOptions {
        username: a.redis_user.clone().or_else(|| cfg.user.clone()),
        password: std::env::var(&cfg.password_env).ok(),
        connect_timeout: std::time::Duration::from_millis(a.connect_timeout_ms.max(1)),
        command_timeout: std::time::Duration::from_millis(a.command_timeout_ms.max(1)),
    })?;
    let req = runner::Request {
        set,
        entry,
        params,
        confirmed: a.confirm,
        concurrency: a.concurrency,
    };
    let started = jiff::Timestamp::now();
    let results = runner::run(&req, nodes, &client, &fleetward_engine::clock::WallClock);
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    let reverts = if revert_secs > 0 {
        revert_later(a, entry, &results, revert_secs, &client)?
    } else {
        Vec::new()
    };
    if entry.safety != Safety::Read {
        let path = a
            .audit_log
            .clone()
            .unwrap_or_else(|| a.state.dir().join("cache-audit.jsonl"));
        audit(
            &path,
            &serde_json::json!({
                "at": started.to_string(),
                "user": user(),
                "command": a.name,
                "safety": entry.safety,
                "params": params,
                "confirmed": a.confirm,
                "policy": set.hash(),
                "nodes": results.iter().map(|r| serde_json::json!({
                    "node": r.node, "ok": r.error.is_none(), "error": r.error,
                    "commands": r.commands, "rows": r.rows,
                })).collect::<Vec<_>>(),
                "reverts": reverts,
            }),
        )
        .map_err(|e| anyhow!("cannot write the audit log `{}`: {e}", path.display()))?;
    }
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": failed == 0,
            "command": a.name,
            "safety": entry.safety,
            "params": params,
            "nodes": results,
            "failed": failed,
            "reverts": reverts,
        })),
        Format::Human => {
            print!("{}", render(&a.name, &results));
            for r in &reverts {
                println!("{r}");
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
        if let Some(e) = &r.error {
            let _ = writeln!(
                o,
                "FAILED {} ({}:{}): {e}",
                r.node.name, r.node.address, r.node.port
            );
        }
    }
    o
}

/// Records a revert per changed node, waits for the revert time (Ctrl-C reverts at once),
/// then sets every node back. Returns one line per node.
fn revert_later(
    a: &RunArgs,
    entry: &cache::Entry,
    results: &[fleetward_engine::cache::runner::NodeResult],
    secs: u64,
    client: &dyn fleetward_engine::cache::client::CacheClient,
) -> anyhow::Result<Vec<String>> {
    let journal = a.state.reverts();
    let due = jiff::Timestamp::now().checked_add(jiff::SignedDuration::from_secs(
        i64::try_from(secs).unwrap_or(i64::MAX),
    ))?;
    let pid = std::process::id();
    let mut todo = Vec::new();
    for r in results.iter().filter(|r| r.error.is_none()) {
        for row in &r.rows {
            let (Some(name), Some(old), Some(value)) = (
                row.get("name").and_then(|v| v.as_str()),
                row.get("old").and_then(|v| v.as_str()),
                row.get("value").and_then(|v| v.as_str()),
            ) else {
                continue;
            };
            let id = format!("{pid}-{}-{}-{}", r.node.name, name, due.as_second());
            journal.append(&RevertEvent::Pending {
                id: id.clone(),
                node: (&r.node).into(),
                name: name.to_string(),
                old: old.to_string(),
                value: value.to_string(),
                due: due.to_string(),
                pid,
            })?;
            todo.push((id, r.node.clone(), name.to_string(), old.to_string()));
        }
    }
    if todo.is_empty() {
        return Ok(Vec::new());
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = std::sync::Arc::clone(&stop);
        // If a handler is already installed (a second run in one process), waiting out the
        // timer still reverts.
        let _ = ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst));
    }
    eprintln!(
        "{} setting(s) changed; reverting at {due} (in {secs} s). Ctrl-C reverts now.",
        todo.len()
    );
    while jiff::Timestamp::now() < due && !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut lines = Vec::new();
    for (id, node, name, old) in todo {
        let result = set_back(client, &node, &name, &old, Some((entry, a.confirm)));
        journal.append(&RevertEvent::Reverted {
            id,
            error: result.as_ref().err().cloned(),
        })?;
        lines.push(match result {
            Ok(()) => format!("reverted `{name}` on `{}` to `{old}`", node.name),
            Err(e) => format!("REVERT FAILED: `{name}` on `{}` to `{old}`: {e}", node.name),
        });
    }
    Ok(lines)
}

/// Sets `name` back to `old` on `node` (through the entry's guard, when there is one), and
/// reads a server error in the reply as a failure.
fn set_back(
    client: &dyn fleetward_engine::cache::client::CacheClient,
    node: &cache::Node,
    name: &str,
    old: &str,
    guarded: Option<(&cache::Entry, bool)>,
) -> Result<(), String> {
    let cmd = vec![
        "CONFIG".to_string(),
        "SET".to_string(),
        name.to_string(),
        old.to_string(),
    ];
    if let Some((entry, confirmed)) = guarded {
        guard::check(&cmd, entry.safety, &entry.guards, confirmed).map_err(|e| e.to_string())?;
    }
    let replies = client.send(node, &[cmd]).map_err(|e| e.to_string())?;
    match replies.first() {
        Some(v) if v.get("error").is_some() => Err(v["error"].to_string()),
        _ => Ok(()),
    }
}

/// `cache revert`: applies reverts whose process is gone.
fn revert_pending(ctx: &Ctx, state: &StateArgs, timeout_ms: u64) -> anyhow::Result<Exit> {
    use fleetward_engine::cache::client::{RedisClient, RedisOptions};
    let journal = state.reverts();
    let todo: Vec<_> = journal
        .pending()?
        .into_iter()
        .filter(|r| !revert::alive(r.pid))
        .collect();
    let client = RedisClient::new(RedisOptions {
        username: None,
        password: std::env::var("FLEETWARD_REDIS_PASSWORD").ok(),
        command_timeout: std::time::Duration::from_millis(timeout_ms.max(1)),
        ..RedisOptions::default()
    })?;
    let mut out = Vec::new();
    let mut failed = 0;
    for r in todo {
        let node: cache::Node = (&r.node).into();
        let result = set_back(&client, &node, &r.name, &r.old, None);
        if result.is_err() {
            failed += 1;
        }
        journal.append(&RevertEvent::Reverted {
            id: r.id.clone(),
            error: result.as_ref().err().cloned(),
        })?;
        out.push(serde_json::json!({ "node": r.node, "name": r.name, "old": r.old, "error": result.err() }));
    }
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({ "ok": failed == 0, "reverted": out })),
        Format::Human => {
            if out.is_empty() {
                println!("no pending reverts");
            }
            for o in &out {
                println!("{o}");
            }
        }
    }
    Ok(if failed == 0 {
        Exit::Ok
    } else {
        Exit::Attention
    })
}
