//! `drift audit` and `drift remediate` as whole workflows: load once (the policy set is never
//! reloaded mid-run), audit through an [`Executor`], save the audit and its review queue, and
//! for `--apply` run the `auto` fixes, re-audit the touched hosts and decide convergence.

use super::audit::{self, CollectOptions, Report};
use super::declared::{self, Declared, DeclaredError};
use super::frame::{self, Summary};
use super::remediate::{self, CommandRun, HostFix, HostOutcome};
use super::store::{self, Queue, QueueItem, StoreError};
use super::Class;
use crate::exec::Executor;
use crate::inventory::{InventoryError, Source};
use crate::model::Host;
use crate::runtime::{LoadOptions, PolicySet};
use crate::PolicyError;
use jiff::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Declared(#[from] DeclaredError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("`{}` has no drift policy: add `drift.rhai` with `fn classify(item)`", .0.display())]
    NoPolicy(PathBuf),
    #[error("--host `{0}` is not in the inventory")]
    UnknownHost(String),
    #[error("the findings frame: {0}")]
    Frame(String),
}

/// What to audit.
#[derive(Debug, Clone)]
pub struct Request {
    pub policy_dir: PathBuf,
    pub inventory: Source,
    /// Default: `declared.toml` in the policy directory.
    pub declared: Option<PathBuf>,
    /// Only these hosts (an audit of some hosts updates the last full audit).
    pub hosts: Vec<String>,
    /// Judge acknowledgements as of this time. Default: now.
    pub as_of: Option<Timestamp>,
    pub state_dir: PathBuf,
    pub workers: usize,
    /// For each host's facts command and each fix command.
    pub timeout: Duration,
}

/// Everything an audit needs, loaded once.
pub struct Setup {
    pub set: PolicySet,
    pub declared: Declared,
    pub hosts: Vec<Host>,
    pub state_dir: PathBuf,
    pub now: Timestamp,
    pub opts: CollectOptions,
    pub warnings: Vec<String>,
    /// Some hosts only (`--host`).
    partial: bool,
}

/// Loads the policy set, inventory and declared state.
pub fn prepare(req: &Request, load: &LoadOptions) -> Result<Setup, DriftError> {
    let set = PolicySet::load(&req.policy_dir, load)?;
    if !set.defines("drift", "classify", 1) {
        return Err(DriftError::NoPolicy(req.policy_dir.clone()));
    }
    let inv = req.inventory.load(set.field_map())?;
    let path = req
        .declared
        .clone()
        .unwrap_or_else(|| req.policy_dir.join(declared::FILE_NAME));
    let declared = Declared::load(&path)?;
    let mut warnings: Vec<String> = declared
        .unknown_hosts(&inv.hosts)
        .into_iter()
        .map(|h| {
            format!(
                "`{}` declares host `{h}`, which the inventory does not have",
                path.display()
            )
        })
        .collect();
    let mut hosts = inv.hosts;
    if !req.hosts.is_empty() {
        if let Some(h) = req
            .hosts
            .iter()
            .find(|h| !hosts.iter().any(|x| &x.name == *h))
        {
            return Err(DriftError::UnknownHost(h.clone()));
        }
        hosts.retain(|h| req.hosts.contains(&h.name));
    }
    if hosts.is_empty() {
        warnings.push("no hosts to audit".into());
    }
    let now = match req.as_of {
        Some(t) => t,
        None => Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_default(),
    };
    Ok(Setup {
        set,
        declared,
        hosts,
        state_dir: req.state_dir.clone(),
        now,
        opts: CollectOptions {
            workers: req.workers.max(1),
            timeout: req.timeout.max(Duration::from_secs(1)),
        },
        warnings,
        partial: !req.hosts.is_empty(),
    })
}

/// Progress of a long phase (`auditing`, `remediating`), host by host.
pub trait Progress: Sync {
    fn start(&self, _what: &str, _hosts: usize) {}
    fn step(&self) {}
    fn done(&self) {}
}

/// No progress shown.
pub struct Quiet;
impl Progress for Quiet {}

fn audit_hosts(
    s: &Setup,
    exec: &dyn Executor,
    hosts: &[Host],
    p: &dyn Progress,
) -> Result<Report, DriftError> {
    p.start("auditing", hosts.len());
    let r = audit::audit(&s.set, &s.declared, exec, hosts, &s.opts, s.now, &|_| {
        p.step()
    });
    p.done();
    Ok(r?)
}

