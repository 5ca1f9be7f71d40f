//! Running a catalogue command on many nodes: each node runs the command's rounds on its own
//! (script round → guard → live checks → settings ledger → send → replies → next round,
//! paced, under an overall deadline), under a concurrency limit. A node that fails is
//! reported and the others carry on. [`send_guarded`] is the one way any command reaches a
//! node, rounds and reverts alike.

use super::client::{CacheClient, NodeError};
use super::guard::{self, Guards, Need, Safety};
use super::{call_round, Entry, Node, Round};
use crate::clock::Clock;
use crate::runtime::PolicySet;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Rounds a command may take on one node before it is stopped (the deadline usually comes
/// first).
pub const MAX_ROUNDS: u64 = 1_000_000;

/// How much of the keyspace a node's SCAN walk covered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// Keys the SCAN replies returned (after the `keys_per_node` trim).
    pub examined: u64,
    /// The node's `DBSIZE` when the walk ended.
    pub total: Option<u64>,
    /// The walk reached the end of the keyspace (cursor back to 0) and nothing was trimmed.
    pub complete: bool,
    /// The SCAN `MATCH` pattern, when it was not `*`: `examined` then counts matching keys.
    pub pattern: Option<String>,
    /// Why the walk stopped early, when it did.
    pub stopped_by: Option<String>,
}

/// What one node did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeResult {
    pub node: Node,
    pub rows: Vec<Value>,
    pub error: Option<String>,
    pub rounds: u64,
    pub commands: u64,
    pub elapsed_ms: f64,
    /// Present when the command walked the keyspace with SCAN.
    pub coverage: Option<Coverage>,
    /// What was done after a timed-out script (`SCRIPT KILL`), when anything was.
    pub cleanup: Option<String>,
}

/// Why a setting change could not be recorded (so it is not sent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LedgerError(pub String);

/// Records setting changes before they are sent: the revert journal and the audit log.
pub trait Ledger: Sync {
    /// `name` on `node` is about to go from `old` to `value`. The change is sent only after
    /// this returns `Ok`, so what it records is on disk first.
    fn changing(&self, node: &Node, name: &str, old: &str, value: &str) -> Result<(), LedgerError>;
    /// How the change went.
    fn changed(&self, node: &Node, name: &str, outcome: &SetOutcome);
}

/// What became of a `CONFIG SET`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "error", rename_all = "snake_case")]
pub enum SetOutcome {
    Applied,
    /// The server answered with an error: the setting did not change.
    Refused(String),
    /// No answer (a timeout, a dropped connection): it may have changed.
    Unknown(String),
}

pub struct Request<'a> {
    pub set: &'a PolicySet,
    pub entry: &'a Entry,
    pub params: &'a BTreeMap<String, Value>,
    pub confirmed: bool,
    /// Nodes worked on at once.
    pub concurrency: usize,
    /// The whole command on one node must finish within this (default: the entry's
    /// `deadline_secs`).
    pub deadline: Duration,
    /// Where setting changes are recorded before they are sent.
    pub ledger: Option<&'a dyn Ledger>,
}

/// Why a guarded send did not happen or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    #[error("refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Node(#[from] NodeError),
}

fn is_script(cmd: &[String]) -> Option<&'static str> {
    let n = guard::name(cmd).0;
    match n.as_str() {
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" => Some("SCRIPT"),
        "FCALL" | "FCALL_RO" => Some("FUNCTION"),
        _ => None,
    }
}

