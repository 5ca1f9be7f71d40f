//! `fleetward bench`: measured figures for hot reload, the typed call path, planning, the
//! gate, simulation, drift audits, and the gate's calibration (`verdicts`).
//!
//! `reload` copies the policy directory to a temporary one (your files are never touched),
//! edits a policy file N times and times each write until the new set is live. `call` times
//! `rollout::eligible(host)` through the typed path. `plan` generates a fleet, writes it as an
//! inventory file and times load + plan.

use super::Ctx;
use crate::output::{json_line, Exit, Format};
use fleetward_engine::sim::bench;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Time from writing a policy file to the new set being live.
    Reload {
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
        /// How many edits to time.
        #[arg(long, default_value_t = 100)]
        edits: usize,
        /// The file to edit, relative to the policy directory.
        #[arg(long, default_value = "gates.rhai")]
        file: String,
    },
    /// Planning a generated fleet, inventory load included.
    Plan {
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
        #[arg(long, default_value_t = 100_000)]
        hosts: usize,
        /// Inventory format to load: csv, toml, ini or yaml.
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// A gate over generated samples (default 10M: 5 metrics, 24 groups), run as a child
    /// process so its time and peak memory are its own.
    Gate {
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
        #[arg(long, default_value = "policy-examples/fleet/fleet.toml")]
        inventory: PathBuf,
        /// Samples per host and metric (385 gives about 10M samples for the example fleet).
        #[arg(long, default_value_t = 385)]
        timestamps: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// The pandas + scipy peer, run beside the gate when python3 has pandas, scipy and
        /// pyarrow (skipped with the reason otherwise).
        #[arg(long, default_value = "benches/gate_peer.py")]
        peer: PathBuf,
    },
    /// A whole simulated rollout (`fleetward simulate`, default: the clean scenario over the
    /// 5,175-host example fleet), run as a child process so its time and memory are its own.
    Simulate {
        #[arg(long, default_value = "policy-examples/scenarios/clean")]
        scenario: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// One simulated rollout of a generated fleet split into shards by datacenter, one
    /// controller process per shard (`simulate --etcd … --shard …`) over a real etcd; the
    /// first shard's leader is killed mid-stage and its standby takes over. Prints wall time,
    /// each controller's time and peak memory, the takeover time and etcd requests per host,
    /// and checks from the journals that every host was updated and rebooted once and every
    /// shard saw the same verdicts (exit 1 if not).
    Shards {
        #[arg(long, default_value_t = 100_000)]
        hosts: usize,
        /// Shards, one per datacenter of the generated fleet.
        #[arg(long, default_value_t = 10)]
        shards: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
        /// etcd members (comma-separated). Default: one `etcd` member started for the run.
        #[arg(long, value_delimiter = ',', value_name = "URL")]
        etcd: Vec<String>,
        /// Driver threads per controller.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        /// The controllers' lease TTL in seconds.
        #[arg(long, default_value_t = 5)]
        lease_ttl: u64,
        /// Kill the first shard's leader once a host of this stage is done (0: canaries).
        #[arg(long, default_value_t = 2)]
        kill_at_stage: usize,
        /// Kill no controller.
        #[arg(long)]
        no_kill: bool,
        /// Also run one controller over the whole fleet, as without etcd, for comparison.
        #[arg(long)]
        single: bool,
        /// Work here and keep it (fleet, journals, etcd's log). Default: a temporary directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// A drift audit of simulated hosts (default: the 5,200-host example fleet, 5% of hosts
    /// with one random divergence): facts collection, comparison, classification, summary.
    Drift {
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
        #[arg(long, default_value = "policy-examples/fleet/fleet.toml")]
        inventory: PathBuf,
        /// Share of hosts given one random divergence.
        #[arg(long, default_value_t = 0.05)]
        random_rate: f64,
        #[arg(long, default_value_t = 32)]
        workers: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Calibration of the gate: the real gate path over generated fleets with host spread, a
    /// daily swing and injected regressions, over many seeds per scenario; prints the
    /// false-pause and catch rates.
    Verdicts {
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        seeds: usize,
        /// The before window and the bake, each (gate scenarios; a rollout bakes as its
        /// policy says).
        #[arg(long, default_value_t = 4.0)]
        bake_hours: f64,
        /// Each host's own level change between its before and after windows, kernel or not
        /// (standard deviation, percent, log scale): 0 makes every host its own perfect
        /// control.
        #[arg(long, default_value_t = 3.0)]
        host_drift: f64,
        /// Only the scenarios whose name contains this.
        #[arg(long)]
        only: Option<String>,
        /// Whole simulated rollouts through the controller instead (the shipped plan with
        /// canaries sized as shipped, every stage's bake and gate, 2,000 generated hosts): one
        /// group regressed from the canaries on, and the stage where each run stopped.
        #[arg(long)]
        rollouts: bool,
    },
    /// Cost of one typed call of `rollout::eligible(host)`.
    Call {
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        iterations: usize,
    },
}

/// Prints a result: one JSON line tagged with the benchmark's name, or the human text.
fn show<T: Serialize>(
    ctx: &Ctx,
    name: &str,
    r: &T,
    human: impl FnOnce(&T) -> String,
) -> anyhow::Result<Exit> {
    match ctx.format {
        Format::Json => {
            let mut v = serde_json::to_value(r)?;
            v["bench"] = name.into();
            json_line(&v);
        }
        Format::Human => println!("{}", human(r)),
    }
    Ok(Exit::Ok)
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    let load = ctx.load_options();
    match a.what {
        What::Gate {
            policy_dir,
            inventory,
            timestamps,
            runs,
            peer,
        } => {
            let exe = std::env::current_exe()?;
            let r = bench::gate(&exe, &policy_dir, &inventory, timestamps, runs, &peer)?;
            show(ctx, "gate", &r, |r| {
                let (s, m) = (&r.seconds, &r.peak_rss_mib);
                let peer = match &r.peer {
                    bench::Peer::Ran {
                        script,
                        seconds: ps,
                        peak_rss_mib: pm,
                        comparisons,
                    } => format!(
                        "\n  pandas + scipy ({script}, {comparisons} group × metric tests), {} runs\n  median {:.2} s   min {:.2} s   max {:.2} s   peak RSS median {:.0} MiB (max {:.0} MiB)",
                        ps.n, ps.median, ps.min, ps.max, pm.median, pm.max
                    ),
                    bench::Peer::Skipped { reason } => {
                        format!("\n  pandas + scipy peer skipped: {reason}")
                    }
                };
                format!(
                    "gate: {} samples (5 metrics, 24 groups, Parquet), whole `fleetward gate` process, {} runs\n  median {:.2} s   min {:.2} s   max {:.2} s   peak RSS median {:.0} MiB (max {:.0} MiB){peer}",
                    r.samples, s.n, s.median, s.min, s.max, m.median, m.max
                )
            })
        }
        What::Simulate { scenario, runs } => {
            let exe = std::env::current_exe()?;
            let r = bench::simulate(&exe, &scenario, runs)?;
            show(ctx, "simulate", &r, |r| {
                let (s, m) = (&r.seconds, &r.peak_rss_mib);
                format!(
                    "simulate: `{}`, {} hosts, {} journal events, {:.1} h of virtual time; whole process, {} runs\n  median {:.2} s   min {:.2} s   max {:.2} s   ({:.0} hosts/s)   peak RSS median {:.0} MiB",
                    r.scenario, r.hosts, r.events, r.virtual_hours, s.n, s.median, s.min, s.max, r.hosts as f64 / s.median, m.median
                )
            })
        }
        What::Shards {
            hosts,
            shards,
            seed,
            policy_dir,
            etcd,
            workers,
            lease_ttl,
            kill_at_stage,
            no_kill,
            single,
            dir,
        } => {
            let exe = std::env::current_exe()?;
            let tmp;
            let dir = match dir {
                Some(d) => d,
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            let opts = fleetward_engine::sim::shards::ShardsOptions {
                hosts,
                shards,
                seed,
                policy_dir,
                etcd,
                workers,
                lease_ttl,
                kill_at_stage: (!no_kill).then_some(kill_at_stage),
                single,
                dir,
            };
            let r = fleetward_engine::sim::shards::shards(&exe, &opts)?;
            show(ctx, "shards", &r, render_shards)?;
            Ok(if r.ok() { Exit::Ok } else { Exit::Failed })
        }
        What::Plan {
            policy_dir,
            hosts,
            format,
            runs,
        } => {
            let r = bench::plan(&policy_dir, hosts, &format, runs, &load)?;
            show(ctx, "plan", &r, |r| {
                let t = &r.load_and_plan;
                format!(
                    "plan: {} hosts from {}, inventory load included, {} runs ({} stages)\n  median {:.0} ms   min {:.0} ms   max {:.0} ms\n  of which: inventory load median {:.0} ms, eligible(host) for every host median {:.0} ms",
                    r.hosts, r.format, t.n, r.stages, t.median, t.min, t.max, r.inventory_load.median, r.eligible_calls.median
                )
            })
        }
        What::Reload {
            policy_dir,
            edits,
            file,
        } => {
            let r = bench::reload(&policy_dir, edits, &file, &load)?;
            show(ctx, "reload", &r, |r| {
                let s = &r.write_to_live;
                let mut o = format!(
                    "reload: write → live set over {} edits (debounce {} ms)\n  median {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
                    s.n, r.debounce_ms, s.median, s.p90, s.p99, s.max
                );
                if let Some(c) = &r.load_validate_swap {
                    o.push_str(&format!(
                        "\n  of which load → validate → swap: median {:.2} ms   p99 {:.2} ms",
                        c.median, c.p99
                    ));
                }
                o
            })
        }
        What::Verdicts {
            policy_dir,
            seeds,
            bake_hours: _,
            host_drift,
            only,
            rollouts: true,
        } => {
            let r = fleetward_engine::sim::rollouts::rollouts(
                &policy_dir,
                &load,
                seeds,
                host_drift / 100.0,
                only.as_deref(),
                &|d| {
                    eprintln!(
                        "rollouts: {} seed {} ({}/{}): {} in {:.1} s",
                        d.scenario, d.seed, d.done, d.of, d.ended, d.seconds
                    )
                },
            )?;
            show(ctx, "rollouts", &r, fleetward_engine::sim::rollouts::render)
        }
        What::Verdicts {
            policy_dir,
            seeds,
            bake_hours,
            host_drift,
            only,
            rollouts: false,
        } => {
            let set = ctx.load(&policy_dir)?;
            let r = fleetward_engine::sim::verdicts::verdicts(
                &set,
                seeds,
                bake_hours,
                host_drift / 100.0,
                only.as_deref(),
            )?;
            show(ctx, "verdicts", &r, fleetward_engine::sim::verdicts::render)
        }
        What::Call {
            policy_dir,
            iterations,
        } => {
            let r = bench::call(&policy_dir, iterations, &load)?;
            show(ctx, "call", &r, |r| {
                let s = &r.per_call_by_batch;
                format!(
                    "call: rollout::eligible(host) through the typed path, {} calls\n  median {:.2} µs/call   p99 (of 1000-call batches) {:.2} µs/call   mean {:.2} µs/call",
                    r.calls, s.median, s.p99, s.mean
                )
            })
        }
        What::Drift {
            policy_dir,
            inventory,
            random_rate,
            workers,
            runs,
        } => {
            let r = bench::drift(&policy_dir, &inventory, random_rate, workers, runs, &load)?;
            show(ctx, "drift", &r, |r| {
                let s = &r.seconds;
                format!(
                    "drift audit: {} simulated hosts, {} declared facts, {} findings; collect + compare + classify + summary, {} runs\n  median {:.3} s   min {:.3} s   max {:.3} s   ({:.0} hosts/s)",
                    r.hosts, r.facts_checked, r.findings, s.n, s.median, s.min, s.max, r.hosts as f64 / s.median
                )
            })
        }
    }
}

fn render_shards(r: &fleetward_engine::sim::shards::ShardsReport) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "shards: {} hosts ({} planned) in {} shards, a controller process each; etcd: {}",
        r.hosts, r.planned, r.shards, r.etcd
    );
    let _ = writeln!(
        o,
        "  wall time {:.1} s   {} of {} planned host(s) updated   {} gate(s), verdicts {}",
        r.wall_secs,
        r.updated,
        r.planned,
        r.gates,
        if r.verdicts_agree {
            "the same in every shard"
        } else {
            "DIFFER"
        }
    );
    let (s, m) = (&r.controller_secs, &r.peak_rss_mib);
    let _ = writeln!(
        o,
        "  per controller: wall median {:.1} s (max {:.1})   peak RSS median {:.0} MiB (max {:.0})",
        s.median, s.max, m.median, m.max
    );
    match r.takeover_secs {
        Some(t) => {
            let _ = writeln!(
                o,
                "  takeover after kill -9 of a leader: {t:.2} s (lease TTL {} s)",
                r.lease_ttl_secs
            );
        }
        None => {
            let _ = writeln!(o, "  no takeover measured");
        }
    }
    let _ = writeln!(
        o,
        "  etcd: {} request(s), {:.1} per host (controllers that finished, keep-alives included)",
        r.etcd_requests, r.etcd_requests_per_host
    );
    let _ = writeln!(
        o,
        "  gate parts: {:.1} MiB of JSON sent as {:.1} MiB (zstd)",
        r.gate_json_bytes as f64 / 1048576.0,
        r.gate_sent_bytes as f64 / 1048576.0
    );
    for c in &r.controllers {
        let _ = writeln!(
            o,
            "    {:<22} {:<8} {:>7.1} s {:>6.0} MiB  {:>6} of {:>6} hosts  {:>8} etcd requests  {}",
            c.shard,
            c.role,
            c.wall_secs,
            c.peak_rss_mib,
            c.updated,
            c.hosts,
            c.etcd_requests,
            c.phase.as_deref().unwrap_or("-")
        );
    }
    if let Some(x) = &r.single {
        let _ = writeln!(
            o,
            "  one controller for the whole fleet, no etcd: {:.1} s, peak RSS {:.0} MiB, {} host(s) updated, {}",
            x.wall_secs, x.peak_rss_mib, x.updated, x.phase
        );
    }
    for p in &r.problems {
        let _ = writeln!(o, "  PROBLEM: {p}");
    }
    o
}
