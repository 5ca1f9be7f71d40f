//! `fleetward bench shards`: one simulated rollout of a generated fleet split into shards by
//! datacenter, each shard's controller its own process (`fleetward simulate --etcd …
//! --shard datacenter=…`, as `rollout start` runs one per datacenter), coordinated through a
//! real etcd. The first shard also has a standby, and its leader is killed (SIGKILL) in the
//! middle of a stage, so the takeover is measured on the way. From the controllers' own
//! journals it checks what the rollout must hold: every shard completed, every host updated
//! and rebooted once, and every shard journaled the same gate verdicts.

use super::bench::{io, wait_child, BenchError, Stats};
use super::fleetgen::{self, FleetSpec};
use super::samplegen;
use crate::rollout::Record;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct ShardsOptions {
    pub hosts: usize,
    /// Shards, one per datacenter of the generated fleet.
    pub shards: usize,
    pub seed: u64,
    pub policy_dir: PathBuf,
    /// etcd members; none: start one etcd member (`etcd` on PATH) for the run.
    pub etcd: Vec<String>,
    /// Driver threads per controller.
    pub workers: usize,
    /// The controllers' lease TTL in seconds: how long the killed leader holds its shard.
    pub lease_ttl: u64,
    /// Kill the first shard's leader once a host of this stage is done (none: no kill).
    pub kill_at_stage: Option<usize>,
    /// Also run one controller over the whole fleet, the way it runs without etcd.
    pub single: bool,
    /// Work here (generated fleet, state directories); kept when given, else removed.
    pub dir: PathBuf,
}

/// One controller process.
#[derive(Debug, Clone, Serialize)]
pub struct ControllerRun {
    pub shard: String,
    /// `leader`, `killed` (the leader killed mid-stage) or `standby` (which took over).
    pub role: String,
    pub wall_secs: f64,
    pub peak_rss_mib: f64,
    pub exit_code: i32,
    /// Its summary (none for the killed one).
    pub phase: Option<String>,
    pub hosts: u64,
    pub updated: u64,
    pub etcd_requests: u64,
    pub gate_json_bytes: u64,
    pub gate_sent_bytes: u64,
    pub violations: Vec<String>,
}

/// One controller over the whole fleet, without etcd: the way the same rollout runs on one
/// machine.
#[derive(Debug, Clone, Serialize)]
pub struct SingleRun {
    pub wall_secs: f64,
    pub peak_rss_mib: f64,
    pub phase: String,
    pub updated: u64,
}

/// The run's figures and what its journals show.
#[derive(Debug, Clone, Serialize)]
pub struct ShardsReport {
    pub hosts: usize,
    /// Hosts the plan updates (the rest are excluded or already on the target kernel).
    pub planned: u64,
    pub shards: usize,
    /// `started` (one member for this run) or the endpoints given.
    pub etcd: String,
    /// From the first controller's start to the last one's end.
    pub wall_secs: f64,
    pub controllers: Vec<ControllerRun>,
    /// Over the controllers that ran to the end.
    pub controller_secs: Stats,
    pub peak_rss_mib: Stats,
    /// From the leader's kill to the standby's leading the shard, and the lease's TTL.
    pub takeover_secs: Option<f64>,
    pub lease_ttl_secs: u64,
    /// etcd requests of every controller (lease keep-alives included), in all and per host.
    pub etcd_requests: u64,
    pub etcd_requests_per_host: f64,
    /// Gate parts published, as JSON and as sent (zstd).
    pub gate_json_bytes: u64,
    pub gate_sent_bytes: u64,
    /// Stages judged, and whether every shard journaled the same verdicts.
    pub gates: usize,
    pub verdicts_agree: bool,
    /// Hosts updated, from the union of the shards' journals (each counted once).
    pub updated: u64,
    /// Broken invariants: a shard that did not complete, a host updated or rebooted more
    /// than once or not at all, verdicts that differ. Empty on a correct run.
    pub problems: Vec<String>,
    pub single: Option<SingleRun>,
}

