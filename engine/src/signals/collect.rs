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
#[derive(Debug, Clone, Default)]
pub struct Collected {
    pub rows: Vec<(String, Sample)>,
    pub hosts: Vec<HostReport>,
    /// Prometheus: the range queries planned, the HTTP requests made (retries included), and
    /// the errors of whole queries (Prometheus's own message, naming the query).
    pub queries: Option<usize>,
    pub requests: Option<u64>,
    pub errors: Vec<String>,
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
        ..Collected::default()
    }
}

/// Reads `hosts` over `range` from Prometheus: batched range queries, each host's samples
/// and what it lacks.
pub fn query(
    store: &dyn super::prometheus::MetricsStore,
    endpoint: &super::prometheus::Endpoint,
    spec: &super::prometheus::Spec,
    hosts: &[Host],
    range: super::prometheus::Range,
) -> Collected {
    let before = store.requests();
    let refs: Vec<&Host> = hosts.iter().collect();
    let mut f = super::prometheus::fetch(store, endpoint, spec, &refs, range);
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (h, _) in &f.rows {
        *counts.entry(h.as_str()).or_default() += 1;
    }
    let hosts = hosts
        .iter()
        .map(|h| {
            let n = counts.get(h.name.as_str()).copied().unwrap_or(0);
            HostReport {
                host: h.name.clone(),
                samples: n,
                ok: u32::from(n > 0),
                errors: f.host_errors.remove(&h.name).unwrap_or_default(),
                ..HostReport::default()
            }
        })
        .collect();
    Collected {
        rows: f.rows,
        hosts,
        queries: Some(f.queries),
        requests: Some(store.requests() - before),
        errors: f.errors,
    }
}

/// A time as `--from`/`--to` take it: RFC 3339, epoch seconds, `now`, or `now-DURATION` /
/// `-DURATION` with `s`, `m`, `h` or `d` (`now-2h`). Epoch seconds out.
pub fn parse_time(s: &str, now: f64) -> Result<f64, String> {
    let t = s.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Some(rel) = t.strip_prefix("now-").or_else(|| t.strip_prefix('-')) {
        let (num, unit) =
            rel.split_at(rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len()));
        let n: f64 = num
            .parse::<u32>()
            .map_err(|_| {
                format!("`{s}` is not a time: `now-` takes a count and a unit, as `now-2h`")
            })?
            .into();
        let mult = match unit {
            "s" | "" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => {
                return Err(format!(
                    "`{s}` is not a time: the unit is `s`, `m`, `h` or `d`"
                ))
            }
        };
        return Ok(now - n * mult);
    }
    if let Ok(n) = t.parse::<f64>() {
        if n.is_finite() && n >= 0.0 {
            return Ok(n);
        }
    }
    t.parse::<jiff::Timestamp>()
        .map(epoch_secs)
        .map_err(|_| format!("`{s}` is not a time: use RFC 3339 (`2026-12-03T10:00:00Z`), epoch seconds, `now` or `now-2h`"))
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

/// Where `collect` reads.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceArg {
    /// The agentless collector over SSH, for `window` seconds per round.
    Ssh,
    /// A Prometheus at this base URL, over `[from, to]` (epoch seconds).
    Prometheus { url: String, from: f64, to: f64 },
}

impl SourceArg {
    /// `ssh`, or `prometheus:URL` with `--from`/`--to` (default: the last hour).
    pub fn parse(
        s: &str,
        from: Option<&str>,
        to: Option<&str>,
        now: f64,
    ) -> Result<SourceArg, String> {
        if s == "ssh" {
            if from.is_some() || to.is_some() {
                return Err("--from and --to are for `--source prometheus:URL`; the ssh collector reads now, for --window".into());
            }
            return Ok(SourceArg::Ssh);
        }
        let Some(url) = s.strip_prefix("prometheus:") else {
            return Err(format!(
                "--source `{s}` is not a source: use `ssh` or `prometheus:URL` (`prometheus:http://prom:9090`)"
            ));
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "--source `{s}`: the Prometheus URL must start with http:// or https://"
            ));
        }
        let to = match to {
            Some(t) => parse_time(t, now)?,
            None => now,
        };
        let from = match from {
            Some(t) => parse_time(t, now)?,
            None => to - 3600.0,
        };
        if from >= to {
            return Err(format!("--from must be before --to (got {from} and {to})"));
        }
        Ok(SourceArg::Prometheus {
            url: url.to_string(),
            from,
            to,
        })
    }
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
    pub source: SourceArg,
    /// Seconds of one-second readings per collection; default: `signals().window`.
    pub window: Option<u64>,
    /// Prometheus: seconds between points; default: `signals().step`.
    pub step: Option<u64>,
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
    store: &dyn super::prometheus::MetricsStore,
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
    let policy: Option<Signals> = if set.defines("rollout", "signals", 0) {
        let v = set.eval_json("rollout", "signals", vec![])?.value;
        serde_json::from_value::<Signals>(v).ok()
    } else {
        None
    };
    if let SourceArg::Prometheus { url, from, to } = &req.source {
        // The policy's templates when it reads Prometheus, else node_exporter's.
        let mut s = policy
            .filter(|s| s.source() == SignalSource::Prometheus)
            .unwrap_or_else(|| Signals {
                source: Some(SignalSource::Prometheus),
                ..Signals::default()
            });
        s.url = Some(url.clone());
        if let Some(step) = req.step {
            s.step = step;
        }
        s.validate()
            .map_err(|e| CollectError::Invalid(format!("`signals()`: {e}")))?;
        let spec = s.prometheus();
        let endpoint = super::prometheus::Endpoint {
            url: url.clone(),
            settings: set.prometheus_settings(),
        };
        let range = super::prometheus::Range {
            start: *from,
            end: *to,
            step: spec.step,
        };
        let c = query(store, &endpoint, &spec, &hosts, range);
        write(&req.out, &c.rows)?;
        return Ok(c);
    }
    let signals = policy.filter(|s| s.source() == SignalSource::Ssh);
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