/// `used_memory` from an `INFO memory` reply.
fn used_memory(info: &Value) -> Option<u64> {
    info.as_str()?
        .lines()
        .find_map(|l| l.trim().strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Makes the live checks the guard asked for (collection sizes, used memory) in one
/// pipelined round, the probes through the guard like any command; `Err` names the first
/// that fails.
fn live_checks(
    client: &dyn CacheClient,
    node: &Node,
    sent: &[Vec<String>],
    needs: &[(usize, Need)],
    safety: Safety,
    guards: &Guards,
) -> Result<u64, SendError> {
    if needs.is_empty() {
        return Ok(0);
    }
    let probes: Vec<Vec<String>> = needs
        .iter()
        .map(|(_, n)| match n {
            Need::Size { probe, .. } => probe.clone(),
            Need::UsedMemoryAtMost { .. } => vec!["INFO".into(), "memory".into()],
        })
        .collect();
    check_all(&probes, safety, guards, false)?;
    let replies = client.send(node, &probes)?;
    for ((i, need), reply) in needs.iter().zip(&replies) {
        let cmd = guard::name(sent.get(*i).map(Vec::as_slice).unwrap_or(&[])).0;
        match need {
            Need::Size { probe, max } => {
                let n = reply.as_u64().ok_or_else(|| {
                    SendError::Refused(format!(
                        "`{cmd}` needs a size check and `{}` answered `{reply}`",
                        probe.join(" ")
                    ))
                })?;
                if n > *max {
                    return Err(SendError::Refused(format!(
                        "`{cmd}` of `{}` would return {n} elements, over this entry's `collection_max` of {max}; use the SCAN form (HSCAN, SSCAN, ZSCAN)",
                        probe.get(1).map(String::as_str).unwrap_or("")
                    )));
                }
            }
            Need::UsedMemoryAtMost { bytes } => {
                let used = used_memory(reply).ok_or_else(|| {
                    SendError::Refused(format!(
                        "`{cmd}` sets `maxmemory` and the node's used memory is unknown"
                    ))
                })?;
                if used > *bytes {
                    return Err(SendError::Refused(format!(
                        "`{cmd}` would set `maxmemory` to {bytes} bytes, below the node's used memory of {used} bytes (every write would fail or evict)"
                    )));
                }
            }
        }
    }
    Ok(probes.len() as u64)
}

/// The `(name, value)` pairs of the `CONFIG SET`s in a round.
fn config_sets(cmds: &[Vec<String>]) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        if guard::name(c).0 == "CONFIG SET" {
            for pair in c.get(2..).unwrap_or(&[]).chunks(2) {
                if let [k, v] = pair {
                    out.push((i, k.to_ascii_lowercase(), v.clone()));
                }
            }
        }
    }
    out
}

/// The value of one setting from a `CONFIG GET` reply (either shape).
pub fn config_value(reply: &Value, name: &str) -> Option<String> {
    match reply {
        Value::Array(a) => a
            .chunks(2)
            .find(|p| p.first().and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get(1))
            .and_then(|v| v.as_str().map(str::to_string)),
        Value::Object(m) => m.get(name).and_then(|v| v.as_str().map(str::to_string)),
        _ => None,
    }
}

/// Every command of a round through [`guard::check`]: the live checks they need, each with
/// the index of its command.
fn check_all(
    cmds: &[Vec<String>],
    safety: Safety,
    guards: &Guards,
    confirmed: bool,
) -> Result<Vec<(usize, Need)>, SendError> {
    let mut needs = Vec::new();
    for (i, cmd) in cmds.iter().enumerate() {
        let n = guard::check(cmd, safety, guards, confirmed)
            .map_err(|e| SendError::Refused(e.to_string()))?;
        needs.extend(n.into_iter().map(|n| (i, n)));
    }
    Ok(needs)
}