impl ShardsReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The generated fleet, its baseline and `scenario.toml` in `dir`.
fn prepare(o: &ShardsOptions) -> Result<u64, BenchError> {
    let hosts = fleetgen::generate(&FleetSpec {
        datacenters: o.shards,
        ..FleetSpec::example(o.hosts, o.seed)
    });
    let write = |name: &str, bytes: &[u8]| {
        let p = o.dir.join(name);
        std::fs::write(&p, bytes).map_err(io(format!("cannot write `{}`", p.display())))
    };
    write("fleet.toml", fleetgen::to_toml(&hosts).as_bytes())?;
    // Eight hours of history of up to 40 production hosts per group: enough to size canaries.
    let (s, _) = samplegen::for_inventory(
        &hosts,
        samplegen::Scenario::Baseline,
        40,
        8 * 12,
        crate::gate::STANDARD_METRICS.len(),
    );
    crate::gate::frames::write(s.rows(), &o.dir.join("baseline.parquet"))?;
    let policies = std::path::absolute(&o.policy_dir)
        .map_err(io(format!("cannot resolve `{}`", o.policy_dir.display())))?;
    let scenario = format!(
        "description = \"a clean kernel over {} hosts in {} datacenters, one controller each\"\n\
         inventory = \"fleet.toml\"\npolicies = {}\nbaseline = \"baseline.parquet\"\n\
         start = \"2026-12-07T14:00:00Z\"\n",
        o.hosts,
        o.shards,
        toml::Value::String(policies.display().to_string())
    );
    write("scenario.toml", scenario.as_bytes())?;
    Ok(hosts.len() as u64)
}

/// An etcd member started for the run, killed when dropped.
struct OwnEtcd {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("cannot find a free port"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(io("cannot find a free port"))
}

/// Starts one etcd member on loopback with its data in `dir`, and waits until it is healthy.
fn start_etcd(dir: &Path) -> Result<OwnEtcd, BenchError> {
    let (client, peer) = (free_port()?, free_port()?);
    let endpoint = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.join("etcd.log")).map_err(io("cannot create etcd.log"))?;
    let child = dies_with_parent(&mut Command::new("etcd"))
        .args(["--name", "bench", "--data-dir"])
        .arg(dir.join("etcd"))
        .args(["--listen-client-urls", &endpoint])
        .args(["--advertise-client-urls", &endpoint])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("bench={peer_url}")])
        // Room for a 100,000-host rollout's journals and gate parts.
        .args(["--quota-backend-bytes", &(8u64 << 30).to_string()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(io(
            "cannot start `etcd` (Debian: `apt-get install etcd-server`), or give --etcd",
        ))?;
    let own = OwnEtcd { child, endpoint };
    let health = format!("{}/health", own.endpoint);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Ok(mut r) = ureq::get(&health).call() {
            if r.body_mut()
                .read_to_string()
                .is_ok_and(|b| b.contains("true"))
            {
                return Ok(own);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(BenchError::Invalid(format!(
        "the etcd started for the run was not healthy within 30 s; see `{}`",
        dir.join("etcd.log").display()
    )))
}

/// What a controller's output showed, as it came.
enum Seen {
    Leading(usize, Instant),
    /// A host of this stage is done.
    HostDone(usize, usize),
    Summary(usize, serde_json::Value),
}

/// Kills the child with this process, however it ends (the bench killed, or ^C).
fn dies_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: `prctl` is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Starts `exe simulate` as the controller of `shard`, reporting what it prints to `tx` as
/// controller `i`.
fn spawn(
    exe: &Path,
    o: &ShardsOptions,
    rollout: &str,
    shard: &str,
    state: &Path,
    i: usize,
    tx: mpsc::Sender<Seen>,
) -> Result<std::process::Child, BenchError> {
    let mut child = dies_with_parent(&mut Command::new(exe))
        .args(["simulate", "--output", "json"])
        .arg(&o.dir)
        .args(["--etcd", &o.etcd.join(",")])
        .args(["--shard", shard, "--rollout-id", rollout])
        .args(["--lease-ttl", &o.lease_ttl.to_string()])
        .args(["--workers", &o.workers.to_string()])
        .arg("--state-dir")
        .arg(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io(format!("cannot run `{}`", exe.display())))?;
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut stage = 0;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let seen = match (v["type"].as_str(), v["event"]["type"].as_str()) {
                    (Some("note"), _)
                        if v["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("leading shard")) =>
                    {
                        Some(Seen::Leading(i, Instant::now()))
                    }
                    (Some("event"), Some("stage_started")) => {
                        stage = v["event"]["stage"].as_u64().unwrap_or(0) as usize;
                        None
                    }
                    (Some("event"), Some("host_done")) => Some(Seen::HostDone(i, stage)),
                    (Some("summary"), _) => Some(Seen::Summary(i, v)),
                    _ => None,
                };
                if let Some(s) = seen {
                    let _ = tx.send(s);
                }
            }
        });
    }
    Ok(child)
}

