//! `fleetward collect` as a workflow: the signals collector over a set of hosts, in rounds,
//! with bounded concurrency, written in the gate's long form (`host, timestamp, metric,
//! value`) as CSV or Parquet, so a baseline or a `gate` input comes from real hosts.

use super::{parse, Request, Sample};
use crate::clock::{epoch_secs, Clock};
use crate::exec::Executor;
use crate::model::Host;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// What to collect.
#[derive(Debug, Clone)]
pub struct Plan {
    pub hosts: Vec<Host>,
    /// The collector's window, devices and interfaces; `since` is set per round.
    pub request: Request,
    /// Kernel-log classes counted as events.
    pub classes: Vec<String>,
    /// Collections per host, `every` seconds apart.
    pub rounds: u32,
    pub every: Duration,
    pub workers: usize,
    /// Per host per collection.
    pub timeout: Duration,
}

/// One host's collections.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostReport {
    pub host: String,
    pub samples: usize,
    /// Collections that returned samples.
    pub ok: u32,
    /// Why the others did not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// What the host could not read (`klog: …`, `units: …`), from its last collection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Failed systemd units at the last collection, where systemd could be asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units_failed: Option<u64>,
    /// SSH round trips, all rounds together (one per collection).
    pub round_trips: u32,
    /// Bytes the host sent, all rounds together.
    pub bytes: usize,
    /// Wall time of the slowest collection.
    pub max_ms: u64,
}

/// The samples of every host, and what each host's collections cost and met.
#[derive(Debug, Clone)]
pub struct Collected {
    pub rows: Vec<(String, Sample)>,
    pub hosts: Vec<HostReport>,
}

impl Collected {
    /// Hosts none of whose collections returned samples.
    pub fn failed(&self) -> impl Iterator<Item = &HostReport> {
        self.hosts.iter().filter(|h| h.ok == 0)
    }
}

/// Runs the collections: each round reaches every host once (at most `workers` at a time);
/// rounds start `every` apart on `clock`.
pub fn collect(plan: &Plan, exec: &dyn Executor, clock: &dyn Clock) -> Collected {
    let mut reports: Vec<HostReport> = plan
        .hosts
        .iter()
        .map(|h| HostReport {
            host: h.name.clone(),
            ..HostReport::default()
        })
        .collect();
    let mut rows = Vec::new();
    for round in 0..plan.rounds.max(1) {
        let started = clock.now();
        let now = epoch_secs(started);
        let mut req = plan.request.clone();
        req.since = if round == 0 {
            0
        } else {
            (now.max(0.0) as u64).saturating_sub(plan.every.as_secs())
        };
        let cmd = req.command();
        let out = crate::pool::bounded_map(&plan.hosts, plan.workers, |h| {
            let t = Instant::now();
            let r = exec.run_at(h, &cmd, plan.timeout, clock);
            exec.release(h);
            (r, t.elapsed())
        });
        for ((host, report), res) in plan.hosts.iter().zip(reports.iter_mut()).zip(out) {
            let Some((r, took)) = res else {
                report.errors.push("collector thread died".into());
                continue;
            };
            report.round_trips += 1;
            report.max_ms = report.max_ms.max(took.as_millis() as u64);
            match r {
                Ok(o) => {
                    report.bytes += o.stdout.len() + o.stderr.len();
                    if !o.success() {
                        report.errors.push(format!(
                            "the collector exited {}: {}",
                            o.status,
                            o.first_line()
                        ));
                        continue;
                    }
                    match parse(&o.stdout, now, &plan.classes) {
                        Ok(c) => {
                            if c.samples.is_empty() {
                                report.errors.push("no samples".into());
                            } else {
                                report.ok += 1;
                            }
                            report.samples += c.samples.len();
                            report.missing = c.missing;
                            report.units_failed = c.units_failed;
                            for b in c.bad.iter().take(1) {
                                report.errors.push(format!("unreadable line `{b}`"));
                            }
                            rows.extend(c.samples.into_iter().map(|s| (host.name.clone(), s)));
                        }
                        Err(e) => report.errors.push(e.to_string()),
                    }
                }
                Err(e) => report.errors.push(e.to_string()),
            }
        }
        if round + 1 < plan.rounds {
            let elapsed = clock.now().duration_since(started).unsigned_abs();
            clock.sleep(plan.every.saturating_sub(elapsed));
        }
    }
    Collected {
        rows,
        hosts: reports,
    }
}

