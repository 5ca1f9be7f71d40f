//! One module per subcommand; each parses nothing itself and returns an exit code.

pub mod bench;
pub mod check;
pub mod defs;
pub mod eval;
pub mod generate;
pub mod plan;
pub mod test;
pub mod watch;

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
        }
    }

    /// Loads and validates a policy set.
    pub fn load(&self, dir: &Path) -> anyhow::Result<PolicySet> {
        Ok(PolicySet::load(dir, &self.load_options())?)
    }
}
