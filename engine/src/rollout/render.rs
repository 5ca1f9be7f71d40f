//! The human rendering of a rollout: one line per notable journal event while it runs, and
//! the status report.

use super::session::Status;
use super::{Event, Phase, Record, RolloutState};
use crate::source::short_hash;
use std::fmt::Write as _;

/// The line a notable event prints, if any; `hosts` adds a line per updated host.
pub fn event_line(r: &Record, st: &RolloutState, hosts: bool) -> Option<String> {
    let stage_name = |i: usize| st.stages.get(i).map(|s| s.name.clone()).unwrap_or_default();
    let at = &r.at;
    Some(match &r.event {
        Event::Started {
            target_kernel,
            stages,
            ..
        } => format!(
            "rollout of {target_kernel}: {} host(s) in {} stage(s), policy {}",
            st.planned_hosts(),
            stages.len(),
            short_hash(&r.policy)
        ),
        Event::StageStarted { stage } => {
            let n = st.stages.get(*stage).map(|s| s.hosts.len()).unwrap_or(0);
            format!("{at}  stage {}: {n} host(s)", stage_name(*stage))
        }
        Event::HostFailed { host, step, output } => {
            format!("{at}  host {host} failed at {step}: {output}")
        }
        Event::HostDone { host } if hosts => match st.hosts.get(host).and_then(|h| h.back.as_ref()) {
            Some(_) => format!("{at}  host {host} rolled back"),
            None => format!("{at}  host {host} updated"),
        },
        Event::BakeStarted { stage, until } => {
            format!("{at}  stage {}: baking until {until}", stage_name(*stage))
        }
        Event::ControlsChosen { stage, hosts } => format!(
            "{at}  stage {}: {} control host(s)",
            stage_name(*stage),
            hosts.len()
        ),
        Event::BeforeStarted { stage, until } => format!(
            "{at}  stage {}: recording the before window until {until}",
            stage_name(*stage)
        ),
        Event::BakeExtended {
            stage,
            until,
            reasons,
        } => {
            let mut o = format!(
                "{at}  stage {}: gate inconclusive, bake extended until {until}",
                stage_name(*stage)
            );
            for x in reasons {
                let _ = write!(o, "\n      - {x}");
            }
            o
        }
        Event::RecoverIssued {
            host,
            command,
            wait,
        } => format!(
            "{at}  host {host} did not come back from its reboot: out-of-band recovery `{}`, then waiting up to {wait} s",
            crate::exec::RemoteCommand::new(command.iter().cloned()).shell_line()
        ),
        Event::UnexpectedReboot { host, .. } => format!("{at}  host {host} rebooted unexpectedly"),
        Event::GateEvaluated {
            stage,
            verdict,
            reasons,
            ..
        } => {
            let mut o = format!(
                "{at}  gate {}: {} (policy {})",
                stage_name(*stage),
                verdict.as_str().to_uppercase(),
                short_hash(&r.policy)
            );
            for x in reasons {
                let _ = write!(o, "\n      - {x}");
            }
            o
        }
        Event::HostHeld { host, reason } => format!("{at}  {host}: held back by drift: {reason}"),
        Event::OnFailDecided {
            stage,
            verdict,
            decision,
            ..
        } => format!(
            "{at}  on_fail for {}: the gate said {}, the policy decided `{}` (policy {})",
            stage_name(*stage),
            verdict.as_str(),
            decision.key(),
            short_hash(&r.policy)
        ),
        Event::Paused { reason } => format!("{at}  PAUSED: {reason}"),
        Event::Resumed { acknowledged } => format!(
            "{at}  resumed{}",
            if acknowledged.is_empty() {
                String::new()
            } else {
                format!(" ({} failure(s) acknowledged)", acknowledged.len())
            }
        ),
        Event::Aborted { reason } => format!("{at}  ABORTED: {reason}"),
        Event::Completed => format!("{at}  rollout completed"),
        Event::RollbackStarted {
            reason,
            batches,
            left,
            untouched,
        } => {
            let n: usize = batches.iter().map(|b| b.hosts.len()).sum();
            let mut o = format!(
                "{at}  ROLLBACK: {n} host(s) go back to the kernel each ran before, in {} batch(es), later stages first: {reason}",
                batches.len()
            );
            for line in super::rollback::left_alone(left, *untouched) {
                let _ = write!(o, "\n      - {line}");
            }
            o
        }
        Event::RolledBack { failed } if failed.is_empty() => {
            format!("{at}  ROLLED BACK: every host of the rollback runs the kernel it ran before")
        }
        Event::RolledBack { failed } => format!(
            "{at}  ROLLED BACK WITH FAILURES: {} host(s) failed on the way back and are quarantined: {}",
            failed.len(),
            failed.join(", ")
        ),
        Event::CompletedWithFailures { hosts } => format!(
            "{at}  COMPLETED WITH FAILURES: {} host(s) failed and no operator acknowledged them: {}",
            hosts.len(),
            hosts.join(", ")
        ),
        Event::Recovered {
            in_flight,
            reboots_resent,
            torn_bytes,
            lost_secs,
        } => recovered_line(at, in_flight, reboots_resent, *torn_bytes, *lost_secs),
        _ => return None,
    })
}