/// Saves the audit and its review queue. An audit of some hosts updates those hosts in the
/// last full audit instead of replacing it, so other hosts stay held.
fn save(s: &Setup, report: &Report) -> Result<Queue, DriftError> {
    let mut whole = report.clone();
    if s.partial {
        if let Some(mut prev) = store::load_audit(&s.state_dir)? {
            prev.merge(report.clone());
            whole = prev;
        }
    }
    Ok(store::save(&s.state_dir, &whole)?)
}

/// An audit, saved.
pub struct Audit {
    pub report: Report,
    pub summary: Summary,
    pub queue: Queue,
}

pub fn audit(s: &Setup, exec: &dyn Executor, p: &dyn Progress) -> Result<Audit, DriftError> {
    let report = audit_hosts(s, exec, &s.hosts, p)?;
    let queue = save(s, &report)?;
    let summary = frame::summary(&report).map_err(|e| DriftError::Frame(e.to_string()))?;
    Ok(Audit {
        report,
        summary,
        queue,
    })
}

/// One host's fixes after `--apply`: what ran, and whether a re-audit found it converged.
#[derive(Debug, Clone, Serialize)]
pub struct FixResult {
    pub host: String,
    pub fixes: Vec<String>,
    pub runs: Vec<CommandRun>,
    pub failed: Option<String>,
    /// Every command ran and the re-audit finds none of the fixed items drifting.
    pub converged: bool,
    /// The fixed items still drifting on re-audit.
    pub remaining: Vec<String>,
}

/// `remediate`: the fixes, and with `apply` what running them did.
pub struct Remediation {
    /// The audit (merged with the re-audit of touched hosts after `apply`).
    pub report: Report,
    pub fixes: Vec<HostFix>,
    /// After `apply`: one per host with fixes.
    pub results: Option<Vec<FixResult>>,
    pub outcomes: Vec<HostOutcome>,
    pub queue: Queue,
}

impl Remediation {
    /// Review items and the hosts held back.
    pub fn review(&self) -> &[QueueItem] {
        &self.queue.items
    }

    /// Nothing left to do: no fix pending or failed, nothing for review.
    pub fn settled(&self) -> bool {
        let fixed = match &self.results {
            None => self.fixes.is_empty(),
            Some(r) => r.iter().all(|r| r.converged),
        };
        fixed && !self.report.needs_attention()
    }
}

/// Audits, then (with `apply`) runs the commands of `auto` findings, decided by the set loaded
/// at the start, logs each outcome, and re-audits the touched hosts with the same set.
pub fn remediate(
    s: &Setup,
    exec: &dyn Executor,
    apply: bool,
    p: &dyn Progress,
) -> Result<Remediation, DriftError> {
    let mut report = audit_hosts(s, exec, &s.hosts, p)?;
    let fixes = remediate::fixes(&report);
    if !apply {
        let queue = save(s, &report)?;
        return Ok(Remediation {
            report,
            fixes,
            results: None,
            outcomes: Vec::new(),
            queue,
        });
    }
    let by_name: HashMap<&str, &Host> = s.hosts.iter().map(|h| (h.name.as_str(), h)).collect();
    p.start("remediating", fixes.len());
    let outcomes = remediate::apply(
        exec,
        &by_name,
        &fixes,
        s.opts.workers,
        s.opts.timeout,
        &|_| p.step(),
    );
    p.done();
    for o in &outcomes {
        store::log(
            &s.state_dir,
            &serde_json::json!({
                "at": Timestamp::now().to_string(),
                "policy": report.policy,
                "outcome": o,
            }),
        )?;
    }
    let touched: Vec<Host> = s
        .hosts
        .iter()
        .filter(|h| fixes.iter().any(|f| f.host == h.name))
        .cloned()
        .collect();
    let after = audit_hosts(s, exec, &touched, p)?;
    let results = fixes
        .iter()
        .map(|f| {
            let o = outcomes.iter().find(|o| o.host == f.host);
            let remaining: Vec<String> = after
                .hosts
                .iter()
                .find(|h| h.host == f.host)
                .map(|h| {
                    h.findings
                        .iter()
                        .filter(|x| {
                            x.class != Class::Acknowledged && f.fixes.contains(&x.subject())
                        })
                        .map(|x| x.subject())
                        .collect()
                })
                .unwrap_or_default();
            FixResult {
                host: f.host.clone(),
                fixes: f.fixes.clone(),
                runs: o.map(|o| o.runs.clone()).unwrap_or_default(),
                failed: o.and_then(|o| o.failed.clone()),
                converged: o.is_some_and(|o| o.failed.is_none()) && remaining.is_empty(),
                remaining,
            }
        })
        .collect();
    report.merge(after);
    let queue = save(s, &report)?;
    Ok(Remediation {
        report,
        fixes,
        results: Some(results),
        outcomes,
        queue,
    })
}
