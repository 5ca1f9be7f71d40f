//! `fleetward bench`: measured figures for hot reload, the typed call path and planning.
//!
//! `reload` copies the policy directory to a temporary one (your files are never touched),
//! edits a policy file N times and times each write until the new set is live. `call` times
//! `rollout::eligible(host)` through the typed path. `plan` generates a fleet, writes it as an
//! inventory file and times load + plan.

use super::Ctx;
use crate::output::{json_line, Exit, Format};
use anyhow::Context;
use fleetward_engine::model::Host;
use fleetward_engine::watch::{watch_loop, FsWatcher, DEFAULT_DEBOUNCE};
use fleetward_engine::{PolicySet, PolicyStore};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    },
    /// A whole simulated rollout (`fleetward simulate`, default: the clean scenario over the
    /// 5,175-host example fleet), run as a child process so its time and memory are its own.
    Simulate {
        #[arg(long, default_value = "policy-examples/scenarios/clean")]
        scenario: PathBuf,
        #[arg(long, default_value_t = 3)]
        runs: usize,
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
    /// Cost of one typed call of `rollout::eligible(host)`.
    Call {
        #[arg(long, default_value = "policies")]
        policy_dir: PathBuf,
        #[arg(long, default_value_t = 200_000)]
        iterations: usize,
    },
}

/// Summary statistics of a sample, in the sample's unit.
#[derive(Debug, serde::Serialize)]
struct Stats {
    n: usize,
    min: f64,
    median: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Stats {
        n: v.len(),
        min: v[0],
        median: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        max: v[v.len() - 1],
        mean: v.iter().sum::<f64>() / v.len() as f64,
    }
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading `{}`", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

fn reload(ctx: &Ctx, policy_dir: &Path, edits: usize, file: &str) -> anyhow::Result<Exit> {
    anyhow::ensure!(edits >= 1, "`--edits` must be at least 1");
    let tmp = std::env::temp_dir().join(format!("fleetward-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(policy_dir, &tmp)?;
    let target = tmp.join(file);
    let original = std::fs::read_to_string(&target)
        .with_context(|| format!("reading `{}`", target.display()))?;
    let store = Arc::new(PolicyStore::new(&tmp, ctx.load_options()));
    let mut watcher = FsWatcher::new(&tmp, DEFAULT_DEBOUNCE)?;
    if let fleetward_engine::ReloadEvent::ReloadFailed { error, .. } = store.reload() {
        anyhow::bail!("the policy set does not load: {}", error.message);
    }
    let compile_ms = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (store, compile_ms) = (store.clone(), compile_ms.clone());
        std::thread::spawn(move || {
            watch_loop(&store, &mut watcher, |ev| {
                if let fleetward_engine::ReloadEvent::Reloaded { elapsed_ms, .. } = ev {
                    if let Ok(mut c) = compile_ms.lock() {
                        c.push(*elapsed_ms);
                    }
                }
                ControlFlow::Continue(())
            })
        });
    }
    let mut latencies = Vec::with_capacity(edits);
    for i in 0..edits {
        let before = store.current().map(|s| s.hash().to_string());
        let text = format!("{original}\n// bench edit {i}\n");
        let t0 = Instant::now();
        std::fs::write(&target, text)?;
        loop {
            if store.current().map(|s| s.hash().to_string()) != before {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "edit {i} was not picked up within 10 s"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Let the debouncer settle so edits are timed one by one.
        std::thread::sleep(DEFAULT_DEBOUNCE * 2);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let write_to_live = stats(latencies);
    let compile = compile_ms.lock().map(|c| stats(c.clone())).ok();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "bench": "reload", "unit": "ms", "debounce_ms": DEFAULT_DEBOUNCE.as_millis() as u64,
            "write_to_live": write_to_live, "load_validate_swap": compile,
        })),
        Format::Human => {
            let s = &write_to_live;
            println!(
                "reload: write → live set over {} edits (debounce {} ms)\n  median {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
                s.n, DEFAULT_DEBOUNCE.as_millis(), s.median, s.p90, s.p99, s.max
            );
            if let Some(c) = compile {
                println!(
                    "  of which load → validate → swap: median {:.2} ms   p99 {:.2} ms",
                    c.median, c.p99
                );
            }
        }
    }
    Ok(Exit::Ok)
}

fn call(ctx: &Ctx, policy_dir: &Path, iterations: usize) -> anyhow::Result<Exit> {
    anyhow::ensure!(iterations >= 1000, "`--iterations` must be at least 1000");
    let set = PolicySet::load(policy_dir, &ctx.load_options())?;
    let mut host = Host {
        name: "db-0001".into(),
        address: "10.0.0.1".into(),
        hardware: "r740".into(),
        workload: "db".into(),
        datacenter: "dc1".into(),
        rack: "r01".into(),
        kernel: "6.1.0-18-amd64".into(),
        tags: vec!["db".into(), "pci".into()],
        ..Default::default()
    };
    host.facts.insert("numa".into(), serde_json::json!(2));
    // Warm up, then time batches of 1000 calls.
    for _ in 0..1000 {
        set.call::<bool>("rollout", "eligible", (&host,))?;
    }
    let batches = iterations / 1000;
    let mut per_call = Vec::with_capacity(batches);
    let t = Instant::now();
    for _ in 0..batches {
        let b = Instant::now();
        for _ in 0..1000 {
            std::hint::black_box(set.call::<bool>("rollout", "eligible", (&host,))?);
        }
        per_call.push(b.elapsed().as_secs_f64() * 1e6 / 1000.0);
    }
    let total = t.elapsed();
    let s = stats(per_call);
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "bench": "call", "function": "rollout::eligible(host)", "unit": "µs",
            "calls": batches * 1000, "per_call_by_batch": s,
            "total_s": total.as_secs_f64(),
        })),
        Format::Human => println!(
            "call: rollout::eligible(host) through the typed path, {} calls\n  median {:.2} µs/call   p99 (of 1000-call batches) {:.2} µs/call   mean {:.2} µs/call",
            batches * 1000, s.median, s.p99, s.mean
        ),
    }
    Ok(Exit::Ok)
}

