//! Building the Rhai engine every policy runs on: `Engine::new_raw()`, our stdlib, explicit
//! limits, strict variables and a per-evaluation wall-clock deadline.

use crate::config::Limits;
use rhai::{Dynamic, Engine};
use std::cell::{Cell, RefCell};
use std::time::Instant;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static PRINTS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// The value the progress callback terminates a script with when the deadline passes.
pub(crate) const DEADLINE_TOKEN: &str = "fleetward:deadline";

/// How many operations pass between two reads of the clock.
const CLOCK_EVERY: u64 = 256;

pub(crate) fn build_engine(limits: &Limits) -> Engine {
    let mut e = Engine::new_raw();
    fleetward_stdlib::register(&mut e);
    e.set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_depth)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_function_expr_depth)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_modules(limits.max_modules)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true);
    e.disable_symbol("eval");
    e.on_progress(|ops| {
        if ops % CLOCK_EVERY != 0 {
            return None;
        }
        match DEADLINE.with(Cell::get) {
            Some(d) if Instant::now() > d => Some(Dynamic::from(DEADLINE_TOKEN)),
            _ => None,
        }
    });
    e.on_print(|s| capture(s.to_string()));
    e.on_debug(|s, src, pos| capture(format!("[debug {}:{}] {s}", src.unwrap_or("?"), pos)));
    e
}

fn capture(line: String) {
    PRINTS.with(|p| {
        if let Some(buf) = p.borrow_mut().as_mut() {
            if buf.len() < 10_000 {
                buf.push(line);
            }
        }
    });
}

/// Bounds one evaluation on this thread: sets the deadline (unless an outer evaluation already
/// set one) and collects `print` output. Dropping it restores the previous state.
pub(crate) struct EvalScope {
    prev_deadline: Option<Instant>,
    owns_prints: bool,
}

impl EvalScope {
    pub(crate) fn enter(limits: &Limits) -> Self {
        let prev_deadline = DEADLINE.with(Cell::get);
        if prev_deadline.is_none() {
            DEADLINE.with(|d| d.set(Some(Instant::now() + limits.deadline())));
        }
        let owns_prints = PRINTS.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_none() {
                *p = Some(Vec::new());
                true
            } else {
                false
            }
        });
        EvalScope {
            prev_deadline,
            owns_prints,
        }
    }

    /// The lines printed so far in this evaluation.
    pub(crate) fn take_prints(&self) -> Vec<String> {
        PRINTS.with(|p| {
            p.borrow_mut()
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default()
        })
    }
}

impl Drop for EvalScope {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.prev_deadline));
        if self.owns_prints {
            PRINTS.with(|p| *p.borrow_mut() = None);
        }
    }
}
