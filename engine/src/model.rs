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

/// A hardware × workload group: the unit canaries are taken from and gates judge. Written
/// `hardware/workload`; this type is the only code that formats or splits that form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GroupKey {
    pub hardware: String,
    pub workload: String,
}

impl GroupKey {
    pub fn new(hardware: impl Into<String>, workload: impl Into<String>) -> Self {
        GroupKey {
            hardware: hardware.into(),
            workload: workload.into(),
        }
    }

    /// Reads `hardware/workload`; `None` without a `/`.
    pub fn parse(s: &str) -> Option<GroupKey> {
        let (hw, wl) = s.split_once('/')?;
        Some(GroupKey::new(hw, wl))
    }

    /// The name of a pooled level: `r750/*` (a hardware class), `*/db` (a workload), `*/*`
    /// (the fleet).
    pub fn pooled(hardware: Option<&str>, workload: Option<&str>) -> String {
        format!("{}/{}", hardware.unwrap_or("*"), workload.unwrap_or("*"))
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.hardware, self.workload)
    }
}

/// A host's Redis ports are not a port or a list of distinct ports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadPorts(pub String);

impl Host {
    /// The host's hardware × workload group.
    pub fn group(&self) -> GroupKey {
        GroupKey::new(&*self.hardware, &*self.workload)
    }

    /// The group's `hardware/workload` name.
    pub fn group_name(&self) -> String {
        self.group().to_string()
    }

    /// The Redis instances a host declares: `redis_ports = [6379, 6380]`, or `redis_port`;
    /// `None` when it declares neither.
    pub fn redis_ports(&self) -> Result<Option<Vec<u16>>, BadPorts> {
        let port_of = |p: &serde_json::Value| {
            p.as_u64()
                .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| BadPorts(format!("host `{}`: `{p}` is not a Redis port", self.name)))
        };
        match (self.facts.get("redis_ports"), self.facts.get("redis_port")) {
            (Some(_), Some(_)) => Err(BadPorts(format!(
                "host `{}` sets both `redis_port` and `redis_ports`; keep one",
                self.name
            ))),
            (Some(serde_json::Value::Array(a)), None) => {
                let mut ports = Vec::new();
                for p in a {
                    let p = port_of(p)?;
                    if ports.contains(&p) {
                        return Err(BadPorts(format!(
                            "host `{}` lists Redis port {p} twice",
                            self.name
                        )));
                    }
                    ports.push(p);
                }
                if ports.is_empty() {
                    return Err(BadPorts(format!(
                        "host `{}`: `redis_ports` is empty",
                        self.name
                    )));
                }
                Ok(Some(ports))
            }
            (Some(other), None) => Err(BadPorts(format!(
                "host `{}`: `redis_ports` is `{other}`, not a list of ports",
                self.name
            ))),
            (None, Some(p)) => Ok(Some(vec![port_of(p)?])),
            (None, None) => Ok(None),
        }
    }
}

/// How severe a verdict is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictKind {
    Pass,
    /// The data cannot decide: the controller extends the bake, then pauses.
    Inconclusive,
    Pause,
    Fail,
}

impl VerdictKind {
    /// `pass`, `pause`, `fail`: the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Pass => "pass",
            VerdictKind::Inconclusive => "inconclusive",
            VerdictKind::Pause => "pause",
            VerdictKind::Fail => "fail",
        }
    }
}

impl std::fmt::Display for VerdictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A gate's decision, as built by the stdlib's `pass()`, `pause(reason)`, `fail(reason)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub verdict: VerdictKind,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// The levels (groups such as `r750/db`, pooled levels such as `r750/*`) the gate policy
    /// judged by name, with the worst verdict it gave each: `v.pause(level, reason)`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub levels: std::collections::BTreeMap<String, VerdictKind>,
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