fn plan(
    ctx: &Ctx,
    policy_dir: &Path,
    hosts: usize,
    format: &str,
    runs: usize,
) -> anyhow::Result<Exit> {
    use fleetward_engine::fleetgen::{self, FleetSpec};
    use fleetward_engine::plan::{self as planner, policy::PolicyRules, PlanRequest, RolloutRules};
    anyhow::ensure!(runs >= 1, "`--runs` must be at least 1");
    let set = PolicySet::load(policy_dir, &ctx.load_options())?;
    let fleet = fleetgen::generate(&FleetSpec::example(hosts, 1));
    let (text, ext) = match format {
        "csv" => (fleetgen::to_csv(&fleet), "csv"),
        "toml" => (fleetgen::to_toml(&fleet), "toml"),
        "ini" => (fleetgen::to_ansible_ini(&fleet), "ini"),
        "yaml" => (fleetgen::to_ansible_yaml(&fleet), "yaml"),
        other => anyhow::bail!("unknown format `{other}`; formats are csv, toml, ini, yaml"),
    };
    let mut map = set.field_map().clone();
    if matches!(ext, "ini" | "yaml") {
        map.set("hardware=hw_class").map_err(anyhow::Error::msg)?;
        map.set("workload=role").map_err(anyhow::Error::msg)?;
    }
    let file = std::env::temp_dir().join(format!("fleetward-bench-{}.{ext}", std::process::id()));
    std::fs::write(&file, &text)?;
    let start: jiff::Timestamp = "2026-12-07T14:00:00Z".parse()?;
    let rules = PolicyRules::new(&set);
    let target = rules
        .target_kernel()?
        .unwrap_or_else(|| fleetgen::TARGET_KERNEL.to_string());
    let (mut total, mut load, mut eligible) = (Vec::new(), Vec::new(), Vec::new());
    let mut stages = 0;
    for _ in 0..runs {
        let t0 = Instant::now();
        let inv = fleetward_engine::inventory::load(&file, None, &map)?;
        let t1 = Instant::now();
        let p = planner::plan(
            &PlanRequest {
                hosts: &inv.hosts,
                target_kernel: &target,
                seed: 1,
                start,
                held: &Default::default(),
            },
            &rules,
        )?;
        total.push(t0.elapsed().as_secs_f64() * 1000.0);
        load.push((t1 - t0).as_secs_f64() * 1000.0);
        stages = p.stages.len();
        let refs: Vec<&Host> = inv.hosts.iter().collect();
        let t2 = Instant::now();
        std::hint::black_box(rules.eligible(&refs)?);
        eligible.push(t2.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = std::fs::remove_file(&file);
    let (total, load, eligible) = (stats(total), stats(load), stats(eligible));
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "bench": "plan", "unit": "ms", "hosts": hosts, "format": format, "stages": stages,
            "load_and_plan": total, "inventory_load": load, "eligible_calls": eligible,
        })),
        Format::Human => println!(
            "plan: {hosts} hosts from {format}, inventory load included, {} runs ({stages} stages)\n  median {:.0} ms   min {:.0} ms   max {:.0} ms\n  of which: inventory load median {:.0} ms, eligible(host) for every host median {:.0} ms",
            total.n, total.median, total.min, total.max, load.median, eligible.median
        ),
    }
    Ok(Exit::Ok)
}

