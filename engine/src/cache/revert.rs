//! Reverts of runtime setting changes (`config-set` with a revert duration), kept in an
//! append-only JSON-lines journal, and the [`Recorder`] that writes it.
//!
//! Every change is on disk (the audit record and, when it is to be reverted, the pending
//! revert, each fsynced) before its `CONFIG SET` is sent, one node at a time, so a run killed
//! at any point leaves a journal that [`revert_orphans`] (`fleetward cache revert`) can finish.
//!
//! Runs on one setting of one node stack: each entry keeps the value before the whole stack
//! (`old`, the original) and its own new value. Taking entries off the stack sets the node to
//! the value of the highest entry left whose process is alive, or to the original when none
//! is, and sends nothing when the top stays. So two killed runs end on the original, and a
//! short-lived change on top of a longer one goes back to the longer one's value.
//!
//! Reverts are commands like any other: they pass the guard ([`super::runner::send_guarded`]),
//! at the class recorded in the journal but never above `write` without `--confirm`.

use super::client::CacheClient;
use super::guard::{is_secret, Guards, Safety};
use super::runner::{send_guarded, Ledger, LedgerError, SetOutcome};
use super::Node;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

fn default_safety() -> Safety {
    Safety::Write
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RevertEvent {
    /// A setting is being changed; it must go back at its `due` time.
    Pending(Pending),
    /// The revert was made, or taken over, or the change never happened (`how`); a failed
    /// revert (`error`) stays pending.
    Reverted {
        id: String,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        how: Option<String>,
    },
}

/// A node as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

/// One pending revert: `name` on `node` is changed to `value`, and goes back to `old` (the
/// value before every change stacked on it) at `due` (RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub id: String,
    pub node: NodeRef,
    pub name: String,
    pub old: String,
    pub value: String,
    pub due: String,
    pub pid: u32,
    /// The catalogue command that made the change.
    #[serde(default)]
    pub command: String,
    /// Its safety class.
    #[serde(default = "default_safety")]
    pub safety: Safety,
}

