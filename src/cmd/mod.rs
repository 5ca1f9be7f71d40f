//! One module per subcommand; each parses nothing itself and returns an exit code.

pub mod bench;
pub mod cache;
pub mod check;
pub mod defs;
pub mod drift;
pub mod eval;
pub mod gate;
pub mod generate;
pub mod plan;
pub mod rollout;
pub mod simulate;
pub mod test;
pub mod watch;

use crate::output::Format;
use fleetward_engine::inventory::{self, Format as InvFormat, Inventory};
use fleetward_engine::{LoadOptions, PolicySet};
use std::path::Path;

/// The default state directory: `$XDG_STATE_HOME/fleetward`, or `~/.local/state/fleetward`.
pub fn default_state_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("fleetward")
}

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

/// The policy directory and inventory flags `plan` and `gate` share.
#[derive(clap::Args, Debug)]
pub struct FleetArgs {
    /// The policy directory.
    #[arg(long, default_value = "policies")]
    pub policy_dir: std::path::PathBuf,
    #[command(flatten)]
    pub inventory: InventoryArgs,
}

/// The inventory flags.
#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    /// The inventory: `.toml`/`.json`/`.yaml` (fleetward's own or Ansible), `.csv`, or an
    /// Ansible INI file (any other name).
    #[arg(long)]
    pub inventory: std::path::PathBuf,
    /// Read the inventory as this format instead of guessing from its name:
    /// native, csv, ini, yaml.
    #[arg(long, value_name = "FORMAT")]
    pub inventory_format: Option<String>,
    /// Map a host field to inventory variables for this run (`hardware=hw_class`,
    /// `workload=group:role_`); repeatable. Overrides `[inventory]` in `fleetward.toml`.
    #[arg(long = "field", value_name = "FIELD=SOURCE")]
    pub fields: Vec<String>,
}

impl InventoryArgs {
    /// Reads the inventory with the set's field mapping and these flags.
    pub fn load(&self, set: &PolicySet) -> anyhow::Result<Inventory> {
        let mut map = set.field_map().clone();
        for f in &self.fields {
            map.set(f).map_err(|e| anyhow::anyhow!("--field: {e}"))?;
        }
        let format = match &self.inventory_format {
            None => None,
            Some(f) => Some(InvFormat::from_name(f).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown inventory format `{f}`; formats are native, csv, ini, yaml"
                )
            })?),
        };
        Ok(inventory::load(&self.inventory, format, &map)?)
    }
}
