//! The one load path: read → compile → validate → atomic swap. Startup and every hot reload go
//! through [`PolicyStore::reload`]; a failed reload keeps the last good set.

use crate::error::{Diagnostic, Location, PolicyError};
use crate::runtime::{LoadOptions, PolicySet};
use crate::source::SourceTree;
use arc_swap::ArcSwapOption;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How many times a reload re-reads a directory that keeps changing under it.
const MAX_SETTLE_ROUNDS: usize = 5;

/// Holds the current policy set. Readers take a cheap snapshot with [`current`]; an
/// evaluation already running keeps the set it started with.
///
/// [`current`]: PolicyStore::current
pub struct PolicyStore {
    dir: PathBuf,
    opts: LoadOptions,
    current: ArcSwapOption<PolicySet>,
    /// The hash of the last snapshot that failed, so a burst of events for one broken save is
    /// reported once.
    last_failed: Mutex<Option<String>>,
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
    /// The files hash the same as the live set, or as the last snapshot that failed; nothing
    /// was swapped and nothing new is to be said. `hash` is the live set's.
    Unchanged { hash: Option<String> },
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
            last_failed: Mutex::new(None),
        }
    }

    /// A store over `dir` with its set loaded through the one load path; the typed
    /// diagnostics of an invalid set otherwise.
    pub fn load_valid(
        dir: &Path,
        opts: LoadOptions,
    ) -> Result<(Arc<PolicyStore>, Arc<PolicySet>), PolicyError> {
        let store = Arc::new(PolicyStore::new(dir, opts.clone()));
        for _ in 0..3 {
            store.reload();
            if let Some(set) = store.current() {
                return Ok((store, set));
            }
            // Load again the direct way for the typed diagnostics; a set that loads now was
            // being written a moment ago, so the store tries again.
            PolicySet::load(dir, &opts)?;
        }
        Err(PolicyError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other("the policy directory kept changing while it was loaded"),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The live set, if one has loaded.
    pub fn current(&self) -> Option<Arc<PolicySet>> {
        self.current.load_full()
    }

    /// Loads the directory and, when it is valid and differs from the live set, swaps it in.
    ///
    /// An in-place save is not atomic: a reader can see a file truncated or half written. So a
    /// snapshot is only acted on (swapped in, or reported as broken) if the directory still
    /// hashes the same after it was validated; otherwise the new contents are loaded again.
    pub fn reload(&self) -> ReloadEvent {
        let start = Instant::now();
        let live = self.current.load_full();
        let ms = |s: Instant| s.elapsed().as_secs_f64() * 1000.0;
        let failed = |e: &PolicyError| ReloadEvent::ReloadFailed {
            hash: live.as_ref().map(|s| s.hash().to_string()),
            error: ErrorReport::from(e),
            elapsed_ms: ms(start),
        };
        let mut tree = match SourceTree::read_dir(&self.dir) {
            Ok(t) => t,
            Err(e) => return failed(&e),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let seen_failing = self
                .last_failed
                .lock()
                .map(|f| f.as_deref() == Some(tree.hash()))
                .unwrap_or(false);
            if live.as_ref().is_some_and(|l| l.hash() == tree.hash()) || seen_failing {
                return ReloadEvent::Unchanged {
                    hash: live.as_ref().map(|l| l.hash().to_string()),
                };
            }
            let hash = tree.hash().to_string();
            let result = PolicySet::compile(tree, &self.opts);
            // Settled? Re-read and compare (bounded: a file rewritten forever still gets an
            // answer after a few rounds).
            match SourceTree::read_dir(&self.dir) {
                Ok(again) if again.hash() != hash && attempt <= MAX_SETTLE_ROUNDS => {
                    tree = again;
                    continue;
                }
                _ => {}
            }
            if let Ok(mut f) = self.last_failed.lock() {
                *f = result.is_err().then(|| hash.clone());
            }
            return match result {
                Ok(set) => {
                    let summary = set.summary();
                    self.current.store(Some(Arc::new(set)));
                    ReloadEvent::Reloaded {
                        hash,
                        previous: live.as_ref().map(|s| s.hash().to_string()),
                        policies: summary.policies.iter().map(|p| p.file.clone()).collect(),
                        tests: summary.tests,
                        elapsed_ms: ms(start),
                    }
                }
                Err(e) => failed(&e),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_broken_save_is_reported_once_and_keeps_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let gates = dir.path().join("gates.rhai");
        std::fs::write(&gates, "fn gate(w) { pass() }\n").unwrap();
        let store = PolicyStore::new(dir.path(), LoadOptions::default());
        let ReloadEvent::Reloaded { hash: good, .. } = store.reload() else {
            panic!("first load must succeed");
        };
        assert!(matches!(store.reload(), ReloadEvent::Unchanged { .. }));
        std::fs::write(&gates, "fn gate(w) { pass( }\n").unwrap();
        match store.reload() {
            ReloadEvent::ReloadFailed { hash, .. } => {
                assert_eq!(hash.as_deref(), Some(good.as_str()))
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        // The same broken bytes again: nothing new to say.
        assert!(matches!(store.reload(), ReloadEvent::Unchanged { hash: Some(h) } if h == good));
        assert_eq!(store.current().unwrap().hash(), good);
        std::fs::write(&gates, "fn gate(w) { fail(\"x\") }\n").unwrap();
        assert!(
            matches!(store.reload(), ReloadEvent::Reloaded { previous: Some(p), .. } if p == good)
        );
    }
}