/// A controller process being waited for.
struct Running {
    shard: String,
    role: &'static str,
    state: PathBuf,
    pid: libc::pid_t,
    done: mpsc::Receiver<Result<(i32, f64, f64), String>>,
}

fn watch(
    child: std::process::Child,
    shard: &str,
    role: &'static str,
    state: PathBuf,
) -> Result<Running, BenchError> {
    let pid = libc::pid_t::try_from(child.id())
        .map_err(|_| BenchError::Invalid("child pid out of range".into()))?;
    let started = Instant::now();
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let r = wait_child(child)
            .map(|(code, peak)| (code, peak, started.elapsed().as_secs_f64()))
            .map_err(|e| e.to_string());
        let _ = tx.send(r);
    });
    Ok(Running {
        shard: shard.to_string(),
        role,
        state,
        pid,
        done,
    })
}

/// Runs the benchmark; `exe` is this program.
pub fn shards(exe: &Path, o: &ShardsOptions) -> Result<ShardsReport, BenchError> {
    if o.shards < 2 || o.hosts < 100 * o.shards {
        return Err(BenchError::Invalid(
            "`--shards` must be at least 2, with at least 100 hosts per shard".into(),
        ));
    }
    std::fs::create_dir_all(&o.dir).map_err(io(format!("cannot create `{}`", o.dir.display())))?;
    let hosts = prepare(o)?;
    let own = if o.etcd.is_empty() {
        Some(start_etcd(&o.dir)?)
    } else {
        None
    };
    let mut o = o.clone();
    if let Some(e) = &own {
        o.etcd = vec![e.endpoint.clone()];
    }
    let rollout = format!("bench-{}", std::process::id());
    let names: Vec<String> = (0..o.shards)
        .map(|i| format!("datacenter={}", fleetgen::datacenter(i)))
        .collect();
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    let mut running: Vec<Running> = Vec::new();
    for (i, shard) in names.iter().enumerate() {
        let state = o.dir.join("state").join(shard.replace('=', "-"));
        let child = spawn(exe, &o, &rollout, shard, &state, i, tx.clone())?;
        running.push(watch(child, shard, "leader", state)?);
        if i == 0 && o.kill_at_stage.is_some() {
            // The standby starts once the leader leads, so it is the one standing by.
            loop {
                match rx.recv_timeout(Duration::from_secs(120)) {
                    Ok(Seen::Leading(0, _)) => break,
                    Ok(_) => {}
                    Err(_) => {
                        return Err(BenchError::Invalid(format!(
                            "the controller of `{shard}` did not lead its shard within 120 s"
                        )))
                    }
                }
            }
            let state = o
                .dir
                .join("state")
                .join(format!("{}-standby", shard.replace('=', "-")));
            let child = spawn(exe, &o, &rollout, shard, &state, o.shards, tx.clone())?;
            running.push(watch(child, shard, "standby", state)?);
        }
    }
    drop(tx);
    // Watch the output: kill the first shard's leader in the middle of its stage, time its
    // standby's takeover, keep each summary.
    let mut killed_at = None;
    let mut takeover = None;
    let mut summaries: BTreeMap<usize, serde_json::Value> = BTreeMap::new();
    for seen in rx.iter() {
        match seen {
            Seen::HostDone(0, stage) if killed_at.is_none() && Some(stage) == o.kill_at_stage => {
                // SAFETY: our own child, not yet reaped (its waiter owns it).
                unsafe { libc::kill(running[0].pid, libc::SIGKILL) };
                running[0].role = "killed";
                killed_at = Some(Instant::now());
            }
            Seen::Leading(i, at) if i == o.shards => {
                takeover = killed_at.map(|k| at.duration_since(k).as_secs_f64());
            }
            Seen::Summary(i, v) => {
                summaries.insert(i, v);
            }
            _ => {}
        }
    }
    let mut controllers = Vec::new();
    for (k, r) in running.into_iter().enumerate() {
        let (code, peak, secs) = r
            .done
            .recv()
            .map_err(|_| BenchError::Invalid("a controller's waiter stopped".into()))?
            .map_err(BenchError::Invalid)?;
        // Output index: leaders by shard, the standby after them.
        let i = if r.role == "standby" {
            o.shards
        } else {
            names.iter().position(|n| *n == r.shard).unwrap_or(k)
        };
        let s = summaries.get(&i);
        let num = |f: &str| s.and_then(|s| s["shard"][f].as_u64()).unwrap_or(0);
        controllers.push((
            r.state.clone(),
            ControllerRun {
                shard: r.shard,
                role: r.role.to_string(),
                wall_secs: secs,
                peak_rss_mib: peak,
                exit_code: code,
                phase: s.and_then(|s| s["phase"].as_str().map(str::to_string)),
                hosts: s.and_then(|s| s["hosts"].as_u64()).unwrap_or(0),
                updated: s.and_then(|s| s["updated"].as_u64()).unwrap_or(0),
                etcd_requests: num("etcd_requests"),
                gate_json_bytes: num("gate_json_bytes"),
                gate_sent_bytes: num("gate_sent_bytes"),
                violations: s
                    .and_then(|s| serde_json::from_value(s["violations"].clone()).ok())
                    .unwrap_or_default(),
            },
        ));
    }
    let wall_secs = t0.elapsed().as_secs_f64();
    let own_etcd = own.is_some();
    drop(own);
    let single = if o.single {
        Some(single(exe, &o)?)
    } else {
        None
    };
    Ok(report(
        &o,
        own_etcd,
        hosts,
        wall_secs,
        controllers,
        takeover,
        single,
    ))
}

