//! The `gates` policy kind: `gate(w)` and the verdict it returns.

use crate::error::Invalid;
use crate::model::Verdict;
use crate::runtime::kinds::{typed, FnSpec, KindSpec};
use rhai::Dynamic;
use serde_json::Value;

fn check_verdict(d: &Dynamic) -> Result<Value, Invalid> {
    typed::<Verdict>(d).map(|x| x.1)
}

fn check_number(d: &Dynamic) -> Result<Value, Invalid> {
    typed::<f64>(d).map(|x| x.1)
}

/// The kind.
pub const GATES: KindSpec = KindSpec {
    name: "gates",
    doc: "Whether a stage passes, pauses or fails, from its metrics and events.",
    required: &[FnSpec {
        name: "gate",
        params: &["w"],
        returns: "a verdict (`pass()`, `pause(reason)`, `fail(reason)`)",
        doc: "The verdict on a stage.",
        check: check_verdict,
    }],
    optional: &[FnSpec {
        name: "threshold",
        params: &["metric"],
        returns: "a number (percent)",
        doc: "The largest tolerated change of a metric, drawn on the HTML report's effect axis.",
        check: check_number,
    }],
};
