//! Running a catalogue command on many nodes: each node runs the command's rounds on its own
//! (script round → guard → send → replies → next round, paced), under a concurrency limit.
//! A node that fails is reported and the others carry on.

use super::client::CacheClient;
use super::guard;
use super::{call_round, Entry, Node, Round};
use crate::clock::Clock;
use crate::runtime::PolicySet;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Rounds a command may take on one node before it is stopped.
pub const MAX_ROUNDS: u64 = 1_000_000;

/// What one node did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeResult {
    pub node: Node,
    pub rows: Vec<Value>,
    pub error: Option<String>,
    pub rounds: u64,
    pub commands: u64,
    pub elapsed_ms: f64,
}

pub struct Request<'a> {
    pub set: &'a PolicySet,
    pub entry: &'a Entry,
    pub params: &'a BTreeMap<String, Value>,
    pub confirmed: bool,
    /// Nodes worked on at once.
    pub concurrency: usize,
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
    };
    let mut round = Round {
        n: 0,
        state: Value::Null,
        replies: Vec::new(),
        node: node.clone(),
    };
    let pace = Duration::from_millis(req.entry.guards.pace_ms);
    let mut keys: u64 = 0;
    let result: Result<(), String> = (|| loop {
        if round.n >= MAX_ROUNDS {
            return Err(format!("stopped after {MAX_ROUNDS} rounds"));
        }
        let step = call_round(req.set, req.entry, req.params, &round)
            .map_err(|e| crate::reload::ErrorReport::from(&e).message)?;
        out.rounds += 1;
        out.rows.extend(step.rows);
        if step.done {
            return Ok(());
        }
        for cmd in &step.send {
            guard::check(cmd, req.entry.safety, &req.entry.guards, req.confirmed)
                .map_err(|e| format!("refused: {e}"))?;
        }
        let replies = client.send(node, &step.send).map_err(|e| e.to_string())?;
        out.commands += step.send.len() as u64;
        // The keys-per-node guard, whatever the script counts: keys returned by SCANs.
        keys += scanned_keys(&step.send, &replies);
        if keys > req.entry.guards.keys_per_node {
            return Err(format!(
                "stopped: more than {} keys examined on this node (the entry's `keys_per_node` guard)",
                req.entry.guards.keys_per_node
            ));
        }
        round = Round {
            n: round.n + 1,
            state: step.state,
            replies,
            node: node.clone(),
        };
        if !pace.is_zero() {
            clock.sleep(pace);
        }
    })();
    out.error = result.err();
    out.elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    out
}

/// Keys the SCAN-family commands of a round returned (`[cursor, [keys...]]` replies).
fn scanned_keys(sent: &[Vec<String>], replies: &[Value]) -> u64 {
    sent.iter()
        .zip(replies)
        .filter(|(c, _)| {
            c.first().is_some_and(|n| {
                ["SCAN", "SSCAN", "HSCAN", "ZSCAN"]
                    .iter()
                    .any(|s| n.eq_ignore_ascii_case(s))
            })
        })
        .map(|(_, r)| {
            r.get(1)
                .and_then(Value::as_array)
                .map(|a| a.len() as u64)
                .unwrap_or(0)
        })
        .sum()
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
