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
    Run(RunArgs),
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
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    match a.command {
        Sub::List { policy_dir } => list(ctx, &policy_dir),
        Sub::Run(r) => run_command(ctx, r),
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
        bail!("this build runs cache commands only as a dry run; pass --dry-run to see what `{}` would send", a.name);
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
