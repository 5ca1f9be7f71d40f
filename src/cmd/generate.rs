//! `fleetward generate fleet`: a deterministic example fleet in any inventory format, for
//! `policy-examples/`, demos and benchmarks.

use super::Ctx;
use crate::output::Exit;
use anyhow::Context;
use fleetward_engine::sim::fleetgen::{self, FleetSpec};
use fleetward_engine::sim::samplegen::{self, Scenario};
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
    /// Metric samples for an inventory's example wave: `baseline` (production hosts) or a
    /// wave scenario: `clean`, `io-regression` (+8% I/O p99 on r750), `reboots` (3 in
    /// c6420/db), `sparse-group` (r640/web with one host reporting).
    Samples(SamplesArgs),
}

#[derive(clap::Args, Debug)]
pub struct SamplesArgs {
    #[arg(long, default_value = "policy-examples/fleet/fleet.toml")]
    pub inventory: PathBuf,
    #[arg(long)]
    pub scenario: String,
    /// Samples per host and metric, 5 minutes apart.
    #[arg(long, default_value_t = 12)]
    pub timestamps: usize,
    /// The first N standard metrics (1 to 6).
    #[arg(long, default_value_t = 6)]
    pub metrics: usize,
    /// For `baseline`: at most this many hosts per group (0 for all).
    #[arg(long, default_value_t = 0)]
    pub hosts_per_group: usize,
    /// Write here; `.parquet` or `.csv`.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    /// Number of hosts.
    #[arg(long, default_value_t = 5200)]
    pub hosts: usize,
    /// Generator seed; the same seed gives the same fleet.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Datacenters: 3 (ams1, iad2, sjc3 with 40/35/25% of the hosts), or as many as asked,
    /// each with an equal share.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=250))]
    pub datacenters: u16,
    /// toml (fleetward's own), csv, ini (Ansible) or yaml (Ansible).
    #[arg(long, default_value = "toml")]
    pub format: String,
    /// Write here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let f = match a.what {
        What::Fleet(f) => f,
        What::Samples(s) => return samples(ctx, s),
    };
    let text = fleetgen::write(
        &fleetgen::generate(&FleetSpec {
            datacenters: f.datacenters.into(),
            ..FleetSpec::example(f.hosts, f.seed)
        }),
        &f.format,
    )?;
    match &f.out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing `{}`", p.display()))?,
        None => print!("{text}"),
    }
    Ok(Exit::Ok)
}

fn samples(_ctx: &Ctx, a: SamplesArgs) -> anyhow::Result<Exit> {
    let scenario = Scenario::from_name(&a.scenario).ok_or_else(|| {
        anyhow::anyhow!("unknown scenario `{}`; scenarios are baseline, clean, io-regression, reboots, sparse-group", a.scenario)
    })?;
    let standard = fleetward_engine::gate::STANDARD_METRICS.len();
    if !(1..=standard).contains(&a.metrics) {
        anyhow::bail!(
            "`--metrics` must be from 1 to {standard}, not `{}`",
            a.metrics
        );
    }
    let inv = fleetward_engine::inventory::load(&a.inventory, None, &Default::default())?;
    let (s, hosts) = samplegen::for_inventory(
        &inv.hosts,
        scenario,
        a.hosts_per_group,
        a.timestamps,
        a.metrics,
    );
    fleetward_engine::gate::frames::write(s.rows(), &a.out)?;
    eprintln!(
        "wrote {} samples from {hosts} hosts to `{}`",
        s.len(),
        a.out.display()
    );
    Ok(Exit::Ok)
}
