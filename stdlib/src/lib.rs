//! The fleetward standard library: every function and module a policy script may call.
//!
//! Policies run on an engine built from `Engine::new_raw()`; this crate supplies the
//! language packages we allow ([`language_packages`]), our own native functions
//! ([`native_module`]) and the `.rhai` modules under `std/` ([`script_module_source`]).
//! Every function carries a ```` ```rhai ```` doc example; `docs::examples` extracts them and a
//! test runs each one.

mod cache;
pub mod docs;
mod drift;
mod duration;
mod gate;
mod kernel;
mod percent;
mod select;
pub mod stats;
mod testing;
mod verdict;

use rhai::packages::{
    ArithmeticPackage, BasicArrayPackage, BasicFnPackage, BasicIteratorPackage, BasicMapPackage,
    BasicMathPackage, BasicStringPackage, LanguageCorePackage, LogicPackage, MoreStringPackage,
    Package,
};
use rhai::plugin::*;
use rhai::{Engine, Module, Shared};

pub use drift::compare_versions;
pub use kernel::{KernelVersion, KernelVersionError};
pub use select::{Selector, SelectorError};

/// Registers the Rhai language packages policies may use, on an engine made by
/// `Engine::new_raw()`. Deliberately absent: time (`timestamp()` would make policies depend on
/// the wall clock), `eval`, and debugging hooks.
pub fn language_packages(engine: &mut Engine) {
    engine.register_global_module(LanguageCorePackage::new().as_shared_module());
    engine.register_global_module(ArithmeticPackage::new().as_shared_module());
    engine.register_global_module(LogicPackage::new().as_shared_module());
    engine.register_global_module(BasicStringPackage::new().as_shared_module());
    engine.register_global_module(MoreStringPackage::new().as_shared_module());
    engine.register_global_module(BasicIteratorPackage::new().as_shared_module());
    engine.register_global_module(BasicArrayPackage::new().as_shared_module());
    engine.register_global_module(BasicMapPackage::new().as_shared_module());
    engine.register_global_module(BasicMathPackage::new().as_shared_module());
    engine.register_global_module(BasicFnPackage::new().as_shared_module());
}

/// The fleetward native functions as one module (durations, percentages, statistics, kernel
/// versions, selectors, verdicts, gate comparisons, drift decisions, cache script helpers, test assertions).
pub fn native_module() -> Shared<Module> {
    let mut m = Module::new();
    combine_with_exported_module!(&mut m, "duration", duration::duration_fns);
    combine_with_exported_module!(&mut m, "percent", percent::percent_fns);
    combine_with_exported_module!(&mut m, "stats", stats::stats_fns);
    combine_with_exported_module!(&mut m, "kernel", kernel::kernel_fns);
    combine_with_exported_module!(&mut m, "select", select::select_fns);
    combine_with_exported_module!(&mut m, "verdict", verdict::verdict_fns);
    combine_with_exported_module!(&mut m, "testing", testing::testing_fns);
    combine_with_exported_module!(&mut m, "gate", gate::gate_fns);
    combine_with_exported_module!(&mut m, "drift", drift::drift_fns);
    combine_with_exported_module!(&mut m, "cache", cache::cache_fns);
    m.build_index();
    m.into()
}

/// Registers everything: language packages plus the native module.
pub fn register(engine: &mut Engine) {
    language_packages(engine);
    engine.register_global_module(native_module());
}

/// The `.rhai` modules a policy may `import "std/NAME"`, as `(path, source)`.
pub const SCRIPT_MODULES: &[(&str, &str)] = &[
    ("std/waves", include_str!("rhai/std/waves.rhai")),
    ("std/hosts", include_str!("rhai/std/hosts.rhai")),
];

/// The source of the stdlib script module at `path` (`std/waves`, with or without `.rhai`).
pub fn script_module_source(path: &str) -> Option<&'static str> {
    let path = path.strip_suffix(".rhai").unwrap_or(path);
    SCRIPT_MODULES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, src)| *src)
}

/// Builds the runtime error every stdlib function raises on bad input. Rhai fills in the
/// position of the call site.
pub(crate) fn err(msg: impl Into<String>) -> Box<rhai::EvalAltResult> {
    Box::new(rhai::EvalAltResult::ErrorRuntime(
        msg.into().into(),
        rhai::Position::NONE,
    ))
}

/// Reads a number (int or float) out of a `Dynamic`, or says what it got instead.
pub(crate) fn as_number(v: &rhai::Dynamic) -> Option<f64> {
    if let Ok(i) = v.as_int() {
        Some(i as f64)
    } else {
        v.as_float().ok()
    }
}
