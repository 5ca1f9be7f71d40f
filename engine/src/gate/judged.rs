//! Which groups a gate judged, and how: each hardware × workload group is `passed` (tested on
//! its own and not named by the gate policy), `inconclusive`, `paused` or `failed` (as the
//! policy marked it), or `not_judged` (no metric tested on its own). The canary approval says
//! "all N groups passed" only when every group passed.

use super::{Comparison, Method};
use crate::model::{Verdict, VerdictKind};
use serde::{Deserialize, Serialize};

/// How one group came out of a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    /// At least one metric tested on the group's own hosts, and the policy named no problem.
    Passed,
    /// The policy could not decide for this group (too little power, too little data).
    Inconclusive,
    Paused,
    Failed,
    /// No metric was tested on the group's own hosts, and the policy did not name it.
    NotJudged,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Passed => "passed",
            GroupStatus::Inconclusive => "inconclusive",
            GroupStatus::Paused => "paused",
            GroupStatus::Failed => "failed",
            GroupStatus::NotJudged => "not judged",
        }
    }
}

/// One group's outcome at a gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupJudgement {
    pub group: String,
    pub status: GroupStatus,
    /// Updated and control hosts of the group.
    pub hosts: usize,
    pub control_hosts: usize,
    /// Metrics (benchmarks aside) tested on the group's own hosts.
    pub tested: usize,
    /// Of those, how many borrowed the gate's residual variance (one or two updated hosts).
    pub pooled_variance: usize,
    /// The largest minimum detectable effect among them, in percent, and its metric.
    pub largest_mde: Option<(String, f64)>,
}

impl GroupJudgement {
    /// `r750/db: passed (6 metrics tested on its own: 2 hosts against 6 controls, MDE ≤ 2.1%)`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}: {}", self.group, self.status.as_str());
        if self.tested == 0 {
            s += " (no metric tested on its own hosts)";
            return s;
        }
        s += &format!(
            " ({} metric(s) tested on its own: {} host(s) against {} control(s)",
            self.tested, self.hosts, self.control_hosts
        );
        if let Some((m, mde)) = &self.largest_mde {
            s += &format!(", largest MDE {mde:.1}% ({m})");
        }
        s += ")";
        s
    }
}

/// Each group of `cmp`, in order, with what `verdict` said of it.
pub fn judged(cmp: &Comparison, verdict: &Verdict) -> Vec<GroupJudgement> {
    cmp.groups
        .iter()
        .map(|g| {
            let own: Vec<_> = g
                .metrics
                .iter()
                .filter(|m| m.method != Method::Paired)
                .filter(|m| !m.pooled_only && !m.insufficient && m.mde.is_finite())
                .collect();
            let largest_mde = own
                .iter()
                .max_by(|a, b| a.mde.total_cmp(&b.mde))
                .map(|m| (m.name.clone(), m.mde));
            let status = match verdict.levels.get(&g.name) {
                Some(VerdictKind::Fail) => GroupStatus::Failed,
                Some(VerdictKind::Pause) => GroupStatus::Paused,
                Some(VerdictKind::Inconclusive) => GroupStatus::Inconclusive,
                _ if own.is_empty() => GroupStatus::NotJudged,
                _ => GroupStatus::Passed,
            };
            GroupJudgement {
                group: g.name.clone(),
                status,
                hosts: g.hosts,
                control_hosts: g.control_hosts,
                tested: own.len(),
                pooled_variance: own.iter().filter(|m| m.pooled_variance).count(),
                largest_mde,
            }
        })
        .collect()
}

/// The approval's headline: "all N hardware × workload group(s) passed, each judged on its
/// own" only when true; otherwise how many passed and which did not.
pub fn approval_summary(groups: &[GroupJudgement]) -> String {
    let n = groups.len();
    let passed = groups
        .iter()
        .filter(|g| g.status == GroupStatus::Passed)
        .count();
    if passed == n {
        return format!("all {n} hardware × workload group(s) passed, each judged on its own");
    }
    let others: Vec<String> = groups
        .iter()
        .filter(|g| g.status != GroupStatus::Passed)
        .map(|g| format!("{} {}", g.group, g.status.as_str()))
        .collect();
    format!(
        "{passed} of {n} hardware × workload group(s) passed on their own; {}",
        others.join(", ")
    )
}
