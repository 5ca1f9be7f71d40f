//! The `cache` policy kind: `commands()`, the catalogue of runtime cache commands.

use crate::error::Invalid;
use crate::runtime::kinds::{FnSpec, KindSpec};
use rhai::Dynamic;
use serde_json::Value;

fn check_catalogue(d: &Dynamic) -> Result<Value, Invalid> {
    if !d.is_map() {
        return Err(format!("got `{}`", d.type_name()).into());
    }
    let v = serde_json::to_value(d).map_err(|e| e.to_string())?;
    super::parse_catalogue(&v)?;
    Ok(v)
}

/// The kind.
pub const CACHE: KindSpec = KindSpec {
    name: "cache",
    doc: "The catalogue of runtime cache commands.",
    required: &[FnSpec {
        name: "commands",
        params: &[],
        returns: "a map from command name to `#{description, safety, params, target, guards, run, revert_after}`",
        doc: "The cache command catalogue: each entry's `run(p, r)` function sends Redis commands round by round.",
        check: check_catalogue,
    }],
    optional: &[],
};
