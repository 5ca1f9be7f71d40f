//! One `fleetward cache run` from start to end: the dry run (every round a script can build
//! without a live reply, through the guard), or the live run: the audit record of the start,
//! the rounds on every node with setting changes recorded before they are sent, the result
//! record, and the wait for the revert time (cut short by a stop flag: Ctrl-C) before this
//! run's changes are reverted.

use super::client::CacheClient;
use super::guard::{self, Safety};
use super::revert::{
    self, AuditLog, Outcome, Pending, Recorder, RevertError, RevertJournal, RunInfo,
};
use super::runner::{self, Ledger, NodeResult};
use super::{call_round, Entry, Node, Round};
use crate::clock::Clock;
use crate::runtime::PolicySet;
use crate::PolicyError;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A catalogue command bound to its parameters and the nodes its target selects.
pub struct Invocation {
    pub entry: Entry,
    pub params: BTreeMap<String, Value>,
    pub nodes: Vec<Node>,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error("no cache command `{name}`; the catalogue has {known}")]
    UnknownCommand { name: String, known: String },
    #[error("--param `{0}` is not `k=v`")]
    NotKeyValue(String),
    #[error("`{name}`: {source}")]
    Param {
        name: String,
        #[source]
        source: super::ParamError,
    },
    #[error("`{0}` has no default target; pass --target")]
    NoTarget(String),
    #[error(transparent)]
    Select(#[from] super::SelectError),
}

/// Looks `name` up in the set's catalogue, binds `k=v` parameters and selects the nodes of
/// `target` (default: the entry's) in the inventory.
pub fn invoke(
    set: &PolicySet,
    inventory: &crate::inventory::Source,
    name: &str,
    params: &[String],
    target: Option<&str>,
) -> Result<Invocation, InvokeError> {
    let mut cat = super::catalogue(set)?;
    let Some(entry) = cat.remove(name) else {
        return Err(InvokeError::UnknownCommand {
            name: name.to_string(),
            known: cat
                .keys()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let given: Vec<(String, String)> = params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| InvokeError::NotKeyValue(p.clone()))
        })
        .collect::<Result<_, _>>()?;
    let params = super::bind_params(&entry, &given).map_err(|source| InvokeError::Param {
        name: name.to_string(),
        source,
    })?;
    let inv = inventory.load(set.field_map())?;
    let selector = target
        .map(str::to_string)
        .or_else(|| entry.target.clone())
        .ok_or_else(|| InvokeError::NoTarget(name.to_string()))?;
    let nodes = super::select_nodes(&inv.hosts, &selector)?;
    Ok(Invocation {
        entry,
        params,
        nodes,
    })
}

/// Who runs a command, for the audit log: the sudo caller, the login name, or the uid.
pub fn user() -> String {
    use std::os::unix::fs::MetadataExt as _;
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| match std::fs::metadata("/proc/self") {
            Ok(m) => format!("uid {}", m.uid()),
            Err(_) => "unknown".into(),
        })
}

/// Where a run keeps its records.
#[derive(Debug, Clone)]
pub struct Paths {
    pub reverts: PathBuf,
    pub audit: PathBuf,
}

impl Paths {
    /// The files in a state directory (`cache-reverts.jsonl`, `cache-audit.jsonl`), the audit
    /// log moved where `audit` says.
    pub fn in_dir(dir: &Path, audit: Option<PathBuf>) -> Paths {
        Paths {
            reverts: dir.join("cache-reverts.jsonl"),
            audit: audit.unwrap_or_else(|| dir.join("cache-audit.jsonl")),
        }
    }
}

/// One command of a dry run, with the guard's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct DrySend {
    pub command: Vec<String>,
    pub refused: Option<String>,
    /// Live checks the guard would have the runner make first.
    pub needs: Vec<guard::Need>,
}

/// One round of a dry run.
#[derive(Debug, Clone, Serialize)]
pub struct DryRound {
    pub n: u64,
    pub send: Vec<DrySend>,
}

/// What a dry run shows of one node.
#[derive(Debug, Clone, Serialize)]
pub struct DryNode {
    pub node: Node,
    pub rounds: Vec<DryRound>,
    /// The command finished within the rounds shown.
    pub done: bool,
    /// Why the dry run stops where it does, when the command goes on.
    pub stops: Option<String>,
}

/// Rounds a dry run shows at most per node.
pub const DRY_ROUNDS: u64 = 16;

/// The dry run: each node's rounds for as long as a round can be built without a live reply
/// (its script is called with `r.live == false` and every reply `()`; a round that needs a
/// real reply fails or asks for it, and the dry run says so there). Connects to nothing.
pub fn dry_run(
    set: &PolicySet,
    entry: &Entry,
    params: &BTreeMap<String, Value>,
    nodes: &[Node],
    confirmed: bool,
) -> Result<Vec<DryNode>, PolicyError> {
    let mut out = Vec::new();
    for node in nodes {
        let mut round = Round::first(node, false);
        let mut rounds = Vec::new();
        let mut done = false;
        let mut stops = None;
        loop {
            let step = match call_round(set, entry, params, &round) {
                Ok(s) => s,
                // Round 0 needs no reply: its failure is the policy's.
                Err(e) if round.n == 0 => return Err(e),
                Err(_) => {
                    stops = Some(format!(
                        "round {} is built from the live replies to round {}; a dry run cannot show it",
                        round.n,
                        round.n - 1
                    ));
                    break;
                }
            };
            if step.done {
                done = true;
                break;
            }
            let send: Vec<DrySend> = step
                .send
                .iter()
                .map(|c| {
                    let v = guard::check(c, entry.safety, &entry.guards, confirmed);
                    DrySend {
                        command: c.clone(),
                        needs: v.clone().unwrap_or_default(),
                        refused: v.err().map(|e| e.to_string()),
                    }
                })
                .collect();
            let refused = send.iter().any(|s| s.refused.is_some());
            rounds.push(DryRound { n: round.n, send });
            if refused {
                stops = Some(format!("round {} is refused by the guard", round.n));
                break;
            }
            if round.n + 1 >= DRY_ROUNDS {
                stops = Some(format!("a dry run shows {DRY_ROUNDS} rounds at most"));
                break;
            }
            let replies = vec![Value::Null; step.send.len()];
            round = round.next(step.state, replies);
        }
        out.push(DryNode {
            node: node.clone(),
            rounds,
            done,
            stops,
        });
    }
    Ok(out)
}

