//! The human renderings of drift: the audit, the fixes, what applying them did, and the
//! review queue.

use super::audit::{HostStatus, Report};
use super::frame::Summary;
use super::remediate::{HostFix, HostOutcome};
use super::session::FixResult;
use super::Class;
use crate::exec::RemoteCommand;
use crate::source::short_hash;
use std::path::Path;

/// The audit: header, fleet summary, then each host that needs attention (the first 50
/// unless `all`).
pub fn audit(r: &Report, sm: &Summary, declared: &Path, all: bool) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "drift audit  ·  {} hosts, {} declared facts checked  ·  as of {}",
        sm.hosts, sm.checked, r.at
    );
    let _ = writeln!(
        o,
        "      declared {} ({})  ·  policy {}",
        declared.display(),
        short_hash(&r.declared),
        short_hash(&r.policy)
    );
    let _ = writeln!(
        o,
        "hosts: {} clean, {} drifting, {} with unreadable facts, {} unreachable",
        sm.clean, sm.drifting, sm.unknown, sm.unreachable
    );
    let classes = ["auto", "review", "acknowledged", "unknown"];
    let n = |m: &std::collections::BTreeMap<String, usize>, c: &str| m.get(c).copied().unwrap_or(0);
    let _ = writeln!(
        o,
        "findings: {} auto, {} review, {} acknowledged, {} unknown",
        n(&sm.by_class, "auto"),
        n(&sm.by_class, "review"),
        n(&sm.by_class, "acknowledged"),
        n(&sm.by_class, "unknown")
    );
    for (title, table) in [("kind", &sm.by_kind), ("group", &sm.by_group)] {
        if table.is_empty() {
            continue;
        }
        let _ = writeln!(o);
        let _ = write!(o, "{title:<20}");
        for c in classes {
            let _ = write!(o, " {c:>12}");
        }
        let _ = writeln!(o);
        for (k, m) in table {
            let _ = write!(o, "{k:<20}");
            for c in classes {
                let _ = write!(o, " {:>12}", n(m, c));
            }
            let _ = writeln!(o);
        }
    }
    let shown: Vec<_> = r
        .hosts
        .iter()
        .filter(|h| h.status != HostStatus::Clean)
        .collect();
    let limit = if all { usize::MAX } else { 50 };
    for h in shown.iter().take(limit) {
        let _ = writeln!(o);
        match &h.error {
            Some(e) => {
                let _ = writeln!(o, "{}  {}  unreachable: {e}", h.host, h.group);
            }
            None => {
                let status = match h.status {
                    HostStatus::Drift => "drift",
                    HostStatus::Unknown => "facts unreadable",
                    HostStatus::Clean => "clean",
                    HostStatus::Unreachable => "unreachable",
                };
                let _ = writeln!(o, "{}  {}  {status}", h.host, h.group);
            }
        }
        for f in h.findings.iter().filter(|f| f.class != Class::Acknowledged) {
            let _ = writeln!(
                o,
                "  {:<8} {:<40} declared `{}`, actual `{}`",
                f.class.as_str(),
                f.subject(),
                f.declared,
                f.actual
            );
            let _ = writeln!(o, "  {:<8} {}", "", f.reason);
        }
    }
    if shown.len() > limit {
        let _ = writeln!(
            o,
            "\n… and {} more host(s); `--all` lists them, `-o json` gives everything",
            shown.len() - limit
        );
    }
    let _ = writeln!(o);
    o
}

/// The fixes a dry run would apply, with their exact commands.
pub fn fixes(fixes: &[HostFix]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "auto fixes: {} host(s)", fixes.len());
    for f in fixes {
        let _ = writeln!(o, "{}  ({})", f.host, f.fixes.join(", "));
        for c in &f.commands {
            let _ = writeln!(
                o,
                "  $ {}",
                RemoteCommand::new(c.iter().cloned()).shell_line()
            );
        }
    }
    let _ = writeln!(o);
    o
}

/// What `--apply` did, host by host.
pub fn outcomes(fixes: &[HostFix], outcomes: &[HostOutcome], results: &[FixResult]) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let converged = results.iter().filter(|r| r.converged).count();
    let _ = writeln!(
        o,
        "applied: {} host(s), {converged} converged on re-audit",
        fixes.len()
    );
    for (f, r) in fixes.iter().zip(results) {
        let out = outcomes.iter().find(|x| x.host == f.host);
        let state = if r.converged {
            "converged".to_string()
        } else if let Some(e) = out.and_then(|x| x.failed.as_deref()) {
            format!("FAILED: {e}")
        } else {
            format!(
                "not converged: {}",
                serde_json::to_string(&r.remaining).unwrap_or_default()
            )
        };
        let _ = writeln!(o, "{}  {state}", f.host);
        for run in out.map(|x| x.runs.as_slice()).unwrap_or(&[]) {
            let _ = writeln!(
                o,
                "  $ {}  → {}",
                RemoteCommand::new(run.argv.iter().cloned()).shell_line(),
                run.status
                    .map(|s| format!("exit {s}"))
                    .unwrap_or_else(|| "did not finish".into())
            );
        }
    }
    let _ = writeln!(o);
    o
}

/// The review items (queued, never run) and what could not be audited.
pub fn review(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let items: Vec<_> = r
        .hosts
        .iter()
        .flat_map(|h| {
            h.findings
                .iter()
                .filter(|f| f.class == Class::Review)
                .map(move |f| (h, f))
        })
        .collect();
    let _ = writeln!(o, "for review (queued, never run): {} item(s)", items.len());
    for (h, f) in items {
        let _ = writeln!(o, "  {:<20} {:<40} {}", h.host, f.subject(), f.reason);
    }
    let unreadable: usize = r.hosts.iter().map(|h| h.count(Class::Unknown)).sum();
    let unreachable = r
        .hosts
        .iter()
        .filter(|h| h.status == HostStatus::Unreachable)
        .count();
    if unreadable + unreachable > 0 {
        let _ = writeln!(
            o,
            "not audited: {unreachable} unreachable host(s), {unreadable} unreadable fact(s)"
        );
    }
    o
}
