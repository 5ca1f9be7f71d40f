//! Drift state on disk, in `<state-dir>/drift/`: the latest audit (`audit.json`), the review
//! queue (`review-queue.json`, which also lists the hosts a rollout must hold back) and the
//! remediation log (`remediation.jsonl`). Files are replaced atomically.

use super::audit::{HostStatus, Report};
use super::{Class, Kind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write `{}`: {message}", .path.display())]
    Write { path: PathBuf, message: String },
    #[error("cannot read `{}`: {message}", .path.display())]
    Read { path: PathBuf, message: String },
    #[error("--drift-queue `{}` does not exist: run `fleetward drift audit` first", .path.display())]
    NoQueue { path: PathBuf },
}

/// Which review queue holds hosts back from a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueChoice {
    /// Plan as if no audit had been made.
    Ignore,
    /// The default queue in the default state directory, when there is one.
    Default,
    /// This queue, which must exist.
    File(PathBuf),
}

impl QueueChoice {
    /// The queue file to read, if any.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            QueueChoice::Ignore => None,
            QueueChoice::Default => Some(queue_path(&crate::paths::default_state_dir())),
            QueueChoice::File(p) => Some(p.clone()),
        }
    }

    /// The hosts of `hosts` the audit holds back.
    pub fn held(&self, hosts: &[crate::model::Host]) -> Result<HeldHosts, StoreError> {
        let Some(path) = self.path() else {
            return Ok(HeldHosts::default());
        };
        match load_queue(&path)? {
            Some(q) => Ok(HeldHosts {
                hosts: q.held_among(hosts.iter().map(|h| h.name.as_str())),
                source: Some((path.display().to_string(), q.audited_at)),
            }),
            None if matches!(self, QueueChoice::File(_)) => Err(StoreError::NoQueue { path }),
            None => Ok(HeldHosts::default()),
        }
    }
}

/// The hosts a drift audit holds back, and where that came from.
#[derive(Debug, Clone, Default)]
pub struct HeldHosts {
    pub hosts: std::collections::BTreeMap<String, String>,
    /// The queue file and when its audit ran, when one was read.
    pub source: Option<(String, String)>,
}

/// A review item waiting for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    pub host: String,
    pub group: String,
    pub kind: Kind,
    pub key: String,
    pub field: String,
    pub declared: String,
    pub actual: String,
    pub reason: String,
    /// The first audit that found it.
    pub first_seen: String,
}

/// A host a rollout must leave alone until its drift is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub host: String,
    pub reason: String,
}

/// `review-queue.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    pub audited_at: String,
    pub policy: String,
    pub items: Vec<QueueItem>,
    pub held: Vec<Held>,
    /// Every host the audit covered: a host it does not name was never judged.
    #[serde(default)]
    pub audited: Vec<String>,
}

impl Queue {
    /// The hosts of `names` to hold back, with why: those the audit held, and those it never
    /// saw.
    pub fn held_among<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> std::collections::BTreeMap<String, String> {
        let held: std::collections::HashMap<&str, &str> = self
            .held
            .iter()
            .map(|h| (h.host.as_str(), h.reason.as_str()))
            .collect();
        let audited: std::collections::HashSet<&str> =
            self.audited.iter().map(String::as_str).collect();
        let mut out = std::collections::BTreeMap::new();
        for n in names {
            if let Some(r) = held.get(n) {
                out.insert(n.to_string(), (*r).to_string());
            } else if !audited.is_empty() && !audited.contains(n) {
                out.insert(
                    n.to_string(),
                    format!("not in the drift audit of {}", self.audited_at),
                );
            }
        }
        out
    }
}

/// The directory inside a state directory.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("drift")
}

pub fn queue_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("review-queue.json")
}

pub fn audit_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("audit.json")
}

pub fn log_path(state_dir: &Path) -> PathBuf {
    dir(state_dir).join("remediation.jsonl")
}

