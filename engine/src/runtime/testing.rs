//! Running the policy tests: every `fn test_*()` in a `*_test.rhai` file.

use super::set::PolicySet;
use crate::error::{Diagnostic, DiagnosticKind, PolicyError};
use serde::Serialize;
use std::time::Instant;

/// The result of one policy test.
#[derive(Debug, Clone, Serialize)]
pub struct TestOutcome {
    pub file: String,
    pub name: String,
    pub passed: bool,
    pub micros: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Diagnostic>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
}

impl PolicySet {
    /// Runs every test whose `file::name` contains `filter` (all when `None`), in file and
    /// name order. A failing test never stops the others.
    pub fn run_tests(&self, filter: Option<&str>) -> Vec<TestOutcome> {
        let mut out = Vec::new();
        for t in &self.tests {
            for name in &t.tests {
                let id = format!("{}::{name}", t.file);
                if filter.is_some_and(|f| !id.contains(f)) {
                    continue;
                }
                let start = Instant::now();
                let r = self.invoke(&t.module, &t.file, name, Vec::new());
                let micros = start.elapsed().as_micros() as u64;
                let (passed, error, output) = match r {
                    Ok(tr) => (true, None, tr.prints),
                    Err(e) => {
                        let d = match e {
                            PolicyError::Eval(d) => *d,
                            other => {
                                Diagnostic::new(DiagnosticKind::TestFailure, other.to_string())
                            }
                        };
                        (false, Some(d), Vec::new())
                    }
                };
                out.push(TestOutcome {
                    file: t.file.clone(),
                    name: name.clone(),
                    passed,
                    micros,
                    error,
                    output,
                });
            }
        }
        out
    }
}
