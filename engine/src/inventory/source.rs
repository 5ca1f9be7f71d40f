//! Where an inventory comes from: its file, a format named instead of guessed, and field
//! mappings for one run. The form `plan`, `gate`, `rollout`, `drift` and `cache` share, and
//! the one a rollout persists.

use super::{load, Format, Inventory, InventoryError, Problem};
use crate::inventory::FieldMap;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// An inventory file and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The inventory file.
    #[serde(rename = "inventory")]
    pub path: PathBuf,
    /// A format name (`native`, `csv`, `ini`, `yaml`) instead of guessing from the name.
    #[serde(rename = "inventory_format", default)]
    pub format: Option<String>,
    /// `FIELD=SOURCE` mappings over the policy set's `[inventory]`.
    #[serde(default)]
    pub fields: Vec<String>,
}

impl Source {
    /// Just a file, read as its name says.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Source {
            path: path.into(),
            format: None,
            fields: Vec::new(),
        }
    }

    /// Reads the inventory with `base` (the set's field mapping) and this source's fields.
    pub fn load(&self, base: &FieldMap) -> Result<Inventory, InventoryError> {
        let file = self.path.display().to_string();
        let bad = |message: String| InventoryError {
            file: file.clone(),
            problems: vec![Problem {
                line: None,
                message,
            }],
        };
        let mut map = base.clone();
        for f in &self.fields {
            map.set(f).map_err(|e| bad(format!("--field: {e}")))?;
        }
        let format = match &self.format {
            None => None,
            Some(f) => Some(Format::from_name(f).ok_or_else(|| {
                bad(format!(
                    "unknown inventory format `{f}`; formats are native, csv, ini, yaml"
                ))
            })?),
        };
        load(&self.path, format, &map)
    }
}
