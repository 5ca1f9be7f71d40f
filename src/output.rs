//! Output conventions shared by every subcommand: formats, exit codes, error reports.

use fleetward_engine::inventory::InventoryError;
use fleetward_engine::PolicyError;
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Attention = 2,
    Failed = 3,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// Whether stderr gets colour.
pub fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Prints a JSON value on one line of stdout.
pub fn json_line(v: &serde_json::Value) {
    println!("{v}");
}

/// Reports a failed command: rendered diagnostics on stderr (human), or one JSON object on
/// stdout.
pub fn report_error(format: Format, e: &anyhow::Error) {
    let policy = policy_error(e);
    let inventory = inventory_error(e);
    match format {
        Format::Json => {
            let diagnostics = policy.map(|p| p.diagnostics()).unwrap_or_default();
            let mut v = serde_json::json!({
                "ok": false,
                "error": format!("{e:#}"),
                "diagnostics": diagnostics,
            });
            if let Some(i) = inventory {
                v["inventory"] = serde_json::json!(i);
            }
            json_line(&v);
        }
        Format::Human if inventory.is_some() => {
            for line in format!("{e:#}").lines() {
                eprintln!("error: {line}");
            }
        }
        Format::Human => match policy {
            Some(p @ (PolicyError::Invalid(_) | PolicyError::Eval(_))) => {
                let ds = p.diagnostics();
                for d in &ds {
                    eprint!("{}", d.render(color()));
                }
                if ds.len() > 1 {
                    eprintln!("error: {} problems", ds.len());
                }
            }
            _ => eprintln!("error: {e:#}"),
        },
    }
}

/// The policy error inside `e`, if any, however an engine error wraps it: its diagnostics
/// render with their source snippet.
fn policy_error(e: &anyhow::Error) -> Option<&PolicyError> {
    use fleetward_engine::{drift, gate, plan, rollout, sim};
    if let Some(p) = e.downcast_ref::<PolicyError>() {
        return Some(p);
    }
    if let Some(plan::PlanError::Policy(p)) = e.downcast_ref() {
        return Some(p);
    }
    if let Some(gate::GateError::Policy(p)) = e.downcast_ref() {
        return Some(p);
    }
    if let Some(rollout::session::SessionError::Policy(p)) = e.downcast_ref() {
        return Some(p);
    }
    if let Some(rollout::session::SessionError::Plan(plan::PlanError::Policy(p))) = e.downcast_ref()
    {
        return Some(p);
    }
    if let Some(sim::ScenarioError::Session(rollout::session::SessionError::Policy(p))) =
        e.downcast_ref()
    {
        return Some(p);
    }
    if let Some(drift::session::DriftError::Policy(p)) = e.downcast_ref() {
        return Some(p);
    }
    None
}

/// The inventory error inside `e`, if any.
fn inventory_error(e: &anyhow::Error) -> Option<&InventoryError> {
    use fleetward_engine::{drift, rollout, sim};
    if let Some(i) = e.downcast_ref::<InventoryError>() {
        return Some(i);
    }
    if let Some(rollout::session::SessionError::Inventory(i)) = e.downcast_ref() {
        return Some(i);
    }
    if let Some(sim::ScenarioError::Session(rollout::session::SessionError::Inventory(i))) =
        e.downcast_ref()
    {
        return Some(i);
    }
    if let Some(drift::session::DriftError::Inventory(i)) = e.downcast_ref() {
        return Some(i);
    }
    None
}
