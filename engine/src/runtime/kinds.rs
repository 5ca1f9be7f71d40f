//! The registry of policy kinds: which file holds each kind, the functions it must define, and
//! the Rust type each function's result must convert to.

use super::typed::from_dynamic;
use crate::model::{DriftDecision, Verdict};
use crate::plan::spec::{parse_blast_radius, parse_windows, Eligibility};
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

fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(
    d: &Dynamic,
) -> Result<(T, Value), String> {
    let t: T = from_dynamic(d)?;
    let v = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    Ok((t, v))
}

fn json(d: &Dynamic) -> Result<Value, String> {
    serde_json::to_value(d).map_err(|e| e.to_string())
}

fn check_eligible(d: &Dynamic) -> Result<Value, String> {
    let v = json(d)?;
    Eligibility::from_json(&v)?;
    Ok(v)
}

fn check_positive(d: &Dynamic) -> Result<Value, String> {
    let (n, v) = typed::<i64>(d)?;
    if n < 1 {
        return Err(format!("`{n}` is below 1"));
    }
    Ok(v)
}

fn check_kernel(d: &Dynamic) -> Result<Value, String> {
    let (k, v) = typed::<String>(d)?;
    fleetward_stdlib::KernelVersion::parse(&k).map_err(|e| e.to_string())?;
    Ok(v)
}

fn check_blast_radius(d: &Dynamic) -> Result<Value, String> {
    let v = json(d)?;
    parse_blast_radius(&v)?;
    Ok(v)
}

fn check_windows(d: &Dynamic) -> Result<Value, String> {
    let v = json(d)?;
    parse_windows(&v)?;
    Ok(v)
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

fn check_steps(d: &Dynamic) -> Result<Value, String> {
    let (s, v) = typed::<crate::rollout::spec::Steps>(d)?;
    s.validate()?;
    Ok(v)
}

fn check_budget(d: &Dynamic) -> Result<Value, String> {
    typed::<crate::rollout::spec::FailureBudget>(d).map(|x| x.1)
}

fn check_signals(d: &Dynamic) -> Result<Value, String> {
    let (s, v) = typed::<crate::rollout::spec::Signals>(d)?;
    s.validate()?;
    Ok(v)
}

fn check_catalogue(d: &Dynamic) -> Result<Value, String> {
    if !d.is_map() {
        return Err(format!("got `{}`", d.type_name()));
    }
    let v = serde_json::to_value(d).map_err(|e| e.to_string())?;
    crate::cache::parse_catalogue(&v)?;
    Ok(v)
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
                returns: "`true`, `false` or `exclude(reason)`",
                doc: "Whether a host may take part in the rollout, and if not, why.",
                check: check_eligible,
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
                doc: "How long to watch a stage (`wave.kind`, `wave.wave`, `wave.part`) before its gate.",
                check: check_count,
            },
        ],
        optional: &[
            FnSpec {
                name: "target_kernel",
                params: &[],
                returns: "a kernel version string",
                doc: "The kernel to roll out (`--kernel` overrides it).",
                check: check_kernel,
            },
            FnSpec {
                name: "max_in_flight",
                params: &["wave"],
                returns: "a positive int",
                doc: "How many hosts of a stage may be updating at once. Default: no limit.",
                check: check_positive,
            },
            FnSpec {
                name: "blast_radius",
                params: &[],
                returns: "a map from scope to `#{in_flight, per_wave}` (counts or `percent(n)`)",
                doc: "Limits per rack, datacenter, hardware, workload, group or `fact:NAME`. Default: none.",
                check: check_blast_radius,
            },
            FnSpec {
                name: "windows",
                params: &[],
                returns: "an array of `#{days, start, end, tz}`",
                doc: "Maintenance windows batches must fit in. Default: `[]`, any time.",
                check: check_windows,
            },
            FnSpec {
                name: "host_time",
                params: &["group"],
                returns: "a non-negative int (seconds)",
                doc: "Estimated time to update one host of a group. Default: 15 minutes.",
                check: check_count,
            },
            FnSpec {
                name: "steps",
                params: &["host"],
                returns: "a map of step name to commands (`#{name, run, timeout, expect}`)",
                doc: "The commands of each step for one host: pre_check, drain, install, set_boot, reboot, wait_up, post_check, undrain, probe. Needed by `rollout start` and `simulate`.",
                check: check_steps,
            },
            FnSpec {
                name: "failure_budget",
                params: &[],
                returns: "a map `#{per_stage, total}` (counts or `percent(n)`)",
                doc: "Failed hosts tolerated per stage and across the rollout before it pauses. Default: 1 per stage, 1% in all.",
                check: check_budget,
            },
            FnSpec {
                name: "signals",
                params: &[],
                returns: "a map `#{metrics, every, timeout}`",
                doc: "The metrics command run on a stage's hosts during its bake, and how often. Needed by `rollout start` and `simulate`.",
                check: check_signals,
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
        optional: &[],
    },
    KindSpec {
        name: "drift",
        doc: "What to do about each divergence from declared state.",
        required: &[FnSpec {
            name: "classify",
            params: &["item"],
            returns:
                "`auto(reason, commands)`, `review(reason)` or `acknowledged(reason, expires)`: a map `#{action, reason, commands, expires}`",
            doc: "The decision for one divergence.",
            check: check_drift,
        }],
        optional: &[],
    },
    KindSpec {
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
