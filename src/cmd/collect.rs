//! `fleetward collect`: signals from real hosts in the gate's schema (`host, timestamp,
//! metric, value`), read by the agentless collector over SSH, written as CSV or Parquet to
//! record a baseline or feed `gate`.

use super::args::SshArgs;
use super::{Ctx, FleetArgs};
use crate::output::{json_line, Exit, Format};
use fleetward_engine::clock::{Clock, WallClock};
use fleetward_engine::signals::collect::{self, CollectRequest, SourceArg};
use fleetward_engine::signals::prometheus::HttpStore;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Only this host; repeatable. Default: every host of the inventory.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Only the hosts this selector picks: `datacenter=ams1`, `hardware in (r750, r760)`,
    /// `workload!=db`, `facts.NAME=VALUE`; terms joined by `,` all hold.
    #[arg(long)]
    pub target: Option<String>,
    /// Where signals come from: `ssh` (the agentless collector, reading each host's `/proc`)
    /// or `prometheus:URL` (range queries; the policy's templates, else node_exporter's).
    #[arg(long, default_value = "ssh")]
    pub source: String,
    /// Prometheus: the start, as RFC 3339, epoch seconds or `now-2h`. Default: an hour
    /// before --to.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Prometheus: the end. Default: now.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Prometheus: seconds between points. Default: `signals().step`, else 60.
    #[arg(long, value_name = "SECS")]
    pub step: Option<u64>,
    /// Seconds of one-second readings per collection. Default: `signals().window`, else 10.
    #[arg(long, value_name = "SECS")]
    pub window: Option<u64>,
    /// Collections per host.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Seconds from the start of one round to the start of the next.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub every: u64,
    /// Hosts collected from at once at most.
    #[arg(long, default_value_t = 32)]
    pub workers: usize,
    /// The samples file: `.csv` or `.parquet`.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub ssh: SshArgs,
    /// Where the SSH control sockets live. Default: the default state directory.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let now = fleetward_engine::clock::epoch_secs(WallClock.now());
    let source = SourceArg::parse(&a.source, a.from.as_deref(), a.to.as_deref(), now)
        .map_err(anyhow::Error::msg)?;
    let state_dir = a
        .state_dir
        .clone()
        .unwrap_or_else(fleetward_engine::paths::default_state_dir);
    let exec = a.ssh.settings().executor(&state_dir)?;
    let req = CollectRequest {
        policy_dir: a.fleet.policy_dir.clone(),
        inventory: a.fleet.inventory.source(),
        hosts: a.hosts.clone(),
        target: a.target.clone(),
        source,
        window: a.window,
        step: a.step,
        rounds: a.rounds,
        every: Duration::from_secs(a.every),
        workers: a.workers,
        out: a.out.clone(),
    };
    let c = collect::run(
        &req,
        &ctx.load_options(),
        &exec,
        &HttpStore::new(),
        &WallClock,
    )?;
    let failed: Vec<&str> = c.failed().map(|h| h.host.as_str()).collect();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "ok": failed.is_empty(),
            "out": a.out.display().to_string(),
            "samples": c.rows.len(),
            "queries": c.queries,
            "requests": c.requests,
            "errors": c.errors,
            "hosts": c.hosts,
        })),
        Format::Human => {
            println!(
                "{} samples from {} host(s) written to {}",
                c.rows.len(),
                c.hosts.len() - failed.len(),
                a.out.display()
            );
            if let (Some(q), Some(r)) = (c.queries, c.requests) {
                println!("{q} range queries, {r} HTTP requests");
            }
            for e in &c.errors {
                println!("  {e}");
            }
            for h in &c.hosts {
                for e in &h.errors {
                    println!("  {}: {e}", h.host);
                }
                for m in &h.missing {
                    println!("  {}: could not read {m}", h.host);
                }
            }
        }
    }
    Ok(if failed.is_empty() {
        Exit::Ok
    } else {
        Exit::Attention
    })
}