impl Pending {
    /// One setting of one node: entries with the same key stack.
    fn key(&self) -> (String, u16, String) {
        (self.node.address.clone(), self.node.port, self.name.clone())
    }
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
    #[error("cannot write the audit log `{}`: {source}", path.display())]
    Audit {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub struct RevertJournal {
    path: PathBuf,
}

/// The journal, opened and locked (an exclusive `flock`, released on drop), so a read and
/// the appends that follow from it are one step for every process sharing the journal.
struct Locked {
    file: File,
    path: PathBuf,
}

impl Locked {
    fn io(&self, source: std::io::Error) -> RevertError {
        RevertError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn events(&mut self) -> Result<Vec<RevertEvent>, RevertError> {
        let mut text = String::new();
        self.file.seek(SeekFrom::Start(0)).map_err(|e| self.io(e))?;
        self.file
            .read_to_string(&mut text)
            .map_err(|e| self.io(e))?;
        parse(&self.path, &text)
    }

    /// Appends an event, flushed to disk before it returns.
    fn append(&mut self, e: &RevertEvent) -> Result<(), RevertError> {
        let line = serde_json::to_string(e).map_err(|e| self.io(std::io::Error::other(e)))?;
        // A torn last line from a crash would swallow this record: start on a line of its own.
        let len = self.file.seek(SeekFrom::End(0)).map_err(|e| self.io(e))?;
        let mut prefix = "";
        if len > 0 {
            let mut last = [0u8; 1];
            self.file.seek(SeekFrom::End(-1)).map_err(|e| self.io(e))?;
            self.file.read_exact(&mut last).map_err(|e| self.io(e))?;
            if last[0] != b'\n' {
                prefix = "\n";
            }
        }
        self.file
            .write_all(format!("{prefix}{line}\n").as_bytes())
            .map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<RevertEvent>, RevertError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(l) {
            Ok(e) => out.push(e),
            // A torn line from a crash mid-write: the last line, or one a later append
            // started a new line after.
            Err(e) if e.is_eof() => {}
            Err(e) => {
                return Err(RevertError::Damaged {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(out)
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

    fn lock(&self) -> Result<Locked, RevertError> {
        let io = |source| RevertError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        file.lock().map_err(io)?;
        Ok(Locked {
            file,
            path: self.path.clone(),
        })
    }

    /// Appends an event, flushed to disk.
    pub fn append(&self, e: &RevertEvent) -> Result<(), RevertError> {
        self.lock()?.append(e)
    }

    /// Every event, in order (a torn line from a crash is skipped).
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
        parse(&self.path, &text)
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
            RevertEvent::Pending(p) => out.push(p.clone()),
            RevertEvent::Reverted {
                id, error: None, ..
            } => out.retain(|p| &p.id != id),
            RevertEvent::Reverted { .. } => {}
        }
    }
    out
}

/// Whether process `pid` is still alive (Linux: `/proc/PID`, and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses: `Z` is a zombie.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
        Err(_) => false,
    }
}

/// What taking entries off one setting's stack does: the ids to mark reverted, and the value
/// to set the node to (`None`: the top stays, nothing is sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    pub ids: Vec<String>,
    pub set_to: Option<String>,
}

/// Takes off the entries of one stack (`group`, journal order) that `removing` names or whose
/// process is gone. Pure over the journal's data and `alive`.
pub fn settle(
    group: &[&Pending],
    removing: &dyn Fn(&Pending) -> bool,
    alive: &dyn Fn(u32) -> bool,
) -> Settle {
    let stays = |p: &Pending| !removing(p) && alive(p.pid);
    let ids: Vec<String> = group
        .iter()
        .filter(|p| !stays(p))
        .map(|p| p.id.clone())
        .collect();
    let top_before = group.last().map(|p| p.id.clone());
    let top_after = group.iter().rev().find(|p| stays(p));
    let set_to = if top_after.map(|p| p.id.clone()) == top_before {
        None
    } else {
        Some(match top_after {
            Some(p) => p.value.clone(),
            None => group.first().map(|p| p.old.clone()).unwrap_or_default(),
        })
    };
    Settle { ids, set_to }
}

/// What one revert did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub node: NodeRef,
    pub name: String,
    /// The value the node was set back to; `None` when nothing was sent (a later change on
    /// the same setting is still live and restores it).
    pub restored: Option<String>,
    /// The journal entries this settled.
    pub ids: Vec<String>,
    pub error: Option<String>,
}

impl Outcome {
    pub fn line(&self) -> String {
        match (&self.error, &self.restored) {
            (Some(e), _) => format!(
                "REVERT FAILED: `{}` on `{}`: {e}",
                self.name, self.node.name
            ),
            (None, Some(v)) => format!("reverted `{}` on `{}` to `{v}`", self.name, self.node.name),
            (None, None) => format!(
                "`{}` on `{}`: a later change is still live and restores it",
                self.name, self.node.name
            ),
        }
    }
}

/// Settles one stack under the journal's lock: sends the `CONFIG SET` that [`settle`] asks
/// for (through the guard), then marks the entries reverted. A failed or refused send leaves
/// them pending.
#[allow(clippy::too_many_arguments)]
fn settle_stack(
    locked: &mut Locked,
    group: &[&Pending],
    removing: &dyn Fn(&Pending) -> bool,
    client: &dyn CacheClient,
    safety: Safety,
    guards: &Guards,
    confirmed: bool,
    how: &str,
) -> Result<Option<Outcome>, RevertError> {
    let s = settle(group, removing, &alive);
    let Some(first) = group.first() else {
        return Ok(None);
    };
    if s.ids.is_empty() {
        return Ok(None);
    }
    let node: Node = (&first.node).into();
    let error = match &s.set_to {
        None => None,
        Some(v) => {
            let cmd = vec!["CONFIG".into(), "SET".into(), first.name.clone(), v.clone()];
            crate::failpoint::hit("cache.before_revert");
            match send_guarded(client, &node, &[cmd], safety, guards, confirmed, None) {
                Ok((replies, _)) => match replies.first() {
                    Some(r) if r.get("error").is_some() => Some(r["error"].to_string()),
                    _ => None,
                },
                Err(e) => Some(e.to_string()),
            }
        }
    };
    crate::failpoint::hit("cache.after_revert");
    for id in &s.ids {
        locked.append(&RevertEvent::Reverted {
            id: id.clone(),
            error: error.clone(),
            how: Some(how.to_string()),
        })?;
    }
    Ok(Some(Outcome {
        node: first.node.clone(),
        name: first.name.clone(),
        restored: s.set_to,
        ids: s.ids,
        error,
    }))
}

/// Groups pending entries by setting, in journal order.
fn stacks(p: &[Pending]) -> BTreeMap<(String, u16, String), Vec<&Pending>> {
    let mut m: BTreeMap<_, Vec<&Pending>> = BTreeMap::new();
    for e in p {
        m.entry(e.key()).or_default().push(e);
    }
    m
}

/// `fleetward cache revert`: settles every stack that holds an entry whose process is gone.
/// Each revert passes the guard at its recorded class, capped at `write` unless `confirmed`;
/// `guards_for` gives the catalogue entry's guards by command name.
pub fn revert_orphans(
    journal: &RevertJournal,
    client: &dyn CacheClient,
    guards_for: &dyn Fn(&str) -> Guards,
    confirmed: bool,
) -> Result<Vec<Outcome>, RevertError> {
    let mut locked = journal.lock()?;
    let events = locked.events()?;
    let pend = pending(&events);
    let mut out = Vec::new();
    for group in stacks(&pend).values() {
        if group.iter().all(|p| alive(p.pid)) {
            continue;
        }
        // The class of the change being undone, never above `write` without --confirm.
        let recorded = group
            .iter()
            .map(|p| p.safety)
            .max()
            .unwrap_or(Safety::Write);
        let safety = if confirmed {
            Safety::Dangerous
        } else {
            recorded.min(Safety::Write)
        };
        let guards = group
            .first()
            .map(|p| guards_for(&p.command))
            .unwrap_or_default();
        if let Some(o) = settle_stack(
            &mut locked,
            group,
            &|_| false,
            client,
            safety,
            &guards,
            confirmed,
            "cache revert",
        )? {
            out.push(o);
        }
    }
    Ok(out)
}

/// The append-only audit log of `write` and `dangerous` commands (JSON lines, fsynced). Each
/// record is one `write` of a whole line to a file opened for appending, one thread at a
/// time, so records from parallel nodes (or other processes) never interleave.
pub struct AuditLog {
    path: PathBuf,
    one_at_a_time: Mutex<()>,
}

impl AuditLog {
    pub fn new(path: &Path) -> Self {
        AuditLog {
            path: path.to_path_buf(),
            one_at_a_time: Mutex::new(()),
        }
    }

    pub fn append(&self, record: &Value) -> Result<(), RevertError> {
        let io = |source| RevertError::Audit {
            path: self.path.clone(),
            source,
        };
        let _turn = self.one_at_a_time.lock();
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.write_all(format!("{record}\n").as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)
    }
}

/// Who, what and when of one run, as the journal and the audit log record it.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: String,
    pub command: String,
    pub safety: Safety,
    pub confirmed: bool,
    pub user: String,
    pub pid: u32,
    /// When the changes are to be reverted; `None`: they are kept.
    pub due: Option<jiff::Timestamp>,
}

fn shown(name: &str, v: &str) -> String {
    if is_secret(name) {
        "<redacted>".into()
    } else {
        v.to_string()
    }
}

/// The [`Ledger`] of a run: an audit record and (with a revert time) a pending revert on
/// disk before each change is sent; afterwards, the reverts of this run's changes.
pub struct Recorder<'a> {
    pub journal: &'a RevertJournal,
    pub audit: &'a AuditLog,
    pub run: RunInfo,
    mine: Mutex<Vec<Pending>>,
}

