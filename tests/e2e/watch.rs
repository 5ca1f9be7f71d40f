//! `fleetward watch` as an SRE runs it: a real process, real edits, one JSON line per event.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

struct Watch {
    child: Child,
    lines: Receiver<serde_json::Value>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watch {
    fn start(dir: &std::path::Path) -> Watch {
        let mut child = Command::new(bin())
            .args(["watch", &dir.to_string_lossy(), "--output", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watch");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).expect("each line is JSON");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines: rx }
    }

    /// The next `reloaded` event. An in-place save is not atomic, so a `reload_failed` for a
    /// half-written file may come first; it must keep the last good hash.
    fn next_reloaded(&self, last_good: &str) -> serde_json::Value {
        loop {
            let ev = self.next();
            if ev["event"] == "reloaded" {
                return ev;
            }
            assert_eq!(ev["event"], "reload_failed", "{ev}");
            assert_eq!(ev["hash"], last_good, "{ev}");
        }
    }

    fn next(&self) -> serde_json::Value {
        self.lines
            .recv_timeout(Duration::from_secs(15))
            .expect("an event within 15 s")
    }
}

#[test]
fn watch_prints_one_json_line_per_reload() {
    let dir = policy_dir(&[
        ("rollout.rhai", ROLLOUT_OK.as_bytes()),
        ("gates.rhai", b"fn gate(w) { pass() }\n"),
    ]);
    let w = Watch::start(dir.path());
    let first = w.next();
    assert_eq!(first["event"], "reloaded");
    let h1 = first["hash"].as_str().expect("hash").to_string();

    // Save in place.
    std::fs::write(
        dir.path().join("gates.rhai"),
        "fn gate(w) { pause(\"x\") }\n",
    )
    .expect("write");
    let ev = w.next_reloaded(&h1);
    assert_eq!(ev["previous"], h1.as_str());
    let h2 = ev["hash"].as_str().expect("hash").to_string();
    assert_ne!(h1, h2);

    // A broken edit, saved atomically (write a temp file, rename it over): the event names the
    // location and keeps the last good hash.
    let tmp = dir.path().join(".gates.rhai.new");
    std::fs::write(&tmp, "fn gate(w) {\n  pause(\"x\"\n}\n").expect("write");
    std::fs::rename(&tmp, dir.path().join("gates.rhai")).expect("rename");
    let ev = w.next();
    assert_eq!(ev["event"], "reload_failed");
    assert_eq!(ev["hash"], h2.as_str());
    assert_eq!(ev["error"]["location"]["file"], "gates.rhai");
    assert_eq!(ev["error"]["location"]["line"], 3);
    assert!(
        ev["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("gates.rhai:3:1: ")),
        "{ev}"
    );

    // Rename over: the fix recovers.
    let tmp = dir.path().join(".gates.rhai.new");
    std::fs::write(&tmp, "fn gate(w) { fail(\"y\") }\n").expect("write");
    std::fs::rename(&tmp, dir.path().join("gates.rhai")).expect("rename");
    let ev = w.next();
    assert_eq!(ev["event"], "reloaded");
    assert_eq!(ev["previous"], h2.as_str());
}

#[test]
fn watch_of_a_missing_directory_is_an_error() {
    let o = run(&["watch", "no/such/dir"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
}
