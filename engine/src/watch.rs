//! Watching a policy directory for changes (`notify`, debounced) and feeding them to the
//! [`PolicyStore`]. The watcher sits behind [`ChangeSource`] so tests can drive reloads
//! without a file system.

use crate::error::PolicyError;
use crate::reload::{PolicyStore, ReloadEvent};
use crate::source::is_policy_path;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, Debouncer};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// A source of batches of changed policy files.
pub trait ChangeSource {
    /// Blocks until a batch of relevant changes arrives; `None` when the source has closed.
    fn next_batch(&mut self) -> Option<Vec<PathBuf>>;
}

/// Watches a directory recursively with `notify`, debouncing bursts of events (an editor's
/// write-temp-then-rename, delete-then-create) into one batch.
pub struct FsWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher>,
    rx: mpsc::Receiver<DebounceEventResult>,
    root: PathBuf,
}

/// The default quiet period before a burst of events counts as one change.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(25);

impl FsWatcher {
    pub fn new(dir: &Path, debounce: Duration) -> Result<Self, PolicyError> {
        let err = |m: String| PolicyError::Watch {
            path: dir.to_path_buf(),
            message: m,
        };
        let root = std::fs::canonicalize(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PolicyError::MissingDir(dir.to_path_buf()),
            _ => err(e.to_string()),
        })?;
        let (tx, rx) = mpsc::channel();
        let mut debouncer = new_debouncer(debounce, tx).map_err(|e| err(e.to_string()))?;
        debouncer
            .watcher()
            .watch(&root, notify::RecursiveMode::Recursive)
            .map_err(|e| err(e.to_string()))?;
        Ok(FsWatcher {
            _debouncer: debouncer,
            rx,
            root,
        })
    }

    fn relevant(&self, path: &Path) -> bool {
        match path.strip_prefix(&self.root) {
            Ok(rel) => is_policy_path(&rel.to_string_lossy().replace('\\', "/")),
            Err(_) => false,
        }
    }
}

impl ChangeSource for FsWatcher {
    fn next_batch(&mut self) -> Option<Vec<PathBuf>> {
        loop {
            match self.rx.recv() {
                Ok(Ok(events)) => {
                    let paths: Vec<PathBuf> = events
                        .into_iter()
                        .map(|e| e.path)
                        .filter(|p| self.relevant(p))
                        .collect();
                    if !paths.is_empty() {
                        return Some(paths);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "file watcher reported an error");
                }
                Err(_) => return None,
            }
        }
    }
}

/// Reloads on every batch of changes and hands each event that changed something (or failed)
/// to `on_event`, until the source closes or `on_event` breaks.
pub fn watch_loop(
    store: &PolicyStore,
    source: &mut dyn ChangeSource,
    mut on_event: impl FnMut(&ReloadEvent) -> ControlFlow<()>,
) {
    while source.next_batch().is_some() {
        let ev = store.reload();
        if matches!(ev, ReloadEvent::Unchanged { .. }) {
            continue;
        }
        if on_event(&ev).is_break() {
            return;
        }
    }
}