/// The same rollout by one controller over the whole fleet, without etcd.
fn single(exe: &Path, o: &ShardsOptions) -> Result<SingleRun, BenchError> {
    let out = o.dir.join("single.jsonl");
    let stdout =
        std::fs::File::create(&out).map_err(io(format!("cannot create `{}`", out.display())))?;
    let t0 = Instant::now();
    let child = dies_with_parent(&mut Command::new(exe))
        .args(["simulate", "--output", "json"])
        .arg(&o.dir)
        .args(["--workers", &o.workers.to_string()])
        .arg("--state-dir")
        .arg(o.dir.join("state").join("single"))
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .map_err(io(format!("cannot run `{}`", exe.display())))?;
    let (_, peak) = wait_child(child)?;
    let wall_secs = t0.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let last: serde_json::Value = text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    Ok(SingleRun {
        wall_secs,
        peak_rss_mib: peak,
        phase: last["phase"].as_str().unwrap_or("none").to_string(),
        updated: last["updated"].as_u64().unwrap_or(0),
    })
}

/// What a shard's final journal shows: its verdicts by stage, and per host its reboots and
/// whether it is done.
#[derive(Default)]
struct Journaled {
    verdicts: Vec<(usize, String)>,
    reboots: BTreeMap<String, u32>,
    done: BTreeSet<String>,
    planned: u64,
}

fn journaled(state: &Path) -> Result<Journaled, BenchError> {
    use crate::rollout::Event;
    let records: Vec<Record> = crate::rollout::Journal::read_only(state).map_err(|e| {
        BenchError::Invalid(format!(
            "cannot read the journal in `{}`: {e}",
            state.display()
        ))
    })?;
    let mut j = Journaled {
        planned: crate::rollout::RolloutState::fold(&records).planned_hosts() as u64,
        ..Journaled::default()
    };
    for r in &records {
        match &r.event {
            Event::GateEvaluated { stage, verdict, .. } => {
                j.verdicts.push((*stage, verdict.as_str().to_string()))
            }
            Event::RebootIssued { host, .. } => *j.reboots.entry(host.clone()).or_default() += 1,
            Event::HostDone { host } => {
                j.done.insert(host.clone());
            }
            _ => {}
        }
    }
    Ok(j)
}