/// Peak resident memory of a running child, sampled from `/proc` every 5 ms, in MiB.
fn watch_child(mut child: std::process::Child) -> anyhow::Result<(std::process::ExitStatus, f64)> {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            for line in text.lines() {
                if let Some(v) = line
                    .strip_prefix("VmHWM:")
                    .or_else(|| line.strip_prefix("VmRSS:"))
                {
                    let kib: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
                    peak_kib = peak_kib.max(kib);
                }
            }
        }
        if let Some(st) = child.try_wait()? {
            return Ok((st, peak_kib as f64 / 1024.0));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn simulate(ctx: &Ctx, scenario: &Path, runs: usize) -> anyhow::Result<Exit> {
    anyhow::ensure!(runs >= 1, "`--runs` must be at least 1");
    let exe = std::env::current_exe()?;
    let (mut secs, mut mem) = (Vec::new(), Vec::new());
    let mut last = serde_json::Value::Null;
    for _ in 0..runs {
        let out = tempfile::NamedTempFile::new()?;
        let t0 = Instant::now();
        let child = std::process::Command::new(&exe)
            .args(["simulate", "--output", "json"])
            .arg(scenario)
            .stdout(out.reopen()?)
            .spawn()?;
        let (status, peak) = watch_child(child)?;
        anyhow::ensure!(
            status.code() == Some(0),
            "the simulation did not end as its scenario expects: {status}"
        );
        secs.push(t0.elapsed().as_secs_f64());
        mem.push(peak);
        let text = std::fs::read_to_string(out.path())?;
        last = text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
    }
    let (s, m) = (stats(secs), stats(mem));
    let hosts = last["hosts"].as_u64().unwrap_or(0);
    let events = last["events"].as_u64().unwrap_or(0);
    let virtual_h = last["virtual_secs"].as_f64().unwrap_or(0.0) / 3600.0;
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "bench": "simulate", "scenario": scenario.display().to_string(), "hosts": hosts,
            "events": events, "virtual_hours": virtual_h, "seconds": s, "peak_rss_mib": m,
        })),
        Format::Human => println!(
            "simulate: `{}`, {hosts} hosts, {events} journal events, {virtual_h:.1} h of virtual time; whole process, {} runs\n  median {:.2} s   min {:.2} s   max {:.2} s   ({:.0} hosts/s)   peak RSS median {:.0} MiB",
            scenario.display(), s.n, s.median, s.min, s.max, hosts as f64 / s.median, m.median
        ),
    }
    Ok(Exit::Ok)
}

