//! Building the Rhai engine every policy runs on: `Engine::new_raw()`, our stdlib, explicit
//! limits, strict variables and a per-evaluation wall-clock deadline.

use crate::config::Limits;
use rhai::{Dynamic, Engine};
use std::cell::{Cell, RefCell};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static PRINTS: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
    /// The evaluation locks this thread holds (by address), so a nested call into the same
    /// set does not wait on itself.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
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
pub(crate) struct EvalScope<'a> {
    prev_deadline: Option<Instant>,
    owns_prints: bool,
    /// Held while this evaluation runs on a shared set; see [`EvalScope::serialized`].
    serial: Option<(usize, MutexGuard<'a, ()>)>,
}

impl<'a> EvalScope<'a> {
    /// An evaluation on a set that runs on one thread only (loading it).
    pub(crate) fn enter(limits: &Limits) -> Self {
        Self::start(limits, None)
    }

    /// An evaluation on a set shared between threads: one evaluation at a time per set
    /// (`lock`), the lock taken before the deadline starts. Rhai's `sync` build keeps a
    /// module's constants behind one lock that `global::NAME` takes for writing and gives up
    /// on after about 50 ms of contention by panicking, so two threads reading `global::`
    /// constants of one set must never overlap. A nested evaluation on the same set (same
    /// thread) does not take it again.
    pub(crate) fn serialized(limits: &Limits, lock: &'a Mutex<()>) -> Self {
        let key = lock as *const Mutex<()> as usize;
        let held = HELD.with(|h| h.borrow().contains(&key));
        let serial = if held {
            None
        } else {
            let guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
            HELD.with(|h| h.borrow_mut().push(key));
            Some((key, guard))
        };
        Self::start(limits, serial)
    }

    fn start(limits: &Limits, serial: Option<(usize, MutexGuard<'a, ()>)>) -> Self {
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
            serial,
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

impl Drop for EvalScope<'_> {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.prev_deadline));
        if self.owns_prints {
            PRINTS.with(|p| *p.borrow_mut() = None);
        }
        if let Some((key, _guard)) = self.serial.take() {
            HELD.with(|h| h.borrow_mut().retain(|k| *k != key));
        }
    }
}
