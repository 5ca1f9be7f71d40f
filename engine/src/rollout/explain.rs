//! `fleetward explain`: why each decision of a rollout was made, read from its journal alone.
//! A pure fold over the records: the policy hash behind each decision, the gates' verdicts
//! with their reasons and levels, bake extensions, operator overrides, pauses and resumes, and
//! the hosts held back or quarantined.

use super::event::{Event, Record};
use crate::error::Invalid;
use serde::Serialize;
use std::fmt::Write as _;

/// One decision of the rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub seq: u64,
    pub at: String,
    /// The hash of the policy set that made it.
    pub policy: String,
    pub stage: Option<usize>,
    pub stage_name: Option<String>,
    /// `started`, `controls`, `before_window`, `gate`, `bake_extended`, `override`, `paused`,
    /// `resumed`, `held`, `quarantined`, `unexpected_reboot`, `aborted`, `completed`,
    /// `completed_with_failures`, `recovered`.
    pub kind: String,
    pub summary: String,
    pub reasons: Vec<String>,
    /// The levels the reasons name (`r750/db`, `r750/*`, `*/*`).
    pub levels: Vec<String>,
    pub hosts: Vec<String>,
    /// For a gate: each hardware × workload group and how it came out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<crate::gate::GroupJudgement>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub target_kernel: String,
    /// Every policy hash that made a decision, in order of first use.
    pub policies: Vec<String>,
    pub decisions: Vec<Decision>,
}

/// The level a gate reason names: the text before its first `: ` when it looks like
/// `hardware/workload`.
fn level_of(reason: &str) -> Option<String> {
    let (head, _) = reason.split_once(": ")?;
    let head = head
        .strip_prefix("cannot judge level ")
        .or_else(|| head.strip_prefix("cannot judge "))
        .unwrap_or(head);
    (head.contains('/') && !head.contains(' ')).then(|| head.to_string())
}