fn gate(
    ctx: &Ctx,
    policy_dir: &Path,
    inventory: &Path,
    timestamps: usize,
    runs: usize,
) -> anyhow::Result<Exit> {
    use fleetward_engine::samplegen::{self, Scenario};
    anyhow::ensure!(runs >= 1, "`--runs` must be at least 1");
    let inv = fleetward_engine::inventory::load(inventory, None, &Default::default())?;
    let (updated, baseline) = samplegen::cohorts(&inv.hosts);
    let dir = std::env::temp_dir().join(format!("fleetward-bench-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (up, base) = (dir.join("samples.parquet"), dir.join("baseline.parquet"));
    let mut total = 0;
    for (hosts, scenario, path) in [
        (&updated, Scenario::IoRegression, &up),
        (&baseline, Scenario::Baseline, &base),
    ] {
        let s = samplegen::generate_metrics(hosts, scenario, timestamps, 1_796_738_400, 5);
        total += s.len();
        fleetward_engine::gate::frames::write(&s, path)?;
    }
    let exe = std::env::current_exe()?;
    let (mut secs, mut mem) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        let child = std::process::Command::new(&exe)
            .args(["gate", "--output", "json", "--policy-dir"])
            .arg(policy_dir)
            .arg("--inventory")
            .arg(inventory)
            .arg("--baseline")
            .arg(&base)
            .arg("--samples")
            .arg(&up)
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let (status, peak) = watch_child(child)?;
        anyhow::ensure!(
            matches!(status.code(), Some(0..=3)) && status.code() != Some(1),
            "the gate failed: {status}"
        );
        secs.push(t0.elapsed().as_secs_f64());
        mem.push(peak);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (s, m) = (stats(secs), stats(mem));
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "bench": "gate", "samples": total, "metrics": 5, "groups": 24,
            "seconds": s, "peak_rss_mib": m,
        })),
        Format::Human => println!(
            "gate: {total} samples (5 metrics, 24 groups, Parquet), whole `fleetward gate` process, {} runs\n  median {:.2} s   min {:.2} s   max {:.2} s   peak RSS median {:.0} MiB (max {:.0} MiB)",
            s.n, s.median, s.min, s.max, m.median, m.max
        ),
    }
    Ok(Exit::Ok)
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Exit> {
    match a.what {
        What::Gate {
            policy_dir,
            inventory,
            timestamps,
            runs,
        } => gate(ctx, &policy_dir, &inventory, timestamps, runs),
        What::Simulate { scenario, runs } => simulate(ctx, &scenario, runs),
        What::Plan {
            policy_dir,
            hosts,
            format,
            runs,
        } => plan(ctx, &policy_dir, hosts, &format, runs),
        What::Reload {
            policy_dir,
            edits,
            file,
        } => reload(ctx, &policy_dir, edits, &file),
        What::Call {
            policy_dir,
            iterations,
        } => call(ctx, &policy_dir, iterations),
        What::Drift {
            policy_dir,
            inventory,
            random_rate,
            workers,
            runs,
        } => drift(ctx, &policy_dir, &inventory, random_rate, workers, runs),
    }
}

fn drift(
    ctx: &Ctx,
    policy_dir: &Path,
    inventory: &Path,
    random_rate: f64,
    workers: usize,
    runs: usize,
) -> anyhow::Result<Exit> {
    use fleetward_engine::drift::{audit, declared::Declared, frame, sim};
    use fleetward_engine::exec::sim::{Faults, SimExecutor, Timing};
    anyhow::ensure!(runs >= 1, "`--runs` must be at least 1");
    let set = ctx.load(policy_dir)?;
    let inv = super::InventoryArgs {
        inventory: inventory.to_path_buf(),
        inventory_format: None,
        fields: Vec::new(),
    }
    .load(&set)?;
    let declared = Declared::load(&policy_dir.join("declared.toml"))?;
    let simfile = sim::SimFile {
        seed: 7,
        random_rate,
        ..sim::SimFile::default()
    };
    let now = jiff::Timestamp::from_second(1_796_083_200)?;
    let opts = audit::CollectOptions {
        workers: workers.max(1),
        timeout: Duration::from_secs(60),
    };
    let (mut secs, mut findings, mut checked) = (Vec::new(), 0, 0);
    for _ in 0..runs {
        let (tables, _) =
            sim::tables(&declared, &inv.hosts, &simfile).map_err(|e| anyhow::anyhow!(e))?;
        let timing = Timing {
            command: Duration::ZERO,
            ..Timing::default()
        };
        let exec = SimExecutor::new(&inv.hosts, Faults::default(), timing, now).with_drift(tables);
        let t0 = Instant::now();
        let report = audit::audit(&set, &declared, &exec, &inv.hosts, &opts, now, &|_| {})?;
        let summary = frame::summary(&report)?;
        secs.push(t0.elapsed().as_secs_f64());
        findings = summary.by_class.values().sum::<usize>();
        checked = summary.checked;
    }
    let s = stats(secs);
    let hosts = inv.hosts.len();
    match ctx.format {
        Format::Json => json_line(&serde_json::json!({
            "bench": "drift", "hosts": hosts, "facts_checked": checked, "findings": findings,
            "seconds": s,
        })),
        Format::Human => println!(
            "drift audit: {hosts} simulated hosts, {checked} declared facts, {findings} findings; collect + compare + classify + summary, {} runs\n  median {:.3} s   min {:.3} s   max {:.3} s   ({:.0} hosts/s)",
            s.n, s.median, s.min, s.max, hosts as f64 / s.median
        ),
    }
    Ok(Exit::Ok)
}
