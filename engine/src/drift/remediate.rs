//! Remediation: run the `auto` findings' commands, host by host, and nothing else. The
//! commands come from the audit's findings, decided once by the policy set loaded at the
//! start, so editing `drift.rhai` mid-run can never turn a `review` item into a command.

use super::audit::Report;
use super::Class;
use crate::exec::{Executor, RemoteCommand};
use crate::model::Host;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// The commands one host will run, in order, and the findings they fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFix {
    pub host: String,
    /// `sysctl vm.swappiness (runtime)`, …
    pub fixes: Vec<String>,
    pub commands: Vec<Vec<String>>,
}

/// The fixes for every host with `auto` findings (identical commands run once per host).
pub fn fixes(r: &Report) -> Vec<HostFix> {
    let mut out = Vec::new();
    for h in &r.hosts {
        let auto: Vec<_> = h
            .findings
            .iter()
            .filter(|f| f.class == Class::Auto)
            .collect();
        if auto.is_empty() {
            continue;
        }
        let mut commands: Vec<Vec<String>> = Vec::new();
        for f in &auto {
            for c in &f.commands {
                if !commands.contains(c) {
                    commands.push(c.clone());
                }
            }
        }
        out.push(HostFix {
            host: h.host.clone(),
            fixes: auto.iter().map(|f| f.subject()).collect(),
            commands,
        });
    }
    out
}

/// One command as run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandRun {
    pub argv: Vec<String>,
    /// Exit status, when it ran to the end.
    pub status: Option<i32>,
    pub output: String,
}

/// What happened on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostOutcome {
    pub host: String,
    pub runs: Vec<CommandRun>,
    /// Why the host stopped early; the remaining commands did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

fn tail(s: &str) -> String {
    let t = s.trim();
    let lines: Vec<&str> = t.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Runs each host's commands in order, `workers` hosts at a time. A host stops at its first
/// failing command; the other hosts carry on.
pub fn apply(
    exec: &dyn Executor,
    hosts: &HashMap<&str, &Host>,
    fixes: &[HostFix],
    workers: usize,
    timeout: Duration,
    progress: &(dyn Fn(&HostOutcome) + Sync),
) -> Vec<HostOutcome> {
    crate::pool::bounded_map(fixes, workers, |fix| {
        let o = match hosts.get(fix.host.as_str()) {
            Some(h) => {
                let o = apply_host(exec, h, fix, timeout);
                exec.release(h);
                o
            }
            None => HostOutcome {
                host: fix.host.clone(),
                runs: Vec::new(),
                failed: Some("not in the inventory".into()),
            },
        };
        progress(&o);
        o
    })
    .into_iter()
    .zip(fixes)
    .map(|(o, fix)| {
        o.unwrap_or_else(|| HostOutcome {
            host: fix.host.clone(),
            runs: Vec::new(),
            failed: Some("not run: a worker failed".into()),
        })
    })
    .collect()
}

fn apply_host(exec: &dyn Executor, h: &Host, fix: &HostFix, timeout: Duration) -> HostOutcome {
    let mut runs = Vec::new();
    for argv in &fix.commands {
        let cmd = RemoteCommand::new(argv.iter().cloned());
        match exec.run(h, &cmd, timeout) {
            Ok(o) => {
                let ok = o.success();
                let output = tail(if ok { &o.stdout } else { &o.stderr });
                runs.push(CommandRun {
                    argv: argv.clone(),
                    status: Some(o.status),
                    output: output.clone(),
                });
                if !ok {
                    return HostOutcome {
                        host: h.name.clone(),
                        runs,
                        failed: Some(format!(
                            "`{}` exited with {}{}",
                            cmd.shell_line(),
                            o.status,
                            if output.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", output.lines().last().unwrap_or(""))
                            }
                        )),
                    };
                }
            }
            Err(e) => {
                runs.push(CommandRun {
                    argv: argv.clone(),
                    status: None,
                    output: String::new(),
                });
                return HostOutcome {
                    host: h.name.clone(),
                    runs,
                    failed: Some(e.to_string()),
                };
            }
        }
    }
    HostOutcome {
        host: h.name.clone(),
        runs,
        failed: None,
    }
}
