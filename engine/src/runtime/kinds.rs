//! The registry of policy kinds: which file holds each kind, the functions it must define, and
//! the Rust type each function's result must convert to.

use super::typed::from_dynamic;
use crate::model::{DriftDecision, Verdict};
use rhai::Dynamic;
use serde_json::Value;

/// Converts and checks a function's result, returning its normalised JSON form.
pub type Check = fn(&Dynamic) -> Result<Value, String>;

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
}

impl KindSpec {
    /// `rollout.rhai`.
    pub fn file(&self) -> String {
        format!("{}.rhai", self.name)
    }

    pub fn function(&self, name: &str) -> Option<&'static FnSpec> {
        self.required.iter().find(|f| f.name == name)
    }
}

fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    d: &Dynamic,
) -> Result<(T, Value), String> {
    let t: T = from_dynamic(d)?;
    let v = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    Ok((t, v))
}

fn check_bool(d: &Dynamic) -> Result<Value, String> {
    typed::<bool>(d).map(|x| x.1)
}

fn check_count(d: &Dynamic) -> Result<Value, String> {
    let (n, v) = typed::<i64>(d)?;
    if n < 0 {
        return Err(format!("`{n}` is negative"));
    }
    Ok(v)
}

fn check_waves(d: &Dynamic) -> Result<Value, String> {
    let (w, v) = typed::<Vec<f64>>(d)?;
    if w.is_empty() {
        return Err("the wave list is empty".into());
    }
    let mut prev = 0.0;
    for (i, p) in w.iter().enumerate() {
        if !p.is_finite() || *p <= prev || *p > 100.0 {
            return Err(format!(
                "wave {i} is `{p}`: waves must be cumulative percentages, rising, in (0, 100]"
            ));
        }
        prev = *p;
    }
    if (prev - 100.0).abs() > f64::EPSILON {
        return Err(format!("the last wave is `{prev}`, it must be 100"));
    }
    Ok(v)
}

fn check_verdict(d: &Dynamic) -> Result<Value, String> {
    typed::<Verdict>(d).map(|x| x.1)
}

fn check_drift(d: &Dynamic) -> Result<Value, String> {
    typed::<DriftDecision>(d).map(|x| x.1)
}

fn check_map(d: &Dynamic) -> Result<Value, String> {
    if !d.is_map() {
        return Err(format!("got `{}`", d.type_name()));
    }
    serde_json::to_value(d).map_err(|e| e.to_string())
}

/// Every policy kind fleetward knows.
pub static KINDS: &[KindSpec] = &[
    KindSpec {
        name: "rollout",
        doc: "Which hosts take the new kernel, in which waves, how fast.",
        required: &[
            FnSpec {
                name: "eligible",
                params: &["host"],
                returns: "a bool",
                doc: "Whether a host may take part in the rollout.",
                check: check_bool,
            },
            FnSpec {
                name: "canary",
                params: &["group"],
                returns: "a non-negative int",
                doc: "How many canaries to take from a hardware × workload group.",
                check: check_count,
            },
            FnSpec {
                name: "waves",
                params: &[],
                returns: "an array of rising cumulative percentages ending in 100",
                doc: "The waves, as cumulative percentages of the eligible fleet.",
                check: check_waves,
            },
            FnSpec {
                name: "bake",
                params: &["wave"],
                returns: "a non-negative int (seconds)",
                doc: "How long to watch a wave before its gate.",
                check: check_count,
            },
        ],
    },
    KindSpec {
        name: "gates",
        doc: "Whether a stage passes, pauses or fails, from its metrics and events.",
        required: &[FnSpec {
            name: "gate",
            params: &["w"],
            returns: "a verdict (`pass()`, `pause(reason)`, `fail(reason)`)",
            doc: "The verdict on a stage.",
            check: check_verdict,
        }],
    },
    KindSpec {
        name: "drift",
        doc: "What to do about each divergence from declared state.",
        required: &[FnSpec {
            name: "classify",
            params: &["item"],
            returns:
                "a map `#{action: \"auto\"|\"review\"|\"acknowledged\", reason, commands, until}`",
            doc: "The decision for one divergence.",
            check: check_drift,
        }],
    },
    KindSpec {
        name: "cache",
        doc: "The catalogue of runtime cache commands.",
        required: &[FnSpec {
            name: "commands",
            params: &[],
            returns: "a map from command name to its definition",
            doc: "The cache command catalogue.",
            check: check_map,
        }],
    },
];

/// The kind whose file is `rel` (only files at the root of the policy directory).
pub fn kind_of_file(rel: &str) -> Option<&'static KindSpec> {
    KINDS.iter().find(|k| k.file() == rel)
}

/// The kind called `name`.
pub fn kind(name: &str) -> Option<&'static KindSpec> {
    KINDS.iter().find(|k| k.name == name)
}
