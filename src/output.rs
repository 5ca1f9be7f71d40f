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
/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn json_line(v: &serde_json::Value) {
    println!("{v}");
}

/// Reports a failed command: rendered diagnostics on stderr (human), or one JSON object on
/// stdout.
pub fn report_error(format: Format, e: &anyhow::Error) {
    let policy = e.downcast_ref::<PolicyError>();
    let inventory = e.downcast_ref::<InventoryError>();
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
