//! `fleetward simulate SCENARIO`: the rollout controller, unchanged, against a simulated fleet
//! on a virtual clock. A scenario is a directory with `scenario.toml` naming an inventory,
//! baselines, policies and the faults to inject, and optionally the outcome it expects.

use super::args::ShardArgs;
use super::Ctx;
use crate::output::{json_line, Exit, Format};
use crate::progress::Printer;
use anyhow::Context;
use fleetward_engine::rollout::Phase;
use fleetward_engine::sim::scenario::{self, RunOptions, Scenario};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The scenario directory (holding `scenario.toml`).
    pub scenario: PathBuf,
    /// Keep the journal, samples and gate reports here. Default: a temporary directory.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Driver threads.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// Print a line per updated host (human output).
    #[arg(long)]
    pub hosts: bool,
    /// Simulate one shard's controller among several, coordinated through a real etcd, as
    /// `rollout start --etcd … --shard …` runs it.
    #[command(flatten)]
    pub shard: ShardArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let sc = Scenario::load(&a.scenario)?;
    let tmp;
    let state_dir = match &a.state_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("cannot create a temporary state directory")?;
            tmp.path().to_path_buf()
        }
    };
    if ctx.format == Format::Human {
        let about = if sc.description.is_empty() {
            String::new()
        } else {
            format!(": {}", sc.description)
        };
        println!("simulating `{}`{about}", a.scenario.display());
    }
    let printer = Printer::new(ctx.format, a.hosts);
    let opts = RunOptions {
        state_dir,
        workers: a.workers,
        shard: a.shard.request()?,
    };
    let s = scenario::run(&a.scenario, &sc, &opts, &ctx.load_options(), &printer)?;
    match ctx.format {
        Format::Json => {
            let mut v = serde_json::to_value(&s)?;
            v["type"] = "summary".into();
            v["ok"] = s.ok().into();
            v["scenario"] = a.scenario.display().to_string().into();
            json_line(&v);
        }
        Format::Human => print!("{}", scenario::render(&s)),
    }
    Ok(if !s.ok() {
        Exit::Failed
    } else if s.expectation_met == Some(true) {
        Exit::Ok
    } else {
        match s.phase {
            Phase::Completed => Exit::Ok,
            Phase::Aborted => Exit::Failed,
            // Paused, or completed with failed hosts no operator acknowledged.
            _ => Exit::Attention,
        }
    })
}