/// The one way a command reaches a node: every command through [`guard::check`] at `safety`,
/// the live checks it needs, every `CONFIG SET` read first and recorded in `ledger` before it
/// is sent, secrets redacted from the replies. Returns the replies and the commands sent.
pub fn send_guarded(
    client: &dyn CacheClient,
    node: &Node,
    cmds: &[Vec<String>],
    safety: Safety,
    guards: &Guards,
    confirmed: bool,
    ledger: Option<&dyn Ledger>,
) -> Result<(Vec<Value>, u64), SendError> {
    let needs = check_all(cmds, safety, guards, confirmed)?;
    let mut sent = live_checks(client, node, cmds, &needs, safety, guards)?;
    let sets = config_sets(cmds);
    if let (Some(ledger), false) = (ledger, sets.is_empty()) {
        let gets: Vec<Vec<String>> = sets
            .iter()
            .map(|(_, k, _)| vec!["CONFIG".into(), "GET".into(), k.clone()])
            .collect();
        check_all(&gets, safety, guards, confirmed)?;
        let olds = client.send(node, &gets)?;
        sent += gets.len() as u64;
        for ((_, k, v), reply) in sets.iter().zip(&olds) {
            let old = config_value(reply, k).ok_or_else(|| {
                SendError::Refused(format!(
                    "no setting `{k}` on this node (`CONFIG GET {k}` answered `{reply}`)"
                ))
            })?;
            crate::failpoint::hit("cache.before_record");
            ledger
                .changing(node, k, &old, v)
                .map_err(|e| SendError::Refused(format!("`CONFIG SET {k}` not sent: {e}")))?;
        }
    }
    if !sets.is_empty() {
        crate::failpoint::hit("cache.before_set");
    }
    let replies = match client.send(node, cmds) {
        Ok(r) => r,
        Err(e) => {
            if let Some(l) = ledger {
                for (_, k, _) in &sets {
                    l.changed(node, k, &SetOutcome::Unknown(e.to_string()));
                }
            }
            return Err(e.into());
        }
    };
    sent += cmds.len() as u64;
    if !sets.is_empty() {
        crate::failpoint::hit("cache.after_set");
    }
    if let Some(l) = ledger {
        for (i, k, _) in &sets {
            let r = match replies.get(*i) {
                Some(v) if v.get("error").is_some() => SetOutcome::Refused(v["error"].to_string()),
                Some(_) => SetOutcome::Applied,
                None => SetOutcome::Unknown("no reply".to_string()),
            };
            l.changed(node, k, &r);
        }
    }
    let replies = cmds
        .iter()
        .zip(replies)
        .map(|(c, r)| guard::redact(c, r))
        .collect();
    Ok((replies, sent))
}

/// SCAN accounting of one node: keys examined, the `keys_per_node` trim, where the walk got.
struct Walk {
    cap: u64,
    examined: u64,
    scanned: bool,
    at_end: bool,
    trimmed: bool,
    pattern: Option<String>,
}

impl Walk {
    /// Counts the keys of the round's SCAN replies, trimming the page that crosses the cap
    /// (its cursor becomes 0, so the script finishes its walk with what it has).
    fn account(&mut self, sent: &[Vec<String>], replies: &mut [Value]) {
        for (c, r) in sent.iter().zip(replies.iter_mut()) {
            if guard::name(c).0 != "SCAN" {
                continue;
            }
            self.scanned = true;
            if let Some(i) = c.iter().position(|a| a.eq_ignore_ascii_case("MATCH")) {
                self.pattern = c.get(i + 1).filter(|p| p.as_str() != "*").cloned();
            }
            let Some(parts) = r.as_array_mut() else {
                continue;
            };
            let cursor = parts.first().and_then(Value::as_str).unwrap_or("0") == "0";
            let room = self.cap.saturating_sub(self.examined);
            let Some(keys) = parts.get_mut(1).and_then(Value::as_array_mut) else {
                continue;
            };
            if keys.len() as u64 > room {
                keys.truncate(usize::try_from(room).unwrap_or(usize::MAX));
                self.trimmed = true;
                if let Some(c) = parts.first_mut() {
                    *c = Value::String("0".into());
                }
                self.examined = self.cap;
            } else {
                self.examined += keys.len() as u64;
                self.at_end = cursor;
            }
        }
    }
}

