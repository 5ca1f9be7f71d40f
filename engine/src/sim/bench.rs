//! The benchmark workloads of `fleetward bench`: hot reload, a typed policy call, planning a
//! generated fleet, a gate over generated samples and a whole simulated rollout (both run as
//! a child process so their time and peak memory are their own), and a simulated drift
//! audit. Each returns its figures; the CLI prints them.

use super::drift::SimFile;
use super::exec::{Faults, SimExecutor, Timing};
use super::fleetgen::{self, FleetSpec};
use super::samplegen;
use crate::drift::audit::{self, CollectOptions};
use crate::drift::declared::Declared;
use crate::drift::frame;
use crate::inventory::{self, Source};
use crate::model::Host;
use crate::plan::policy::PolicyRules;
use crate::plan::{self as planner, PlanRequest, RolloutRules};
use crate::runtime::{LoadOptions, PolicySet};
use crate::watch::{watch_loop, FsWatcher, DEFAULT_DEBOUNCE};
use crate::{PolicyStore, ReloadEvent};
use serde::Serialize;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] crate::PolicyError),
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Data(#[from] crate::gate::frames::DataError),
    #[error(transparent)]
    Declared(#[from] crate::drift::declared::DeclaredError),
    #[error(transparent)]
    Sim(#[from] super::drift::SimFileError),
}

pub(super) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

fn at_least(name: &str, v: usize, min: usize) -> Result<(), BenchError> {
    if v < min {
        return Err(BenchError::Invalid(format!(
            "`--{name}` must be at least {min}"
        )));
    }
    Ok(())
}

/// Summary statistics of a sample, in the sample's unit.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Stats {
    pub fn of(mut v: Vec<f64>) -> Stats {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| fleetward_stdlib::stats::quantile(&v, p).unwrap_or(f64::NAN);
        Stats {
            n: v.len(),
            min: q(0.0),
            median: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            max: q(1.0),
            mean: if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            },
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(to).map_err(io(format!("cannot create `{}`", to.display())))?;
    let entries =
        std::fs::read_dir(from).map_err(io(format!("cannot read `{}`", from.display())))?;
    for e in entries {
        let e = e.map_err(io(format!("cannot read `{}`", from.display())))?;
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)
                .map_err(io(format!("cannot copy to `{}`", target.display())))?;
        }
    }
    Ok(())
}

/// `bench reload`: from writing a policy file to the new set being live.
#[derive(Debug, Serialize)]
pub struct Reload {
    pub unit: &'static str,
    pub debounce_ms: u64,
    pub write_to_live: Stats,
    pub load_validate_swap: Option<Stats>,
}

