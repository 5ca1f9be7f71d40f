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

#[cfg(test)]
mod tests {
    //! Hot reload over real files and real `notify` events.

    use super::*;
    use crate::runtime::LoadOptions;
    use std::sync::mpsc::{channel, Receiver};
    use std::time::Duration;

    const GATES_V1: &str = "fn gate(w) { pass(\"v1\") }\n";
    const GATES_V2: &str = "fn gate(w) { pass(\"v2\") }\n";
    const GATES_V3: &str = "fn gate(w) { pass(\"v3\") }\n";
    const GATES_BROKEN: &str = "fn gate(w) {\n    pass(\"v2\"\n}\n";

    struct Harness {
        dir: tempfile::TempDir,
        store: std::sync::Arc<PolicyStore>,
        events: Receiver<ReloadEvent>,
    }

    fn reason(store: &PolicyStore) -> String {
        let set = store.current().unwrap();
        let v: crate::model::Verdict = set
            .call("gates", "gate", (&serde_json::json!({}),))
            .unwrap();
        v.reasons.join(",")
    }

    fn start() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gates.rhai"), GATES_V1).unwrap();
        let store = std::sync::Arc::new(PolicyStore::new(dir.path(), LoadOptions::default()));
        let mut watcher = FsWatcher::new(dir.path(), DEFAULT_DEBOUNCE).unwrap();
        assert!(matches!(store.reload(), ReloadEvent::Reloaded { .. }));
        let (tx, rx) = channel();
        let s = store.clone();
        std::thread::spawn(move || {
            watch_loop(&s, &mut watcher, |ev| {
                if tx.send(ev.clone()).is_err() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
        });
        Harness {
            dir,
            store,
            events: rx,
        }
    }

    impl Harness {
        fn path(&self) -> std::path::PathBuf {
            self.dir.path().join("gates.rhai")
        }

        /// The next event that is not a transient failure of a half-saved file.
        fn next(&self) -> ReloadEvent {
            self.events
                .recv_timeout(Duration::from_secs(10))
                .expect("a reload event within 10 s")
        }

        fn expect_reloaded(&self, want: &str) {
            loop {
                match self.next() {
                    ReloadEvent::Reloaded { hash, .. } => {
                        assert_eq!(hash, self.store.current().unwrap().hash());
                        if reason(&self.store) == want {
                            return;
                        }
                    }
                    // Delete-then-create may be seen half-way; the next event must recover.
                    ReloadEvent::ReloadFailed { .. } => {}
                    ReloadEvent::Unchanged { .. } => {}
                }
            }
        }
    }

    #[test]
    fn save_in_place_reloads() {
        let h = start();
        std::fs::write(h.path(), GATES_V2).unwrap();
        h.expect_reloaded("v2");
    }

    #[test]
    fn rename_over_reloads() {
        let h = start();
        let tmp = h.dir.path().join(".gates.rhai.tmp");
        std::fs::write(&tmp, GATES_V2).unwrap();
        std::fs::rename(&tmp, h.path()).unwrap();
        h.expect_reloaded("v2");
    }

    #[test]
    fn delete_then_create_reloads() {
        let h = start();
        std::fs::remove_file(h.path()).unwrap();
        std::fs::write(h.path(), GATES_V3).unwrap();
        h.expect_reloaded("v3");
    }

    #[test]
    fn broken_edit_keeps_the_last_good_set_and_a_fix_recovers() {
        let h = start();
        let good = h.store.current().unwrap().hash().to_string();
        // Saved atomically, so the first event is for the whole broken file.
        let tmp = h.dir.path().join(".gates.rhai.new");
        std::fs::write(&tmp, GATES_BROKEN).unwrap();
        std::fs::rename(&tmp, h.path()).unwrap();
        match h.next() {
            ReloadEvent::ReloadFailed { hash, error, .. } => {
                assert_eq!(hash.as_deref(), Some(good.as_str()));
                let loc = error.location.expect("a location");
                assert_eq!(loc.file, "gates.rhai");
                assert_eq!(loc.line, 3);
                assert!(
                    error.message.starts_with("gates.rhai:3:1: "),
                    "{}",
                    error.message
                );
            }
            other => panic!("expected reload_failed, got {other:?}"),
        }
        // Still the old set, still answering.
        assert_eq!(h.store.current().unwrap().hash(), good);
        assert_eq!(reason(&h.store), "v1");
        std::fs::write(h.path(), GATES_V2).unwrap();
        h.expect_reloaded("v2");
    }

    #[test]
    fn evaluations_in_flight_keep_their_set() {
        let h = start();
        let before = h.store.current().unwrap();
        std::fs::write(h.path(), GATES_V2).unwrap();
        h.expect_reloaded("v2");
        let v: crate::model::Verdict = before
            .call("gates", "gate", (&serde_json::json!({}),))
            .unwrap();
        assert_eq!(v.reasons, vec!["v1".to_string()]);
    }
}
