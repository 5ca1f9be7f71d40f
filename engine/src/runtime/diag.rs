//! Turning Rhai parse and evaluation errors into located [`Diagnostic`]s: the innermost
//! position, in the file whose function raised it, with the call trace that led there.

use super::resolver::module_file;
use crate::error::{Diagnostic, DiagnosticKind};
use rhai::{EvalAltResult, ParseError, Position};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The name used as the source of the internal call shims; frames in it are not shown.
pub(crate) const SHIM_SOURCE: &str = "<fleetward>";

pub(crate) struct Sources<'a> {
    pub files: &'a BTreeMap<String, Arc<str>>,
}

impl Sources<'_> {
    fn text(&self, file: &str) -> Option<Arc<str>> {
        if let Some(t) = self.files.get(file) {
            return Some(t.clone());
        }
        fleetward_stdlib::script_module_source(file).map(Arc::from)
    }

    fn located(&self, d: Diagnostic, file: &str, pos: Position) -> Diagnostic {
        let (line, col) = (pos.line().unwrap_or(1), pos.position().unwrap_or(1));
        d.at(file, line, col, self.text(file))
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f)
            if f.is_ascii_uppercase()
                && !c.clone().next().is_some_and(|n| n.is_ascii_uppercase()) =>
        {
            f.to_ascii_lowercase().to_string() + c.as_str()
        }
        _ => s.to_string(),
    }
}

pub(crate) fn parse_error(src: &Sources, file: &str, e: &ParseError) -> Diagnostic {
    let msg = lower_first(&e.0.to_string());
    let kind = if msg.contains("too complex") || msg.contains("exceeds maximum") {
        DiagnosticKind::Limit
    } else {
        DiagnosticKind::Syntax
    };
    src.located(Diagnostic::new(kind, msg), file, e.1)
}

fn describe(
    e: &EvalAltResult,
    limits: &crate::config::Limits,
) -> (DiagnosticKind, String, Option<String>) {
    use DiagnosticKind::*;
    match e {
        EvalAltResult::ErrorParsing(p, _) => (Syntax, lower_first(&p.to_string()), None),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => (
            Runtime,
            format!("unknown function `{sig}`"),
            Some(
                "check the name and the argument types; `fleetward defs` lists every function"
                    .into(),
            ),
        ),
        EvalAltResult::ErrorVariableNotFound(v, _) => (
            Runtime,
            format!("unknown variable `{v}`"),
            Some("top-level constants are read as `global::NAME` inside functions".into()),
        ),
        EvalAltResult::ErrorPropertyNotFound(p, _) => (
            Runtime,
            format!("no property `{p}` on this map"),
            Some("test for optional fields with `\"name\" in map`".into()),
        ),
        EvalAltResult::ErrorModuleNotFound(m, _) => (
            Runtime,
            format!("module `{m}` not found"),
            Some("import `std/NAME` or a path relative to the policy directory".into()),
        ),
        EvalAltResult::ErrorRuntime(d, _) => {
            let s = d.to_string();
            (
                Runtime,
                if s.is_empty() {
                    "error thrown".into()
                } else {
                    s
                },
                None,
            )
        }
        EvalAltResult::ErrorTooManyOperations(_) => (
            Limit,
            format!(
                "evaluation exceeded `max_operations` ({})",
                limits.max_operations
            ),
            Some(
                "an infinite loop? raise `max_operations` in fleetward.toml if the work is real"
                    .into(),
            ),
        ),
        EvalAltResult::ErrorStackOverflow(_) => (
            Limit,
            format!(
                "call depth exceeded `max_call_depth` ({})",
                limits.max_call_depth
            ),
            Some("unbounded recursion?".into()),
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            let w = what.to_lowercase();
            let msg = if w.contains("string") {
                format!(
                    "a string grew past `max_string_size` ({} bytes)",
                    limits.max_string_size
                )
            } else if w.contains("array") {
                format!(
                    "an array grew past `max_array_size` ({})",
                    limits.max_array_size
                )
            } else if w.contains("map") {
                format!("a map grew past `max_map_size` ({})", limits.max_map_size)
            } else {
                format!("{w} exceeded its size limit")
            };
            (
                Limit,
                msg,
                Some("raise the limit in fleetward.toml if the data is real".into()),
            )
        }
        EvalAltResult::ErrorTooManyModules(_) => (
            Limit,
            format!("more than `max_modules` ({}) imports", limits.max_modules),
            None,
        ),
        EvalAltResult::ErrorTerminated(t, _) if t.to_string() == super::engine::DEADLINE_TOKEN => (
            Limit,
            format!(
                "evaluation exceeded its deadline of {} ms",
                limits.deadline_ms
            ),
            Some(
                "an infinite loop? raise `deadline_ms` in fleetward.toml if the work is real"
                    .into(),
            ),
        ),
        EvalAltResult::ErrorMismatchDataType(want, got, _) => (
            Runtime,
            format!("wrong data type: expected `{want}`, got `{got}`"),
            None,
        ),
        EvalAltResult::ErrorMismatchOutputType(want, got, _) => (
            ReturnType,
            format!("wrong return type: expected `{want}`, got `{got}`"),
            None,
        ),
        other => {
            let mut s = other.to_string();
            if let Some(i) = s.rfind(" (line ") {
                s.truncate(i);
            }
            (Runtime, lower_first(&s), None)
        }
    }
}

/// Locates an evaluation error. `file` is where the evaluation started.
pub(crate) fn eval_error(
    src: &Sources,
    file: &str,
    err: &EvalAltResult,
    limits: &crate::config::Limits,
) -> Diagnostic {
    let mut file = file.to_string();
    let mut trace = Vec::new();
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(name, fn_src, inner, pos) => {
                if file != SHIM_SOURCE && !pos.is_none() {
                    let what = if name.starts_with("anon$") {
                        "in closure".to_string()
                    } else {
                        format!("in call to `{name}`")
                    };
                    trace.push(format!("{what} at {file}:{}", fmt_pos(*pos)));
                }
                if !fn_src.is_empty() {
                    file = fn_src.to_string();
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                if file != SHIM_SOURCE && !pos.is_none() {
                    trace.push(format!("in import of `{path}` at {file}:{}", fmt_pos(*pos)));
                }
                file = module_file(path);
                e = inner;
            }
            _ => break,
        }
    }
    let (kind, msg, help) = describe(e, limits);
    let mut d = Diagnostic::new(kind, msg);
    if let Some(h) = help {
        d = d.with_help(h);
    }
    trace.reverse();
    src.located(d.with_trace(trace), &file, e.position())
}

fn fmt_pos(p: Position) -> String {
    format!("{}:{}", p.line().unwrap_or(1), p.position().unwrap_or(1))
}