fn report(
    o: &ShardsOptions,
    own_etcd: bool,
    hosts: u64,
    wall_secs: f64,
    controllers: Vec<(PathBuf, ControllerRun)>,
    takeover_secs: Option<f64>,
    single: Option<SingleRun>,
) -> ShardsReport {
    let mut problems = Vec::new();
    let mut verdicts: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    let mut reboots: BTreeMap<String, u32> = BTreeMap::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut planned = 0;
    // Each shard's last controller: its standby, which holds the whole journal (its
    // predecessor's adopted), or its leader.
    let last = |c: &ControllerRun| {
        c.role == "standby"
            || (c.role == "leader"
                && !controllers
                    .iter()
                    .any(|(_, x)| x.shard == c.shard && x.role == "standby"))
    };
    for (state, c) in controllers.iter().filter(|(_, c)| last(c)) {
        if c.phase.as_deref() != Some("completed") {
            problems.push(format!(
                "shard `{}` ended `{}` (exit status {})",
                c.shard,
                c.phase.as_deref().unwrap_or("without a summary"),
                c.exit_code
            ));
        }
        problems.extend(
            c.violations
                .iter()
                .map(|v| format!("shard `{}`: {v}", c.shard)),
        );
        // The last controller of a shard holds its whole journal, its predecessor's adopted.
        match journaled(state) {
            Ok(j) => {
                planned += j.planned;
                for (h, n) in j.reboots {
                    *reboots.entry(h).or_default() += n;
                }
                done.extend(j.done);
                verdicts.insert(c.shard.clone(), j.verdicts);
            }
            Err(e) => problems.push(format!("shard `{}`: {e}", c.shard)),
        }
    }
    for (h, n) in reboots.iter().filter(|(_, n)| **n > 1) {
        problems.push(format!("host `{h}` was rebooted {n} times"));
    }
    if done.len() as u64 != planned {
        problems.push(format!(
            "{} of {planned} planned host(s) were updated",
            done.len()
        ));
    }
    if o.kill_at_stage.is_some() && takeover_secs.is_none() {
        problems.push(format!(
            "no takeover was measured: the first shard's leader was not killed (no host of stage {} was done) or its standby did not take over",
            o.kill_at_stage.unwrap_or(0)
        ));
    }
    let first = verdicts.values().next().cloned().unwrap_or_default();
    let verdicts_agree = verdicts.values().all(|v| *v == first);
    if !verdicts_agree {
        problems.push("the shards journaled different gate verdicts".into());
    }
    let finished: Vec<&ControllerRun> = controllers
        .iter()
        .map(|(_, c)| c)
        .filter(|c| c.role != "killed")
        .collect();
    let etcd_requests = controllers.iter().map(|(_, c)| c.etcd_requests).sum();
    ShardsReport {
        hosts: hosts as usize,
        planned,
        shards: o.shards,
        etcd: if own_etcd {
            format!("one member started for the run, {}", o.etcd.join(","))
        } else {
            o.etcd.join(",")
        },
        wall_secs,
        controller_secs: Stats::of(finished.iter().map(|c| c.wall_secs).collect()),
        peak_rss_mib: Stats::of(finished.iter().map(|c| c.peak_rss_mib).collect()),
        takeover_secs,
        lease_ttl_secs: o.lease_ttl,
        etcd_requests,
        etcd_requests_per_host: etcd_requests as f64 / hosts.max(1) as f64,
        gate_json_bytes: controllers.iter().map(|(_, c)| c.gate_json_bytes).sum(),
        gate_sent_bytes: controllers.iter().map(|(_, c)| c.gate_sent_bytes).sum(),
        gates: first.len(),
        verdicts_agree,
        updated: done.len() as u64,
        problems,
        single,
        controllers: controllers.into_iter().map(|(_, c)| c).collect(),
    }
}