/// How a live run goes.
pub struct Live<'a> {
    pub set: &'a PolicySet,
    pub name: &'a str,
    pub entry: &'a Entry,
    pub params: &'a BTreeMap<String, Value>,
    pub nodes: &'a [Node],
    pub confirmed: bool,
    pub concurrency: usize,
    /// Overrides the entry's `deadline_secs`.
    pub deadline: Option<Duration>,
    pub paths: &'a Paths,
    /// Who runs it (for the audit log).
    pub user: String,
}

/// What a live run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub results: Vec<NodeResult>,
    pub reverts: Vec<Outcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("`{0}` is a dangerous command; run it with --confirm (or --dry-run to see what it would send)")]
    Unconfirmed(String),
    #[error(transparent)]
    Records(#[from] RevertError),
}

/// The live run. `on_changed` is told how many settings changed and when they revert, before
/// the wait; `stop` cuts the wait short (Ctrl-C).
pub fn run_live(
    live: &Live<'_>,
    client: &dyn CacheClient,
    clock: &dyn Clock,
    stop: &AtomicBool,
    on_changed: &dyn Fn(usize, &str, u64),
) -> Result<Report, SessionError> {
    let entry = live.entry;
    if entry.safety == Safety::Dangerous && !live.confirmed {
        return Err(SessionError::Unconfirmed(live.name.to_string()));
    }
    let revert_secs = entry
        .revert_after
        .as_ref()
        .and_then(|p| live.params.get(p))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let now = jiff::Timestamp::now();
    let due = (revert_secs > 0)
        .then(|| {
            now.checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(revert_secs).unwrap_or(i64::MAX),
            ))
            .ok()
        })
        .flatten();
    let pid = std::process::id();
    let journal = RevertJournal::new(&live.paths.reverts);
    let audit = AuditLog::new(&live.paths.audit);
    let run = RunInfo {
        id: format!("{pid}-{}", now.as_millisecond()),
        command: live.name.to_string(),
        safety: entry.safety,
        confirmed: live.confirmed,
        user: live.user.clone(),
        pid,
        due,
    };
    let recorder = Recorder::new(&journal, &audit, run.clone());
    let audited = entry.safety != Safety::Read;
    if audited {
        audit.append(&json!({
            "event": "start",
            "run": run.id,
            "at": now.to_string(),
            "user": run.user,
            "command": live.name,
            "safety": entry.safety,
            "params": live.params,
            "confirmed": live.confirmed,
            "policy": live.set.hash(),
            "nodes": live.nodes,
            "revert_due": due.map(|d| d.to_string()),
        }))?;
    }
    let req = runner::Request {
        set: live.set,
        entry,
        params: live.params,
        confirmed: live.confirmed,
        concurrency: live.concurrency,
        deadline: live
            .deadline
            .unwrap_or_else(|| Duration::from_secs(entry.guards.deadline_secs.max(1))),
        ledger: audited.then_some(&recorder as &dyn Ledger),
    };
    let results = runner::run(&req, live.nodes, client, clock);
    if audited {
        audit.append(&json!({
            "event": "result",
            "run": run.id,
            "at": jiff::Timestamp::now().to_string(),
            "user": run.user,
            "command": live.name,
            "safety": entry.safety,
            "confirmed": live.confirmed,
            "policy": live.set.hash(),
            "nodes": results.iter().map(|r| json!({
                "node": r.node, "ok": r.error.is_none(), "error": r.error,
                "commands": r.commands, "rows": r.rows,
            })).collect::<Vec<_>>(),
        }))?;
    }
    let changes = recorder.changes();
    let mut reverts = Vec::new();
    if let (Some(due), false) = (due, changes.is_empty()) {
        on_changed(changes.len(), &due.to_string(), revert_secs);
        while jiff::Timestamp::now() < due && !stop.load(Ordering::SeqCst) {
            clock.sleep(Duration::from_millis(100));
        }
        reverts = recorder.revert_mine(client, &entry.guards)?;
    }
    Ok(Report { results, reverts })
}

/// Reverts left pending by runs whose process is gone (what the next run warns about).
pub fn orphans(paths: &Paths) -> Result<Vec<Pending>, RevertError> {
    Ok(RevertJournal::new(&paths.reverts)
        .pending()?
        .into_iter()
        .filter(|p| !revert::alive(p.pid))
        .collect())
}

/// `fleetward cache revert`: settles what killed runs left, each revert through the guard with
/// the guards of the catalogue entry that made the change (when the policy set still has it).
pub fn revert_orphans(
    paths: &Paths,
    catalogue: &super::Catalogue,
    client: &dyn CacheClient,
    confirmed: bool,
) -> Result<Vec<Outcome>, RevertError> {
    let journal = RevertJournal::new(&paths.reverts);
    let guards_for = |name: &str| catalogue.get(name).map(|e| e.guards).unwrap_or_default();
    revert::revert_orphans(&journal, client, &guards_for, confirmed)
}