/// A recovery after a crash, in words.
pub fn recovered_line(
    at: &str,
    in_flight: &[super::event::InFlight],
    resent: &[String],
    torn_bytes: u64,
    lost_secs: u64,
) -> String {
    let hosts = if in_flight.is_empty() {
        "no host was mid-step".to_string()
    } else {
        format!(
            "{} host(s) mid-step: {}",
            in_flight.len(),
            in_flight
                .iter()
                .map(|f| format!("{} at {}", f.host, f.step.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut o =
        format!("{at}  RECOVERED from a crash ({lost_secs} s after the last record): {hosts}");
    if !resent.is_empty() {
        let _ = write!(
            o,
            "; reboot sent again through the one-shot wrapper to {}",
            resent.join(", ")
        );
    }
    if torn_bytes > 0 {
        let _ = write!(o, "; dropped a torn last record of {torn_bytes} bytes");
    }
    o
}

/// The stage message a progress bar shows after an event, if it changes.
pub fn bar_message(r: &Record, st: &RolloutState) -> Option<String> {
    let stage_name = |i: usize| st.stages.get(i).map(|s| s.name.clone()).unwrap_or_default();
    match &r.event {
        Event::StageStarted { stage } => Some(stage_name(*stage)),
        Event::BakeStarted { stage, .. } => Some(format!("{} baking", stage_name(*stage))),
        Event::BeforeStarted { stage, .. } => Some(format!("{} before window", stage_name(*stage))),
        Event::BakeExtended { stage, .. } => {
            Some(format!("{} baking (extended)", stage_name(*stage)))
        }
        _ => None,
    }
}

/// Stage-by-stage progress, failed and held hosts, and the kernels hosts run.
pub fn status(s: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "rollout of {}: {}{}",
        s.target_kernel,
        s.phase.as_str().to_uppercase(),
        match &s.controller {
            Some(h) => format!(" (controller running, {h})"),
            None => String::new(),
        }
    );
    if let Some(r) = &s.pause_reason {
        let _ = writeln!(o, "  reason: {r}");
    }
    if !s.shards.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<24} {:<24} {:<14} {:>8} {:>8} {:>7}  controller",
            "shard", "phase", "stage", "planned", "updated", "failed"
        );
        for p in &s.shards {
            let _ = writeln!(
                o,
                "{:<24} {:<24} {:<14} {:>8} {:>8} {:>7}  {} (at {})",
                p.shard,
                p.phase.as_str(),
                p.stage.as_deref().unwrap_or("-"),
                p.planned,
                p.updated,
                p.failed,
                p.controller,
                p.at
            );
        }
    }
    if let Some(e) = &s.shards_error {
        let _ = writeln!(o, "  the other shards' progress is unknown: {e}");
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<14} {:>6} {:>8} {:>7} {:>10}  gate",
        "stage", "hosts", "updated", "failed", "in flight"
    );
    for r in &s.stages {
        let _ = writeln!(
            o,
            "{:<14} {:>6} {:>8} {:>7} {:>10}  {}",
            r.name,
            r.hosts,
            r.updated,
            r.failed,
            r.in_flight,
            r.gate.as_deref().unwrap_or("-")
        );
        for x in &r.reasons {
            let _ = writeln!(o, "{:<14}   - {x}", "");
        }
    }
    if !s.failed.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "failed hosts (quarantined):");
        for f in &s.failed {
            let _ = writeln!(
                o,
                "  {}{}",
                f.describe(),
                if f.acknowledged {
                    " (acknowledged)"
                } else {
                    ""
                }
            );
        }
        if s.phase == Phase::CompletedWithFailures {
            let _ = writeln!(
                o,
                "  acknowledge them to complete: fleetward rollout resume --state-dir {} --acknowledge HOST…",
                s.state_dir
            );
        }
    }
    if let Some(r) = &s.rollback {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "rollback{} since {}: {} of {} host(s) back on their previous kernel, {} in flight, {} failed",
            if r.finished { " (finished)" } else { "" },
            r.at,
            r.back,
            r.hosts,
            r.in_flight,
            r.failed.len()
        );
        let _ = writeln!(o, "  reason: {}", r.reason);
        for f in &r.failed {
            let _ = writeln!(o, "  {f}");
        }
        if !r.left.is_empty() {
            let _ = writeln!(o, "  left as they are: {}", r.left.len());
            for l in &r.left {
                let _ = writeln!(o, "    {}: {}", l.host, l.why);
            }
        }
        if r.untouched > 0 {
            let _ = writeln!(o, "  never started (left as they are): {}", r.untouched);
        }
    }
    if !s.recoveries.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "recoveries after crashes: {}", s.recoveries.len());
        for r in &s.recoveries {
            let _ = writeln!(
                o,
                "  {}",
                recovered_line(
                    &r.at,
                    &r.in_flight,
                    &r.reboots_resent,
                    r.torn_bytes,
                    r.lost_secs
                )
            );
        }
    }
    if !s.held_for_drift.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "held back by drift (not in this rollout): {}",
            s.held_for_drift.len()
        );
        for h in &s.held_for_drift {
            let _ = writeln!(o, "  {}: {}", h.host, h.reason);
        }
    }
    if matches!(
        s.phase,
        Phase::Aborted | Phase::Paused | Phase::CompletedWithFailures | Phase::RolledBack
    ) {
        let mut by_kernel: std::collections::BTreeMap<&str, usize> = Default::default();
        for k in &s.hosts {
            *by_kernel.entry(k.kernel.as_str()).or_default() += 1;
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "kernels now:");
        for (k, n) in by_kernel {
            let _ = writeln!(o, "  {k}: {n} host(s)");
        }
        if matches!(s.phase, Phase::Aborted | Phase::RolledBack) {
            let _ = writeln!(o);
            let _ = writeln!(o, "{:<24} {:<24} status", "host", "kernel");
            for k in &s.hosts {
                let _ = writeln!(o, "{:<24} {:<24} {}", k.host, k.kernel, k.status);
            }
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "policy sets that made decisions: {}",
        s.policies
            .iter()
            .map(|p| short_hash(p))
            .collect::<Vec<_>>()
            .join(", ")
    );
    o
}
