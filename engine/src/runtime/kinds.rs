//! What a policy kind is: its file, the functions it must (and may) define, and the check each
//! function's result passes. The kinds themselves are declared by their domains and assembled
//! into a [`Registry`] above the runtime, which knows none of them.

use super::typed::from_dynamic;
use crate::error::Invalid;
use rhai::Dynamic;
use serde_json::Value;

/// Converts and checks a function's result, returning its normalised JSON form.
pub type Check = fn(&Dynamic) -> Result<Value, Invalid>;

/// A function a policy kind defines.
#[derive(Debug, Clone, Copy)]
pub struct FnSpec {
    pub name: &'static str,
    pub params: &'static [&'static str],
    /// What the result must be, in words, for error messages and `fleetward defs`.
    pub returns: &'static str,
    pub doc: &'static str,
    pub check: Check,
}

/// A kind of policy, held in `<name>.rhai` at the root of the policy directory.
#[derive(Debug, Clone, Copy)]
pub struct KindSpec {
    pub name: &'static str,
    pub doc: &'static str,
    pub required: &'static [FnSpec],
    /// Functions the kind may define; without them fleetward uses the documented default.
    pub optional: &'static [FnSpec],
}

impl KindSpec {
    /// `rollout.rhai`.
    pub fn file(&self) -> String {
        format!("{}.rhai", self.name)
    }

    pub fn function(&self, name: &str) -> Option<&'static FnSpec> {
        self.functions().find(|f| f.name == name)
    }

    /// Required functions, then optional ones.
    pub fn functions(&self) -> impl Iterator<Item = &'static FnSpec> {
        self.required.iter().chain(self.optional.iter())
    }
}

/// Converts a result to `T` and back to JSON, normalised.
pub fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    d: &Dynamic,
) -> Result<(T, Value), Invalid> {
    let t: T = from_dynamic(d)?;
    let v = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    Ok((t, v))
}

/// A result as JSON.
pub fn json(d: &Dynamic) -> Result<Value, Invalid> {
    serde_json::to_value(d).map_err(|e| Invalid(e.to_string()))
}

pub fn check_positive(d: &Dynamic) -> Result<Value, Invalid> {
    let (n, v) = typed::<i64>(d)?;
    if n < 1 {
        return Err(format!("`{n}` is below 1").into());
    }
    Ok(v)
}

pub fn check_kernel(d: &Dynamic) -> Result<Value, Invalid> {
    let (k, v) = typed::<String>(d)?;
    fleetward_stdlib::KernelVersion::parse(&k).map_err(|e| e.to_string())?;
    Ok(v)
}

pub fn check_count(d: &Dynamic) -> Result<Value, Invalid> {
    let (n, v) = typed::<i64>(d)?;
    if n < 0 {
        return Err(format!("`{n}` is negative").into());
    }
    Ok(v)
}

/// The policy kinds and `fleetward.toml` sections a policy set is loaded with.
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    pub kinds: &'static [KindSpec],
    pub sections: &'static [crate::config::SectionSpec],
}

impl Registry {
    /// The kind whose file is `rel` (only files at the root of the policy directory).
    pub fn kind_of_file(&self, rel: &str) -> Option<&'static KindSpec> {
        self.kinds.iter().find(|k| k.file() == rel)
    }

    /// The kind called `name`.
    pub fn kind(&self, name: &str) -> Option<&'static KindSpec> {
        self.kinds.iter().find(|k| k.name == name)
    }
}
