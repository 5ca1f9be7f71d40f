//! Named points where a test can freeze the process to kill it there (`kill -9`), so crash
//! safety is tested at every step that matters. `FLEETWARD_FAILPOINT=NAME` makes the first
//! thread to reach point `NAME` print `failpoint NAME` on stderr and block forever (every
//! later thread that reaches it blocks too). Unset, a point costs one load of a cached
//! variable.

use std::io::Write;
use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            std::env::var("FLEETWARD_FAILPOINT")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .as_deref()
}

/// Reaches point `name`.
pub fn hit(name: &str) {
    if armed() != Some(name) {
        return;
    }
    let mut e = std::io::stderr();
    let _ = writeln!(e, "failpoint {name}");
    let _ = e.flush();
    loop {
        std::thread::park();
    }
}
