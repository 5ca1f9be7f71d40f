//! The human renderings of cache commands: the catalogue, a dry run's rounds, a live run's
//! rows as one table with coverage and failures, and pending reverts.

use super::revert::Pending;
use super::runner::{Coverage, NodeResult};
use super::session::DryNode;
use super::{Catalogue, Entry};
use crate::exec::RemoteCommand;
use crate::text::thousands;
use std::fmt::Write as _;

fn line(c: &[String]) -> String {
    RemoteCommand::new(c.iter().cloned()).shell_line()
}

/// The catalogue: each command with its safety class, description and parameters.
pub fn catalogue(cat: &Catalogue) -> String {
    let mut o = String::new();
    for (name, e) in cat {
        let _ = writeln!(o, "{name:<16} {:<9} {}", e.safety.as_str(), e.description);
        for (p, spec) in &e.params {
            let default = match &spec.default {
                Some(d) => format!("default {d}"),
                None => "required".to_string(),
            };
            let _ = writeln!(
                o,
                "{:<26} --param {p}=<{}>  ({default}){}",
                "",
                spec.kind.as_str(),
                if spec.description.is_empty() {
                    String::new()
                } else {
                    format!("  {}", spec.description)
                }
            );
        }
    }
    o
}

/// A dry run: per node, every round the command can build, as sent or refused, with the
/// live checks the runner makes first.
pub fn dry_run(name: &str, entry: &Entry, dry: &[DryNode], confirmed: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "dry run of `{name}` ({}) on {} node(s); nothing is sent",
        entry.safety.as_str(),
        dry.len()
    );
    for n in dry {
        let _ = writeln!(o, "{} ({}:{})", n.node.name, n.node.address, n.node.port);
        for r in &n.rounds {
            let _ = writeln!(o, "  round {}", r.n);
            for s in &r.send {
                match &s.refused {
                    None => {
                        let _ = writeln!(o, "    {}", line(&s.command));
                    }
                    Some(why) => {
                        let _ = writeln!(o, "    REFUSED {}: {why}", line(&s.command));
                    }
                }
                for need in &s.needs {
                    let _ = match need {
                        super::guard::Need::Size { probe, max } => writeln!(
                            o,
                            "      checked first on the node: `{}` at most {max}",
                            line(probe)
                        ),
                        super::guard::Need::UsedMemoryAtMost { bytes } => writeln!(
                            o,
                            "      checked first on the node: used memory at most {bytes} bytes"
                        ),
                    };
                }
            }
        }
        if n.done {
            let _ = writeln!(o, "  done");
        } else if let Some(why) = &n.stops {
            let _ = writeln!(o, "  … {why}");
        }
    }
    if entry.safety == super::guard::Safety::Dangerous && !confirmed {
        let _ = writeln!(o, "`{name}` is dangerous: a real run needs --confirm");
    }
    o
}

/// A revert a killed run left pending, as a warning.
pub fn orphan(r: &Pending) -> String {
    format!(
        "pending revert: `{}` on `{}` back to `{}` was due at {} and the process that made the change ({}) is gone; `fleetward cache revert` applies it",
        r.name, r.node.name, r.old, r.due, r.pid
    )
}

/// Rows of every node as one table (columns in order of first appearance), then failures.
pub fn results(name: &str, results: &[NodeResult]) -> String {
    let mut cols: Vec<String> = Vec::new();
    for r in results {
        for row in &r.rows {
            if let Some(m) = row.as_object() {
                for k in m.keys() {
                    if !cols.contains(k) {
                        cols.push(k.clone());
                    }
                }
            }
        }
    }
    let cell = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let mut table: Vec<Vec<String>> = vec![std::iter::once("node".to_string())
        .chain(cols.iter().cloned())
        .collect()];
    for r in results {
        for row in &r.rows {
            let mut line = vec![r.node.name.clone()];
            for c in &cols {
                line.push(cell(row.get(c)));
            }
            table.push(line);
        }
    }
    let widths: Vec<usize> = (0..=cols.len())
        .map(|i| {
            table
                .iter()
                .map(|l| l.get(i).map(|c| c.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut o = String::new();
    let ok = results.iter().filter(|r| r.error.is_none()).count();
    let _ = writeln!(o, "{name}: {ok} of {} node(s) answered", results.len());
    for l in &table {
        let line: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(o, "{}", line.join("  ").trim_end());
    }
    for r in results {
        if let Some(c) = &r.coverage {
            let _ = writeln!(o, "{}: examined {}", r.node.name, coverage_line(c));
        }
        if let Some(e) = &r.error {
            let _ = writeln!(
                o,
                "FAILED {} ({}:{}): {e}",
                r.node.name, r.node.address, r.node.port
            );
        }
        if let Some(c) = &r.cleanup {
            let _ = writeln!(o, "{}: after the timeout, {c}", r.node.name);
        }
    }
    o
}

/// One line for people: "100,000 of 1,000,000 keys (10%); stopped before ... (why)".
pub fn coverage_line(c: &Coverage) -> String {
    let mut s = match (&c.pattern, c.total) {
        (None, Some(t)) if t > 0 => format!(
            "{} of {} keys ({:.0}%)",
            thousands(c.examined),
            thousands(t),
            (c.examined as f64 / t as f64 * 100.0).min(100.0)
        ),
        (Some(p), total) => format!(
            "{} keys matching `{p}` of {} keys",
            thousands(c.examined),
            total.map_or_else(|| "?".into(), thousands)
        ),
        _ => format!("{} keys", thousands(c.examined)),
    };
    if c.complete {
        s.push_str("; the whole keyspace");
    } else {
        s.push_str("; stopped before the end of the keyspace");
        if let Some(why) = &c.stopped_by {
            s.push_str(&format!(" ({why})"));
        }
    }
    s
}
