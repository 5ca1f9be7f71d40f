//! An audit: collect every host's facts (one command per host, bounded concurrency, a timeout
//! per host), then compare and classify. Collection is the only part that does I/O.

use super::declared::{Declared, HostSpec};
use super::facts::{facts_command, parse_facts, Facts};
use super::{classify, diverge, group_of, Class, Finding};
use crate::exec::Executor;
use crate::model::Host;
use crate::runtime::PolicySet;
use crate::PolicyError;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A host's overall state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    /// Matches its declared state (acknowledged drift aside).
    Clean,
    /// Has `auto` or `review` findings.
    Drift,
    /// Matches as far as could be read, but some facts could not be.
    Unknown,
    /// Could not be audited at all.
    Unreachable,
}

/// One host's audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostAudit {
    pub host: String,
    pub group: String,
    pub status: HostStatus,
    /// Declared facts checked.
    pub checked: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub findings: Vec<Finding>,
}

impl HostAudit {
    pub fn count(&self, class: Class) -> usize {
        self.findings.iter().filter(|f| f.class == class).count()
    }
}

/// A fleet audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// When (or "as of" when) acknowledgements were judged.
    pub at: String,
    /// Hash of the policy set that classified.
    pub policy: String,
    /// Hash of the declared-state file.
    pub declared: String,
    pub hosts: Vec<HostAudit>,
}

impl Report {
    /// Does anything need attention (exit 2)?
    pub fn needs_attention(&self) -> bool {
        self.hosts.iter().any(|h| h.status != HostStatus::Clean)
    }

    /// Replaces the entries of re-audited hosts.
    pub fn merge(&mut self, newer: Report) {
        for h in newer.hosts {
            match self.hosts.iter_mut().find(|x| x.host == h.host) {
                Some(x) => *x = h,
                None => self.hosts.push(h),
            }
        }
        self.at = newer.at;
        self.policy = newer.policy;
        self.declared = newer.declared;
    }
}

/// How to collect.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    pub workers: usize,
    /// For the one facts command of each host.
    pub timeout: Duration,
}

/// What collection got from one host.
pub type Collected = Result<Facts, Unreadable>;

crate::error::message_error! {
    /// Why a host's facts could not be read, in words (the audit reports the host unreachable).
    pub struct Unreadable;
}

/// Runs the facts command on every host, `workers` at a time; `progress` is told after each.
pub fn collect(
    exec: &dyn Executor,
    hosts: &[Host],
    specs: &[HostSpec],
    opts: &CollectOptions,
    progress: &(dyn Fn(&Host) + Sync),
) -> Vec<Collected> {
    let pairs: Vec<(&Host, &HostSpec)> = hosts.iter().zip(specs).collect();
    crate::pool::bounded_map(&pairs, opts.workers, |(h, spec)| {
        let r = collect_one(exec, h, spec, opts.timeout);
        exec.release(h);
        progress(h);
        r
    })
    .into_iter()
    .map(|r| r.unwrap_or_else(|| Err("not collected: a worker failed".into())))
    .collect()
}

fn collect_one(exec: &dyn Executor, h: &Host, spec: &HostSpec, timeout: Duration) -> Collected {
    let out = exec
        .run(h, &facts_command(spec), timeout)
        .map_err(|e| e.to_string())?;
    if !out.success() {
        let err = out.stderr.trim();
        return Err(format!(
            "the facts command exited with {}{}",
            out.status,
            if err.is_empty() {
                String::new()
            } else {
                format!(": {}", err.lines().last().unwrap_or(err))
            }
        )
        .into());
    }
    let (facts, _bad) = parse_facts(&out.stdout);
    if facts.is_empty() {
        return Err("the facts command printed no facts".into());
    }
    Ok(facts)
}

/// Compares and classifies one host. Pure apart from the policy call.
pub fn audit_host(
    set: &PolicySet,
    host: &Host,
    spec: &HostSpec,
    collected: &Collected,
    now: Timestamp,
) -> Result<HostAudit, PolicyError> {
    let group = group_of(host);
    let facts = match collected {
        Ok(f) => f,
        Err(e) => {
            return Ok(HostAudit {
                host: host.name.clone(),
                group,
                status: HostStatus::Unreachable,
                checked: 0,
                error: Some(e.0.clone()),
                findings: Vec::new(),
            })
        }
    };
    let (checked, divs) = diverge(spec, facts);
    let findings = divs
        .iter()
        .map(|d| classify(set, host, d, now))
        .collect::<Result<Vec<_>, _>>()?;
    let status = if findings
        .iter()
        .any(|f| matches!(f.class, Class::Auto | Class::Review))
    {
        HostStatus::Drift
    } else if findings.iter().any(|f| f.class == Class::Unknown) {
        HostStatus::Unknown
    } else {
        HostStatus::Clean
    };
    Ok(HostAudit {
        host: host.name.clone(),
        group,
        status,
        checked,
        error: None,
        findings,
    })
}

/// Audits `hosts`: collect, then compare and classify.
pub fn audit(
    set: &PolicySet,
    declared: &Declared,
    exec: &dyn Executor,
    hosts: &[Host],
    opts: &CollectOptions,
    now: Timestamp,
    progress: &(dyn Fn(&Host) + Sync),
) -> Result<Report, PolicyError> {
    let specs: Vec<HostSpec> = hosts.iter().map(|h| declared.resolve(h)).collect();
    let collected = collect(exec, hosts, &specs, opts, progress);
    let mut out = Vec::with_capacity(hosts.len());
    for ((h, spec), c) in hosts.iter().zip(&specs).zip(&collected) {
        out.push(audit_host(set, h, spec, c, now)?);
    }
    Ok(Report {
        at: now.to_string(),
        policy: set.hash().to_string(),
        declared: declared.hash.clone(),
        hosts: out,
    })
}
