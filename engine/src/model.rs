//! The data policies decide over and the decisions they return, as Rust types that cross into
//! Rhai through `rhai::serde`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One host of the fleet, as a policy sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Host {
    pub name: String,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub hardware: String,
    pub workload: String,
    pub datacenter: String,
    pub rack: String,
    pub kernel: String,
    pub tags: Vec<String>,
    pub facts: BTreeMap<String, serde_json::Value>,
}

/// How severe a verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    Pass,
    Pause,
    Fail,
}

/// A gate's decision, as built by the stdlib's `pass()`, `pause(reason)`, `fail(reason)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub verdict: VerdictKind,
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// What `drift.rhai`'s `classify(item)` decides for one divergence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftDecision {
    /// `auto`, `review` or `acknowledged`.
    pub action: DriftAction,
    #[serde(default)]
    pub reason: String,
    /// For `auto`: the commands that fix it, each an argument list (never a shell line).
    #[serde(default)]
    pub commands: Vec<Vec<String>>,
    /// For `acknowledged`: when it ends (a date or an RFC 3339 time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    Auto,
    Review,
    Acknowledged,
}