/// Writes rows in the gate's schema (epoch-second timestamps), as CSV or Parquet by the
/// file's extension.
pub fn write(path: &Path, rows: &[(String, Sample)]) -> Result<(), crate::gate::frames::DataError> {
    let host: Vec<String> = rows.iter().map(|(h, _)| h.clone()).collect();
    let timestamp: Vec<i64> = rows
        .iter()
        .map(|(_, s)| s.timestamp.round() as i64)
        .collect();
    let metric: Vec<&str> = rows.iter().map(|(_, s)| s.metric.as_str()).collect();
    let value: Vec<f64> = rows.iter().map(|(_, s)| s.value).collect();
    crate::gate::frames::write(
        crate::gate::frames::Rows {
            host: &host,
            timestamp: &timestamp,
            metric: &metric,
            value: &value,
        },
        path,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Policy(#[from] crate::PolicyError),
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Data(#[from] crate::gate::frames::DataError),
    #[error("--host `{0}` is not in the inventory")]
    UnknownHost(String),
    #[error("no hosts to collect from: the inventory, `--host` and `--target` leave none")]
    NoHosts,
    #[error("{0}")]
    Invalid(String),
}

/// What `fleetward collect` was asked for.
#[derive(Debug, Clone)]
pub struct CollectRequest {
    pub policy_dir: std::path::PathBuf,
    pub inventory: crate::inventory::Source,
    /// Only these hosts (default: the whole inventory).
    pub hosts: Vec<String>,
    /// Only the hosts this label selector picks (`datacenter=ams1,hardware in (r750, r760)`,
    /// `facts.NAME=…`), as policies' `selector_match`.
    pub target: Option<String>,
    /// Seconds of one-second readings per collection; default: `signals().window`.
    pub window: Option<u64>,
    pub rounds: u32,
    pub every: Duration,
    pub workers: usize,
    pub out: std::path::PathBuf,
}

/// Loads the policy set (the inventory's field mapping; devices, interfaces and kernel-log
/// classes from `signals()` when it uses the ssh collector), picks the hosts, collects, and
/// writes the samples.
pub fn run(
    req: &CollectRequest,
    load: &crate::LoadOptions,
    exec: &dyn Executor,
    clock: &dyn Clock,
) -> Result<Collected, CollectError> {
    use crate::rollout::spec::{SignalSource, Signals};
    let set = crate::PolicySet::load(&req.policy_dir, load)?;
    let inv = req.inventory.load(set.field_map())?;
    let mut hosts = inv.hosts;
    if let Some(h) = req
        .hosts
        .iter()
        .find(|h| !hosts.iter().any(|x| &x.name == *h))
    {
        return Err(CollectError::UnknownHost(h.clone()));
    }
    if !req.hosts.is_empty() {
        hosts.retain(|h| req.hosts.contains(&h.name));
    }
    if let Some(t) = &req.target {
        let sel = fleetward_stdlib::Selector::parse(t)
            .map_err(|e| CollectError::Invalid(format!("--target: {e}")))?;
        hosts.retain(|h| {
            crate::runtime::typed::host_to_dynamic(h)
                .read_lock::<rhai::Map>()
                .is_some_and(|m| sel.matches(&m))
        });
    }
    if hosts.is_empty() {
        return Err(CollectError::NoHosts);
    }
    let signals: Option<Signals> = if set.defines("rollout", "signals", 0) {
        let v = set.eval_json("rollout", "signals", vec![])?.value;
        serde_json::from_value::<Signals>(v)
            .ok()
            .filter(|s| s.source() == SignalSource::Ssh)
    } else {
        None
    };
    // Without an ssh `signals()`, the collector's defaults with a minute per collection.
    let s = signals.unwrap_or(Signals {
        timeout: 60,
        ..Signals::default()
    });
    let window = req.window.unwrap_or(s.window);
    if window == 0 {
        return Err(CollectError::Invalid(
            "--window must be at least 1 second".into(),
        ));
    }
    let plan = Plan {
        hosts,
        request: Request {
            window,
            since: 0,
            devices: s.devices,
            interfaces: s.interfaces,
        },
        classes: s.kernel_log,
        rounds: req.rounds.max(1),
        every: req.every,
        workers: req.workers.max(1),
        timeout: Duration::from_secs(window + s.timeout.saturating_sub(s.window).max(30)),
    };
    let c = collect(&plan, exec, clock);
    write(&req.out, &c.rows)?;
    Ok(c)
}
