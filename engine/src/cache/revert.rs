//! Pending reverts of runtime setting changes (`config-set` with a revert duration), kept in
//! an append-only JSON-lines journal so a revert that a killed process never made is reported
//! by the next run, and can be applied with `fleetward cache revert`.

use super::Node;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RevertEvent {
    /// A setting was changed; it must go back to `old` at `due` (RFC 3339).
    Pending {
        id: String,
        node: NodeRef,
        name: String,
        old: String,
        value: String,
        due: String,
        pid: u32,
    },
    /// The revert was made (or failed, with the error).
    Reverted {
        id: String,
        #[serde(default)]
        error: Option<String>,
    },
}

/// A node as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRef {
    pub name: String,
    pub address: String,
    pub port: u16,
}

impl From<&Node> for NodeRef {
    fn from(n: &Node) -> Self {
        NodeRef {
            name: n.name.clone(),
            address: n.address.clone(),
            port: n.port,
        }
    }
}

impl From<&NodeRef> for Node {
    fn from(n: &NodeRef) -> Self {
        Node {
            name: n.name.clone(),
            address: n.address.clone(),
            port: n.port,
        }
    }
}

/// One pending revert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub id: String,
    pub node: NodeRef,
    pub name: String,
    pub old: String,
    pub value: String,
    pub due: String,
    pub pid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("cannot use the revert journal `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("revert journal `{}` line {line} is damaged: {message}", path.display())]
    Damaged {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

pub struct RevertJournal {
    path: PathBuf,
}

impl RevertJournal {
    pub fn new(path: &Path) -> Self {
        RevertJournal {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event, flushed to disk.
    pub fn append(&self, e: &RevertEvent) -> Result<(), RevertError> {
        let io = |source| RevertError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let line = serde_json::to_string(e).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        writeln!(f, "{line}").map_err(io)?;
        f.sync_data().map_err(io)
    }

    /// Every event, in order (a torn last line from a crash is skipped).
    pub fn events(&self) -> Result<Vec<RevertEvent>, RevertError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(RevertError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(l) {
                Ok(e) => out.push(e),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
                Err(e) => {
                    return Err(RevertError::Damaged {
                        path: self.path.clone(),
                        line: i + 1,
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Reverts recorded and not yet made.
    pub fn pending(&self) -> Result<Vec<Pending>, RevertError> {
        Ok(pending(&self.events()?))
    }
}

/// The pending reverts of an event list: the fold the journal is read with.
pub fn pending(events: &[RevertEvent]) -> Vec<Pending> {
    let mut out: Vec<Pending> = Vec::new();
    for e in events {
        match e {
            RevertEvent::Pending {
                id,
                node,
                name,
                old,
                value,
                due,
                pid,
            } => out.push(Pending {
                id: id.clone(),
                node: node.clone(),
                name: name.clone(),
                old: old.clone(),
                value: value.clone(),
                due: due.clone(),
                pid: *pid,
            }),
            RevertEvent::Reverted { id, error: None } => out.retain(|p| &p.id != id),
            RevertEvent::Reverted { .. } => {}
        }
    }
    out
}

/// Whether process `pid` is still alive (Linux: `/proc/PID`).
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_reverts_fold_out_of_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let j = RevertJournal::new(&dir.path().join("reverts.jsonl"));
        let p = |id: &str| RevertEvent::Pending {
            id: id.into(),
            node: NodeRef {
                name: "c1".into(),
                address: "127.0.0.1".into(),
                port: 6379,
            },
            name: "maxmemory-policy".into(),
            old: "allkeys-lru".into(),
            value: "allkeys-lfu".into(),
            due: "2026-01-01T00:00:00Z".into(),
            pid: 1,
        };
        j.append(&p("a")).unwrap();
        j.append(&p("b")).unwrap();
        j.append(&RevertEvent::Reverted {
            id: "a".into(),
            error: None,
        })
        .unwrap();
        j.append(&RevertEvent::Reverted {
            id: "b".into(),
            error: Some("unreachable".into()),
        })
        .unwrap();
        let left = j.pending().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, "b", "a failed revert stays pending");
        // A torn last line is skipped; damage elsewhere is an error.
        let mut text = std::fs::read_to_string(j.path()).unwrap();
        text.push_str("{\"event\":\"rev");
        std::fs::write(j.path(), &text).unwrap();
        assert_eq!(j.pending().unwrap().len(), 1);
        std::fs::write(j.path(), format!("garbage\n{text}\n")).unwrap();
        assert!(matches!(
            j.pending(),
            Err(RevertError::Damaged { line: 1, .. })
        ));
    }
}
