//! Where fleetward keeps state by default, and paths made to outlive the working directory.

use std::path::{Path, PathBuf};

/// The default state directory: `$XDG_STATE_HOME/fleetward`, or `~/.local/state/fleetward`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("fleetward")
}

/// `p` made absolute, when it exists; as given otherwise (the error comes when it is read).
pub fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