/// Runs the command on one node.
pub fn run_node(
    req: &Request<'_>,
    node: &Node,
    client: &dyn CacheClient,
    clock: &dyn Clock,
) -> NodeResult {
    let start = Instant::now();
    let mut out = NodeResult {
        node: node.clone(),
        rows: Vec::new(),
        error: None,
        rounds: 0,
        commands: 0,
        elapsed_ms: 0.0,
        coverage: None,
        cleanup: None,
    };
    let mut round = Round::first(node, true);
    let guards = &req.entry.guards;
    let pace = Duration::from_millis(guards.pace_ms);
    let mut walk = Walk {
        cap: guards.keys_per_node,
        examined: 0,
        scanned: false,
        at_end: false,
        trimmed: false,
        pattern: None,
    };
    let mut stopped_by: Option<String> = None;
    let mut reported: Option<u64> = None;
    let result: Result<(), String> = (|| loop {
        if round.n >= MAX_ROUNDS {
            return Err(format!("stopped after {MAX_ROUNDS} rounds"));
        }
        if start.elapsed() >= req.deadline {
            stopped_by = Some("the deadline".into());
            return Err(format!(
                "stopped: the deadline of {} s passed after {} round(s); the rows so far are kept",
                req.deadline.as_secs_f64(),
                out.rounds
            ));
        }
        let step = call_round(req.set, req.entry, req.params, &round)
            .map_err(|e| crate::reload::ErrorReport::from(&e).message)?;
        out.rounds += 1;
        out.rows.extend(step.rows);
        if step.examined.is_some() {
            reported = step.examined;
        }
        if step.done {
            return Ok(());
        }
        if walk.examined >= walk.cap && step.send.iter().any(|c| guard::name(c).0 == "SCAN") {
            stopped_by = Some("the `keys_per_node` guard".into());
            return Err(format!(
                "stopped: more than {} keys examined on this node (the entry's `keys_per_node` guard) and the command scans on",
                walk.cap
            ));
        }
        let sent = send_guarded(
            client,
            node,
            &step.send,
            req.entry.safety,
            guards,
            req.confirmed,
            req.ledger,
        );
        let (mut replies, n) = match sent {
            Ok(r) => r,
            Err(e) => {
                if let (SendError::Node(NodeError::Timeout { .. }), Some(kind)) =
                    (&e, step.send.iter().find_map(|c| is_script(c)))
                {
                    out.cleanup = Some(kill_script(req, node, client, kind));
                }
                return Err(e.to_string());
            }
        };
        out.commands += n;
        walk.account(&step.send, &mut replies);
        round = round.next(step.state, replies);
        if !pace.is_zero() {
            clock.sleep(pace);
        }
    })();
    if walk.scanned {
        let total = send_guarded(
            client,
            node,
            &[vec!["DBSIZE".to_string()]],
            req.entry.safety,
            guards,
            req.confirmed,
            None,
        )
        .ok()
        .and_then(|(r, _)| r.first().and_then(Value::as_u64));
        let complete = walk.at_end && !walk.trimmed && result.is_ok();
        let stopped_by = match (complete, walk.trimmed, stopped_by) {
            (true, _, _) => None,
            (false, true, _) => Some(format!("the `keys_per_node` guard of {}", walk.cap)),
            (false, false, Some(w)) => Some(w),
            (false, false, None) if result.is_err() => Some("an error".into()),
            (false, false, None) => Some("the command's own limit".into()),
        };
        out.coverage = Some(Coverage {
            examined: reported.map_or(walk.examined, |r| r.min(walk.examined)),
            total,
            complete,
            pattern: walk.pattern.clone(),
            stopped_by,
        });
    }
    out.error = result.err();
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    out
}

/// After a script or function timed out: `SCRIPT KILL` (or `FUNCTION KILL`) where the entry's
/// class allows it, retried while the server has not started answering yet. Returns what
/// happened.
fn kill_script(req: &Request<'_>, node: &Node, client: &dyn CacheClient, kind: &str) -> String {
    let cmd = [vec![kind.to_string(), "KILL".to_string()]];
    let (safety, guards) = (req.entry.safety, &req.entry.guards);
    let mut last = String::new();
    for _ in 0..3 {
        match send_guarded(client, node, &cmd, safety, guards, req.confirmed, None) {
            Ok((r, _)) => {
                return match r.first() {
                    Some(v) if v.get("error").is_some() => {
                        format!("sent `{kind} KILL`: {}", v["error"])
                    }
                    _ => format!("sent `{kind} KILL`: the script was stopped"),
                }
            }
            Err(e @ SendError::Refused(_)) => return format!("`{kind} KILL` not sent: {e}"),
            Err(e) => last = e.to_string(),
        }
    }
    format!("`{kind} KILL` failed: {last}")
}

/// Runs the command on every node, at most `concurrency` at a time, in node order.
pub fn run(
    req: &Request<'_>,
    nodes: &[Node],
    client: &dyn CacheClient,
    clock: &dyn Clock,
) -> Vec<NodeResult> {
    crate::pool::bounded_map(nodes, req.concurrency, |node| {
        run_node(req, node, client, clock)
    })
    .into_iter()
    .flatten()
    .collect()
}
