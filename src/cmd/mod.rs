//! One module per subcommand; each parses nothing itself and returns an exit code.

pub mod args;
pub mod bench;
pub mod cache;
pub mod check;
pub mod collect;
pub mod defs;
pub mod drift;
pub mod eval;
pub mod explain;
pub mod gate;
pub mod generate;
pub mod plan;
pub mod rollout;
pub mod simulate;
pub mod test;
pub mod watch;

pub use args::{FleetArgs, InventoryArgs};

use crate::output::Format;
use fleetward_engine::{LoadOptions, PolicySet};
use std::path::Path;

/// What every subcommand receives from the global flags.
pub struct Ctx {
    pub format: Format,
    pub limits: Vec<String>,
}

impl Ctx {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions {
            limit_overrides: self.limits.clone(),
            ..LoadOptions::default()
        }
    }

    /// Loads and validates a policy set.
    pub fn load(&self, dir: &Path) -> anyhow::Result<PolicySet> {
        Ok(PolicySet::load(dir, &self.load_options())?)
    }
}