/// Explains `records`, only the decisions about `stage` (a name such as `wave 2`, or an
/// index) and `host` when given.
pub fn explain(
    records: &[Record],
    stage: Option<&str>,
    host: Option<&str>,
) -> Result<Explanation, Invalid> {
    let mut target_kernel = String::new();
    let mut names: Vec<String> = Vec::new();
    let mut members: Vec<Vec<String>> = Vec::new();
    let mut out = Vec::new();
    let mut policies: Vec<String> = Vec::new();
    let mut st = super::state::RolloutState::default();
    for r in records {
        st.apply_record(r);
        if !policies.contains(&r.policy) {
            policies.push(r.policy.clone());
        }
        let d = |stage: Option<usize>, kind: &str, summary: String| Decision {
            seq: r.seq,
            at: r.at.clone(),
            policy: r.policy.clone(),
            stage,
            stage_name: None,
            kind: kind.to_string(),
            summary,
            reasons: Vec::new(),
            levels: Vec::new(),
            hosts: Vec::new(),
            groups: Vec::new(),
        };
        let decision = match &r.event {
            Event::Started {
                target_kernel: k,
                stages,
                held,
                ..
            } => {
                target_kernel = k.clone();
                names = stages.iter().map(|s| s.name.clone()).collect();
                members = stages.iter().map(|s| s.hosts.clone()).collect();
                let mut x = d(
                    None,
                    "started",
                    format!(
                        "rollout of `{k}` planned in {} stage(s), {} host(s)",
                        stages.len(),
                        members.iter().map(Vec::len).sum::<usize>()
                    ),
                );
                x.hosts = held.iter().map(|h| h.host.clone()).collect();
                x.reasons = held
                    .iter()
                    .map(|h| format!("{} held back by drift: {}", h.host, h.reason))
                    .collect();
                Some(x)
            }
            Event::ControlsChosen { stage, hosts } => {
                let mut x = d(
                    Some(*stage),
                    "controls",
                    format!(
                        "{} control host(s) chosen: not-updated hosts of the stage's groups, recorded over the same windows",
                        hosts.len()
                    ),
                );
                x.hosts = hosts.clone();
                Some(x)
            }
            Event::BeforeStarted { stage, until } => Some(d(
                Some(*stage),
                "before_window",
                format!("before window recorded until {until}"),
            )),
            Event::GateEvaluated {
                stage,
                verdict,
                reasons,
                groups,
            } => {
                let operator = reasons
                    .first()
                    .is_some_and(|r| r.starts_with("accepted by an operator"));
                let mut x = d(
                    Some(*stage),
                    if operator { "override" } else { "gate" },
                    if operator {
                        "gate accepted by an operator at resume".to_string()
                    } else if groups.is_empty() {
                        format!("gate: {verdict}")
                    } else {
                        format!("gate: {verdict}; {}", crate::gate::approval_summary(groups))
                    },
                );
                x.groups = groups.clone();
                x.levels = reasons
                    .iter()
                    .filter_map(|r| level_of(r.trim_start_matches("the gate said: ")))
                    .collect();
                x.levels.dedup();
                x.reasons = reasons.clone();
                Some(x)
            }
            Event::BakeExtended {
                stage,
                until,
                reasons,
            } => {
                let mut x = d(
                    Some(*stage),
                    "bake_extended",
                    format!("the gate was inconclusive, so the bake was extended until {until}"),
                );
                x.levels = reasons.iter().filter_map(|r| level_of(r)).collect();
                x.levels.dedup();
                x.reasons = reasons.clone();
                Some(x)
            }
            Event::HostHeld { host, reason } => {
                let mut x = d(None, "held", format!("{host} held back by drift"));
                x.hosts = vec![host.clone()];
                x.reasons = vec![reason.clone()];
                Some(x)
            }
            Event::HostFailed { host, step, output } => {
                let st = members.iter().position(|m| m.contains(host));
                let mut x = d(
                    st,
                    "quarantined",
                    format!("{host} failed at {step} and was left out"),
                );
                x.hosts = vec![host.clone()];
                x.reasons = vec![output.clone()];
                Some(x)
            }
            Event::UnexpectedReboot { host, .. } => {
                let st = members.iter().position(|m| m.contains(host));
                let mut x = d(
                    st,
                    "unexpected_reboot",
                    format!("{host} rebooted unexpectedly"),
                );
                x.hosts = vec![host.clone()];
                Some(x)
            }
            Event::RecoverIssued {
                host,
                command,
                wait,
            } => {
                let st = members.iter().position(|m| m.contains(host));
                let mut x = d(
                    st,
                    "recover_issued",
                    format!(
                        "{host} did not come back from its reboot: `recover(host)` ran on the controller, then a wait of up to {wait} s"
                    ),
                );
                x.hosts = vec![host.clone()];
                x.reasons =
                    vec![crate::exec::RemoteCommand::new(command.iter().cloned()).shell_line()];
                Some(x)
            }
            Event::OnFailDecided {
                stage,
                verdict,
                decision,
                reasons,
            } => {
                let mut x = d(
                    Some(*stage),
                    "on_fail",
                    format!(
                        "the gate said `{}`; `on_fail(stage, verdict)` decided `{}`",
                        verdict.as_str(),
                        decision.key()
                    ),
                );
                x.reasons = reasons.clone();
                Some(x)
            }
            Event::Paused { reason } => {
                let mut x = d(None, "paused", "paused".into());
                x.reasons = vec![reason.clone()];
                Some(x)
            }
            Event::Resumed { acknowledged } => {
                let mut x = d(
                    None,
                    "resumed",
                    format!(
                        "resumed by an operator{}",
                        if acknowledged.is_empty() {
                            String::new()
                        } else {
                            format!(", acknowledging {} failed host(s)", acknowledged.len())
                        }
                    ),
                );
                x.hosts = acknowledged.clone();
                Some(x)
            }
            Event::Aborted { reason } => {
                let mut x = d(None, "aborted", "aborted".into());
                x.reasons = vec![reason.clone()];
                Some(x)
            }
            Event::Completed => Some(d(None, "completed", "rollout completed".into())),
            Event::RollbackStarted {
                reason,
                batches,
                left,
                untouched,
            } => {
                let hosts: Vec<String> = batches
                    .iter()
                    .flat_map(|b| b.hosts.iter().cloned())
                    .collect();
                let mut x = d(
                    None,
                    "rollback_started",
                    format!(
                        "{} host(s) sent back to the kernel each ran before, later stages first",
                        hosts.len()
                    ),
                );
                x.reasons = std::iter::once(reason.clone())
                    .chain(super::rollback::left_alone(left, *untouched))
                    .collect();
                x.hosts = hosts;
                Some(x)
            }
            Event::RolledBack { failed } => {
                let mut x = d(
                    None,
                    "rolled_back",
                    if failed.is_empty() {
                        "rollback finished: every host of it is back on its previous kernel".into()
                    } else {
                        format!(
                            "rollback finished: {} host(s) failed on the way back",
                            failed.len()
                        )
                    },
                );
                x.hosts = failed.clone();
                Some(x)
            }
            Event::CompletedWithFailures { hosts } => {
                let mut x = d(
                    None,
                    "completed_with_failures",
                    format!(
                        "every stage passed, but {} failed host(s) were not acknowledged",
                        hosts.len()
                    ),
                );
                x.reasons = hosts
                    .iter()
                    .filter_map(|h| st.failure_of(h).map(|f| f.describe()))
                    .collect();
                x.hosts = hosts.clone();
                Some(x)
            }
            Event::Recovered {
                in_flight,
                reboots_resent,
                torn_bytes,
                lost_secs,
            } => {
                let mut x = d(
                    None,
                    "recovered",
                    super::render::recovered_line(
                        "",
                        in_flight,
                        reboots_resent,
                        *torn_bytes,
                        *lost_secs,
                    )
                    .trim()
                    .to_string(),
                );
                x.reasons = in_flight
                    .iter()
                    .map(|f| format!("{} was at {}", f.host, f.step.as_str()))
                    .chain(reboots_resent.iter().map(|h| {
                        format!("{h}: the reboot issued before the crash was sent again (one-shot: it reboots only if the first never arrived)")
                    }))
                    .collect();
                x.hosts = in_flight.iter().map(|f| f.host.clone()).collect();
                Some(x)
            }
            _ => None,
        };
        out.extend(decision);
    }
    // Pauses and resumes belong to the stage in progress at the time.
    let mut current = None;
    for x in &mut out {
        x.stage_name = x.stage.and_then(|i| names.get(i).cloned());
        if x.stage.is_some() && x.kind != "quarantined" && x.kind != "unexpected_reboot" {
            current = x.stage;
        } else if x.stage.is_none()
            && matches!(
                x.kind.as_str(),
                "paused" | "resumed" | "aborted" | "recovered"
            )
        {
            x.stage = current;
            x.stage_name = current.and_then(|i| names.get(i).cloned());
        }
    }
    if let Some(want) = stage {
        let index = want
            .parse::<usize>()
            .ok()
            .filter(|i| *i < names.len())
            .or_else(|| names.iter().position(|n| n == want))
            .ok_or_else(|| {
                Invalid(format!(
                    "no stage `{want}` in this rollout; its stages are {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        out.retain(|x| x.stage == Some(index));
    }
    if let Some(h) = host {
        if !members.iter().flatten().any(|m| m == h)
            && !out.iter().any(|x| x.hosts.iter().any(|y| y == h))
        {
            return Err(Invalid(format!("host `{h}` takes no part in this rollout")));
        }
        let stage_of = members.iter().position(|m| m.iter().any(|x| x == h));
        out.retain(|x| {
            x.hosts.iter().any(|y| y == h)
                || (x.kind == "gate" || x.kind == "override" || x.kind == "bake_extended")
                    && x.stage == stage_of
        });
    }
    Ok(Explanation {
        target_kernel,
        policies,
        decisions: out,
    })
}

/// The human rendering.
pub fn render(e: &Explanation) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "rollout of {}: {} decision(s) by {} policy version(s)",
        e.target_kernel,
        e.decisions.len(),
        e.policies.len()
    );
    for d in &e.decisions {
        let stage = d
            .stage_name
            .as_deref()
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "#{} {}{stage} {} (policy {})",
            d.seq,
            d.at,
            d.summary,
            d.policy.get(..12).unwrap_or(&d.policy)
        );
        for r in &d.reasons {
            let _ = writeln!(o, "    - {r}");
        }
        if !d.levels.is_empty() {
            let _ = writeln!(o, "    levels: {}", d.levels.join(", "));
        }
        if !d.hosts.is_empty() && d.kind != "controls" {
            let _ = writeln!(o, "    hosts: {}", d.hosts.join(", "));
        } else if d.kind == "controls" {
            let shown: Vec<&str> = d.hosts.iter().take(8).map(String::as_str).collect();
            let _ = writeln!(
                o,
                "    controls: {}{}",
                shown.join(", "),
                if d.hosts.len() > 8 { ", …" } else { "" }
            );
        }
    }
    o
}
