//! `fleetward generate fleet`: a deterministic example fleet in any inventory format, for
//! `policy-examples/`, demos and benchmarks.

use super::Ctx;
use crate::output::Exit;
use anyhow::Context;
use fleetward_engine::fleetgen::{self, FleetSpec};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// An example fleet: 6 hardware classes × 4 workloads × 3 datacenters, uneven groups
    /// (one of exactly 3 hosts), racks of 40, a few `no-reboot`/`legal-hold` hosts and a few
    /// already on the target kernel.
    Fleet(FleetArgs),
}

#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    /// Number of hosts.
    #[arg(long, default_value_t = 5200)]
    pub hosts: usize,
    /// Generator seed; the same seed gives the same fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// toml (fleetward's own), csv, ini (Ansible) or yaml (Ansible).
    #[arg(long, default_value = "toml")]
    pub format: String,
    /// Write here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(_ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let What::Fleet(f) = a.what;
    let hosts = fleetgen::generate(&FleetSpec::example(f.hosts, f.seed));
    let text = match f.format.as_str() {
        "toml" => fleetgen::to_toml(&hosts),
        "csv" => fleetgen::to_csv(&hosts),
        "ini" => fleetgen::to_ansible_ini(&hosts),
        "yaml" => fleetgen::to_ansible_yaml(&hosts),
        other => anyhow::bail!("unknown format `{other}`; formats are toml, csv, ini, yaml"),
    };
    match &f.out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing `{}`", p.display()))?,
        None => print!("{text}"),
    }
    Ok(Exit::Ok)
}
