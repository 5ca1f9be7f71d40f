//! Reading a policy directory into an immutable, hashed snapshot of its files.
//!
//! [`SourceTree::read_dir`] is the only function here that touches the file system; everything
//! downstream compiles from the snapshot, so a set's hash always matches the text it ran.

use crate::config::CONFIG_FILE;
use crate::error::{line_col, Diagnostic, DiagnosticKind, PolicyError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How deep `read_dir` descends (guards against symlink loops).
const MAX_DEPTH: usize = 16;

/// The files of a policy set: `.rhai` sources (relative, `/`-separated paths) and the
/// optional `fleetward.toml`.
#[derive(Debug, Clone)]
pub struct SourceTree {
    root: PathBuf,
    files: Arc<BTreeMap<String, Arc<str>>>,
    config: Option<Arc<str>>,
    hash: String,
}

/// The first 12 hex digits of a set hash, for display.
pub fn short_hash(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

/// Whether a path inside the policy directory belongs to the policy set.
pub fn is_policy_path(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if rel.split('/').any(|part| part.starts_with('.')) {
        return false;
    }
    (name.ends_with(".rhai") && !name.ends_with(".d.rhai")) || rel == CONFIG_FILE
}

impl SourceTree {
    /// Reads every policy file under `dir`.
    pub fn read_dir(dir: &Path) -> Result<SourceTree, PolicyError> {
        let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PolicyError::MissingDir(dir.to_path_buf()),
            _ => PolicyError::Io {
                path: dir.to_path_buf(),
                source: e,
            },
        })?;
        if !meta.is_dir() {
            return Err(PolicyError::NotADirectory(dir.to_path_buf()));
        }
        let mut raw = Vec::new();
        walk(dir, "", 0, &mut raw)?;
        SourceTree::from_bytes(dir, raw)
    }

    /// Builds a tree from in-memory files. Files that are not UTF-8 are reported with the
    /// line and column of the first bad byte.
    pub fn from_bytes(
        root: &Path,
        files: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<SourceTree, PolicyError> {
        let mut out = BTreeMap::new();
        let mut config = None;
        let mut problems = Vec::new();
        let mut hasher = Sha256::new();
        let mut sorted: Vec<(String, Vec<u8>)> = files.into_iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (rel, bytes) in sorted {
            hasher.update(rel.as_bytes());
            hasher.update([0]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
            match String::from_utf8(bytes) {
                Ok(text) => {
                    let text: Arc<str> = text.into();
                    if rel == CONFIG_FILE {
                        config = Some(text);
                    } else {
                        out.insert(rel, text);
                    }
                }
                Err(e) => {
                    let good = e.utf8_error().valid_up_to();
                    let bytes = e.into_bytes();
                    let lossy: Arc<str> = String::from_utf8_lossy(&bytes).into_owned().into();
                    let prefix = String::from_utf8_lossy(&bytes[..good]).into_owned();
                    let (line, col) = line_col(&prefix, prefix.len());
                    problems.push(
                        Diagnostic::new(
                            DiagnosticKind::Encoding,
                            format!("`{rel}` is not valid UTF-8 (bad byte at offset {good})"),
                        )
                        .at(&rel, line, col, Some(lossy))
                        .with_help("save the file as UTF-8"),
                    );
                }
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }
        if out.is_empty() {
            return Err(PolicyError::EmptyDir(root.to_path_buf()));
        }
        let hash = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        Ok(SourceTree {
            root: root.to_path_buf(),
            files: Arc::new(out),
            config,
            hash,
        })
    }

    /// The directory the tree was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `.rhai` files by relative path.
    pub fn files(&self) -> &Arc<BTreeMap<String, Arc<str>>> {
        &self.files
    }

    /// The text of one file.
    pub fn text(&self, rel: &str) -> Option<Arc<str>> {
        self.files.get(rel).cloned()
    }

    /// The `fleetward.toml` text, when present.
    pub fn config(&self) -> Option<&Arc<str>> {
        self.config.as_ref()
    }

    /// SHA-256 over every file's path and bytes, in hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// A tree from `(path, text)` pairs, for tests.
#[cfg(test)]
pub(crate) fn from_strs(files: &[(&str, &str)]) -> SourceTree {
    SourceTree::from_bytes(
        Path::new("p"),
        files
            .iter()
            .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec())),
    )
    .unwrap()
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), PolicyError> {
    let io = |path: &Path, source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    };
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        // Follow symlinks; a dangling one (an editor's lock file, say) is skipped.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if !name.starts_with('.') {
                walk(&path, &rel, depth + 1, out)?;
            }
        } else if is_policy_path(&rel) {
            match std::fs::read(&path) {
                Ok(bytes) => out.push((rel, bytes)),
                // Deleted between listing and reading: an editor mid-save. The watcher will
                // see the file again when it reappears.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_paths() {
        assert!(is_policy_path("rollout.rhai"));
        assert!(is_policy_path("lib/common.rhai"));
        assert!(is_policy_path("fleetward.toml"));
        assert!(!is_policy_path("lib/fleetward.toml"));
        assert!(!is_policy_path(".rollout.rhai.swp"));
        assert!(!is_policy_path(".git/x.rhai"));
        assert!(!is_policy_path("defs/std.d.rhai"));
        assert!(!is_policy_path("rollout.rhai~"));
    }

    #[test]
    fn hash_depends_on_content_and_names() {
        let t = |files: &[(&str, &str)]| from_strs(files).hash().to_string();
        let a = t(&[("a.rhai", "1")]);
        assert_eq!(a, t(&[("a.rhai", "1")]));
        assert_ne!(a, t(&[("a.rhai", "2")]));
        assert_ne!(a, t(&[("b.rhai", "1")]));
    }

    #[test]
    fn not_utf8_names_line_and_column() {
        let err = SourceTree::from_bytes(
            Path::new("p"),
            [("x.rhai".to_string(), b"fn a() {}\n  \xff\n".to_vec())],
        )
        .unwrap_err();
        let d = err.diagnostics();
        let loc = d[0].location.clone().unwrap();
        assert_eq!((loc.file.as_str(), loc.line, loc.col), ("x.rhai", 2, 3));
    }
}
