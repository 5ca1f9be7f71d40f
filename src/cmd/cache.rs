//! `fleetward cache list|run`: the runtime cache command catalogue of `cache.rhai`. `run
//! --dry-run` shows, per node, exactly what the command's first round would send, after the
//! guard, and connects to nothing.

use super::{Ctx, InventoryArgs};
use crate::output::{json_line, Exit, Format};
use anyhow::{anyhow, bail};
use fleetward_engine::cache::guard::{self, Safety};
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
    /// ACL user for the cache nodes; the password comes from `FLEETWARD_REDIS_PASSWORD`.
    #[arg(long)]
    pub redis_user: Option<String>,
    /// Connect timeout per node, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub connect_timeout_ms: u64,
    /// Timeout per round of commands, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub command_timeout_ms: u64,
    /// Where `write` and `dangerous` commands are recorded (JSON lines). Default:
    /// `$XDG_STATE_HOME/fleetward/cache-audit.jsonl` (or `~/.local/state/...`).
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
}

fn default_audit_log() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("fleetward/cache-audit.jsonl")
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
    if let Some(p) = &entry.revert_after {
        if params.get(p).and_then(|v| v.as_i64()).unwrap_or(0) > 0 {
            bail!("automatic revert (`{p}`) is not available in this build; set `{p}=0` and revert by hand");
        }
    }
    let client = RedisClient::new(RedisOptions {
        username: a.redis_user.clone(),
        password: std::env::var("FLEETWARD_REDIS_PASSWORD").ok(),
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
    if entry.safety != Safety::Read {
        let path = a.audit_log.clone().unwrap_or_else(default_audit_log);
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
        })),
        Format::Human => print!("{}", render(&a.name, &results)),
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