/// Hosts to hold back, and why: unresolved review drift, facts that could not be read, or
/// no audit at all (automation is unsafe on hosts we do not fully understand).
pub fn held(r: &Report) -> Vec<Held> {
    let mut out = Vec::new();
    for h in &r.hosts {
        let review: Vec<String> = h
            .findings
            .iter()
            .filter(|f| f.class == Class::Review)
            .map(|f| f.subject())
            .collect();
        let unknown = h.count(Class::Unknown);
        let reason = if !review.is_empty() {
            format!("review drift: {}", review.join(", "))
        } else if h.status == HostStatus::Unreachable {
            format!(
                "not audited: {}",
                h.error.as_deref().unwrap_or("unreachable")
            )
        } else if unknown > 0 {
            format!("{unknown} declared fact(s) could not be read")
        } else {
            continue;
        };
        out.push(Held {
            host: h.host.clone(),
            reason,
        });
    }
    out
}

/// The queue for `r`, keeping when each item was first seen from `previous`.
pub fn queue(r: &Report, previous: Option<&Queue>) -> Queue {
    let mut items = Vec::new();
    for h in &r.hosts {
        for f in h.findings.iter().filter(|f| f.class == Class::Review) {
            let first_seen = previous
                .and_then(|p| {
                    p.items.iter().find(|q| {
                        q.host == h.host && q.kind == f.kind && q.key == f.key && q.field == f.field
                    })
                })
                .map(|q| q.first_seen.clone())
                .unwrap_or_else(|| r.at.clone());
            items.push(QueueItem {
                host: h.host.clone(),
                group: h.group.clone(),
                kind: f.kind,
                key: f.key.clone(),
                field: f.field.clone(),
                declared: f.declared.clone(),
                actual: f.actual.clone(),
                reason: f.reason.clone(),
                first_seen,
            });
        }
    }
    Queue {
        audited_at: r.at.clone(),
        policy: r.policy.clone(),
        items,
        held: held(r),
        audited: r.hosts.iter().map(|h| h.host.clone()).collect(),
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let err = |e: std::io::Error| StoreError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(err)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let err = |message: String| StoreError::Read {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}

pub fn load_queue(path: &Path) -> Result<Option<Queue>, StoreError> {
    read_json(path)
}

pub fn load_audit(state_dir: &Path) -> Result<Option<Report>, StoreError> {
    read_json(&audit_path(state_dir))
}

/// Saves an audit and the queue derived from it.
pub fn save(state_dir: &Path, r: &Report) -> Result<Queue, StoreError> {
    let previous = load_queue(&queue_path(state_dir)).ok().flatten();
    let q = queue(r, previous.as_ref());
    write_atomic(&audit_path(state_dir), &pretty(r))?;
    write_atomic(&queue_path(state_dir), &pretty(&q))?;
    Ok(q)
}

/// Appends one JSON line to the remediation log.
pub fn log(state_dir: &Path, entry: &serde_json::Value) -> Result<(), StoreError> {
    use std::io::Write;
    let path = log_path(state_dir);
    let err = |e: std::io::Error| StoreError::Write {
        path: path.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir(state_dir)).map_err(err)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(err)?;
    // One write of the whole line: records from parallel workers never interleave.
    f.write_all(format!("{entry}\n").as_bytes()).map_err(err)?;
    f.sync_data().map_err(err)
}

/// Pretty JSON with a final newline.
fn pretty<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_the_audit_held_or_never_saw_are_held() {
        let q = Queue {
            audited_at: "2026-12-01T00:00:00Z".into(),
            policy: "p".into(),
            items: Vec::new(),
            held: vec![Held {
                host: "a".into(),
                reason: "review drift: cmdline".into(),
            }],
            audited: vec!["a".into(), "b".into()],
        };
        let h = q.held_among(["a", "b", "c"]);
        assert_eq!(h.len(), 2);
        assert_eq!(h["a"], "review drift: cmdline");
        assert_eq!(h["c"], "not in the drift audit of 2026-12-01T00:00:00Z");
    }
}