/// Copies the policy directory to a temporary one (the original is never touched), edits
/// `file` `edits` times and times each write until the new set is live.
pub fn reload(
    policy_dir: &Path,
    edits: usize,
    file: &str,
    load: &LoadOptions,
) -> Result<Reload, BenchError> {
    at_least("edits", edits, 1)?;
    let tmp = std::env::temp_dir().join(format!("fleetward-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(policy_dir, &tmp)?;
    let target = tmp.join(file);
    let original = std::fs::read_to_string(&target)
        .map_err(io(format!("cannot read `{}`", target.display())))?;
    let store = Arc::new(PolicyStore::new(&tmp, load.clone()));
    let mut watcher = FsWatcher::new(&tmp, DEFAULT_DEBOUNCE)
        .map_err(|e| BenchError::Invalid(format!("cannot watch `{}`: {e}", tmp.display())))?;
    if let ReloadEvent::ReloadFailed { error, .. } = store.reload() {
        return Err(BenchError::Invalid(format!(
            "the policy set does not load: {}",
            error.message
        )));
    }
    let compile_ms = Arc::new(Mutex::new(Vec::new()));
    {
        let (store, compile_ms) = (Arc::clone(&store), Arc::clone(&compile_ms));
        std::thread::spawn(move || {
            watch_loop(&store, &mut watcher, |ev| {
                if let ReloadEvent::Reloaded { elapsed_ms, .. } = ev {
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
        std::fs::write(&target, text)
            .map_err(io(format!("cannot write `{}`", target.display())))?;
        while store.current().map(|s| s.hash().to_string()) == before {
            if t0.elapsed() >= Duration::from_secs(10) {
                return Err(BenchError::Invalid(format!(
                    "edit {i} was not picked up within 10 s"
                )));
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        // Let the debouncer settle so edits are timed one by one.
        std::thread::sleep(DEFAULT_DEBOUNCE * 2);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let compile = compile_ms.lock().map(|c| Stats::of(c.clone())).ok();
    Ok(Reload {
        unit: "ms",
        debounce_ms: DEFAULT_DEBOUNCE.as_millis() as u64,
        write_to_live: Stats::of(latencies),
        load_validate_swap: compile,
    })
}

/// `bench call`: one typed call of `rollout::eligible(host)`.
#[derive(Debug, Serialize)]
pub struct Call {
    pub function: &'static str,
    pub unit: &'static str,
    pub calls: usize,
    pub per_call_by_batch: Stats,
    pub total_s: f64,
}

pub fn call(policy_dir: &Path, iterations: usize, load: &LoadOptions) -> Result<Call, BenchError> {
    at_least("iterations", iterations, 1000)?;
    let set = PolicySet::load(policy_dir, load)?;
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
    Ok(Call {
        function: "rollout::eligible(host)",
        unit: "µs",
        calls: batches * 1000,
        per_call_by_batch: Stats::of(per_call),
        total_s: t.elapsed().as_secs_f64(),
    })
}

/// `bench plan`: a generated fleet written as an inventory, loaded and planned.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub unit: &'static str,
    pub hosts: usize,
    pub format: String,
    pub stages: usize,
    pub load_and_plan: Stats,
    pub inventory_load: Stats,
    pub eligible_calls: Stats,
}

pub fn plan(
    policy_dir: &Path,
    hosts: usize,
    format: &str,
    runs: usize,
    load: &LoadOptions,
) -> Result<Plan, BenchError> {
    at_least("runs", runs, 1)?;
    let set = PolicySet::load(policy_dir, load)?;
    let fleet = fleetgen::generate(&FleetSpec::example(hosts, 1));
    let (text, ext) = match format {
        "csv" => (fleetgen::to_csv(&fleet), "csv"),
        "toml" => (fleetgen::to_toml(&fleet), "toml"),
        "ini" => (fleetgen::to_ansible_ini(&fleet), "ini"),
        "yaml" => (fleetgen::to_ansible_yaml(&fleet), "yaml"),
        other => {
            return Err(BenchError::Invalid(format!(
                "unknown format `{other}`; formats are csv, toml, ini, yaml"
            )))
        }
    };
    let file = std::env::temp_dir().join(format!("fleetward-bench-{}.{ext}", std::process::id()));
    std::fs::write(&file, &text).map_err(io(format!("cannot write `{}`", file.display())))?;
    let mut source = Source::file(&file);
    if matches!(ext, "ini" | "yaml") {
        source.fields = vec!["hardware=hw_class".into(), "workload=role".into()];
    }
    let start = jiff::Timestamp::from_second(1_796_738_400).unwrap_or_default();
    let rules = PolicyRules::new(&set);
    let target = rules
        .target_kernel()?
        .unwrap_or_else(|| fleetgen::TARGET_KERNEL.to_string());
    let (mut total, mut loading, mut eligible) = (Vec::new(), Vec::new(), Vec::new());
    let mut stages = 0;
    for _ in 0..runs {
        let t0 = Instant::now();
        let inv = source.load(set.field_map())?;
        let t1 = Instant::now();
        let p = planner::plan(
            &PlanRequest {
                hosts: &inv.hosts,
                target_kernel: &target,
                seed: 1,
                start,
                held: &Default::default(),
                sizing: None,
            },
            &rules,
        )?;
        total.push(t0.elapsed().as_secs_f64() * 1000.0);
        loading.push((t1 - t0).as_secs_f64() * 1000.0);
        stages = p.stages.len();
        let refs: Vec<&Host> = inv.hosts.iter().collect();
        let t2 = Instant::now();
        std::hint::black_box(rules.eligible(&refs)?);
        eligible.push(t2.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = std::fs::remove_file(&file);
    Ok(Plan {
        unit: "ms",
        hosts,
        format: format.to_string(),
        stages,
        load_and_plan: Stats::of(total),
        inventory_load: Stats::of(loading),
        eligible_calls: Stats::of(eligible),
    })
}

/// A child process's exit status and peak resident memory in MiB, from `wait4`'s rusage.
pub(super) fn wait_child(child: std::process::Child) -> Result<(i32, f64), BenchError> {
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| BenchError::Invalid("child pid out of range".into()))?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own un-reaped child; both pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(BenchError::Io {
                what: "cannot wait for the child".into(),
                source: e,
            });
        }
    }
    // The child is reaped; `Child` is only dropped (it does not wait again).
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    // Linux reports `ru_maxrss` in KiB.
    Ok((code, usage.ru_maxrss as f64 / 1024.0))
}

/// `bench simulate`: a whole `fleetward simulate` process.
#[derive(Debug, Serialize)]
pub struct Simulate {
    pub scenario: String,
    pub hosts: u64,
    pub events: u64,
    pub virtual_hours: f64,
    pub seconds: Stats,
    pub peak_rss_mib: Stats,
}

/// Runs `exe simulate --output json SCENARIO` `runs` times.
pub fn simulate(exe: &Path, scenario: &Path, runs: usize) -> Result<Simulate, BenchError> {
    at_least("runs", runs, 1)?;
    let (mut secs, mut mem) = (Vec::new(), Vec::new());
    let mut last = serde_json::Value::Null;
    for _ in 0..runs {
        let out = std::env::temp_dir().join(format!(
            "fleetward-bench-simulate-{}.jsonl",
            std::process::id()
        ));
        let stdout = std::fs::File::create(&out)
            .map_err(io(format!("cannot create `{}`", out.display())))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["simulate", "--output", "json"])
            .arg(scenario)
            .stdout(stdout);
        let (t, peak) = timed(
            cmd,
            "the simulation did not end as its scenario expects",
            |c| c == 0,
        )?;
        secs.push(t);
        mem.push(peak);
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        last = text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
    }
    Ok(Simulate {
        scenario: scenario.display().to_string(),
        hosts: last["hosts"].as_u64().unwrap_or(0),
        events: last["events"].as_u64().unwrap_or(0),
        virtual_hours: last["virtual_secs"].as_f64().unwrap_or(0.0) / 3600.0,
        seconds: Stats::of(secs),
        peak_rss_mib: Stats::of(mem),
    })
}

/// `bench gate`: a whole `fleetward gate` process over generated samples, beside the same work
/// in pandas + scipy when python3 has them.
#[derive(Debug, Serialize)]
pub struct Gate {
    pub samples: usize,
    pub metrics: usize,
    pub groups: usize,
    pub seconds: Stats,
    pub peak_rss_mib: Stats,
    /// The peer's figures, or why it did not run.
    pub peer: Peer,
}

/// The pandas + scipy peer of `bench gate` (`benches/gate_peer.py`), run in a child process
/// like the gate.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Peer {
    Ran {
        script: String,
        seconds: Stats,
        peak_rss_mib: Stats,
        /// Group × metric comparisons the peer made.
        comparisons: u64,
    },
    Skipped {
        reason: String,
    },
}

/// One child process's wall time and peak RSS; `ok` says which exit codes are success, and
/// `failed` what any other means.
fn timed(
    mut cmd: std::process::Command,
    failed: &str,
    ok: fn(i32) -> bool,
) -> Result<(f64, f64), BenchError> {
    let t0 = Instant::now();
    let program = cmd.get_program().to_string_lossy().into_owned();
    let child = cmd.spawn().map_err(io(format!("cannot run `{program}`")))?;
    let (code, peak) = wait_child(child)?;
    if !ok(code) {
        return Err(BenchError::Invalid(format!("{failed}: exit status {code}")));
    }
    Ok((t0.elapsed().as_secs_f64(), peak))
}

/// Why the peer cannot run here, if it cannot: no script, an inventory it does not read, or
/// no python3 with pandas, scipy and pyarrow.
fn peer_missing(script: &Path, inventory: &Path) -> Option<String> {
    if !script.is_file() {
        return Some(format!("no peer script at `{}`", script.display()));
    }
    if inventory.extension().and_then(|e| e.to_str()) != Some("toml") {
        return Some("the peer reads fleetward's own TOML inventories only".into());
    }
    let probe = std::process::Command::new("python3")
        .args(["-c", "import pandas, scipy, pyarrow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match probe {
        Ok(s) if s.success() => None,
        Ok(_) => Some(
            "python3 lacks pandas, scipy or pyarrow (`pip install pandas scipy pyarrow`)".into(),
        ),
        Err(_) => Some("no python3".into()),
    }
}

/// Standard metrics in `bench gate`'s samples.
const METRICS: usize = 5;

/// Writes `timestamps` samples per host and metric for the inventory's canaries (I/O
/// regression) and the rest (baseline) as Parquet, then runs `exe gate` on them `runs` times,
/// and the peer `peer` (a Python script) as many times, alternating, when it can run.
pub fn gate(
    exe: &Path,
    policy_dir: &Path,
    inventory: &Path,
    timestamps: usize,
    runs: usize,
    peer: &Path,
) -> Result<Gate, BenchError> {
    at_least("runs", runs, 1)?;
    let inv = inventory::load(inventory, None, &Default::default())?;
    let (updated, baseline) = samplegen::cohorts(&inv.hosts);
    let total = (updated.len() + baseline.len()) * timestamps * METRICS;
    let dir: PathBuf =
        std::env::temp_dir().join(format!("fleetward-bench-gate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create `{}`", dir.display())))?;
    let (up, base) = (dir.join("samples.parquet"), dir.join("baseline.parquet"));
    // The samples are generated by a child (`fleetward generate samples`): a child's peak RSS
    // starts at its parent's resident size when it is spawned, so this process stays small.
    for (scenario, path) in [("io-regression", &up), ("baseline", &base)] {
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["generate", "samples", "--scenario", scenario, "--inventory"])
            .arg(inventory)
            .args(["--timestamps", &timestamps.to_string()])
            .args(["--metrics", &METRICS.to_string(), "--out"])
            .arg(path)
            .stderr(std::process::Stdio::null());
        timed(cmd, "generating the samples failed", |c| c == 0)?;
    }
    let missing = peer_missing(peer, inventory);
    let (mut secs, mut mem) = (Vec::new(), Vec::new());
    let (mut peer_secs, mut peer_mem, mut comparisons) = (Vec::new(), Vec::new(), 0);
    let peer_out = dir.join("peer.json");
    for _ in 0..runs {
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["gate", "--output", "json", "--policy-dir"])
            .arg(policy_dir)
            .arg("--inventory")
            .arg(inventory)
            .arg("--baseline")
            .arg(&base)
            .arg("--samples")
            .arg(&up)
            .stdout(std::process::Stdio::null());
        let (t, m) = timed(cmd, "the gate failed", |c| matches!(c, 0 | 2 | 3))?;
        secs.push(t);
        mem.push(m);
        if missing.is_none() {
            let out = std::fs::File::create(&peer_out)
                .map_err(io(format!("cannot create `{}`", peer_out.display())))?;
            let mut cmd = std::process::Command::new("python3");
            cmd.arg(peer).arg(inventory).arg(&up).arg(&base).stdout(out);
            let (t, m) = timed(cmd, "the pandas peer failed", |c| c == 0)?;
            peer_secs.push(t);
            peer_mem.push(m);
            let text = std::fs::read_to_string(&peer_out).unwrap_or_default();
            comparisons = serde_json::from_str::<serde_json::Value>(text.trim())
                .ok()
                .and_then(|v| v["groups_x_metrics"].as_u64())
                .unwrap_or(0);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Gate {
        samples: total,
        metrics: METRICS,
        groups: 24,
        seconds: Stats::of(secs),
        peak_rss_mib: Stats::of(mem),
        peer: match missing {
            Some(reason) => Peer::Skipped { reason },
            None => Peer::Ran {
                script: peer.display().to_string(),
                seconds: Stats::of(peer_secs),
                peak_rss_mib: Stats::of(peer_mem),
                comparisons,
            },
        },
    })
}

/// `bench drift`: a drift audit of simulated hosts.
#[derive(Debug, Serialize)]
pub struct Drift {
    pub hosts: usize,
    pub facts_checked: usize,
    pub findings: usize,
    pub seconds: Stats,
}

/// Audits the inventory's hosts, simulated with `random_rate` of them given one random
/// divergence: facts collection, comparison, classification, summary.
pub fn drift(
    policy_dir: &Path,
    inventory: &Path,
    random_rate: f64,
    workers: usize,
    runs: usize,
    load: &LoadOptions,
) -> Result<Drift, BenchError> {
    at_least("runs", runs, 1)?;
    let set = PolicySet::load(policy_dir, load)?;
    let inv = Source::file(inventory).load(set.field_map())?;
    let declared = Declared::load(&policy_dir.join("declared.toml"))?;
    let simfile = SimFile {
        seed: 7,
        random_rate,
        ..SimFile::default()
    };
    let now = jiff::Timestamp::from_second(1_796_083_200).unwrap_or_default();
    let opts = CollectOptions {
        workers: workers.max(1),
        timeout: Duration::from_secs(60),
    };
    let (mut secs, mut findings, mut checked) = (Vec::new(), 0, 0);
    for _ in 0..runs {
        let (tables, _) = super::drift::tables(&declared, &inv.hosts, &simfile)?;
        let timing = Timing {
            command: Duration::ZERO,
            ..Timing::default()
        };
        let exec = SimExecutor::new(&inv.hosts, Faults::default(), timing, now).with_drift(tables);
        let t0 = Instant::now();
        let report = audit::audit(&set, &declared, &exec, &inv.hosts, &opts, now, &|_| {})?;
        let summary = frame::summary(&report)
            .map_err(|e| BenchError::Invalid(format!("the findings frame: {e}")))?;
        secs.push(t0.elapsed().as_secs_f64());
        findings = summary.by_class.values().sum::<usize>();
        checked = summary.checked;
    }
    Ok(Drift {
        hosts: inv.hosts.len(),
        facts_checked: checked,
        findings,
        seconds: Stats::of(secs),
    })
}