impl<'a> Recorder<'a> {
    pub fn new(journal: &'a RevertJournal, audit: &'a AuditLog, run: RunInfo) -> Self {
        Recorder {
            journal,
            audit,
            run,
            mine: Mutex::new(Vec::new()),
        }
    }

    fn id(&self, node: &Node, name: &str) -> String {
        format!("{}-{}:{}-{name}", self.run.id, node.address, node.port)
    }

    /// This run's changes still to revert.
    pub fn changes(&self) -> Vec<Pending> {
        self.mine.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Takes this run's changes off their stacks (at its revert time, on Ctrl-C, or at once):
    /// each node goes back to the original, or to a still-live earlier change's value, or is
    /// left to a later live change.
    pub fn revert_mine(
        &self,
        client: &dyn CacheClient,
        guards: &Guards,
    ) -> Result<Vec<Outcome>, RevertError> {
        let mine: Vec<String> = self.changes().into_iter().map(|p| p.id).collect();
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let mut locked = self.journal.lock()?;
        let pend = pending(&locked.events()?);
        let mut out = Vec::new();
        for group in stacks(&pend).values() {
            if !group.iter().any(|p| mine.contains(&p.id)) {
                continue;
            }
            let removing = |p: &Pending| mine.contains(&p.id);
            if let Some(o) = settle_stack(
                &mut locked,
                group,
                &removing,
                client,
                self.run.safety,
                guards,
                self.run.confirmed,
                "revert time",
            )? {
                out.push(o);
            }
        }
        if let Ok(mut m) = self.mine.lock() {
            m.clear();
        }
        let _ = self.audit.append(&json!({
            "event": "reverted",
            "run": self.run.id,
            "at": jiff::Timestamp::now().to_string(),
            "command": self.run.command,
            "reverts": out,
        }));
        Ok(out)
    }
}

impl Ledger for Recorder<'_> {
    fn changing(&self, node: &Node, name: &str, old: &str, value: &str) -> Result<(), LedgerError> {
        let fail = |e: RevertError| LedgerError(e.to_string());
        if self.run.due.is_some() && is_secret(name) {
            return Err(LedgerError(format!(
                "a revert would keep the secret `{name}` in the revert journal; change it without a revert time"
            )));
        }
        self.audit
            .append(&json!({
                "event": "set",
                "run": self.run.id,
                "at": jiff::Timestamp::now().to_string(),
                "user": self.run.user,
                "command": self.run.command,
                "safety": self.run.safety,
                "confirmed": self.run.confirmed,
                "node": NodeRef::from(node),
                "name": name,
                "old": shown(name, old),
                "value": shown(name, value),
                "revert_due": self.run.due.map(|d| d.to_string()),
            }))
            .map_err(fail)?;
        crate::failpoint::hit("cache.after_audit");
        let Some(due) = self.run.due else {
            return Ok(());
        };
        let mut locked = self.journal.lock().map_err(fail)?;
        let pend = pending(&locked.events().map_err(fail)?);
        let original = pend
            .iter()
            .find(|p| p.node.address == node.address && p.node.port == node.port && p.name == name)
            .map(|p| p.old.clone())
            .unwrap_or_else(|| old.to_string());
        let p = Pending {
            id: self.id(node, name),
            node: node.into(),
            name: name.to_string(),
            old: original,
            value: value.to_string(),
            due: due.to_string(),
            pid: self.run.pid,
            command: self.run.command.clone(),
            safety: self.run.safety,
        };
        locked
            .append(&RevertEvent::Pending(p.clone()))
            .map_err(fail)?;
        drop(locked);
        if let Ok(mut m) = self.mine.lock() {
            m.push(p);
        }
        Ok(())
    }

    fn changed(&self, node: &Node, name: &str, outcome: &SetOutcome) {
        let _ = self.audit.append(&json!({
            "event": "set_result",
            "run": self.run.id,
            "at": jiff::Timestamp::now().to_string(),
            "node": NodeRef::from(node),
            "name": name,
            "result": outcome,
        }));
        // A change the server refused never happened: nothing to revert. (One without an
        // answer may have been made, so its revert stays.)
        if let SetOutcome::Refused(e) = outcome {
            let id = self.id(node, name);
            if let Ok(mut m) = self.mine.lock() {
                m.retain(|p| p.id != id);
            }
            if self.run.due.is_some() {
                let _ = self.journal.append(&RevertEvent::Reverted {
                    id,
                    error: None,
                    how: Some(format!("not applied: {e}")),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
