//! The `drift` policy kind: `classify(item)` and the decision it returns.

use crate::error::Invalid;
use crate::model::DriftDecision;
use crate::runtime::kinds::{typed, FnSpec, KindSpec};
use rhai::Dynamic;
use serde_json::Value;

fn check_drift(d: &Dynamic) -> Result<Value, Invalid> {
    typed::<DriftDecision>(d).map(|x| x.1)
}

/// The kind.
pub const DRIFT: KindSpec = KindSpec {
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
};
