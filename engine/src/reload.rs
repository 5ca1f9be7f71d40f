//! The one load path: read → compile → validate → atomic swap. Startup and every hot reload go
//! through [`PolicyStore::reload`]; a failed reload keeps the last good set.

use crate::error::{Diagnostic, Location, PolicyError};
use crate::runtime::{LoadOptions, PolicySet};
use crate::source::SourceTree;
use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Holds the current policy set. Readers take a cheap snapshot with [`current`]; an
/// evaluation already running keeps the set it started with.
///
/// [`current`]: PolicyStore::current
pub struct PolicyStore {
    dir: PathBuf,
    opts: LoadOptions,
    current: ArcSwapOption<PolicySet>,
}

/// Why a reload failed, for event streams.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorReport {
    /// `file:line:col: message` of the first problem.
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    pub diagnostics: Vec<Diagnostic>,
}

impl From<&PolicyError> for ErrorReport {
    fn from(e: &PolicyError) -> Self {
        let diagnostics = e.diagnostics();
        ErrorReport {
            message: diagnostics
                .first()
                .map(|d| d.one_line())
                .unwrap_or_else(|| e.to_string()),
            location: diagnostics.first().and_then(|d| d.location.clone()),
            diagnostics,
        }
    }
}

/// What one reload did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReloadEvent {
    /// A new set is live.
    Reloaded {
        hash: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        previous: Option<String>,
        policies: Vec<String>,
        tests: usize,
        elapsed_ms: f64,
    },
    /// The files hash the same as the live set; nothing was swapped.
    Unchanged { hash: String },
    /// The new files are invalid; `hash` is the set still live (if any).
    ReloadFailed {
        hash: Option<String>,
        error: ErrorReport,
        elapsed_ms: f64,
    },
}

impl PolicyStore {
    /// A store with nothing loaded yet; call [`reload`](Self::reload) to load.
    pub fn new(dir: &Path, opts: LoadOptions) -> Self {
        PolicyStore {
            dir: dir.to_path_buf(),
            opts,
            current: ArcSwapOption::empty(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The live set, if one has loaded.
    pub fn current(&self) -> Option<Arc<PolicySet>> {
        self.current.load_full()
    }

    /// Loads the directory and, when it is valid and differs from the live set, swaps it in.
    pub fn reload(&self) -> ReloadEvent {
        let start = Instant::now();
        let live = self.current.load_full();
        let ms = |s: Instant| s.elapsed().as_secs_f64() * 1000.0;
        let tree = match SourceTree::read_dir(&self.dir) {
            Ok(t) => t,
            Err(e) => {
                return ReloadEvent::ReloadFailed {
                    hash: live.map(|s| s.hash().to_string()),
                    error: ErrorReport::from(&e),
                    elapsed_ms: ms(start),
                }
            }
        };
        if let Some(l) = &live {
            if l.hash() == tree.hash() {
                return ReloadEvent::Unchanged {
                    hash: l.hash().to_string(),
                };
            }
        }
        match PolicySet::compile(tree, &self.opts) {
            Ok(set) => {
                let summary = set.summary();
                let hash = set.hash().to_string();
                self.current.store(Some(Arc::new(set)));
                ReloadEvent::Reloaded {
                    hash,
                    previous: live.map(|s| s.hash().to_string()),
                    policies: summary.policies.iter().map(|p| p.file.clone()).collect(),
                    tests: summary.tests,
                    elapsed_ms: ms(start),
                }
            }
            Err(e) => ReloadEvent::ReloadFailed {
                hash: live.map(|s| s.hash().to_string()),
                error: ErrorReport::from(&e),
                elapsed_ms: ms(start),
            },
        }
    }
}
